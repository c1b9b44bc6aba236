"""Login, logout, the current user and password change.

Login opens a browser session: an HttpOnly, SameSite=Lax cookie (Secure when
``Settings.cookie_secure``) plus a CSRF token in the response body, which the page sends
back in ``X-CSRF-Token`` on every state-changing request. While the password must be
changed (expired, or reset by an administrator) these routes are all the caller may use.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from qa_service.accounts.rows import normalise_username
from qa_service.accounts.service import change_password, login
from qa_service.accounts.sessions import end_session
from qa_service.api.audit import actor_of, client_ip, recording_failures
from qa_service.api.deps import SESSION_COOKIE, SignedIn, State
from qa_service.api.schemas import (
    ErrorResponse,
    LoginRequest,
    LoginResponse,
    MeResponse,
    PasswordChange,
    UserOut,
)
from qa_service.audit.events import (
    Actor,
    AuditEvent,
    Outcome,
    record_event,
    record_event_committed,
)
from qa_service.errors import AccountLocked, AuthenticationFailed, TooManyRequests

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])


@router.post(
    "/login",
    response_model=LoginResponse,
    responses={
        401: {"model": ErrorResponse, "description": "wrong user name or password"},
        423: {"model": ErrorResponse, "description": "account locked after failed logins"},
        429: {"model": ErrorResponse, "description": "too many failed logins from this IP"},
    },
)
def post_login(
    body: LoginRequest, request: Request, response: Response, state: State
) -> LoginResponse:
    """Check the credentials and start a browser session (cookie + CSRF token)."""
    settings = state.settings
    ip = client_ip(request)
    throttle = state.login_throttle
    try:
        throttle.check(
            ip, max_failures=settings.login_ip_max_failures, window_s=settings.login_ip_window_s
        )
    except TooManyRequests as exc:
        record_event_committed(
            state.sessions,
            actor=Actor.claimed(normalise_username(body.username)[:64], client_ip=ip),
            event=AuditEvent.LOGIN,
            result=Outcome.FAILURE,
            target=f"user:{normalise_username(body.username)[:64]}",
            details={"reason": exc.code, "retry_after_s": exc.context.get("retry_after_s")},
        )
        raise
    try:
        result = login(
            state.sessions,
            username=body.username,
            password=body.password,
            settings=settings,
            client_ip=ip,
        )
    except (AuthenticationFailed, AccountLocked):
        throttle.failed(ip, window_s=settings.login_ip_window_s)
        raise
    response.set_cookie(
        SESSION_COOKIE,
        result.session_token,
        httponly=True,
        samesite="lax",
        secure=settings.cookie_secure,
        path="/",
    )
    return LoginResponse(
        user=UserOut.from_principal(result.principal), csrf_token=result.csrf_token
    )


@router.post("/logout", status_code=204, responses={401: {"model": ErrorResponse}})
def post_logout(request: Request, principal: SignedIn, state: State) -> Response:
    """End this browser session (a bearer token stays valid: revoke it instead)."""
    with state.sessions.begin() as session:
        if principal.session_id is not None:
            end_session(session, session_id=principal.session_id)
        record_event(
            session,
            actor=actor_of(request, principal),
            event=AuditEvent.LOGOUT,
            target=f"user:{principal.username}",
            details={"session_id": principal.session_id, "token_id": principal.token_id},
        )
    response = Response(status_code=204)
    response.delete_cookie(
        SESSION_COOKIE, path="/", httponly=True, samesite="lax", secure=state.settings.cookie_secure
    )
    return response


@router.get("/me", response_model=MeResponse, responses={401: {"model": ErrorResponse}})
def get_me(principal: SignedIn) -> MeResponse:
    """Who is calling, with the role (and whether the password must be changed)."""
    return MeResponse(user=UserOut.from_principal(principal))


@router.post(
    "/password",
    status_code=204,
    responses={401: {"model": ErrorResponse}, 422: {"model": ErrorResponse}},
)
def post_password(
    body: PasswordChange, request: Request, principal: SignedIn, state: State
) -> Response:
    """Change one's own password; other sessions of the account end, this one stays."""
    actor = actor_of(request, principal)
    target = f"user:{principal.username}"
    with (
        recording_failures(state, actor, AuditEvent.PASSWORD_CHANGE, target),
        state.sessions.begin() as session,
    ):
        change_password(
            session,
            user_id=principal.user_id,
            old_password=body.current_password,
            new_password=body.new_password,
            keep_session_id=principal.session_id,
            settings=state.settings,
            actor=actor,
        )
    return Response(status_code=204)
