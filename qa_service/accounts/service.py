"""Accounts: creating users, logging in, passwords, disabling, roles and teams.

Keyword-only functions taking the caller's SQLAlchemy ``Session``, like
:mod:`qa_service.db.repository`: they flush, never commit. The exception is
:func:`login`, which owns its transaction because a failed attempt must be *kept* although
an error is raised (see :func:`authenticate`).

These functions do not check who is asking: the API checks
``principal.can(Permission.MANAGE_ACCOUNTS)`` first; the CLI is run by whoever holds the
database. Each change, and every login attempt, is recorded in the audit trail in the same
transaction; ``actor`` says who made the change (default: the service itself). Sessions
and API tokens live in :mod:`.sessions` and are re-exported here.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload, sessionmaker

from qa_service.accounts.passwords import (
    check_password_policy,
    dummy_verify,
    hash_password,
    needs_rehash,
    verify_password,
)
from qa_service.accounts.roles import Principal, Role
from qa_service.accounts.rows import (
    ApiTokenInfo,
    UserAccount,
    account_from_row,
    check_username,
    normalise_username,
    principal_from_row,
    resolve_settings,
    user_row,
    user_row_by_name,
)
from qa_service.accounts.sessions import (
    check_csrf,
    create_api_token,
    csrf_token_for,
    end_session,
    end_user_sessions,
    list_api_tokens,
    resolve_api_token,
    resolve_session,
    revoke_api_token,
    revoke_user_tokens,
    start_session,
)
from qa_service.audit.events import Actor, AuditEvent, Outcome, failure_details, record_event
from qa_service.db.rows import storage_errors
from qa_service.db.tables import PasswordHistoryRow, UserRow, UserTeamRow, utcnow
from qa_service.errors import (
    AccountDisabled,
    AccountLocked,
    AuthenticationFailed,
    Conflict,
    InputError,
    PasswordExpired,
)
from qa_service.settings import Settings

__all__ = [
    "ApiTokenInfo",
    "KEEP",
    "LoginResult",
    "UserAccount",
    "admin_reset_password",
    "authenticate",
    "change_password",
    "check_csrf",
    "create_api_token",
    "create_user",
    "csrf_token_for",
    "disable_user",
    "enable_user",
    "end_session",
    "end_user_sessions",
    "ensure_password_current",
    "find_user",
    "get_user",
    "list_api_tokens",
    "list_users",
    "login",
    "resolve_api_token",
    "resolve_session",
    "revoke_api_token",
    "revoke_user_tokens",
    "start_session",
    "update_user",
]

# One message whether the name or the password was wrong: no telling which names exist.
_BAD_CREDENTIALS = "用户名或密码错误 / wrong user name or password"
_DISABLED = "账户已停用，请联系管理员 / the account is disabled; contact an administrator"


class _Keep(Enum):
    KEEP = "keep"


KEEP = _Keep.KEEP
"""For :func:`update_user`: leave this field as it is (``None`` would clear it)."""


@dataclass(frozen=True)
class LoginResult:
    """A successful login: the caller and the tokens of its new browser session."""

    principal: Principal
    session_token: str
    csrf_token: str


# --- users ---------------------------------------------------------------------------


def create_user(
    session: Session,
    *,
    username: str,
    role: Role | str,
    password: str,
    display_name: str | None = None,
    team_ids: Iterable[str] = (),
    agent_id: str | None = None,
    must_change_password: bool = False,
    now: datetime | None = None,
    settings: Settings | None = None,
    actor: Actor | None = None,
) -> UserAccount:
    """Create an account; the password must pass the policy (:class:`PasswordPolicyError`).

    A duplicate user name is a :class:`Conflict`; role ``agent`` needs ``agent_id`` (the
    calls it may see). ``must_change_password``: the user must choose a new password at
    the first login (for passwords an administrator typed).
    """
    now = now or utcnow()
    settings = resolve_settings(settings)
    name = check_username(username)
    checked_role = _role(role)
    agent = _agent_id(agent_id)
    _check_agent_link(checked_role, agent)
    teams = _team_ids(team_ids)
    display = (display_name or "").strip() or name
    if user_row_by_name(session, name) is not None:
        raise _duplicate(name)
    check_password_policy(
        password, username=name, display_name=display, history_size=settings.password_history
    )
    hashed = hash_password(password)
    row = UserRow(
        username=name,
        display_name=display[:128],
        role=checked_role.value,
        agent_id=agent,
        password_hash=hashed,
        password_changed_at=now,
        must_change_password=must_change_password,
        failed_logins=0,
        created_at=now,
        updated_at=now,
    )
    row.teams = [UserTeamRow(team_id=team) for team in teams]
    with storage_errors("create_user", username=name):
        session.add(row)
        try:
            session.flush()
        except IntegrityError as exc:  # a concurrent create of the same name
            raise _duplicate(name) from exc
        session.add(PasswordHistoryRow(user_id=row.id, password_hash=hashed, created_at=now))
        session.flush()
    _audit(
        session,
        actor,
        AuditEvent.ACCOUNT_CREATE,
        name,
        {
            "role": checked_role.value,
            "teams": teams,
            "agent_id": agent,
            "must_change_password": must_change_password,
        },
        now,
    )
    return account_from_row(row)


def get_user(session: Session, *, user_id: int) -> UserAccount:
    """The account with this id, or :class:`~qa_service.errors.UserNotFound`."""
    return account_from_row(user_row(session, user_id))


def find_user(session: Session, *, username: str) -> UserAccount | None:
    """The account with this user name (case and width ignored), if any."""
    row = user_row_by_name(session, username)
    return None if row is None else account_from_row(row)


def list_users(session: Session, *, include_disabled: bool = True) -> list[UserAccount]:
    """Every account, by user name."""
    statement = select(UserRow).options(selectinload(UserRow.teams)).order_by(UserRow.username)
    if not include_disabled:
        statement = statement.where(UserRow.disabled_at.is_(None))
    with storage_errors("list_users"):
        return [account_from_row(row) for row in session.scalars(statement)]


def update_user(
    session: Session,
    *,
    user_id: int,
    role: Role | str | None = None,
    team_ids: Iterable[str] | None = None,
    display_name: str | None = None,
    agent_id: str | None | _Keep = KEEP,
    actor: Actor | None = None,
) -> UserAccount:
    """Change role, teams, display name or agent id (``None``/``KEEP``: unchanged).

    Takes effect on the user's next request: every request rebuilds its principal.
    """
    row = user_row(session, user_id)
    new_role = _role(role) if role is not None else Role(row.role)
    new_agent = row.agent_id if isinstance(agent_id, _Keep) else _agent_id(agent_id)
    _check_agent_link(new_role, new_agent)
    before = _account_fields(row)
    with storage_errors("update_user", user_id=user_id):
        row.role = new_role.value
        row.agent_id = new_agent
        if display_name is not None and display_name.strip():
            row.display_name = display_name.strip()[:128]
        if team_ids is not None:
            wanted = _team_ids(team_ids)
            row.teams = [t for t in row.teams if t.team_id in wanted]
            held = {t.team_id for t in row.teams}
            row.teams.extend(UserTeamRow(team_id=t) for t in wanted if t not in held)
        session.flush()
    after = _account_fields(row)
    changes = {k: [before[k], after[k]] for k in before if before[k] != after[k]}
    _audit(session, actor, AuditEvent.ACCOUNT_UPDATE, row.username, {"changes": changes})
    return account_from_row(row)


def disable_user(
    session: Session, *, user_id: int, now: datetime | None = None, actor: Actor | None = None
) -> tuple[int, int]:
    """Disable an account (someone left): its sessions end and its tokens are revoked now.

    Returns ``(sessions_ended, tokens_revoked)``. The account stays, so its history and
    its user name (never reused for someone else) are kept.
    """
    now = now or utcnow()
    row = user_row(session, user_id)
    with storage_errors("disable_user", user_id=user_id):
        if row.disabled_at is None:
            row.disabled_at = now
        session.flush()
    ended = end_user_sessions(session, user_id=user_id, reason="disabled", now=now)
    revoked = revoke_user_tokens(session, user_id=user_id, now=now)
    details = {"sessions_ended": ended, "tokens_revoked": revoked}
    _audit(session, actor, AuditEvent.ACCOUNT_DISABLE, row.username, details, now)
    return ended, revoked


def enable_user(session: Session, *, user_id: int, actor: Actor | None = None) -> UserAccount:
    """Re-enable an account and lift any lockout. Its old tokens stay revoked."""
    row = user_row(session, user_id)
    with storage_errors("enable_user", user_id=user_id):
        row.disabled_at = None
        row.failed_logins = 0
        row.locked_until = None
        session.flush()
    _audit(session, actor, AuditEvent.ACCOUNT_ENABLE, row.username)
    return account_from_row(row)


# --- logging in ----------------------------------------------------------------------


def authenticate(
    session: Session,
    *,
    username: str,
    password: str,
    now: datetime | None = None,
    settings: Settings | None = None,
) -> Principal:
    """Check a user name and password; the principal has no session yet.

    Raises :class:`AuthenticationFailed` (same message for an unknown name and a wrong
    password), :class:`AccountLocked` after ``Settings.lockout_attempts`` failures in a row
    (for ``lockout_minutes``), :class:`AccountDisabled`. A password past its maximum age
    (or reset by an admin) still logs in, with ``must_change_password`` set.

    A failed attempt is flushed *before* the error is raised: the caller must commit even
    then, or lockout never happens. :func:`login` does that.
    """
    now = now or utcnow()
    settings = resolve_settings(settings)
    with storage_errors("authenticate"):
        # FOR UPDATE: concurrent wrong guesses on PostgreSQL must all be counted.
        row = session.scalars(
            select(UserRow)
            .where(UserRow.username == normalise_username(username))
            .with_for_update()
        ).first()
    if row is None:
        dummy_verify(password)
        raise AuthenticationFailed(_BAD_CREDENTIALS)
    if row.locked_until is not None and now < row.locked_until:
        raise _locked(row.locked_until, now)
    if not verify_password(row.password_hash, password):
        _record_failure(session, row, now, settings)
        raise AuthenticationFailed(_BAD_CREDENTIALS)
    if row.disabled_at is not None:
        raise AccountDisabled(_DISABLED)
    with storage_errors("record login", user_id=row.id):
        row.failed_logins = 0
        row.locked_until = None
        row.last_login_at = now
        if needs_rehash(row.password_hash):  # hashing parameters were raised since
            row.password_hash = hash_password(password)
        session.flush()
    return principal_from_row(row, now=now, settings=settings)


def login(
    sessions: sessionmaker[Session],
    *,
    username: str,
    password: str,
    now: datetime | None = None,
    settings: Settings | None = None,
    client_ip: str | None = None,
) -> LoginResult:
    """Authenticate and open a browser session, in a transaction of its own.

    Unlike the other functions this commits, also when it raises: a failed attempt, a
    lockout and their audit events must outlive the error that reports them.
    """
    now = now or utcnow()
    settings = resolve_settings(settings)
    with sessions() as session:
        try:
            principal = authenticate(
                session, username=username, password=password, now=now, settings=settings
            )
        except (AuthenticationFailed, AccountLocked) as exc:
            _audit_failed_login(session, username, exc, now, settings, client_ip)
            with storage_errors("record failed login"):
                session.commit()
            raise
        token, csrf = start_session(session, user_id=principal.user_id, now=now, settings=settings)
        principal = resolve_session(session, token=token, now=now, settings=settings)
        record_event(
            session,
            actor=Actor.of(principal, client_ip=client_ip),
            event=AuditEvent.LOGIN,
            target=f"user:{principal.username}",
            details={"session_id": principal.session_id},
            now=now,
        )
        with storage_errors("login"):
            session.commit()
    return LoginResult(principal=principal, session_token=token, csrf_token=csrf)


def ensure_password_current(principal: Principal) -> None:
    """Raise :class:`PasswordExpired` if the caller must change its password first."""
    if principal.must_change_password:
        raise PasswordExpired(
            "密码已过期或已被管理员重置，请先修改密码 / "
            "the password has expired or was reset; change it first",
            user_id=principal.user_id,
        )


def _audit_failed_login(
    session: Session,
    username: str,
    exc: AuthenticationFailed | AccountLocked,
    now: datetime,
    settings: Settings,
    client_ip: str | None,
) -> None:
    row = user_row_by_name(session, username)
    name = normalise_username(username)[:64]
    actor = Actor.claimed(name, client_ip=client_ip)
    details = failure_details(exc, known_user=row is not None)
    locked_now = False
    if row is not None:
        actor = Actor("user", row.username, row.id, client_ip)
        if row.locked_until is not None and row.locked_until > now:
            details["locked_until"] = row.locked_until
            # This very attempt set the lock (see _record_failure).
            locked_now = row.locked_until == now + timedelta(minutes=settings.lockout_minutes)
    target = f"user:{name}"
    record_event(
        session,
        actor=actor,
        event=AuditEvent.LOGIN,
        result=Outcome.FAILURE,
        target=target,
        details=details,
        now=now,
    )
    if locked_now and row is not None:
        record_event(
            session,
            actor=Actor.system(),
            event=AuditEvent.ACCOUNT_LOCK,
            target=target,
            details={
                "locked_until": row.locked_until,
                "failed_logins": settings.lockout_attempts,
                "client_ip": client_ip,
            },
            now=now,
        )


def _record_failure(session: Session, row: UserRow, now: datetime, settings: Settings) -> None:
    with storage_errors("record failed login", user_id=row.id):
        row.failed_logins += 1
        if row.failed_logins >= settings.lockout_attempts:
            row.locked_until = now + timedelta(minutes=settings.lockout_minutes)
            row.failed_logins = 0
        session.flush()


def _locked(until: datetime, now: datetime) -> AccountLocked:
    minutes = max(1, math.ceil((until - now).total_seconds() / 60))
    return AccountLocked(
        f"登录失败次数过多，账户已锁定，请 {minutes} 分钟后再试 / "
        f"too many failed logins: the account is locked for {minutes} more minute(s)",
        locked_until=until.isoformat(),
    )


# --- passwords -----------------------------------------------------------------------


def change_password(
    session: Session,
    *,
    user_id: int,
    old_password: str,
    new_password: str,
    now: datetime | None = None,
    keep_session_id: int | None = None,
    settings: Settings | None = None,
    actor: Actor | None = None,
) -> None:
    """The user changes its own password (after expiry too); other sessions are ended.

    ``keep_session_id``: the session the change was made from stays logged in.
    """
    now = now or utcnow()
    row = user_row(session, user_id)
    if row.disabled_at is not None:
        raise AccountDisabled(_DISABLED)
    if not verify_password(row.password_hash, old_password):
        raise AuthenticationFailed("当前密码错误 / the current password is wrong")
    _set_password(session, row, new_password, now, resolve_settings(settings), forced=False)
    ended = end_user_sessions(
        session, user_id=user_id, reason="password", now=now, keep_session_id=keep_session_id
    )
    _audit(
        session,
        actor or Actor("user", row.username, row.id),
        AuditEvent.PASSWORD_CHANGE,
        row.username,
        {"sessions_ended": ended},
        now,
    )


def admin_reset_password(
    session: Session,
    *,
    user_id: int,
    new_password: str,
    now: datetime | None = None,
    settings: Settings | None = None,
    actor: Actor | None = None,
) -> None:
    """An administrator sets a password; the user must change it at the next login.

    All the user's sessions end and any lockout is lifted; API tokens are untouched.
    """
    now = now or utcnow()
    row = user_row(session, user_id)
    _set_password(session, row, new_password, now, resolve_settings(settings), forced=True)
    ended = end_user_sessions(session, user_id=user_id, reason="reset", now=now)
    _audit(session, actor, AuditEvent.PASSWORD_RESET, row.username, {"sessions_ended": ended}, now)


def _set_password(
    session: Session,
    row: UserRow,
    password: str,
    now: datetime,
    settings: Settings,
    *,
    forced: bool,
) -> None:
    keep = settings.password_history
    with storage_errors("password history", user_id=row.id):
        stored = session.scalars(
            select(PasswordHistoryRow.password_hash)
            .where(PasswordHistoryRow.user_id == row.id)
            .order_by(PasswordHistoryRow.created_at.desc(), PasswordHistoryRow.id.desc())
            .limit(keep)
        ).all()
    recent = [row.password_hash, *(h for h in stored if h != row.password_hash)][:keep]
    check_password_policy(
        password,
        username=row.username,
        display_name=row.display_name,
        previous_hashes=recent,
        history_size=keep,
    )
    hashed = hash_password(password)
    with storage_errors("set password", user_id=row.id):
        row.password_hash = hashed
        row.password_changed_at = now
        row.must_change_password = forced
        row.failed_logins = 0
        row.locked_until = None
        entry = PasswordHistoryRow(user_id=row.id, password_hash=hashed, created_at=now)
        session.add(entry)
        session.flush()
        # Old hashes are kept no longer than the policy needs them.
        kept = select(PasswordHistoryRow.id).where(PasswordHistoryRow.user_id == row.id)
        kept = kept.order_by(
            PasswordHistoryRow.created_at.desc(), PasswordHistoryRow.id.desc()
        ).limit(keep)
        session.execute(
            delete(PasswordHistoryRow)
            .where(PasswordHistoryRow.user_id == row.id, PasswordHistoryRow.id.not_in(kept))
            .execution_options(synchronize_session=False)
        )


# --- audit ---------------------------------------------------------------------------


def _audit(
    session: Session,
    actor: Actor | None,
    event: AuditEvent,
    username: str,
    details: Mapping[str, object] | None = None,
    now: datetime | None = None,
) -> None:
    record_event(
        session,
        actor=actor or Actor.system(),
        event=event,
        target=f"user:{username}",
        details=details,
        now=now,
    )


def _account_fields(row: UserRow) -> dict[str, object]:
    return {
        "role": row.role,
        "teams": sorted(t.team_id for t in row.teams),
        "display_name": row.display_name,
        "agent_id": row.agent_id,
    }


# --- validation ----------------------------------------------------------------------


def _duplicate(name: str) -> Conflict:
    return Conflict(f"用户名 {name} 已存在 / user name {name} is taken", username=name)


def _role(role: Role | str) -> Role:
    try:
        return Role(str(role).strip().lower())
    except ValueError:
        choices = ", ".join(r.value for r in Role)
        raise InputError(
            f"未知角色 {role!r}，可选：{choices} / unknown role {role!r}; one of {choices}",
            role=role,
        ) from None


def _agent_id(agent_id: str | None) -> str | None:
    if agent_id is None or not agent_id.strip():
        return None
    value = agent_id.strip()
    if len(value) > 64:
        raise InputError("坐席工号过长（最多 64 个字符）/ agent id longer than 64 characters")
    return value


def _check_agent_link(role: Role, agent_id: str | None) -> None:
    if role is Role.AGENT and agent_id is None:
        raise InputError(
            "坐席账户必须指定坐席工号（--agent-id）/ an agent account needs its agent id",
            role=role.value,
        )


def _team_ids(team_ids: Iterable[str]) -> list[str]:
    teams: list[str] = []
    for team in team_ids:
        value = team.strip()
        if not value or len(value) > 64:
            raise InputError(
                f"团队编号 {team!r} 无效（1 到 64 个字符）/ invalid team id {team!r}", team=team
            )
        if value not in teams:
            teams.append(value)
    return teams
