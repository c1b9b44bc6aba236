"""Each audited action leaves its event, through HTTP as users do it (SQLite).

Logins (success, failure, lockout), logout, call view, audio play, upload, imports,
password change, and the account changes the CLI makes; then the audit API itself.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from api_support import (
    FIXTURES,
    OTHER_AGENT,
    OTHER_TEAM,
    PASSWORDS,
    Service,
    add_role_users,
    bearer,
    make_service,
    seed_call,
)
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from qa_service.audit.chain import verify_chain
from qa_service.audit.events import AuditRecord, EventFilter, list_events
from qa_service.cli.main import app as cli_app
from qa_service.settings import get_settings


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    service = make_service(f"sqlite:///{tmp_path / 'qa.sqlite3'}", tmp_path)
    add_role_users(service)
    seed_call(service, "own-call")
    seed_call(service, "other-call", wav="mono_8k.wav", agent_id=OTHER_AGENT, team_id=OTHER_TEAM)
    yield service
    service.state.engine.dispose()


@pytest.fixture
def client(service: Service) -> TestClient:
    return TestClient(service.app)


def _events(service: Service, event: str) -> list[AuditRecord]:
    with service.state.sessions() as session:
        return list_events(session, filters=EventFilter(event=event), limit=1000)


def _chain_ok(service: Service) -> bool:
    with service.state.sessions() as session:
        return verify_chain(session).ok


def _login(client: TestClient, user: str, password: str) -> int:
    response = client.post("/api/v1/auth/login", json={"username": user, "password": password})
    return response.status_code


def test_login_success_and_logout(service: Service, client: TestClient) -> None:
    assert _login(client, "manager", PASSWORDS["manager"]) == 200
    [login] = _events(service, "auth.login")
    assert login.result == "success" and login.actor.name == "manager"
    assert login.actor.user_id is not None and login.actor.client_ip == "testclient"
    assert login.target == "user:manager" and login.details["session_id"]
    csrf = client.get("/api/v1/auth/me")  # the cookie works
    assert csrf.status_code == 200
    token = client.post(
        "/api/v1/auth/login", json={"username": "manager", "password": PASSWORDS["manager"]}
    ).json()["csrf_token"]
    assert client.post("/api/v1/auth/logout", headers={"X-CSRF-Token": token}).status_code == 204
    [logout] = _events(service, "auth.logout")
    assert logout.actor.name == "manager" and logout.result == "success"
    assert _chain_ok(service)


def test_failed_logins_and_the_lockout_are_recorded(service: Service, client: TestClient) -> None:
    assert _login(client, "nobody", "Wrong-Pass-1234!") == 401
    for _ in range(5):  # the fifth failure locks the account (lockout_attempts = 5)
        assert _login(client, "inspector", "Wrong-Pass-1234!") == 401
    assert _login(client, "inspector", PASSWORDS["inspector"]) == 423

    logins = _events(service, "auth.login")
    assert [e.result for e in logins] == ["failure"] * 7
    unknown = logins[0]
    assert unknown.actor.name == "nobody" and unknown.actor.user_id is None
    assert unknown.details["known_user"] is False
    assert unknown.details["error"] == "authentication_failed"
    assert all(e.actor.name == "inspector" and e.actor.user_id for e in logins[1:])
    assert "locked_until" in logins[5].details
    assert logins[6].details["error"] == "account_locked"
    [lock] = _events(service, "account.lock")
    assert lock.target == "user:inspector" and lock.actor.kind == "system"
    assert lock.details["client_ip"] == "testclient"
    assert _chain_ok(service)


def test_call_view_and_its_refusal(service: Service, client: TestClient) -> None:
    agent = bearer(service.tokens["agent"])
    assert client.get("/api/v1/calls/own-call", headers=agent).status_code == 200
    assert client.get("/api/v1/calls/other-call", headers=agent).status_code == 404
    seen, refused = _events(service, "call.view")
    assert (seen.target, seen.result, seen.actor.name) == ("call:own-call", "success", "agent")
    assert (refused.target, refused.result) == ("call:other-call", "failure")
    assert refused.details["error"] == "call_not_found"


def test_audio_play_is_recorded_once_per_play(service: Service, client: TestClient) -> None:
    manager = bearer(service.tokens["manager"])
    url = "/api/v1/calls/own-call/audio"
    assert client.get(url, headers=manager).status_code == 200
    assert client.get(url, headers={**manager, "Range": "bytes=0-99"}).status_code == 206
    assert client.get(url, headers={**manager, "Range": "bytes=100-199"}).status_code == 206
    plays = _events(service, "call.audio")
    assert [(p.target, p.details["range"]) for p in plays] == [
        ("call:own-call", None),
        ("call:own-call", "bytes=0-99"),
    ]


def test_upload_and_a_refused_upload(service: Service, client: TestClient) -> None:
    inspector = bearer(service.tokens["inspector"])
    wav = (FIXTURES / "stereo_8k.wav").read_bytes()
    response = client.post(
        "/api/v1/recordings",
        headers=inspector,
        files={"file": ("new.wav", wav[:44] + bytes(reversed(wav[44:])), "audio/wav")},
    )
    assert response.status_code == 202, response.text
    call_id = response.json()["call_id"]
    refused = client.post(
        "/api/v1/recordings",
        headers=inspector,
        files={"file": ("notes.wav", b"this is not audio at all", "audio/wav")},
    )
    assert refused.status_code == 415
    done, failed = _events(service, "recording.upload")
    assert done.result == "success" and done.target == f"call:{call_id}"
    assert done.details["filename"] == "new.wav" and done.details["created"] is True
    assert failed.result == "failure" and failed.details["error"] == "unsupported_format"


def test_dial_log_import(service: Service, client: TestClient) -> None:
    response = client.post(
        "/api/v1/dial-log",
        headers=bearer(service.tokens["admin"]),
        files={"file": ("cdr.csv", (FIXTURES / "cdr_utf8.csv").read_bytes(), "text/csv")},
    )
    assert response.status_code == 200, response.text
    [event] = _events(service, "import.dial_log")
    assert event.target == "file:cdr.csv" and event.actor.name == "admin"
    assert event.details["imported"] == response.json()["imported"]


def test_password_change_and_its_failure(service: Service, client: TestClient) -> None:
    supervisor = bearer(service.tokens["supervisor"])
    wrong = client.post(
        "/api/v1/auth/password",
        headers=supervisor,
        json={"current_password": "not-it", "new_password": "Velvet-Canyon-8841!q"},
    )
    assert wrong.status_code == 401
    done = client.post(
        "/api/v1/auth/password",
        headers=supervisor,
        json={"current_password": PASSWORDS["supervisor"], "new_password": "Velvet-Canyon-8841!q"},
    )
    assert done.status_code == 204, done.text
    failed, changed = _events(service, "account.password_change")
    assert failed.result == "failure" and changed.result == "success"
    assert changed.actor.name == "supervisor" and changed.target == "user:supervisor"


def test_account_changes_made_with_the_cli(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", str(service.state.engine.url))
    get_settings.cache_clear()
    try:
        runner = CliRunner()
        steps = (
            (["user", "add", "wangwu", "--role", "inspector", "--password-stdin"],
             "Harbor-Quill-7719!z\n"),
            (["token", "create", "wangwu", "--label", "robot"], None),
            (["user", "disable", "wangwu"], None),
            (["user", "enable", "wangwu"], None),
            (["user", "reset-password", "wangwu", "--password-stdin"], "Meadow-Flint-3358!k\n"),
        )  # fmt: skip
        for args, stdin in steps:
            result = runner.invoke(cli_app, args, input=stdin)
            assert result.exit_code == 0, result.output
    finally:
        get_settings.cache_clear()
    wanted = [
        "account.create",
        "token.create",
        "account.disable",
        "account.enable",
        "account.password_reset",
    ]
    with service.state.sessions() as session:
        events = list_events(session, filters=EventFilter(target="user:wangwu"))
    assert [e.event for e in events] == wanted
    assert all(e.actor.kind == "cli" and "@" in e.actor.name for e in events)
    assert events[0].details["role"] == "inspector"
    assert events[1].details["name"] == "robot" and "qas_" in events[1].details["prefix"]
    assert events[2].details["tokens_revoked"] == 1
    assert _chain_ok(service)


def test_role_and_team_changes_and_token_revocation(service: Service) -> None:
    from qa_service.accounts.service import find_user, revoke_api_token, update_user
    from qa_service.accounts.sessions import create_api_token, list_api_tokens
    from qa_service.audit.events import Actor

    admin = Actor("user", "admin", 1, "10.1.1.1")
    with service.state.sessions.begin() as session:
        user = find_user(session, username="supervisor")
        assert user is not None
        update_user(session, user_id=user.user_id, team_ids=["T1", "T9"], actor=admin)
        create_api_token(session, user_id=user.user_id, name="bot", actor=admin)
        token = list_api_tokens(session, user_id=user.user_id)[-1]
        assert revoke_api_token(session, token_id=token.token_id, actor=admin)
    [update] = _events(service, "account.update")
    assert update.details["changes"] == {"teams": [["T1"], ["T1", "T9"]]}
    assert update.actor.client_ip == "10.1.1.1"
    [revoke] = _events(service, "token.revoke")
    assert revoke.target == "user:supervisor" and revoke.details["name"] == "bot"


# --- the audit API --------------------------------------------------------------------------


def test_audit_api_lists_verifies_and_records_reviews(service: Service, client: TestClient) -> None:
    admin = bearer(service.tokens["admin"])
    manager = bearer(service.tokens["manager"])
    client.get("/api/v1/calls/own-call", headers=manager)
    _login(client, "nobody", "Wrong-Pass-1234!")

    listed = client.get("/api/v1/audit", headers=admin, params={"event": "call.view"})
    assert listed.status_code == 200
    [item] = listed.json()["items"]
    assert item["actor_name"] == "manager" and item["target"] == "call:own-call"
    failures = client.get("/api/v1/audit", headers=admin, params={"result": "failure"})
    assert [i["event"] for i in failures.json()["items"]] == ["auth.login"]
    page = client.get("/api/v1/audit", headers=admin, params={"limit": 2})
    assert page.json()["next_cursor"] is not None
    rest = client.get(
        "/api/v1/audit", headers=admin, params={"limit": 2, "cursor": page.json()["next_cursor"]}
    )
    assert rest.json()["items"][0]["seq"] == page.json()["items"][-1]["seq"] + 1

    verified = client.get("/api/v1/audit/verify", headers=admin)
    assert verified.status_code == 200 and verified.json()["ok"] is True

    review = client.post(
        "/api/v1/audit/reviews",
        headers=admin,
        json={"from": "2020-01-01", "to": "2099-12-31", "note": "月度审阅：无异常"},
    )
    assert review.status_code == 201, review.text
    body = review.json()
    assert body["reviewer_name"] == "admin" and body["chain_ok"] is True and body["events"] > 3
    [listed_review] = client.get("/api/v1/audit/reviews", headers=admin).json()["items"]
    assert listed_review["review_id"] == body["review_id"]
    [event] = _events(service, "audit.review")
    assert event.seq == body["audit_seq"] and event.details["note"] == "月度审阅：无异常"
    assert _events(service, "audit.view") and _events(service, "audit.verify")
    assert client.get("/api/v1/audit", headers=manager).status_code == 403
    assert _chain_ok(service)


def test_audit_cli_list_and_review(service: Service, monkeypatch: pytest.MonkeyPatch) -> None:
    client = TestClient(service.app)
    client.get("/api/v1/calls/own-call", headers=bearer(service.tokens["manager"]))
    monkeypatch.setenv("DATABASE_URL", str(service.state.engine.url))
    get_settings.cache_clear()
    try:
        runner = CliRunner()
        listed = runner.invoke(
            cli_app,
            ["audit", "list", "--from", "2020-01-01", "--to", "2099-12-31", "--user", "manager"],
        )
        assert listed.exit_code == 0, listed.output
        assert "call.view" in listed.output and "call:own-call" in listed.output
        reviewed = runner.invoke(
            cli_app,
            ["audit", "review", "--from", "2020-01-01", "--to", "2099-12-31", "--note", "已审阅"],
        )
        assert reviewed.exit_code == 0, reviewed.output
    finally:
        get_settings.cache_clear()
    [review] = _events(service, "audit.review")
    assert review.actor.kind == "cli" and review.details["note"] == "已审阅"


def test_settings_changes_are_recorded_without_secrets(service: Service) -> None:
    from qa_service.audit.config import record_settings_change
    from qa_service.audit.events import Actor

    settings = service.state.settings
    with service.state.sessions.begin() as session:
        first = record_settings_change(session, settings=settings, actor=Actor.cli())
        again = record_settings_change(session, settings=settings, actor=Actor.cli())
    assert first is not None and first.details["first"] is True and again is None
    assert settings.secret_key not in json.dumps(first.details, ensure_ascii=False)
    changed = settings.model_copy(
        update={"lockout_attempts": 3, "secret_key": "another-secret-0123456789"}
    )
    with service.state.sessions.begin() as session:
        record = record_settings_change(session, settings=changed, actor=Actor.cli())
    assert record is not None
    assert record.details["changed"] == {
        "lockout_attempts": [5, 3],
        "secret_key": ["<changed>", "<changed>"],
    }
    assert "another-secret" not in json.dumps(record.details, ensure_ascii=False)
