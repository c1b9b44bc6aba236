"""Account rows to domain objects: what the service, sessions and tokens modules share.

The user look-ups and the one way a :class:`Principal` is built from a user row live here,
so :mod:`.service` (users, logins) and :mod:`.sessions` (sessions, tokens) agree on what an
expired password or a disabled account means without importing each other.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from qa_service.accounts.roles import Principal, Role
from qa_service.db.rows import storage_errors
from qa_service.db.tables import ApiTokenRow, UserRow
from qa_service.errors import InputError, UserNotFound
from qa_service.settings import Settings, get_settings

# Letters (Chinese included), digits and . _ @ -: fits a staff number, pinyin or an e-mail.
_USERNAME = re.compile(r"[\w.@-]{2,64}")


@dataclass(frozen=True)
class UserAccount:
    """An account as administrators see it (never its password hash)."""

    user_id: int
    username: str
    display_name: str
    role: Role
    agent_id: str | None
    team_ids: frozenset[str]
    disabled: bool
    must_change_password: bool
    password_changed_at: datetime
    locked_until: datetime | None
    last_login_at: datetime | None
    created_at: datetime


@dataclass(frozen=True)
class ApiTokenInfo:
    """An API token as listed: its name and first characters, never the token itself."""

    token_id: int
    user_id: int
    name: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


def resolve_settings(settings: Settings | None) -> Settings:
    return settings if settings is not None else get_settings()


def normalise_username(username: str) -> str:
    """The stored form of a user name: NFKC (full-width → ASCII), trimmed, lower case.

    A NUL becomes U+FFFD: PostgreSQL refuses NUL in text even in a lookup, and a name
    holding one can only be a forged login (no account can have it), so it must read as
    an unknown user, not as a database failure.
    """
    return unicodedata.normalize("NFKC", username).strip().lower().replace("\x00", "\ufffd")


def check_username(username: str) -> str:
    """The normalised name, or :class:`InputError` if it cannot be a user name."""
    name = normalise_username(username)
    if not _USERNAME.fullmatch(name):
        raise InputError(
            f"用户名 {username!r} 无效：须为 2 到 64 个字母、汉字、数字或 . _ @ - / "
            f"invalid user name {username!r}: 2-64 letters, digits or . _ @ -",
            username=username,
        )
    return name


def user_row(session: Session, user_id: int) -> UserRow:
    """The user with this id, or :class:`UserNotFound`."""
    with storage_errors("load user", user_id=user_id):
        row = session.get(UserRow, user_id)
    if row is None:
        raise UserNotFound(f"用户不存在 / no such user: {user_id}", user_id=user_id)
    return row


def user_row_by_name(session: Session, username: str) -> UserRow | None:
    """The user with this (normalised) name, if any."""
    with storage_errors("find user"):
        return session.scalars(
            select(UserRow).where(UserRow.username == normalise_username(username))
        ).first()


def password_expired(row: UserRow, now: datetime, settings: Settings) -> bool:
    """Whether the password must be changed: reset by an admin, or older than the max age."""
    age = now - row.password_changed_at
    return row.must_change_password or age >= timedelta(days=settings.password_max_age_days)


def principal_from_row(
    row: UserRow,
    *,
    now: datetime,
    settings: Settings,
    session_id: int | None = None,
    token_id: int | None = None,
    csrf_digest: str | None = None,
) -> Principal:
    """The caller acting as ``row``.

    An API token is its own credential: a machine client is not asked to change a password
    it never types, so token principals never carry ``must_change_password``.
    """
    return Principal(
        user_id=row.id,
        username=row.username,
        display_name=row.display_name,
        role=Role(row.role),
        agent_id=row.agent_id,
        team_ids=frozenset(t.team_id for t in row.teams),
        session_id=session_id,
        token_id=token_id,
        must_change_password=token_id is None and password_expired(row, now, settings),
        csrf_digest=csrf_digest,
    )


def account_from_row(row: UserRow) -> UserAccount:
    return UserAccount(
        user_id=row.id,
        username=row.username,
        display_name=row.display_name,
        role=Role(row.role),
        agent_id=row.agent_id,
        team_ids=frozenset(t.team_id for t in row.teams),
        disabled=row.disabled_at is not None,
        must_change_password=row.must_change_password,
        password_changed_at=row.password_changed_at,
        locked_until=row.locked_until,
        last_login_at=row.last_login_at,
        created_at=row.created_at,
    )


def token_info_from_row(row: ApiTokenRow) -> ApiTokenInfo:
    return ApiTokenInfo(
        token_id=row.id,
        user_id=row.user_id,
        name=row.name,
        prefix=row.prefix,
        created_at=row.created_at,
        last_used_at=row.last_used_at,
        revoked_at=row.revoked_at,
    )
