"""Administration for the web UI's admin pages: accounts (list, create, disable, enable,
reset the password), the agent roster's CSV import and a read-only view of the running
settings, secrets redacted.

The accounts service does the work and writes the audit events; these routes only check
``manage_accounts`` / ``manage_settings`` and translate. A reset password must be changed
at the next login (the service marks it), so the administrator never knows a password
that stays in use.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field
from sqlalchemy import make_url
from starlette.concurrency import run_in_threadpool

from qa_service.accounts import service as accounts
from qa_service.accounts.roles import Permission, Principal
from qa_service.accounts.roster import import_roster
from qa_service.accounts.rows import UserAccount
from qa_service.api.audit import actor_of
from qa_service.api.deps import State, require
from qa_service.api.imports import MAX_IMPORT_BYTES
from qa_service.api.schemas import ErrorResponse
from qa_service.api.uploads import receive_upload
from qa_service.audit.events import AuditEvent, record_event
from qa_service.errors import InputError

router = APIRouter(prefix="/api/v1/admin", tags=["admin"])

AccountAdmin = Annotated[Principal, Depends(require(Permission.MANAGE_ACCOUNTS))]
SettingsAdmin = Annotated[Principal, Depends(require(Permission.MANAGE_SETTINGS))]
_ERRORS: dict[int | str, dict[str, Any]] = {
    403: {"model": ErrorResponse},
    404: {"model": ErrorResponse},
    422: {"model": ErrorResponse},
}
# Settings whose value is never shown, whatever their name says.
_SECRET_WORDS = ("secret", "key", "password", "token", "webhook")


class AccountOut(BaseModel):
    user_id: int
    username: str
    display_name: str
    role: str
    agent_id: str | None
    team_ids: list[str]
    disabled: bool
    must_change_password: bool
    locked_until: datetime | None
    last_login_at: datetime | None
    created_at: datetime

    @classmethod
    def from_account(cls, a: UserAccount) -> AccountOut:
        return cls(
            user_id=a.user_id,
            username=a.username,
            display_name=a.display_name,
            role=a.role.value,
            agent_id=a.agent_id,
            team_ids=sorted(a.team_ids),
            disabled=a.disabled,
            must_change_password=a.must_change_password,
            locked_until=a.locked_until,
            last_login_at=a.last_login_at,
            created_at=a.created_at,
        )


class AccountList(BaseModel):
    items: list[AccountOut]


class AccountIn(BaseModel):
    username: str = Field(min_length=1, max_length=64)
    role: str = Field(min_length=1, max_length=16)
    password: str = Field(min_length=1, max_length=1024, description="初始密码（首次登录须修改）")
    display_name: str | None = Field(default=None, max_length=128)
    team_ids: list[str] = Field(default_factory=list)
    agent_id: str | None = Field(default=None, max_length=64)


class ResetIn(BaseModel):
    new_password: str = Field(min_length=1, max_length=1024)


def _account(state: State, username: str) -> UserAccount:
    with state.sessions() as session:
        account = accounts.find_user(session, username=username)
    if account is None:
        raise InputError(f"找不到账号 {username} / no account '{username}'", field="username")
    return account


@router.get("/users", response_model=AccountList, responses=_ERRORS)
def list_accounts(state: State, _admin: AccountAdmin) -> AccountList:
    """Every account, disabled ones included, by user name."""
    with state.sessions() as session:
        return AccountList(items=[AccountOut.from_account(a) for a in accounts.list_users(session)])


@router.post("/users", response_model=AccountOut, status_code=201, responses=_ERRORS)
def create_account(
    body: AccountIn, request: Request, state: State, admin: AccountAdmin
) -> AccountOut:
    """Create an account; its password must satisfy the policy and be changed at first login."""
    with state.sessions.begin() as session:
        account = accounts.create_user(
            session,
            username=body.username,
            role=body.role,
            password=body.password,
            display_name=body.display_name,
            team_ids=body.team_ids,
            agent_id=body.agent_id,
            must_change_password=True,
            settings=state.settings,
            actor=actor_of(request, admin),
        )
    return AccountOut.from_account(account)


@router.post("/users/{username}/disable", response_model=AccountOut, responses=_ERRORS)
def disable_account(
    username: str, request: Request, state: State, admin: AccountAdmin
) -> AccountOut:
    """Disable an account: its sessions and tokens end at once."""
    account = _account(state, username)
    with state.sessions.begin() as session:
        accounts.disable_user(session, user_id=account.user_id, actor=actor_of(request, admin))
        return AccountOut.from_account(accounts.get_user(session, user_id=account.user_id))


@router.post("/users/{username}/enable", response_model=AccountOut, responses=_ERRORS)
def enable_account(
    username: str, request: Request, state: State, admin: AccountAdmin
) -> AccountOut:
    """Enable a disabled account (and lift a lockout)."""
    account = _account(state, username)
    with state.sessions.begin() as session:
        out = accounts.enable_user(session, user_id=account.user_id, actor=actor_of(request, admin))
    return AccountOut.from_account(out)


@router.post("/users/{username}/password", response_model=AccountOut, responses=_ERRORS)
def reset_password(
    username: str, body: ResetIn, request: Request, state: State, admin: AccountAdmin
) -> AccountOut:
    """Set a temporary password; the user must change it at the next login."""
    account = _account(state, username)
    with state.sessions.begin() as session:
        accounts.admin_reset_password(
            session,
            user_id=account.user_id,
            new_password=body.new_password,
            settings=state.settings,
            actor=actor_of(request, admin),
        )
        return AccountOut.from_account(accounts.get_user(session, user_id=account.user_id))


def _shown(name: str, value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float):
        return value
    text = str(value) if not isinstance(value, Path) else value.as_posix()
    if name.lower() in {"database_url", "redis_url"} and text:
        try:
            return make_url(text).render_as_string(hide_password=True)
        except Exception:  # not a URL SQLAlchemy reads: show nothing of it
            return "（已隐藏）"
    if any(word in name.lower() for word in _SECRET_WORDS):
        return "（已设置，已隐藏）" if text else "（未设置）"
    return text


@router.get("/settings", responses=_ERRORS)
def get_settings(state: State, _admin: SettingsAdmin) -> dict[str, Any]:
    """The running settings (read-only; secrets and passwords in URLs are not shown)."""
    values = state.settings.model_dump()
    return {"items": [{"name": k, "value": _shown(k, v)} for k, v in sorted(values.items())]}


class RosterRejected(BaseModel):
    line: int
    message: str
    detail: str | None = None


class RosterResult(BaseModel):
    created: int
    updated: int
    unchanged: int
    calls_updated: int
    rejected: list[RosterRejected]


@router.post("/roster", response_model=RosterResult, responses=_ERRORS)
async def import_roster_file(request: Request, state: State, caller: AccountAdmin) -> RosterResult:
    """Import the agent roster (CSV: 工号, 姓名, 团队, 机构; UTF-8, GBK or UTF-16) as
    ``qa-service roster import`` does; the agents' stored calls move with them."""
    upload = await receive_upload(request, max_bytes=MAX_IMPORT_BYTES, tmp_dir=state.upload_tmp_dir)
    try:
        data = upload.path.read_bytes()
    finally:
        upload.path.unlink(missing_ok=True)

    def save() -> RosterResult:
        with state.sessions.begin() as session:
            result = import_roster(session, data=data, source=upload.filename)
            record_event(
                session,
                actor=actor_of(request, caller),
                event=AuditEvent.ROSTER_IMPORT,
                target=f"file:{upload.filename}",
                details={
                    "created": result.created,
                    "updated": result.updated,
                    "unchanged": result.unchanged,
                    "calls_updated": result.calls_updated,
                    "rejected": len(result.rejected),
                },
            )
        rejected = []
        for row in result.rejected:
            zh, _, en = row.reason.partition(" / ")
            rejected.append(RosterRejected(line=row.line, message=zh, detail=en or None))
        return RosterResult(
            created=result.created,
            updated=result.updated,
            unchanged=result.unchanged,
            calls_updated=result.calls_updated,
            rejected=rejected,
        )

    return await run_in_threadpool(save)
