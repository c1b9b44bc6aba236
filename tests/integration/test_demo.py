"""``qa-service demo`` as README line 1 runs it: set up, print the logins, serve until Ctrl-C.

A one-call samples folder keeps it short; everything else is the real thing (SQLite under
the data dir, the real model, uvicorn, the in-process worker, the demo accounts).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from qa_service.cli.demo import DEMO_ACCOUNTS

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
PASSWORD = {acc.username: acc.password for acc in DEMO_ACCOUNTS}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _samples(root: Path) -> Path:
    samples = root / "samples"
    samples.mkdir()
    shutil.copy(FIXTURES / "stereo_8k.wav", samples / "d-1.wav")
    meta = json.loads((FIXTURES / "stereo_8k.json").read_text(encoding="utf-8"))
    meta.update({"call_id": "d-1", "recording": "d-1.wav", "agent_id": "A738"})
    (samples / "d-1.json").write_text(json.dumps(meta), encoding="utf-8")
    (samples / "roster.csv").write_text("工号,姓名,团队,机构\nA738,张敏,催收一组,华信外包\n")
    return samples


def _env(root: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QA_")}
    env.pop("DATABASE_URL", None)
    env.update(
        {
            "QA_DATA_DIR": str(root / "var"),
            "QA_SAMPLES_DIR": str(_samples(root)),
            "QA_ENVIRONMENT": "development",
            "REDIS_URL": "",
        }
    )
    return env


def _login(base: str, username: str) -> httpx.Client:
    client = httpx.Client(base_url=base, timeout=10)
    reply = client.post(
        "/api/v1/auth/login", json={"username": username, "password": PASSWORD[username]}
    )
    assert reply.status_code == 200, reply.text
    return client


def _call_ids(client: httpx.Client) -> set[str]:
    reply = client.get("/api/v1/calls")
    assert reply.status_code == 200, reply.text
    return {item["call_id"] for item in reply.json()["items"]}


def test_demo_sets_up_prints_logins_serves_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    env = _env(tmp_path)
    port = _free_port()
    out = (tmp_path / "demo.out").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "qa_service.cli", "demo", "--port", str(port)],
        env=env,
        stdout=out,
        stderr=subprocess.STDOUT,
        cwd=tmp_path,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 240
        while True:
            if process.poll() is not None:
                pytest.fail(f"demo exited: {(tmp_path / 'demo.out').read_text()[-3000:]}")
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "demo did not serve within 240 s"
            time.sleep(0.5)
        printed = (tmp_path / "demo.out").read_text(encoding="utf-8")
        assert "通话 d-1" in printed  # the per-call Chinese summary
        assert base + "/" in printed
        for acc in DEMO_ACCOUNTS:
            assert acc.username in printed and acc.password in printed

        # Every role can log in; what each sees follows the roster (A738 is in 催收一组).
        # Inspectors see the calls in review, so d-1 only if its analysis flagged it.
        state = _login(base, "manager").get("/api/v1/calls/d-1").json()["review"]["state"]
        assert state in ("flagged", "passed")
        assert _call_ids(_login(base, "inspector")) == (set() if state == "passed" else {"d-1"})
        assert _call_ids(_login(base, "manager")) == {"d-1"}
        assert _call_ids(_login(base, "supervisor")) == {"d-1"}
        agent = _login(base, "agent")
        assert _call_ids(agent) == {"d-1"}
        detail = agent.get("/api/v1/calls/d-1").json()
        assert detail["status"] == "analyzed" and detail["utterances"]
        assert (
            agent.get("/api/v1/calls/d-1/audio", headers={"Range": "bytes=0-99"}).status_code == 206
        )
        assert _login(base, "admin").get("/api/v1/auth/me").json()["user"]["role"] == "admin"
        assert httpx.get(f"{base}/docs", timeout=5).status_code == 200
    finally:
        process.send_signal(signal.SIGINT)
        try:
            code = process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
        out.close()
    assert code == 0, (tmp_path / "demo.out").read_text()[-3000:]

    # A second run reuses the database and keeps the accounts (no duplicate, no refusal).
    again = subprocess.run(
        [sys.executable, "-m", "qa_service.cli", "demo", "--no-serve"],
        env=env,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=240,
    )
    assert again.returncode == 0, again.stderr[-3000:]
