"""``qa-service serve`` end to end: SQLite, no Redis, a real upload analysed by the real model.

The server runs as a subprocess on a free port with the in-process worker, exactly as the
README's embedded default does; the test talks HTTP to it like any client would.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from api_support import FIXTURES, PASSWORDS

from qa_service.accounts.service import create_user
from qa_service.accounts.sessions import create_api_token
from qa_service.db.session import make_engine, make_session_factory, migrate

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QA_")}
    env.update({"QA_DATA_DIR": str(data_dir), "QA_ENVIRONMENT": "development"})
    env.pop("DATABASE_URL", None)
    env["REDIS_URL"] = ""
    return env


def _inspector_token(data_dir: Path) -> str:
    engine = make_engine(f"sqlite:///{(data_dir / 'qa-service.sqlite3').resolve()}")
    try:
        migrate(engine)
        with make_session_factory(engine).begin() as session:
            account = create_user(
                session, username="qa-e2e", role="inspector", password=PASSWORDS["inspector"]
            )
            return create_api_token(session, user_id=account.user_id, name="e2e")
    finally:
        engine.dispose()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, str]]:
    data_dir = tmp_path / "var"
    token = _inspector_token(data_dir)
    port = _free_port()
    log = (tmp_path / "serve.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "qa_service.cli", "serve", "--port", str(port)],
        env=_env(data_dir),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                pytest.fail(f"serve exited: {(tmp_path / 'serve.log').read_text()[-3000:]}")
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("serve did not answer /healthz within 60 s")
            time.sleep(0.5)
        yield base, token
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


def test_serve_analyses_an_upload_end_to_end(server: tuple[str, str]) -> None:
    base, token = server
    headers = {"Authorization": f"Bearer {token}"}
    assert httpx.get(f"{base}/readyz", timeout=10).json()["status"] == "ready"
    wav = FIXTURES / "stereo_8k.wav"
    sidecar = (FIXTURES / "stereo_8k.json").read_text(encoding="utf-8")
    response = httpx.post(
        f"{base}/api/v1/recordings",
        files={"file": (wav.name, wav.read_bytes(), "audio/wav")},
        data={"metadata": sidecar},
        headers=headers,
        timeout=60,
    )
    assert response.status_code == 202, response.text
    call_id = response.json()["call_id"]

    deadline = time.monotonic() + 600
    call: dict[str, object] = {}
    while time.monotonic() < deadline:
        call = httpx.get(f"{base}/api/v1/calls/{call_id}", headers=headers, timeout=30).json()
        if call["status"] not in ("queued", "analyzing"):
            break
        time.sleep(2)
    assert call["status"] == "analyzed", call
    assert call["call_id"] == "dev-001" and call["channels"] == "stereo"
    assert isinstance(call["utterances"], list)
    audio = httpx.get(
        f"{base}/api/v1/calls/{call_id}/audio",
        headers={**headers, "Range": "bytes=0-43"},
        timeout=30,
    )
    assert audio.status_code == 206 and audio.content == wav.read_bytes()[:44]
