"""Hostile uploads and logins are refused cleanly (issue 13, item 5).

Audio bombs (a header claiming thousands of channels, an absurd sample rate or days of
audio over a tiny body), content that is not audio whatever its name, path traversal in
the file name, state-changing routes without the CSRF token of a cookie session (every
one, from the app's route table) and login guessing from one client IP across many user
names. An oversized upload refused while streaming is covered by
``tests/integration/test_api.py::test_oversized_upload_is_refused_while_streaming``.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest
from api_support import FIXTURES, PASSWORDS, Service, add_role_users, bearer, make_service
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from starlette.routing import Route

from qa_service.api.throttle import LoginThrottle
from qa_service.db.tables import CallRow
from qa_service.errors import TooManyRequests

UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}


@pytest.fixture
def service(tmp_path: Path) -> Service:
    svc = make_service(
        f"sqlite:///{tmp_path / 'qa.sqlite3'}",
        tmp_path,
        login_ip_max_failures=5,
        lockout_attempts=3,
    )
    add_role_users(svc)
    return svc


@pytest.fixture
def client(service: Service) -> Iterator[TestClient]:
    with TestClient(service.app) as c:
        yield c


def _wav(*, channels: int, rate: int, data_size: int, body: bytes, bits: int = 16) -> bytes:
    block = (channels * bits // 8) & 0xFFFF
    fmt = struct.pack("<HHIIHH", 1, channels, rate, (rate * block) & 0xFFFFFFFF, block, bits)
    return (
        b"RIFF"
        + struct.pack("<I", 36 + len(body))
        + b"WAVE"
        + b"fmt "
        + struct.pack("<I", 16)
        + fmt
        + b"data"
        + struct.pack("<I", data_size)
        + body
    )


def _upload(client: TestClient, token: str, name: str, data: bytes, ctype: str = "audio/wav"):
    return client.post(
        "/api/v1/recordings", files={"file": (name, data, ctype)}, headers=bearer(token)
    )


def _calls(service: Service) -> int:
    with service.state.sessions() as session:
        return session.scalar(select(func.count()).select_from(CallRow)) or 0


def _stored_files(service: Service) -> list[Path]:
    roots = (service.state.store.root, service.state.upload_tmp_dir)
    return [p for root in roots if root.exists() for p in root.rglob("*") if p.is_file()]


BOMBS = {
    "65535 channels": _wav(channels=65535, rate=8000, data_size=4000, body=b"\0" * 4000),
    "4 GB of data in 4 KB": _wav(channels=1, rate=8000, data_size=0xFFFFFFF0, body=b"\0" * 4000),
    "2 GHz sample rate": _wav(channels=1, rate=2**31 - 1, data_size=4000, body=b"\0" * 4000),
    "twice the bytes it holds": _wav(channels=1, rate=8000, data_size=64000, body=b"\1" * 32000),
}


@pytest.mark.parametrize("case", sorted(BOMBS))
def test_audio_bomb_is_refused_with_a_chinese_reason(
    service: Service, client: TestClient, case: str
) -> None:
    response = _upload(client, service.tokens["inspector"], "bomb.wav", BOMBS[case])
    assert response.status_code == 415, response.text
    error = response.json()["error"]
    assert error["code"] == "implausible_audio"
    assert re.search(r"声道数异常|采样率异常|超过上限|文件头声明", error["message"])
    assert "bomb.wav" in error["message"]
    assert str(service.state.upload_tmp_dir) not in response.text  # no server paths
    assert _calls(service) == 0
    assert _stored_files(service) == []


def test_a_long_but_plausible_header_is_accepted(service: Service, client: TestClient) -> None:
    # 0xFFFFFFFF is what recorders write while streaming to disk: not a bomb.
    wav = (FIXTURES / "mono_8k.wav").read_bytes()
    data_at = wav.index(b"data") + 4
    streaming = wav[:data_at] + struct.pack("<I", 0xFFFFFFFF) + wav[data_at + 4 :]
    assert _upload(client, service.tokens["inspector"], "s.wav", streaming).status_code == 202


@pytest.mark.parametrize(
    ("name", "data", "ctype"),
    [
        ("notes.wav", "这不是录音".encode() * 50, "audio/wav"),
        ("photo.mp3", b"\x89PNG\r\n\x1a\n" + b"\0" * 500, "image/png"),
        ("script.wav", b"#!/bin/sh\nrm -rf /\n" * 20, "application/x-sh"),
    ],
)
def test_content_that_is_not_audio_is_refused_whatever_its_name(
    service: Service, client: TestClient, name: str, data: bytes, ctype: str
) -> None:
    response = _upload(client, service.tokens["inspector"], name, data, ctype)
    assert response.status_code == 415
    assert "不是可识别的音频" in response.json()["error"]["message"]
    assert _calls(service) == 0 and _stored_files(service) == []


def test_a_body_that_is_not_multipart_is_refused(service: Service, client: TestClient) -> None:
    response = client.post(
        "/api/v1/recordings",
        content=(FIXTURES / "mono_8k.wav").read_bytes(),
        headers={**bearer(service.tokens["inspector"]), "Content-Type": "audio/wav"},
    )
    assert response.status_code == 422
    assert "multipart/form-data" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    "name", ["../../etc/passwd.wav", "..\\..\\Windows\\System32\\x.wav", "/etc/cron.d/a.wav"]
)
def test_path_traversal_in_the_file_name_stores_a_safe_name(
    service: Service, client: TestClient, tmp_path: Path, name: str
) -> None:
    response = _upload(
        client, service.tokens["inspector"], name, (FIXTURES / "mono_8k.wav").read_bytes()
    )
    assert response.status_code == 202, response.text
    with service.state.sessions() as session:
        recording = session.scalars(select(CallRow.recording)).one()
    assert "/" not in recording and "\\" not in recording and ".." not in recording
    assert recording.endswith(".wav")
    # The only file written is the content-addressed one, inside the store.
    [stored] = _stored_files(service)
    assert stored.resolve().is_relative_to(service.state.store.root.resolve())
    assert stored.stem == response.json()["sha256"]
    assert not Path("/etc/passwd.wav").exists() and not Path("/etc/cron.d/a.wav").exists()


def _login(client: TestClient, username: str, password: str):
    return client.post("/api/v1/auth/login", json={"username": username, "password": password})


def _fill(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "1", path)


def test_every_state_changing_route_refuses_a_cookie_without_its_csrf_token(
    service: Service, client: TestClient
) -> None:
    routes = sorted(
        (method, str(context.path))
        for context in iter_route_contexts(service.app.routes)
        if isinstance(context.original_route, APIRoute | Route)
        for method in (context.methods or set()) & UNSAFE
        if context.path != "/api/v1/auth/login"  # no session yet: nothing to forge
    )
    assert len(routes) >= 20  # the route table, not a hand-picked list
    for username in ("admin", "agent"):  # the check is per session, not per role
        reply = _login(client, username, PASSWORDS[username])
        assert reply.status_code == 200, reply.text
        token = reply.json()["csrf_token"]
        for method, path in routes:
            for header in ({}, {"X-CSRF-Token": "forged"}, {"X-CSRF-Token": token + "x"}):
                response = client.request(method, _fill(path), headers=header, json={})
                assert response.status_code == 403, (username, method, path, response.text)
                assert response.json()["error"]["code"] == "csrf_failed", (method, path)
        # The right token passes the check (whatever the route then says).
        response = client.post("/api/v1/auth/logout", headers={"X-CSRF-Token": token})
        assert response.status_code == 204


def test_login_failures_from_one_ip_across_user_names_get_429(
    service: Service, client: TestClient
) -> None:
    # Unknown names never lock an account; the client IP is slowed all the same.
    for i in range(5):
        assert _login(client, f"nobody-{i}", "guess").status_code == 401
    refused = _login(client, "nobody-5", "guess")
    assert refused.status_code == 429
    assert "登录失败次数过多" in refused.json()["error"]["message"]
    assert 1 <= int(refused.headers["Retry-After"]) <= 300
    # Even the right password waits: the address, not the account, is throttled.
    assert _login(client, "admin", PASSWORDS["admin"]).status_code == 429
    # Another client is not affected.
    with TestClient(service.app, client=("10.9.8.7", 5000)) as other:
        assert _login(other, "admin", PASSWORDS["admin"]).status_code == 200
    # Each refusal is on the audit trail.
    reply = client.get(
        "/api/v1/audit?event=auth.login&limit=1000", headers=bearer(service.tokens["admin"])
    )
    assert reply.status_code == 200
    assert "too_many_requests" in reply.text


def test_throttle_window_slides_and_memory_is_bounded() -> None:
    throttle = LoginThrottle()
    for t in range(3):
        throttle.failed("1.2.3.4", window_s=60, now=float(t))
    with pytest.raises(TooManyRequests) as refused:
        throttle.check("1.2.3.4", max_failures=3, window_s=60, now=10.0)
    assert refused.value.context["retry_after_s"] == 50
    throttle.check("1.2.3.4", max_failures=3, window_s=60, now=60.5)  # the first left
    throttle.check(None, max_failures=1, window_s=60)  # no address: nothing to count
    from qa_service.api import throttle as module

    for i in range(module.MAX_TRACKED_CLIENTS + 5):
        throttle.failed(f"10.0.{i // 256}.{i % 256}", window_s=60, now=100.0 + i)
    assert len(throttle._failures) <= module.MAX_TRACKED_CLIENTS
