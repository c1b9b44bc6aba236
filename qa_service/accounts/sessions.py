"""Browser sessions (cookie + CSRF token) and API tokens for machine clients.

Both are random strings from :mod:`secrets` of which only a SHA-256 digest is stored: a
copy of the database lets nobody log in. A plain digest (not argon2) is enough because the
tokens carry 256 bits of entropy; nothing is left to guess. Every request resolves its
token to a fresh :class:`Principal` read from the database, so disabling an account, a
role change or a new team takes effect on the next request.

The CSRF token of a session is an HMAC of its cookie token under ``Settings.secret_key``:
the server can render it into a page again from the cookie, and a site that can make the
browser send the cookie still cannot read or compute it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, Result, select, update
from sqlalchemy.orm import Session

from qa_service.accounts.roles import Principal
from qa_service.accounts.rows import (
    ApiTokenInfo,
    principal_from_row,
    resolve_settings,
    token_info_from_row,
    user_row,
)
from qa_service.audit.events import Actor, AuditEvent, record_event
from qa_service.db.rows import storage_errors
from qa_service.db.tables import ApiTokenRow, AuthSessionRow, utcnow
from qa_service.errors import AccountDisabled, AuthenticationFailed, InputError
from qa_service.settings import Settings

# Recognisable in logs, configs and secret scanners, like GitHub's ghp_.
API_TOKEN_PREFIX = "qas_"
_TOKEN_BYTES = 32
# Characters of an API token kept in clear to tell tokens apart in lists (prefix + 8).
_SHOWN_CHARS = len(API_TOKEN_PREFIX) + 8
# last_seen_at is written at most this often: a write per request would contend with the
# worker for SQLite's one writer. Idle expiry can come this much early, never late.
_TOUCH_EVERY = timedelta(seconds=30)

_SESSION_INVALID = "登录已失效，请重新登录 / the session is invalid or has ended; log in again"
_SESSION_IDLE = (
    "长时间未操作，登录已超时，请重新登录 / the session timed out after inactivity; log in again"
)
_TOKEN_INVALID = "API 令牌无效或已撤销 / the API token is invalid or revoked"


def token_digest(token: str) -> str:
    """What is stored for a token: its SHA-256 in hex."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def csrf_token_for(session_token: str, *, settings: Settings | None = None) -> str:
    """The CSRF token belonging to a session cookie token (to render into pages)."""
    key = resolve_settings(settings).secret_key.encode("utf-8")
    mac = hmac.new(key, b"csrf:" + session_token.encode("utf-8"), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode("ascii")


def check_csrf(principal_or_session: Principal | AuthSessionRow, csrf_token: str | None) -> bool:
    """Whether ``csrf_token`` is the one of this browser session (constant-time compare).

    False for API-token principals: they have no cookie, so no CSRF exposure; the API
    checks CSRF only on cookie-authenticated state-changing requests.
    """
    if isinstance(principal_or_session, AuthSessionRow):
        expected: str | None = principal_or_session.csrf_hash
    else:
        expected = principal_or_session.csrf_digest
    if not expected or not csrf_token:
        return False
    return hmac.compare_digest(token_digest(csrf_token), expected)


# --- browser sessions ------------------------------------------------------------------


def start_session(
    session: Session,
    *,
    user_id: int,
    now: datetime | None = None,
    settings: Settings | None = None,
) -> tuple[str, str]:
    """Open a browser session for the user: returns ``(session_token, csrf_token)``.

    Call it after :func:`~qa_service.accounts.service.authenticate` succeeded; the tokens
    are returned once and only their digests are stored.
    """
    now = now or utcnow()
    user = user_row(session, user_id)
    if user.disabled_at is not None:
        raise AccountDisabled("账户已停用 / the account is disabled", user_id=user_id)
    token = secrets.token_urlsafe(_TOKEN_BYTES)
    csrf = csrf_token_for(token, settings=settings)
    with storage_errors("start_session", user_id=user_id):
        session.add(
            AuthSessionRow(
                user_id=user_id,
                token_hash=token_digest(token),
                csrf_hash=token_digest(csrf),
                created_at=now,
                last_seen_at=now,
            )
        )
        session.flush()
    return token, csrf


def resolve_session(
    session: Session,
    *,
    token: str,
    now: datetime | None = None,
    settings: Settings | None = None,
) -> Principal:
    """The caller behind a session cookie token, recording this request as activity.

    Raises :class:`AuthenticationFailed` for an unknown or ended session, a disabled user,
    or a session idle for ``Settings.session_idle_minutes`` (it is then ended for good).
    """
    now = now or utcnow()
    settings = resolve_settings(settings)
    with storage_errors("resolve_session"):
        row = session.scalars(
            select(AuthSessionRow).where(AuthSessionRow.token_hash == token_digest(token))
        ).first()
    if row is None or row.ended_at is not None:
        raise AuthenticationFailed(_SESSION_INVALID)
    user = user_row(session, row.user_id)
    if user.disabled_at is not None:
        _end(session, row, now, "disabled")
        raise AuthenticationFailed(_SESSION_INVALID)
    if now - row.last_seen_at >= timedelta(minutes=settings.session_idle_minutes):
        _end(session, row, now, "idle")
        raise AuthenticationFailed(_SESSION_IDLE, reason="idle")
    if now - row.last_seen_at >= _TOUCH_EVERY:
        with storage_errors("touch session"):
            row.last_seen_at = now
            session.flush()
    return principal_from_row(
        user, now=now, settings=settings, session_id=row.id, csrf_digest=row.csrf_hash
    )


def _end(session: Session, row: AuthSessionRow, now: datetime, reason: str) -> None:
    with storage_errors("end session"):
        row.ended_at = now
        row.end_reason = reason
        session.flush()


def end_session(
    session: Session, *, session_id: int, now: datetime | None = None, reason: str = "logout"
) -> bool:
    """Log a session out; False if it had already ended (or never existed)."""
    with storage_errors("end_session"):
        row = session.get(AuthSessionRow, session_id)
    if row is None or row.ended_at is not None:
        return False
    _end(session, row, now or utcnow(), reason)
    return True


def end_user_sessions(
    session: Session,
    *,
    user_id: int,
    reason: str,
    now: datetime | None = None,
    keep_session_id: int | None = None,
) -> int:
    """End every open session of the user (except ``keep_session_id``); returns how many."""
    statement = (
        update(AuthSessionRow)
        .where(AuthSessionRow.user_id == user_id, AuthSessionRow.ended_at.is_(None))
        .values(ended_at=now or utcnow(), end_reason=reason)
        .execution_options(synchronize_session="fetch")
    )
    if keep_session_id is not None:
        statement = statement.where(AuthSessionRow.id != keep_session_id)
    with storage_errors("end_user_sessions", user_id=user_id):
        return _rowcount(session.execute(statement))


def _rowcount(result: Result[Any]) -> int:
    # Bulk UPDATEs return a CursorResult; Session.execute is typed as the general Result.
    return int(cast("CursorResult[Any]", result).rowcount)


# --- API tokens ----------------------------------------------------------------------


def create_api_token(
    session: Session,
    *,
    user_id: int,
    name: str,
    now: datetime | None = None,
    actor: Actor | None = None,
) -> str:
    """A new bearer token acting as the user; returned once, stored only as its digest."""
    name = name.strip()
    if not name or len(name) > 128:
        raise InputError(
            "令牌名称须为 1 到 128 个字符 / the token name must be 1-128 characters", name=name
        )
    user = user_row(session, user_id)
    if user.disabled_at is not None:
        raise AccountDisabled("账户已停用 / the account is disabled", user_id=user_id)
    token = API_TOKEN_PREFIX + secrets.token_urlsafe(_TOKEN_BYTES)
    with storage_errors("create_api_token", user_id=user_id):
        session.add(
            ApiTokenRow(
                user_id=user_id,
                name=name,
                token_hash=token_digest(token),
                prefix=token[:_SHOWN_CHARS],
                created_at=now or utcnow(),
            )
        )
        session.flush()
    record_event(
        session,
        actor=actor or Actor.system(),
        event=AuditEvent.TOKEN_CREATE,
        target=f"user:{user.username}",
        details={"name": name, "prefix": token[:_SHOWN_CHARS]},
        now=now,
    )
    return token


def resolve_api_token(
    session: Session,
    *,
    token: str,
    now: datetime | None = None,
    settings: Settings | None = None,
) -> Principal:
    """The caller behind a bearer token; :class:`AuthenticationFailed` if unknown, revoked
    or its user disabled."""
    now = now or utcnow()
    if not token.startswith(API_TOKEN_PREFIX):
        raise AuthenticationFailed(_TOKEN_INVALID)
    with storage_errors("resolve_api_token"):
        row = session.scalars(
            select(ApiTokenRow).where(ApiTokenRow.token_hash == token_digest(token))
        ).first()
    if row is None or row.revoked_at is not None:
        raise AuthenticationFailed(_TOKEN_INVALID)
    user = user_row(session, row.user_id)
    if user.disabled_at is not None:
        raise AuthenticationFailed(_TOKEN_INVALID)
    if row.last_used_at is None or now - row.last_used_at >= _TOUCH_EVERY:
        with storage_errors("touch token"):
            row.last_used_at = now
            session.flush()
    return principal_from_row(user, now=now, settings=resolve_settings(settings), token_id=row.id)


def revoke_api_token(
    session: Session,
    *,
    token_id: int,
    user_id: int | None = None,
    now: datetime | None = None,
    actor: Actor | None = None,
) -> bool:
    """Revoke a token (only if it belongs to ``user_id``, when given); False if none was."""
    with storage_errors("revoke_api_token", token_id=token_id):
        row = session.get(ApiTokenRow, token_id)
        if row is None or row.revoked_at is not None:
            return False
        if user_id is not None and row.user_id != user_id:
            return False
        row.revoked_at = now or utcnow()
        session.flush()
    owner = user_row(session, row.user_id)
    record_event(
        session,
        actor=actor or Actor.system(),
        event=AuditEvent.TOKEN_REVOKE,
        target=f"user:{owner.username}",
        details={"token_id": token_id, "name": row.name, "prefix": row.prefix},
        now=now,
    )
    return True


def revoke_user_tokens(session: Session, *, user_id: int, now: datetime | None = None) -> int:
    """Revoke every live token of the user; returns how many."""
    statement = (
        update(ApiTokenRow)
        .where(ApiTokenRow.user_id == user_id, ApiTokenRow.revoked_at.is_(None))
        .values(revoked_at=now or utcnow())
        .execution_options(synchronize_session="fetch")
    )
    with storage_errors("revoke_user_tokens", user_id=user_id):
        return _rowcount(session.execute(statement))


def list_api_tokens(
    session: Session, *, user_id: int | None = None, include_revoked: bool = False
) -> list[ApiTokenInfo]:
    """Tokens (of one user, or everyone's), oldest first, without the secret part."""
    statement = select(ApiTokenRow).order_by(ApiTokenRow.id)
    if user_id is not None:
        statement = statement.where(ApiTokenRow.user_id == user_id)
    if not include_revoked:
        statement = statement.where(ApiTokenRow.revoked_at.is_(None))
    with storage_errors("list_api_tokens"):
        return [token_info_from_row(row) for row in session.scalars(statement)]
