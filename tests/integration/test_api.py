"""The HTTP API on SQLite and PostgreSQL: uploads, imports, calls, audio, login and CSRF.

Real fixture recordings go through the real upload path (streaming receiver, PyAV check,
audio store, submission); only the job queue is a recording fake (see api_support).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from api_support import (
    CST,
    FIXTURES,
    OTHER_AGENT,
    OTHER_TEAM,
    PASSWORDS,
    Service,
    add_role_users,
    add_user,
    bearer,
    make_service,
    seed_call,
)
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update

from qa_service.db.tables import AuditEventRow, CallRow

STEREO = FIXTURES / "stereo_8k.wav"
MONO = FIXTURES / "mono_8k.wav"


def _run_in_fresh_loop(coro):  # type: ignore[no-untyped-def]
    """``asyncio.run`` in its own thread: Playwright's sync API (the browser tests, earlier
    in the same pytest process) may leave an event loop running in the main thread."""
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


@pytest.fixture
def service(db_url: str, tmp_path: Path) -> Iterator[Service]:
    service = make_service(db_url, tmp_path, max_upload_mb=1.0)
    add_role_users(service)
    yield service
    service.state.engine.dispose()


@pytest.fixture
def client(service: Service) -> TestClient:
    return TestClient(service.app)


def _files_under(path: Path) -> list[Path]:
    return [p for p in path.rglob("*") if p.is_file()] if path.exists() else []


def _call_count(service: Service) -> int:
    with service.state.sessions() as session:
        return session.scalar(select(func.count()).select_from(CallRow)) or 0


def _upload(
    client: TestClient,
    token: str,
    path: Path,
    *,
    name: str | None = None,
    metadata: Any = None,
) -> Any:
    data = {} if metadata is None else {"metadata": metadata}
    files = {"file": (name or path.name, path.read_bytes(), "audio/wav")}
    return client.post("/api/v1/recordings", files=files, data=data, headers=bearer(token))


def _assert_error(response: Any, status: int, code: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["message"] and error["code"]
    if code is not None:
        assert error["code"] == code
    return error


def _nothing_left(service: Service) -> None:
    assert _files_under(service.state.store.root) == []
    assert _files_under(service.state.upload_tmp_dir) == []
    assert _call_count(service) == 0
    assert service.queue.jobs == []


# --- uploads -------------------------------------------------------------------------


def test_upload_then_same_bytes_again(service: Service, client: TestClient) -> None:
    token = service.tokens["inspector"]
    sidecar = (FIXTURES / "stereo_8k.json").read_text(encoding="utf-8")
    first = _upload(client, token, STEREO, metadata=sidecar)
    assert first.status_code == 202, first.text
    body = first.json()
    assert body["call_id"] == "dev-001" and body["status"] == "queued"
    assert len(body["sha256"]) == 64

    again = _upload(client, token, STEREO, name="copy.wav")
    assert again.status_code == 200, again.text
    assert again.json()["call_id"] == "dev-001"
    assert service.queue.jobs == ["dev-001"]  # one job, never a second
    assert _call_count(service) == 1
    assert len(_files_under(service.state.store.root)) == 1
    assert _files_under(service.state.upload_tmp_dir) == []

    detail = client.get("/api/v1/calls/dev-001", headers=bearer(token)).json()
    assert detail["status"] == "queued" and detail["agent_id"] == "A765"
    listed = client.get("/api/v1/calls", params={"status": "queued"}, headers=bearer(token))
    assert [item["call_id"] for item in listed.json()["items"]] == ["dev-001"]


def test_upload_without_metadata_gets_an_id(service: Service, client: TestClient) -> None:
    response = _upload(client, service.tokens["admin"], MONO)
    assert response.status_code == 202, response.text
    assert response.json()["call_id"] in service.queue.jobs


def test_text_named_wav_is_415(service: Service, client: TestClient, tmp_path: Path) -> None:
    fake = tmp_path / "call.wav"
    fake.write_text("这不是录音，只是一段文字。" * 50, encoding="utf-8")
    _assert_error(_upload(client, service.tokens["inspector"], fake), 415, "unsupported_format")
    _nothing_left(service)


@pytest.mark.parametrize(
    "metadata",
    [
        '{"call_id": "x", "started_at": "2026-11-06"}',  # no time of day: CLI refuses it too
        '{"call_id": "x", "channel_map": {"0": "agent", "1": "agent"}}',
        '{"agent_id": "A1"}',  # call_id missing
        "{not json",
        "[1, 2]",
    ],
)
def test_bad_metadata_is_422(service: Service, client: TestClient, metadata: str) -> None:
    error = _assert_error(
        _upload(client, service.tokens["inspector"], STEREO, metadata=metadata),
        422,
        "invalid_metadata",
    )
    assert "metadata" in error["message"]
    _nothing_left(service)


def _stream_upload(
    service: Service, *, chunks: int, chunk_size: int, declare_length: bool
) -> tuple[int, int, int]:
    """POST a multipart body straight into the ASGI app; returns (status, chunks read, total).

    TestClient reads a request body whole before the app sees it, so the only way to watch
    the server stop reading is to be its ``receive``.
    """
    boundary = "qa-test-boundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
        f'filename="big.wav"\r\nContent-Type: audio/wav\r\n\r\n'
    ).encode()
    body = [head] + [b"\0" * chunk_size] * chunks + [f"\r\n--{boundary}--\r\n".encode()]
    total = sum(len(part) for part in body)
    headers = [
        (b"content-type", f"multipart/form-data; boundary={boundary}".encode()),
        (b"authorization", f"Bearer {service.tokens['inspector']}".encode()),
    ]
    if declare_length:
        headers.append((b"content-length", str(total).encode()))
    read = 0
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal read
        if read < len(body):
            read += 1
            return {"type": "http.request", "body": body[read - 1], "more_body": read < len(body)}
        await asyncio.sleep(3600)  # the client would wait for the response
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/api/v1/recordings",
        "raw_path": b"/api/v1/recordings",
        "root_path": "",
        "query_string": b"",
        "headers": headers,
        "client": ("127.0.0.1", 5000),
        "server": ("testserver", 80),
    }
    _run_in_fresh_loop(service.app(scope, receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    return start["status"], read, len(body)


def test_oversized_upload_is_refused_while_streaming(service: Service) -> None:
    # 1 MB limit; the body would be 16 MB in 64 KB chunks, sent without a Content-Length.
    status, read, total = _stream_upload(
        service, chunks=256, chunk_size=65536, declare_length=False
    )
    assert status == 413
    assert read <= 20, f"the server read {read} of {total} chunks before refusing"
    _nothing_left(service)


def test_declared_oversized_upload_is_refused_before_reading(service: Service) -> None:
    status, read, _ = _stream_upload(service, chunks=256, chunk_size=65536, declare_length=True)
    assert status == 413
    assert read == 0
    _nothing_left(service)


def test_upload_under_the_limit_streams_in(service: Service, client: TestClient) -> None:
    # Just under the limit in several chunks is accepted (a recording must still be audio).
    response = _upload(client, service.tokens["inspector"], STEREO)
    assert response.status_code == 202


def test_upload_needs_the_file_field(service: Service, client: TestClient) -> None:
    response = client.post(
        "/api/v1/recordings",
        data={"metadata": "{}"},
        files={"other": ("a.txt", b"x")},
        headers=bearer(service.tokens["inspector"]),
    )
    _assert_error(response, 422, "invalid_input")
    _nothing_left(service)


# --- imports -------------------------------------------------------------------------


def test_dial_log_import_lists_rejected_rows(service: Service, client: TestClient) -> None:
    csv_bytes = (FIXTURES / "cdr_utf8.csv").read_bytes()
    lines = csv_bytes.decode("utf-8").splitlines()
    broken = lines[1].split(",")
    broken[-1] = "很久"  # not a duration
    bad = "\n".join([*lines, ",".join(broken)]).encode("utf-8")
    response = client.post(
        "/api/v1/dial-log",
        files={"file": ("cdr.csv", bad, "text/csv")},
        headers=bearer(service.tokens["inspector"]),
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["imported"] == len(lines) - 1
    [rejected] = body["rejected"]
    assert rejected["line"] == len(lines) + 1 and "cdr.csv" in rejected["message"]

    again = client.post(
        "/api/v1/dial-log",
        files={"file": ("cdr.csv", csv_bytes, "text/csv")},
        headers=bearer(service.tokens["inspector"]),
    )
    assert again.json() == {"imported": 0, "rejected": []}


def test_dial_log_without_columns_is_422(service: Service, client: TestClient) -> None:
    response = client.post(
        "/api/v1/dial-log",
        files={"file": ("cdr.csv", b"a,b\n1,2\n", "text/csv")},
        headers=bearer(service.tokens["inspector"]),
    )
    _assert_error(response, 422, "invalid_dial_log")


def test_do_not_call_import(service: Service, client: TestClient) -> None:
    response = client.post(
        "/api/v1/do-not-call",
        files={"file": ("dnc.txt", b"13800138000\n+86 139-0013-9000\n", "text/plain")},
        headers=bearer(service.tokens["inspector"]),
    )
    assert response.json() == {"imported": 2, "rejected": []}


# --- calls ---------------------------------------------------------------------------


def test_call_detail_is_the_output_object(service: Service, client: TestClient) -> None:
    seed_call(service, "c-1", texts=("法院已经对你立案了", "我没钱"))
    response = client.get("/api/v1/calls/c-1", headers=bearer(service.tokens["inspector"]))
    assert response.status_code == 200, response.text
    call = response.json()
    required = {"call_id", "recording", "duration_s", "channels", "status", "utterances"}
    assert required | {"findings", "score"} <= call.keys()
    assert call["status"] == "analyzed"
    assert call["utterances"][0]["text"] == "法院已经对你立案了"
    assert call["findings"][0]["rule"] == "P03"
    assert call["review"]["state"] == "flagged"  # a finding puts it in the review queue


def test_calls_outside_scope_are_404(service: Service, client: TestClient) -> None:
    seed_call(service, "theirs", wav="mono_8k.wav", agent_id=OTHER_AGENT, team_id=OTHER_TEAM)
    for who in ("agent", "supervisor"):
        headers = bearer(service.tokens[who])
        _assert_error(client.get("/api/v1/calls/theirs", headers=headers), 404, "call_not_found")
        _assert_error(client.get("/api/v1/calls/nope", headers=headers), 404, "call_not_found")
        assert client.get("/api/v1/calls", headers=headers).json()["items"] == []


def _ids(response: Any) -> list[str]:
    assert response.status_code == 200, response.text
    return [item["call_id"] for item in response.json()["items"]]


def test_list_filters_search_and_pages(service: Service, client: TestClient) -> None:
    day = datetime(2026, 11, 6, 10, 0, tzinfo=CST)
    seed_call(service, "a", texts=("我们会上门找你家人",), started_at=day, score=40, rules=("P05",))
    seed_call(
        service,
        "b",
        wav="mono_8k.wav",
        texts=("您好，请问是张先生吗",),
        started_at=day.replace(day=7),
        score=95,
        rules=(),
        agent_id=OTHER_AGENT,
        team_id=OTHER_TEAM,
    )
    headers = bearer(service.tokens["manager"])

    def get(**params: Any) -> list[str]:
        return _ids(client.get("/api/v1/calls", params=params, headers=headers))

    assert get() == ["b", "a"]
    assert get(q="上门找你") == ["a"]  # Chinese phrase through the trigram index
    assert get(q="张先") == ["b"]  # two characters: the LIKE fallback
    assert get(q="没有这句话") == []
    assert get(agent=OTHER_AGENT) == ["b"]
    assert get(team="T1") == ["a"]
    assert get(agency="AG1") == ["b", "a"]
    assert get(rule="p05") == ["a"]
    assert get(score_min=90) == ["b"]
    assert get(score_max=50) == ["a"]
    assert get(date_from="2026-11-07") == ["b"]
    assert get(date_to="2026-11-06") == ["a"]
    assert get(status="analyzed") == ["b", "a"]
    assert get(status="queued") == []
    assert get(review="flagged") == ["a"]
    assert get(review="passed") == ["b"]

    page = client.get("/api/v1/calls", params={"limit": 1}, headers=headers).json()
    assert [i["call_id"] for i in page["items"]] == ["b"]
    rest = client.get(
        "/api/v1/calls", params={"limit": 1, "cursor": page["next_cursor"]}, headers=headers
    ).json()
    assert [i["call_id"] for i in rest["items"]] == ["a"] and rest["next_cursor"] is None
    bad = client.get("/api/v1/calls", params={"cursor": "nonsense"}, headers=headers)
    _assert_error(bad, 422)


def test_audio_with_ranges(service: Service, client: TestClient) -> None:
    seed_call(service, "c-1")
    size = STEREO.stat().st_size
    data = STEREO.read_bytes()
    headers = bearer(service.tokens["agent"])
    whole = client.get("/api/v1/calls/c-1/audio", headers=headers)
    assert whole.status_code == 200 and whole.content == data
    assert whole.headers["accept-ranges"] == "bytes"

    part = client.get("/api/v1/calls/c-1/audio", headers={**headers, "Range": "bytes=100-199"})
    assert part.status_code == 206
    assert part.headers["content-range"] == f"bytes 100-199/{size}"
    assert part.content == data[100:200]

    tail = client.get("/api/v1/calls/c-1/audio", headers={**headers, "Range": "bytes=-44"})
    assert tail.status_code == 206 and tail.content == data[-44:]

    for bad in (f"bytes={size}-", "bytes=50-10", "bytes=abc", "items=0-1"):
        response = client.get("/api/v1/calls/c-1/audio", headers={**headers, "Range": bad})
        _assert_error(response, 416, "range_not_satisfiable")
        assert response.headers["content-range"] == f"bytes */{size}"


def test_waveform_peaks_per_lane_with_the_audio_routes_access(
    service: Service, client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from qa_service.ingest import waveform

    seed_call(service, "c-1")
    seed_call(service, "c-2", wav="mono_8k.wav", agent_id=OTHER_AGENT, team_id=OTHER_TEAM)
    agent = bearer(service.tokens["agent"])
    response = client.get("/api/v1/calls/c-1/waveform", headers=agent)
    assert response.status_code == 200, response.text
    body = response.json()
    detail = client.get("/api/v1/calls/c-1", headers=agent).json()
    assert body["call_id"] == "c-1"
    assert body["duration_s"] == pytest.approx(4.0, abs=0.01)  # the 4-s fixture
    assert body["peaks_per_second"] == 100
    assert [(c["channel"], c["speaker"]) for c in body["channels"]] == [
        (0, "agent"),
        (1, "customer"),
    ]
    assert detail["channels"] == "stereo"
    for lane in body["channels"]:
        assert len(lane["peaks"]) == 400 and max(lane["peaks"]) == 1.0
        assert all(0 <= v <= 1 and round(v, 2) == v for v in lane["peaks"])
        assert 0 < lane["scale"] <= 1
    assert response.headers["cache-control"] == "private, no-store"

    # Cached: the second request decodes nothing.
    def no_decoding(*_args: object, **_kw: object) -> None:
        raise AssertionError("decoded again")

    monkeypatch.setattr(waveform, "compute_waveform", no_decoding)
    assert client.get("/api/v1/calls/c-1/waveform", headers=agent).json() == body
    monkeypatch.undo()

    mono = client.get("/api/v1/calls/c-2/waveform", headers=bearer(service.tokens["manager"]))
    assert [(c["channel"], c["speaker"]) for c in mono.json()["channels"]] == [(0, None)]
    # Whoever may not hear the recording gets the audio route's answer: 404, never 403.
    _assert_error(client.get("/api/v1/calls/c-2/waveform", headers=agent), 404, "call_not_found")
    admin = bearer(service.tokens["admin"])
    _assert_error(client.get("/api/v1/calls/c-1/waveform", headers=admin), 404, "call_not_found")
    _assert_error(client.get("/api/v1/calls/nope/waveform", headers=agent), 404, "call_not_found")
    assert client.get("/api/v1/calls/c-1/waveform").status_code == 401
    # Drawing the lanes is not a play: the audit trail records plays on the audio route only.
    with service.state.sessions() as session:
        events = session.scalars(select(AuditEventRow.event)).all()
    assert "call.audio" not in events


def test_failed_calls_are_listed_and_requeued(service: Service, client: TestClient) -> None:
    seed_call(service, "broken")
    with service.state.sessions.begin() as session:
        session.execute(
            update(CallRow)
            .where(CallRow.call_id == "broken")
            .values(
                status="failed", attempts=3, audio_ext=".wav", last_error="解码失败 / decode failed"
            )
        )
    headers = bearer(service.tokens["admin"])
    listed = client.get("/api/v1/jobs/failed", headers=headers).json()["items"]
    assert [(c["call_id"], c["attempts"]) for c in listed] == [("broken", 3)]
    response = client.post("/api/v1/jobs/failed/broken/requeue", headers=headers)
    assert response.status_code == 202, response.text
    assert response.json() == {"call_id": "broken", "status": "queued"}
    assert service.queue.jobs == ["broken"]
    _assert_error(client.post("/api/v1/jobs/failed/broken/requeue", headers=headers), 409)
    _assert_error(client.post("/api/v1/jobs/failed/nope/requeue", headers=headers), 404)


# --- login, sessions, CSRF, tokens -------------------------------------------------------


def _login(client: TestClient, username: str, password: str) -> Any:
    return client.post("/api/v1/auth/login", json={"username": username, "password": password})


def test_login_cookie_csrf_and_logout(service: Service, client: TestClient) -> None:
    response = _login(client, "inspector", PASSWORDS["inspector"])
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["user"]["role"] == "inspector" and body["csrf_token"]
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie and "secure" not in cookie

    assert client.get("/api/v1/auth/me").json()["user"]["username"] == "inspector"
    files = {"file": ("x.wav", STEREO.read_bytes(), "audio/wav")}
    refused = client.post("/api/v1/recordings", files=files)
    _assert_error(refused, 403, "csrf_failed")
    wrong = client.post("/api/v1/recordings", files=files, headers={"X-CSRF-Token": "nope"})
    _assert_error(wrong, 403, "csrf_failed")
    assert service.queue.jobs == []
    ok = client.post(
        "/api/v1/recordings", files=files, headers={"X-CSRF-Token": body["csrf_token"]}
    )
    assert ok.status_code == 202, ok.text

    _assert_error(client.post("/api/v1/auth/logout"), 403, "csrf_failed")
    out = client.post("/api/v1/auth/logout", headers={"X-CSRF-Token": body["csrf_token"]})
    assert out.status_code == 204
    _assert_error(client.get("/api/v1/auth/me"), 401, "authentication_failed")


def test_secure_cookie_by_setting(db_url: str, tmp_path: Path) -> None:
    service = make_service(db_url, tmp_path, cookie_secure=True)
    try:
        add_user(service, "inspector", "inspector")
        response = _login(TestClient(service.app), "inspector", PASSWORDS["inspector"])
        assert "secure" in response.headers["set-cookie"].lower()
    finally:
        service.state.engine.dispose()


def test_bearer_token_needs_no_csrf(service: Service, client: TestClient) -> None:
    response = _upload(client, service.tokens["inspector"], STEREO)
    assert response.status_code == 202
    _assert_error(client.get("/api/v1/calls", headers=bearer("qas_not-a-token")), 401)


def test_wrong_password_then_lockout(service: Service, client: TestClient) -> None:
    _assert_error(_login(client, "nobody", "Whatever-123!"), 401, "authentication_failed")
    for _ in range(service.state.settings.lockout_attempts):
        _assert_error(_login(client, "agent", "Wrong-Password-1!"), 401)
    _assert_error(_login(client, "agent", PASSWORDS["agent"]), 423, "account_locked")


def test_password_change_is_all_an_expired_account_may_do(
    service: Service, client: TestClient
) -> None:
    add_user(service, "newbie", "inspector", must_change_password=True)
    login = _login(client, "newbie", PASSWORDS["inspector"])
    assert login.status_code == 200 and login.json()["user"]["must_change_password"]
    csrf = {"X-CSRF-Token": login.json()["csrf_token"]}
    _assert_error(client.get("/api/v1/calls"), 403, "password_expired")
    assert client.get("/api/v1/auth/me").status_code == 200
    change = client.post(
        "/api/v1/auth/password",
        json={"current_password": PASSWORDS["inspector"], "new_password": "Harbor-Violet-8810?q"},
        headers=csrf,
    )
    assert change.status_code == 204, change.text
    assert client.get("/api/v1/calls").status_code == 200


# --- health, docs, errors ----------------------------------------------------------------


def test_health_and_readiness(service: Service, client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json()["status"] == "ready"
    service.queue.up = False
    response = client.get("/readyz")
    error = _assert_error(response, 503, "not_ready")
    assert "queue" in error["detail"] and response.json()["database"] == "ok"


def test_docs_work_offline(client: TestClient) -> None:
    page = client.get("/docs")
    assert page.status_code == 200
    assert "/static/swagger-ui/swagger-ui-bundle.js" in page.text
    assert "cdn" not in page.text.lower()
    assert client.get("/static/swagger-ui/swagger-ui-bundle.js").status_code == 200
    spec = client.get("/openapi.json").json()
    assert "/api/v1/recordings" in spec["paths"] and "/api/v1/calls" in spec["paths"]


def test_framework_errors_have_the_error_shape(client: TestClient) -> None:
    _assert_error(client.get("/api/v1/nothing-here"), 404, "not_found")
    _assert_error(client.delete("/healthz"), 405, "method_not_allowed")
    bad = client.post(
        "/api/v1/auth/login", content=b"{", headers={"content-type": "application/json"}
    )
    _assert_error(bad, 422, "invalid_request")


def test_upload_json_is_written_in_chinese(service: Service, client: TestClient) -> None:
    error = _assert_error(
        _upload(client, service.tokens["inspector"], STEREO, metadata=json.dumps([1])), 422
    )
    assert any("\u4e00" <= ch <= "\u9fff" for ch in error["message"])
    assert error["detail"]
