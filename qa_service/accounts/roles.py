"""Roles, what each may do, and the authenticated caller (:class:`Principal`).

Five roles come from the bank's service plan. What a role may *do* is a permission set
(checked by the API on each route); which *calls* it may see is decided separately by
:mod:`qa_service.accounts.scope`, because that depends on the caller's agent id and teams.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Role(StrEnum):
    ADMIN = "admin"
    MANAGER = "manager"
    SUPERVISOR = "supervisor"
    INSPECTOR = "inspector"
    AGENT = "agent"


ROLE_LABELS_ZH: dict[Role, str] = {
    Role.ADMIN: "系统管理员",
    Role.MANAGER: "管理层",
    Role.SUPERVISOR: "组长",
    Role.INSPECTOR: "质检员",
    Role.AGENT: "坐席",
}


class Permission(StrEnum):
    MANAGE_ACCOUNTS = "manage_accounts"  # users, roles, teams, roster, other people's tokens
    MANAGE_SETTINGS = "manage_settings"
    MANAGE_JOBS = "manage_jobs"  # list failed analyses, re-queue them
    UPLOAD_RECORDINGS = "upload_recordings"
    IMPORT_DATA = "import_data"  # dial log, do-not-call list
    VIEW_CALLS = "view_calls"  # within the caller's scope (scope.visible_calls)
    VIEW_PII = "view_pii"  # unmasked customer numbers and ids (data protection, issue 10)
    VIEW_AGGREGATES = "view_aggregates"  # scorecards, agency reports, trends
    VIEW_AUDIT = "view_audit"  # read, verify and review the audit trail
    REVIEW_CALLS = "review_calls"  # confirm or dismiss findings (issue 7)
    VIEW_COMPLAINTS = "view_complaints"  # the complaint register and evidence packs
    MANAGE_COMPLAINTS = "manage_complaints"  # register, import, record outcomes
    COACH_AGENTS = "coach_agents"  # record re-training of the caller's teams' agents


# Managers are read-only (the plan: "everything, read-only, and aggregates"). Admins run
# accounts, settings and the intake, but see no call content: least privilege keeps the
# people who hold the keys apart from the people who read customers' calls.
ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.ADMIN: frozenset(
        {
            Permission.MANAGE_ACCOUNTS,
            Permission.MANAGE_SETTINGS,
            Permission.MANAGE_JOBS,
            Permission.UPLOAD_RECORDINGS,
            Permission.IMPORT_DATA,
            Permission.VIEW_AUDIT,
        }
    ),
    Role.MANAGER: frozenset(
        {
            Permission.VIEW_CALLS,
            Permission.VIEW_PII,
            Permission.VIEW_AGGREGATES,
            Permission.VIEW_COMPLAINTS,
        }
    ),
    Role.SUPERVISOR: frozenset(
        {
            Permission.VIEW_CALLS,
            Permission.VIEW_PII,
            Permission.VIEW_AGGREGATES,
            Permission.VIEW_COMPLAINTS,
            Permission.MANAGE_COMPLAINTS,
            Permission.COACH_AGENTS,
        }
    ),
    Role.INSPECTOR: frozenset(
        {
            Permission.VIEW_CALLS,
            Permission.VIEW_PII,
            Permission.REVIEW_CALLS,
            Permission.UPLOAD_RECORDINGS,
            Permission.IMPORT_DATA,
            Permission.VIEW_COMPLAINTS,
            Permission.MANAGE_COMPLAINTS,
        }
    ),
    Role.AGENT: frozenset({Permission.VIEW_CALLS}),
}


@dataclass(frozen=True)
class Principal:
    """The authenticated caller of one request, rebuilt from the database on every request.

    ``session_id`` is set for a browser session, ``token_id`` for an API token (never both).
    ``must_change_password``: the password expired or was reset by an admin; the API then
    allows nothing but changing it. ``csrf_digest`` (browser sessions only) is what
    :func:`qa_service.accounts.sessions.check_csrf` compares against.
    """

    user_id: int
    username: str
    display_name: str
    role: Role
    agent_id: str | None = None
    team_ids: frozenset[str] = frozenset()
    session_id: int | None = None
    token_id: int | None = None
    must_change_password: bool = False
    csrf_digest: str | None = field(default=None, repr=False, compare=False)

    @property
    def permissions(self) -> frozenset[Permission]:
        return ROLE_PERMISSIONS[self.role]

    def can(self, permission: Permission | str) -> bool:
        """Whether this caller's role grants ``permission``."""
        return Permission(permission) in ROLE_PERMISSIONS[self.role]
