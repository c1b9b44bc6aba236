"""Alerts reach a connected supervisor's stream within seconds, across processes.

A real ``qa-service serve`` subprocess (SQLite; once without Redis, once with Redis at
127.0.0.1:6379/12 and the database poll slowed to 30 s so only pub/sub can be fast); two
supervisors connected to ``/api/v1/alerts/stream``; a C01 call analysed by the worker's
own job code in a third process (``alert_job.py``). The supervisor of the call's team gets
the event (latency printed; asserted < 10 s, the target is 5 s), the other supervisor
nothing. The webhook, served by this test and failing once, is retried and delivered.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_support import FIXTURES, PASSWORDS

from qa_service.accounts.service import create_user
from qa_service.accounts.sessions import create_api_token
from qa_service.db.session import make_engine, make_session_factory, migrate

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REDIS_URL = os.environ.get("QA_TEST_REDIS_URL", "redis://127.0.0.1:6379/12")
JOB = Path(__file__).resolve().parent / "alert_job.py"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Hook:
    """A webhook receiver that answers 500 to the first POST and 200 afterwards."""

    url: str
    received: list[dict[str, Any]] = field(default_factory=list)


@pytest.fixture
def hook() -> Iterator[Hook]:
    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append(
                {
                    "at": time.time(),
                    "body": json.loads(body),
                    "headers": {k.lower(): v for k, v in self.headers.items()},
                }
            )
            self.send_response(500 if len(received) == 1 else 200)
            self.end_headers()

        def log_message(self, *_args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield Hook(f"http://127.0.0.1:{server.server_port}/alerts", received)
    server.shutdown()
    server.server_close()


@dataclass
class Server:
    base: str
    env: dict[str, str]
    tokens: dict[str, str]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]


def _tokens(data_dir: Path) -> dict[str, str]:
    engine = make_engine(f"sqlite:///{(data_dir / 'qa-service.sqlite3').resolve()}")
    tokens = {}
    try:
        migrate(engine)
        with make_session_factory(engine).begin() as session:
            for name, team in (("sup-t1", "T1"), ("sup-t2", "T2")):
                account = create_user(
                    session,
                    username=name,
                    role="supervisor",
                    password=PASSWORDS["supervisor"],
                    team_ids=(team,),
                )
                tokens[name] = create_api_token(session, user_id=account.user_id, name="alerts")
    finally:
        engine.dispose()
    return tokens


@pytest.fixture(params=["sqlite-no-redis", "redis"])
def server(request: pytest.FixtureRequest, tmp_path: Path, hook: Hook) -> Iterator[Server]:
    data_dir = tmp_path / "var"
    env = {k: v for k, v in os.environ.items() if not k.startswith("QA_")}
    env.pop("DATABASE_URL", None)
    env.update(
        {
            "QA_DATA_DIR": str(data_dir),
            "QA_ENVIRONMENT": "development",
            "QA_ALERT_KEEPALIVE_S": "1",
            "QA_SWEEP_INTERVAL_S": "600",
            "QA_ALERT_WEBHOOK_URL": hook.url,
            "QA_ALERT_WEBHOOK_BACKOFF_S": "[1]",
            "REDIS_URL": "",
        }
    )
    if request.param == "redis":
        env["REDIS_URL"] = REDIS_URL
        # A queue no real worker listens to, and a poll too slow to meet the target:
        # only the pub/sub announcement can bring the event in time.
        env["QA_QUEUE_NAME"] = f"qa-alert-test-{uuid.uuid4().hex[:8]}"
        env["QA_ALERT_POLL_INTERVAL_S"] = "30"
    tokens = _tokens(data_dir)
    port = _free_port()
    log_path = tmp_path / "serve.log"
    log = log_path.open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "qa_service.cli", "serve", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                pytest.fail(f"serve exited: {log_path.read_text()[-3000:]}")
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("serve did not answer /healthz within 60 s")
            time.sleep(0.3)
        yield Server(base, env, tokens, log_path)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


class StreamClient:
    """Reads ``/api/v1/alerts/stream`` in a thread; records each event with its arrival time."""

    def __init__(self, base: str, token: str) -> None:
        self.events: list[tuple[float, dict[str, Any]]] = []
        self.comments: list[str] = []
        self.ready = threading.Event()
        self._stop = threading.Event()
        self._url = f"{base}/api/v1/alerts/stream"
        self._headers = {"Authorization": f"Bearer {token}"}
        self.status: int | None = None
        self.error: Exception | None = None
        self.content_type = ""
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._read()
        except Exception as exc:  # shown by the test's assertion message
            self.error = exc

    def _read(self) -> None:
        timeout = httpx.Timeout(10.0, read=30.0)
        with httpx.stream("GET", self._url, headers=self._headers, timeout=timeout) as response:
            self.status = response.status_code
            self.content_type = response.headers.get("content-type", "")
            fields: dict[str, str] = {}
            for line in response.iter_lines():
                if self._stop.is_set():
                    return
                if line.startswith(":"):
                    self.comments.append(line)
                    if line.strip() == ": ready":
                        self.ready.set()
                elif line:
                    name, _, value = line.partition(": ")
                    fields[name] = value
                else:
                    if fields.get("event") == "alert":
                        self.events.append((time.time(), json.loads(fields["data"])))
                    fields = {}

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)


def _analyse_complaint_call(server: Server, call_id: str) -> float:
    """Run the job in another process; returns when its save committed (time.time())."""
    result = subprocess.run(
        [sys.executable, str(JOB), str(FIXTURES / "stereo_8k.wav"), call_id, "T1", "A1"],
        env=server.env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    assert outcome["status"] == "analyzed", outcome
    return float(outcome["saved_at"])


def test_a_complaint_alert_reaches_the_teams_supervisor_within_seconds(
    server: Server, hook: Hook, request: pytest.FixtureRequest
) -> None:
    # One after the other: two bearer requests at the same instant can meet SQLite's
    # read-then-write lock upgrade in the token check (a backbone issue, not the stream's).
    own = StreamClient(server.base, server.tokens["sup-t1"])
    assert own.ready.wait(30), (own.status, own.error, server.log())
    other = StreamClient(server.base, server.tokens["sup-t2"])
    try:
        assert other.ready.wait(30), (other.status, other.error, server.log())
        assert own.status == 200 and own.content_type.startswith("text/event-stream")

        saved_at = _analyse_complaint_call(server, "alert-live-1")

        deadline = time.time() + 15
        while not own.events and time.time() < deadline:
            time.sleep(0.02)
        assert own.events, "the supervisor of team T1 got no alert"
        arrived_at, event = own.events[0]
        latency = arrived_at - saved_at
        variant = request.node.callspec.params["server"]
        print(f"\nalert latency ({variant}): {latency:.3f} s from save to the supervisor's stream")
        assert latency < 10.0  # the target is 5 s; loose against a busy CI machine
        assert event["call_id"] == "alert-live-1" and event["kinds"] == ["complaint"]
        assert event["team_id"] == "T1" and event["rules"] == ["C01"]
        time.sleep(2.0)  # give a wrong delivery the time to show up
        assert other.events == [], "a supervisor of another team received the alert"
        assert any(c.startswith(": keep-alive") for c in other.comments)
    finally:
        own.close()
        other.close()

    headers = {"Authorization": f"Bearer {server.tokens['sup-t1']}"}
    # A reconnecting client resumes with Last-Event-ID and gets what it missed.
    replay = httpx.get(
        f"{server.base}/api/v1/alerts/stream",
        params={"max_s": 0},
        headers={**headers, "Last-Event-ID": "0"},
        timeout=10,
    )
    assert f"id: {event['id']}" in replay.text
    listed = httpx.get(f"{server.base}/api/v1/alerts", headers=headers, timeout=10).json()
    assert [a["call_id"] for a in listed["items"]] == ["alert-live-1"]

    # The webhook: the first POST fails (500), the retry after the 1 s backoff succeeds.
    deadline = time.time() + 20
    while len(hook.received) < 2 and time.time() < deadline:
        time.sleep(0.1)
    assert len(hook.received) == 2, hook.received
    assert [h["body"]["alert"]["call_id"] for h in hook.received] == ["alert-live-1"] * 2
    assert [h["headers"]["x-qa-delivery-attempt"] for h in hook.received] == ["1", "2"]
    print(f"webhook: delivered on attempt 2, {hook.received[1]['at'] - saved_at:.1f} s after save")
