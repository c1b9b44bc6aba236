"""Private servers and real service processes for the fault tests (issue 13, item 4).

Faults that restart a server must never touch the shared PostgreSQL and Redis that other
tests and CI use, so each such test starts its own: :class:`PrivatePostgres` (``initdb``
+ ``pg_ctl`` in a temporary directory, as the ``postgres`` user when the tests run as
root, which ``initdb`` refuses) and :class:`PrivateRedis` (``redis-server`` with no
persistence, so a restart loses every job, as a crash would). :class:`Stack` runs real
``qa-service serve`` and ``worker`` processes on them, the way
``tests/integration/test_queue_workers.py`` does (own process groups, logs in tmp_path).

Imported as ``fault_support`` (``tests/`` is on ``sys.path``, like ``api_support``).
A missing tool fails the test with the reason; nothing is skipped silently.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
import wave
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from api_support import PASSWORDS
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from qa_service.accounts.service import create_user
from qa_service.accounts.sessions import create_api_token
from qa_service.db import make_engine, make_session_factory, migrate
from qa_service.db import queue as calls
from qa_service.db.tables import AnalysisRunRow, CallRow
from qa_service.domain import CallStatus

ROOT = Path(__file__).resolve().parents[1]
MONO_WAV = ROOT / "tests" / "fixtures" / "mono_8k.wav"
PG_BIN = Path(os.environ.get("QA_TEST_PG_BIN", "/usr/local/bin"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def make_recordings(out_dir: Path, n: int, *, seconds: float = 4.0, tag: int = 0) -> list[Path]:
    """``n`` distinct WAVs cut from the mono fixture (the last sample differs in each)."""
    with wave.open(str(MONO_WAV), "rb") as src:
        params = src.getparams()
        frames = src.readframes(params.nframes)
    want = int(params.framerate * seconds) * params.sampwidth
    body = (frames * (want // len(frames) + 1))[:want]
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        data = bytearray(body)
        data[-2:] = (tag * 1000 + i + 1).to_bytes(2, "little", signed=True)
        path = out_dir / f"call-{tag}-{i:03d}.wav"
        with wave.open(str(path), "wb") as dst:
            dst.setparams(params)
            dst.writeframes(bytes(data))
        paths.append(path)
    return paths


def _as_postgres(cmd: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return cmd
    runuser = shutil.which("runuser")
    if runuser is None:
        pytest.fail("running as root: initdb refuses root and runuser is missing")
    return [runuser, "-u", "postgres", "--", *cmd]


class PrivatePostgres:
    """A throw-away PostgreSQL cluster owned by this test (trust auth, local port)."""

    def __init__(self) -> None:
        for tool in ("initdb", "pg_ctl"):
            if not (PG_BIN / tool).exists():
                pytest.fail(f"{PG_BIN / tool} is required for the PostgreSQL restart fault")
        self.dir = Path(tempfile.mkdtemp(prefix="qa-pg-"))
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        self.data = self.dir / "data"
        self.port = free_port()
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8")
        self.start()

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, tool: str, *args: str) -> None:
        done = subprocess.run(
            _as_postgres([str(PG_BIN / tool), *args]), capture_output=True, text=True, timeout=120
        )
        if done.returncode != 0:
            pytest.fail(f"{tool} {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")

    def _ctl(self, action: str, *extra: str) -> None:
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.dir / "log"), "-o", options,
            "-w", *extra, action,
        )  # fmt: skip

    def start(self) -> None:
        self._ctl("start")

    def stop(self) -> None:
        # immediate: like a crash, open connections are cut without a goodbye.
        self._ctl("stop", "-m", "immediate")

    def close(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "stop")
        except BaseException:  # already stopped
            pass
        shutil.rmtree(self.dir, ignore_errors=True)


class PrivateRedis:
    """A ``redis-server`` subprocess owned by this test, with no persistence."""

    def __init__(self, tmp: Path) -> None:
        self.binary = shutil.which("redis-server")
        if self.binary is None:
            pytest.fail("redis-server is required for the Redis fault tests")
        self.tmp = tmp
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        log = (self.tmp / "redis.log").open("ab")
        self.proc = subprocess.Popen(
            [self.binary or "redis-server", "--port", str(self.port), "--save", "",
             "--appendonly", "no", "--daemonize", "no", "--bind", "127.0.0.1"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.1)
        pytest.fail("the private redis-server did not start")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def close(self) -> None:
        self.kill()


class Stack:
    """The service's processes on one database, Redis and audio store."""

    def __init__(
        self, tmp: Path, *, database_url: str, redis_url: str, audio_store: Path | None = None,
        data_dir: Path | None = None, **env: str,
    ) -> None:  # fmt: skip
        self.tmp = tmp
        self.database_url = database_url
        self.redis_url = redis_url
        self.data_dir = data_dir or tmp / "var"
        self.audio_store = audio_store or tmp / "audio"
        self.queue_name = f"qa-fault-{uuid.uuid4().hex[:8]}"
        self.extra_env = env
        self.procs: list[subprocess.Popen[bytes]] = []
        self.api: subprocess.Popen[bytes] | None = None
        self.base_url = ""
        self.engine: Engine = make_engine(database_url)
        migrate(self.engine)
        self.sessions: sessionmaker[Session] = make_session_factory(self.engine)
        with self.sessions.begin() as session:
            account = create_user(
                session, username="uploader", role="inspector", password=PASSWORDS["inspector"]
            )
            self.token = create_api_token(session, user_id=account.user_id, name="faults")

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            DATABASE_URL=self.database_url,
            REDIS_URL=self.redis_url,
            QA_QUEUE_NAME=self.queue_name,
            QA_DATA_DIR=str(self.data_dir),
            QA_AUDIO_STORE=str(self.audio_store),
            QA_STALE_ANALYSIS_S="30",
            QA_SWEEP_INTERVAL_S="5",
            QA_JOB_RETRY_BACKOFF_S="[1]",
            QA_JOB_MAX_ATTEMPTS="5",
            QA_CPU_THREADS="1",
            QA_BEAM_SIZE="1",
        )
        env.update(self.extra_env)
        return env

    def _spawn(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        log = (self.tmp / f"proc-{name}.log").open("ab")
        proc = subprocess.Popen(
            [sys.executable, "-m", "qa_service.cli", *args],
            cwd=ROOT, env=self.env(), stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,  # teardown kills the whole group (rq's scheduler too)
        )  # fmt: skip
        self.procs.append(proc)
        return proc

    def start_worker(self, *args: str) -> subprocess.Popen[bytes]:
        return self._spawn(f"worker-{len(self.procs)}", "worker", *args)

    def start_api(self, port: int | None = None) -> None:
        port = port or free_port()
        self.api = self._spawn(f"api-{len(self.procs)}", "serve", "--port", str(port))
        self.base_url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.api.poll() is not None:
                pytest.fail(f"serve exited with {self.api.returncode}\n{self.logs()}")
            try:
                if httpx.get(f"{self.base_url}/healthz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.3)
        pytest.fail(f"serve did not answer within 60 s\n{self.logs()}")

    def kill(self, proc: subprocess.Popen[bytes]) -> None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=30)

    def logs(self) -> str:
        return "\n".join(
            f"--- {p.name} ---\n" + p.read_text(errors="replace")[-4000:]
            for p in sorted(self.tmp.glob("proc-*.log"))
        )

    def upload(self, path: Path, *, timeout: float = 60) -> httpx.Response:
        with path.open("rb") as fh:
            return httpx.post(
                f"{self.base_url}/api/v1/recordings",
                files={"file": (path.name, fh, "audio/wav")},
                headers={"Authorization": f"Bearer {self.token}"},
                timeout=timeout,
            )

    def statuses(self) -> dict[str, int]:
        with self.sessions() as session:
            return calls.count_by_status(session)

    def wait_for(self, what: str, done: Callable[[], bool], timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                if done():
                    return
            except Exception:  # the database may be the thing restarting
                pass
            time.sleep(0.5)
        pytest.fail(f"timed out waiting for {what}: {self.statuses()}\n{self.logs()}")

    def cli(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "qa_service.cli", *args],
            cwd=ROOT, env=self.env(), capture_output=True, text=True, timeout=timeout,
        )  # fmt: skip

    def close(self) -> None:
        for proc in self.procs:
            self.kill(proc)
        self.engine.dispose()


def assert_all_settled(stack: Stack, accepted: dict[str, str]) -> None:
    """Issue 13's check after every fault: each accepted recording (sha256 → call id) is one
    call, ``analyzed`` or ``failed`` with a reason; no duplicates; the audit chain verifies.
    """
    with stack.sessions() as session:
        rows = session.execute(
            select(CallRow.call_id, CallRow.sha256, CallRow.status, CallRow.error_message)
        ).all()
        runs = dict(
            session.execute(
                select(AnalysisRunRow.call_id, func.count()).group_by(AnalysisRunRow.call_id)
            ).all()
        )
        by_sha = {sha: (call_id, status, error) for call_id, sha, status, error in rows}
    assert len(by_sha) == len(rows), "two calls for the same bytes"
    for sha, call_id in accepted.items():
        assert sha in by_sha, f"accepted recording {call_id} has no call"
        got_id, status, error = by_sha[sha]
        assert got_id == call_id
        assert status in (CallStatus.ANALYZED.value, CallStatus.FAILED.value), (call_id, status)
        if status == CallStatus.FAILED.value:
            assert error, f"call {call_id} failed without a reason"
    assert all(n == 1 for n in runs.values()), f"a call analysed twice: {runs}"
    verified = stack.cli("audit", "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr


def settle_with_fake_analyser(stack: Stack) -> None:
    """Run the queued analysis jobs to the end in this process, through the real job, queue
    and save, with an analyser that needs no model (for faults of the upload path, where
    what Whisper hears does not matter)."""
    from queue_fakes import FakeAnalyzer
    from rq import SimpleWorker

    from qa_service.settings import Settings
    from qa_service.worker import jobs
    from qa_service.worker.queue import RqJobQueue

    settings = Settings(
        DATABASE_URL=stack.database_url,
        REDIS_URL=stack.redis_url,
        queue_name=stack.queue_name,
        data_dir=stack.data_dir,
        audio_store=stack.audio_store,
    )
    jobs.start_runtime(settings, analyzer=FakeAnalyzer())
    queue = RqJobQueue.from_settings(settings)
    try:
        SimpleWorker([queue.rq_queue], connection=queue.redis).work(burst=True)
    finally:
        queue.close()
        jobs.stop_runtime()
