"""Every route × every role, generated from the app's own route table.

``EXPECTED`` maps each (method, path) the app serves to the status each caller gets. The
test walks ``app.routes``: a route added without an entry here fails, so nobody ships an
endpoint whose access was never decided. Routes with a ``{call_id}`` are tried on a call of
the caller's own team and agent ("own") and on one of another team and agent ("other"):
a call outside the caller's scope is 404, never 403.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from api_support import (
    FIXTURES,
    OTHER_AGENT,
    OTHER_TEAM,
    PASSWORDS,
    Service,
    add_role_users,
    add_user,
    bearer,
    finding_ids,
    make_service,
    seed_alert,
    seed_appeal,
    seed_call,
)
from complaints_support import seed_complaint
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient
from starlette.routing import Mount, Route

CALLERS = ("anonymous", "admin", "manager", "supervisor", "inspector", "agent")
OWN_CALL, OTHER_CALL = "own-call", "other-call"

# Caller → status; "role:own" / "role:other" refine a call route; "*" is everyone. A tuple
# means any of those statuses: the caller got past access control and the state decided.
Expectation = dict[str, int | tuple[int, ...]]
EVERYONE_200: Expectation = {"*": 200}
SIGNED_IN = {"anonymous": 401}
VIEWERS_ONLY: Expectation = {
    "anonymous": 401,
    "admin": 404,  # admins hold the keys but read no calls: still 404, not 403
    "manager": 200,
    "supervisor:own": 200,
    "supervisor:other": 404,
    "inspector": 200,
    "agent:own": 200,
    "agent:other": 404,
}
UPLOADERS: Expectation = {  # an empty body: 422 proves the caller got past access control
    "anonymous": 401,
    "admin": 422,
    "manager": 403,
    "supervisor": 403,
    "inspector": 422,
    "agent": 403,
}
JOB_MANAGERS: Expectation = {
    "anonymous": 401,
    "admin": 200,
    "manager": 403,
    "supervisor": 403,
    "inspector": 403,
    "agent": 403,
}

ALERT_RECEIVERS: Expectation = {
    "anonymous": 401,
    "admin": 403,
    "manager": 200,
    "supervisor": 200,
    "inspector": 403,
    "agent": 403,
}
# Alert ids by call, filled by the fixture: "own" is the alert of OWN_CALL.
ALERT_IDS: dict[str, int] = {}

# The review loop: each step is its role's only. Bodiless steps change the seeded calls'
# state, so their result depends on the order the cases run in: 200 or 409 both mean the
# caller was let through; the review tests check the states themselves.
STEP = (200, 409)
NOT_ROLE: Expectation = {
    "anonymous": 401,
    "admin": 403,
    "manager": 403,
    "supervisor": 403,
    "inspector": 403,
    "agent": 403,
}
INSPECTOR_STEP: Expectation = {**NOT_ROLE, "inspector": STEP}
INSPECTOR_BODY: Expectation = {**NOT_ROLE, "inspector": 422}
SUPERVISOR_BODY: Expectation = {**NOT_ROLE, "supervisor:own": 422, "supervisor:other": 404}
AGENT_STEP: Expectation = {**NOT_ROLE, "agent:own": STEP, "agent:other": 404}
AGENT_BODY: Expectation = {**NOT_ROLE, "agent:own": 422, "agent:other": 404}
# Finding ids by call and appeal ids by call owner, filled by the fixture.
FINDING_IDS: dict[str, int] = {}
APPEAL_IDS: dict[str, int] = {}
OWN_APPEAL_CALL, OTHER_APPEAL_CALL = "own-appeal", "other-appeal"

EXPECTED: dict[tuple[str, str], Expectation] = {
    ("GET", "/healthz"): EVERYONE_200,
    ("GET", "/readyz"): EVERYONE_200,
    ("GET", "/openapi.json"): EVERYONE_200,
    ("GET", "/docs"): EVERYONE_200,
    ("GET", "/static/swagger-ui/{path}"): EVERYONE_200,
    ("POST", "/api/v1/auth/login"): {"*": 401},  # unknown user, whoever asks
    ("POST", "/api/v1/auth/logout"): {**SIGNED_IN, "*": 204},
    ("GET", "/api/v1/auth/me"): {**SIGNED_IN, "*": 200},
    ("POST", "/api/v1/auth/password"): {**SIGNED_IN, "*": 422},  # too weak a new password
    ("POST", "/api/v1/recordings"): UPLOADERS,
    ("POST", "/api/v1/dial-log"): UPLOADERS,
    ("POST", "/api/v1/do-not-call"): UPLOADERS,
    ("GET", "/api/v1/calls"): {
        "anonymous": 401,
        "admin": 403,
        "manager": 200,
        "supervisor": 200,
        "inspector": 200,
        "agent": 200,
    },
    ("GET", "/api/v1/calls/{call_id}"): VIEWERS_ONLY,
    ("GET", "/api/v1/calls/{call_id}/audio"): VIEWERS_ONLY,
    ("GET", "/api/v1/calls/{call_id}/waveform"): VIEWERS_ONLY,  # the audio route's access
    ("GET", "/api/v1/calls/{call_id}/export"): VIEWERS_ONLY,
    ("GET", "/api/v1/jobs/failed"): JOB_MANAGERS,
    # The seeded calls are analysed, not failed: the admin gets past access to a 409.
    ("POST", "/api/v1/jobs/failed/{call_id}/requeue"): {**JOB_MANAGERS, "admin": 409},
    # The audit trail: administrators only (JOB_MANAGERS is the same admin-only table).
    ("GET", "/api/v1/audit"): JOB_MANAGERS,
    ("GET", "/api/v1/audit/verify"): JOB_MANAGERS,
    ("GET", "/api/v1/audit/reviews"): JOB_MANAGERS,
    ("POST", "/api/v1/audit/reviews"): {**JOB_MANAGERS, "admin": 422},  # empty body
    # Alerts go to supervisors (their teams) and managers (all, read-only: no ack).
    ("GET", "/api/v1/alerts"): ALERT_RECEIVERS,
    ("GET", "/api/v1/alerts/stream"): ALERT_RECEIVERS,
    ("POST", "/api/v1/alerts/{alert_id}/ack"): {
        **ALERT_RECEIVERS,
        "manager": 403,
        "supervisor:own": 200,
        "supervisor:other": 404,
    },
    ("GET", "/api/v1/rules"): {**SIGNED_IN, "*": 200},
    ("GET", "/api/v1/review/queue"): {
        **NOT_ROLE,
        "manager": 200,
        "supervisor": 200,
        "inspector": 200,
    },
    ("POST", "/api/v1/calls/{call_id}/claim"): INSPECTOR_STEP,
    ("POST", "/api/v1/calls/{call_id}/release"): {
        **INSPECTOR_STEP,
        "supervisor:own": STEP,
        "supervisor:other": 404,
    },
    ("POST", "/api/v1/calls/{call_id}/assign"): SUPERVISOR_BODY,
    ("POST", "/api/v1/findings/{finding_id}/decision"): INSPECTOR_BODY,
    ("POST", "/api/v1/calls/{call_id}/findings"): INSPECTOR_BODY,
    ("POST", "/api/v1/calls/{call_id}/complete"): INSPECTOR_STEP,
    ("POST", "/api/v1/calls/{call_id}/feedback"): INSPECTOR_BODY,
    ("GET", "/api/v1/inbox"): {**NOT_ROLE, "agent": 200},
    ("POST", "/api/v1/calls/{call_id}/acknowledge"): AGENT_STEP,
    ("POST", "/api/v1/findings/{finding_id}/appeal"): AGENT_BODY,
    ("GET", "/api/v1/appeals"): {**NOT_ROLE, "supervisor": 200, "manager": 200},
    ("POST", "/api/v1/appeals/{appeal_id}/ruling"): SUPERVISOR_BODY,
    ("GET", "/api/v1/calls/{call_id}/history"): VIEWERS_ONLY,
    ("GET", "/api/v1/calls/{call_id}/scores"): VIEWERS_ONLY,
}

# Complaints, trends and coaching (issue 11): the register for managers (all, read-only),
# supervisors (their teams) and inspectors (all); nothing for admins and agents.
COMPLAINT_IDS: dict[str, int] = {}
_COMPLAINT_READERS: Expectation = {
    "anonymous": 401,
    "admin": 403,
    "manager": 200,
    "supervisor": 200,
    "inspector": 200,
    "agent": 403,
}
_ONE_COMPLAINT: Expectation = {
    **_COMPLAINT_READERS,
    "supervisor:own": 200,
    "supervisor:other": 404,
}
_COMPLAINT_WRITERS: Expectation = {  # an empty body: 422 proves the caller got past access
    **_COMPLAINT_READERS,
    "manager": 403,
    "supervisor": 422,
    "inspector": 422,
}
_AGGREGATE_VIEWERS: Expectation = {**_COMPLAINT_READERS, "inspector": 403}
EXPECTED.update(
    {
        ("GET", "/api/v1/complaints"): _COMPLAINT_READERS,
        ("POST", "/api/v1/complaints"): _COMPLAINT_WRITERS,
        ("POST", "/api/v1/complaints/import"): _COMPLAINT_WRITERS,
        ("GET", "/api/v1/complaints/{complaint_id}"): _ONE_COMPLAINT,
        ("GET", "/api/v1/complaints/{complaint_id}/evidence"): _ONE_COMPLAINT,
        ("POST", "/api/v1/complaints/{complaint_id}/outcome"): {  # a valid outcome is sent
            **_ONE_COMPLAINT,
            "manager": 403,
        },
        ("GET", "/api/v1/trends"): _AGGREGATE_VIEWERS,
        ("GET", "/api/v1/trends/export"): _AGGREGATE_VIEWERS,
        ("GET", "/api/v1/coaching"): _AGGREGATE_VIEWERS,
        ("GET", "/api/v1/coaching/export"): _AGGREGATE_VIEWERS,
        ("GET", "/api/v1/coaching/trainings"): _AGGREGATE_VIEWERS,
        ("POST", "/api/v1/coaching/trainings"): {
            **_COMPLAINT_READERS,
            "manager": 403,
            "supervisor": 422,
            "inspector": 403,
        },
    }
)

# The web UI (reviewer_ui, issue 12): pages are shells whose scripts call the API above, so
# access is the API's. A stranger is sent to the login page, another role to its own home
# page (redirects followed: 200 for everyone); a call page outside the caller's scope
# renders the shell and shows the API's 404. Static files are public like the docs'.
EXPECTED.update(
    {
        ("GET", "/"): EVERYONE_200,
        ("GET", "/login"): EVERYONE_200,
        ("GET", "/password"): EVERYONE_200,
        ("GET", "/ui/queue"): EVERYONE_200,
        ("GET", "/ui/calls/{call_id}"): EVERYONE_200,
        ("GET", "/ui/inbox"): EVERYONE_200,
        ("GET", "/ui/scorecard"): EVERYONE_200,
        ("GET", "/ui/appeals"): EVERYONE_200,
        ("GET", "/ui/alerts"): EVERYONE_200,
        ("GET", "/ui/trends"): EVERYONE_200,
        ("GET", "/ui/complaints"): EVERYONE_200,
        ("GET", "/ui/admin/accounts"): EVERYONE_200,
        ("GET", "/ui/admin/settings"): EVERYONE_200,
        ("GET", "/static/ui/{path}"): EVERYONE_200,
        # The admin pages' routes: accounts and the settings view, administrators only
        # (JOB_MANAGERS is that table); an empty body is 422 past access control.
        ("GET", "/api/v1/admin/users"): JOB_MANAGERS,
        ("POST", "/api/v1/admin/users"): {**JOB_MANAGERS, "admin": 422},
        ("POST", "/api/v1/admin/users/{username}/disable"): JOB_MANAGERS,
        ("POST", "/api/v1/admin/users/{username}/enable"): JOB_MANAGERS,
        ("POST", "/api/v1/admin/users/{username}/password"): {**JOB_MANAGERS, "admin": 422},
        ("GET", "/api/v1/admin/settings"): JOB_MANAGERS,
        ("POST", "/api/v1/admin/roster"): {**JOB_MANAGERS, "admin": 422},  # empty body
        # The agency evaluation report: managers only (it spans every team and agency).
        ("GET", "/api/v1/reports/agency"): {**_AGGREGATE_VIEWERS, "supervisor": 403},
        ("GET", "/ui/coaching"): EVERYONE_200,
        ("GET", "/ui/reports/agency"): EVERYONE_200,
    }
)


def _request_kwargs(method: str, path: str, caller: str) -> dict[str, Any]:
    if path == "/api/v1/auth/login":
        return {"json": {"username": "nobody-here", "password": "Wrong-Pass-1234!"}}
    if path == "/api/v1/auth/password":
        return {"json": {"current_password": PASSWORDS.get(caller, "x"), "new_password": "abc"}}
    if path == "/api/v1/alerts/stream":
        return {"params": {"max_s": 0}}  # the stream would stay open: close it at once
    if path == "/api/v1/complaints/{complaint_id}/outcome":
        return {"json": {"outcome": "not_at_fault", "follow_up": "已回访客户"}}
    if method == "POST":
        return {"content": b""}
    return {}


def _served_routes(service: Service) -> set[tuple[str, str]]:
    """(method, path) of every route, included routers flattened (FastAPI keeps them
    lazily as included-router entries in ``app.routes``)."""
    found: set[tuple[str, str]] = set()
    for context in iter_route_contexts(service.app.routes):
        route = context.original_route
        if isinstance(route, Mount):
            found.add(("GET", f"{route.path}/{{path}}"))
        elif isinstance(route, APIRoute | Route):
            for method in context.methods or ():
                if method != "HEAD":
                    found.add((method, str(context.path)))
        else:  # pragma: no cover - a new kind of route needs a decision here
            raise AssertionError(f"unknown route type {route!r}")
    return found


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    tmp: Path = tmp_path_factory.mktemp("access")
    service = make_service(f"sqlite:///{tmp / 'qa.sqlite3'}", tmp)
    add_role_users(service)
    seed_call(service, OWN_CALL)
    seed_call(service, OTHER_CALL, wav="mono_8k.wav", agent_id=OTHER_AGENT, team_id=OTHER_TEAM)
    for call_id in (OWN_CALL, OTHER_CALL):
        ALERT_IDS[call_id] = seed_alert(service, call_id)
        FINDING_IDS[call_id] = finding_ids(service, call_id)[0]
    add_user(service, "agent2", "agent", agent_id=OTHER_AGENT)
    # Other bytes (a trailing marker) make other recordings, hence other calls.
    for name in (OWN_APPEAL_CALL, OTHER_APPEAL_CALL):
        (tmp / f"{name}.wav").write_bytes((FIXTURES / "stereo_8k.wav").read_bytes() + name.encode())
    seed_call(service, OWN_APPEAL_CALL, wav=str(tmp / f"{OWN_APPEAL_CALL}.wav"))
    seed_call(
        service,
        OTHER_APPEAL_CALL,
        wav=str(tmp / f"{OTHER_APPEAL_CALL}.wav"),
        agent_id=OTHER_AGENT,
        team_id=OTHER_TEAM,
    )
    APPEAL_IDS[OWN_CALL] = seed_appeal(
        service, OWN_APPEAL_CALL, inspector="inspector", agent="agent"
    )
    APPEAL_IDS[OTHER_CALL] = seed_appeal(
        service, OTHER_APPEAL_CALL, inspector="inspector", agent="agent2"
    )
    for call_id in (OWN_CALL, OTHER_CALL):
        COMPLAINT_IDS[call_id] = seed_complaint(service, call_id)
    yield service
    service.state.engine.dispose()


def test_every_route_has_an_access_entry(service: Service) -> None:
    served = _served_routes(service)
    missing = sorted(served - EXPECTED.keys())
    stale = sorted(EXPECTED.keys() - served)
    assert not missing, f"routes without an access entry in EXPECTED: {missing}"
    assert not stale, f"EXPECTED names routes the app does not serve: {stale}"


def _expected(table: Expectation, caller: str, target: str | None) -> int | tuple[int, ...]:
    role = caller
    for key in (f"{role}:{target}", role, "*"):
        if key in table:
            return table[key]
    raise AssertionError(f"no expectation for {caller} ({target})")


def _cases() -> Iterator[tuple[str, str, str, str | None]]:
    for (method, path), _table in EXPECTED.items():
        scoped = any(
            f"{{{key}}}" in path
            for key in ("call_id", "alert_id", "finding_id", "appeal_id", "complaint_id")
        )
        targets: tuple[str | None, ...] = ("own", "other") if scoped else (None,)
        for caller in CALLERS:
            for target in targets:
                yield method, path, caller, target


@pytest.mark.parametrize(("method", "path", "caller", "target"), list(_cases()))
def test_access(service: Service, method: str, path: str, caller: str, target: str | None) -> None:
    static_file = "ui.css" if path.startswith("/static/ui/") else "swagger-ui.css"
    # agent2 exists only for these tests: disabling it locks nobody else out.
    url = path.replace("{path}", static_file).replace("{username}", "agent2")
    if target is not None:
        call = OWN_CALL if target == "own" else OTHER_CALL
        url = url.replace("{call_id}", call).replace("{alert_id}", str(ALERT_IDS[call]))
        url = url.replace("{finding_id}", str(FINDING_IDS[call]))
        url = url.replace("{appeal_id}", str(APPEAL_IDS[call]))
        url = url.replace("{complaint_id}", str(COMPLAINT_IDS[call]))
    headers = bearer(service.tokens[caller]) if caller != "anonymous" else {}
    client = TestClient(service.app)
    response = client.request(method, url, headers=headers, **_request_kwargs(method, path, caller))
    expected = _expected(EXPECTED[(method, path)], caller, target)
    allowed = expected if isinstance(expected, tuple) else (expected,)
    assert response.status_code in allowed, (method, url, caller, response.text[:300])
    if response.status_code >= 400:
        assert set(response.json()["error"]) >= {"code", "message"}
