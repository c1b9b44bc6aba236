"""The page routes: each resolves the signed-in caller exactly as the API does (cookie or
bearer token), sends strangers to the login page and other roles to their own home page,
and renders a template whose script then talks to the JSON API.

Pages hold no data of their own beyond who is signed in: a call page for a call outside
the caller's scope renders the shell, and the API's 404 is what the page shows.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from qa_service.accounts.roles import ROLE_LABELS_ZH, Principal, Role
from qa_service.accounts.sessions import csrf_token_for
from qa_service.api.deps import SESSION_COOKIE, get_state, signed_in
from qa_service.errors import AuthenticationFailed
from reviewer_ui.assets import ASSETS, STATIC_URL
from reviewer_ui.navigation import HOME, nav_for, roles_of

TEMPLATES = Jinja2Templates(directory=Path(__file__).resolve().parent / "templates")

# Everything from this host only: the plan forbids internet on production terminals, and
# a stray external URL then fails loudly in the browser instead of leaking a request.
# 'unsafe-eval': Alpine.js evaluates its attribute expressions with Function();
# 'unsafe-inline' styles: wavesurfer draws inside a shadow root with inline styles.
CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-eval'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; media-src 'self' blob:; connect-src 'self'; "
    "font-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; "
    "frame-ancestors 'none'"
)

router = APIRouter(include_in_schema=False)


def _caller(request: Request) -> Principal | None:
    try:
        return signed_in(request, get_state(request))
    except AuthenticationFailed:
        return None


def _secure(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = CSP
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    return response


def _render(request: Request, name: str, principal: Principal | None, **context: Any) -> Response:
    state = get_state(request)
    cookie = request.cookies.get(SESSION_COOKIE)
    context.update(
        user=principal,
        role_label=ROLE_LABELS_ZH[principal.role] if principal else "",
        nav=nav_for(principal.role) if principal else [],
        home=HOME[principal.role] if principal else "/login",
        csrf=csrf_token_for(cookie, settings=state.settings) if cookie and principal else "",
        idle_s=state.settings.session_idle_minutes * 60,
        assets=ASSETS,
        static=STATIC_URL,
        receives_alerts=bool(principal and principal.role in {Role.SUPERVISOR, Role.MANAGER}),
    )
    return _secure(TEMPLATES.TemplateResponse(request, name, context))


def _login_redirect(request: Request) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?next={quote(target)}", status_code=303)


def _page(
    request: Request, name: str, roles: Iterable[Role], title: str, **context: Any
) -> Response:
    """Render ``name`` for a signed-in caller of one of ``roles`` (else redirect)."""
    principal = _caller(request)
    if principal is None:
        return _login_redirect(request)
    if principal.must_change_password:
        return RedirectResponse("/password", status_code=303)
    if principal.role not in set(roles):
        return RedirectResponse(HOME[principal.role], status_code=303)
    return _render(request, name, principal, title=title, **context)


@router.get("/")
def index(request: Request) -> Response:
    """The login page for strangers, the role's home page for everyone else."""
    principal = _caller(request)
    if principal is None:
        return RedirectResponse("/login", status_code=303)
    if principal.must_change_password:
        return RedirectResponse("/password", status_code=303)
    return RedirectResponse(HOME[principal.role], status_code=303)


@router.get("/login")
def login_page(request: Request) -> Response:
    """The login form (the API's Chinese messages are shown as they come)."""
    return _render(request, "login.html", None, title="登录")


@router.get("/password")
def password_page(request: Request) -> Response:
    """Change the password; the only page open while it must be changed."""
    principal = _caller(request)
    if principal is None:
        return _login_redirect(request)
    return _render(request, "password.html", principal, title="修改密码")


_VIEWERS = (Role.INSPECTOR, Role.SUPERVISOR, Role.MANAGER, Role.AGENT)


@router.get("/ui/queue")
def queue_page(request: Request) -> Response:
    return _page(request, "queue.html", roles_of("queue"), "复核队列", page="queue")


@router.get("/ui/calls/{call_id}")
def call_page(call_id: str, request: Request) -> Response:
    return _page(request, "call.html", _VIEWERS, f"通话 {call_id}", page="call", call_id=call_id)


@router.get("/ui/inbox")
def inbox_page(request: Request) -> Response:
    return _page(request, "inbox.html", roles_of("inbox"), "反馈收件箱", page="inbox")


@router.get("/ui/scorecard")
def scorecard_page(request: Request) -> Response:
    return _page(request, "scorecard.html", roles_of("scorecard"), "成绩单", page="scorecard")


@router.get("/ui/appeals")
def appeals_page(request: Request) -> Response:
    return _page(request, "appeals.html", roles_of("appeals"), "申诉裁决", page="appeals")


@router.get("/ui/alerts")
def alerts_page(request: Request) -> Response:
    return _page(request, "alerts.html", roles_of("alerts"), "实时告警", page="alerts")


@router.get("/ui/trends")
def trends_page(request: Request) -> Response:
    return _page(request, "trends.html", roles_of("trends"), "趋势看板", page="trends")


@router.get("/ui/complaints")
def complaints_page(request: Request) -> Response:
    return _page(request, "complaints.html", roles_of("complaints"), "投诉登记", page="complaints")


@router.get("/ui/coaching")
def coaching_page(request: Request) -> Response:
    return _page(request, "coaching.html", roles_of("coaching"), "辅导培训", page="coaching")


@router.get("/ui/reports/agency")
def agency_page(request: Request) -> Response:
    return _page(request, "agency.html", roles_of("agency"), "外包机构考核", page="agency")


@router.get("/ui/admin/accounts")
def accounts_page(request: Request) -> Response:
    return _page(request, "accounts.html", roles_of("accounts"), "账号管理", page="accounts")


@router.get("/ui/admin/settings")
def settings_page(request: Request) -> Response:
    return _page(request, "settings.html", roles_of("settings"), "系统设置", page="settings")
