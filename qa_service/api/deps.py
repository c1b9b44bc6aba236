"""Typed dependencies: the service state, the authenticated caller and permission checks.

Authentication happens here and only here. A request carries either ``Authorization:
Bearer <token>`` (machine clients; no CSRF exposure, so no CSRF check) or the session
cookie set at login, in which case every state-changing request must also carry the
session's CSRF token in the ``X-CSRF-Token`` header. Idle expiry, disabled accounts and
revoked tokens are the accounts service's decisions; they arrive as AuthenticationFailed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from qa_service.accounts.roles import Permission, Principal
from qa_service.accounts.service import ensure_password_current
from qa_service.accounts.sessions import check_csrf, resolve_api_token, resolve_session
from qa_service.api.state import ServiceState
from qa_service.errors import (
    AuthenticationFailed,
    CsrfRejected,
    PermissionDenied,
)

SESSION_COOKIE = "qa_session"
CSRF_HEADER = "X-CSRF-Token"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def get_state(request: Request) -> ServiceState:
    state: ServiceState = request.app.state.service
    return state


State = Annotated[ServiceState, Depends(get_state)]


def bearer_token(request: Request) -> str | None:
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    return None


def _resolve(request: Request, state: ServiceState, session: Session) -> Principal:
    settings = state.settings
    token = bearer_token(request)
    if token is not None:
        return resolve_api_token(session, token=token, settings=settings)
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        raise AuthenticationFailed("请先登录 / not signed in: log in or send a bearer token")
    principal = resolve_session(session, token=cookie, settings=settings)
    if request.method not in _SAFE_METHODS and not check_csrf(
        principal, request.headers.get(CSRF_HEADER)
    ):
        raise CsrfRejected(
            f"缺少或错误的 CSRF 令牌，请刷新页面后重试 / missing or wrong {CSRF_HEADER} header",
        )
    return principal


def signed_in(request: Request, state: State) -> Principal:
    """The caller, even one who must change the password first (for /auth routes)."""
    with state.sessions() as session:
        try:
            principal = _resolve(request, state, session)
        except AuthenticationFailed:
            session.commit()  # keep an idle session's ending on record
            raise
        session.commit()
    return principal


SignedIn = Annotated[Principal, Depends(signed_in)]


def current_principal(principal: SignedIn) -> Principal:
    """The caller, refused (403) while the password must be changed (expired or reset)."""
    ensure_password_current(principal)
    return principal


Caller = Annotated[Principal, Depends(current_principal)]


def require(permission: Permission) -> Callable[[Principal], Principal]:
    """A dependency giving the caller if its role grants ``permission``, else 403."""

    def check(principal: Caller) -> Principal:
        if not principal.can(permission):
            raise PermissionDenied(
                f"当前角色无权执行此操作 / the role '{principal.role}' may not {permission}",
                permission=permission.value,
            )
        return principal

    return check
