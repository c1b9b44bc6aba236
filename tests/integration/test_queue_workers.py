"""Real ``qa-service worker`` processes on real Redis and PostgreSQL with the real model.

Nothing is lost: a worker SIGKILLed while it transcribes, a Redis flush while calls wait,
ten simultaneous uploads of one recording. Recordings are uploaded over HTTP to a real
``qa-service serve`` process (with ``REDIS_URL`` set, so it queues and never analyses).
They are copies of the committed 4-s mono fixture, each with one sample changed so that
every one has its own SHA-256 (Whisper's cost per call is mostly its fixed 30-s window, so
shorter cuts would not be faster).

Redis: its own database number (``QA_TEST_REDIS_URL``, default db 11), flushed before and
after each test; nothing else on that server is touched.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
import wave
from collections.abc import Callable, Iterator
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
from qa_service.ingest.store import AudioStore
from qa_service.settings import Settings
from qa_service.worker.queue import RqJobQueue
from qa_service.worker.submit import Submission
from qa_service.worker.sweep import sweep

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REDIS_URL = os.environ.get("QA_TEST_REDIS_URL", "redis://127.0.0.1:6379/11")
ROOT = Path(__file__).resolve().parents[2]
MONO_WAV = ROOT / "tests" / "fixtures" / "mono_8k.wav"
CLIP_S = 4.0  # the whole fixture (dev-045 12–16 s)


def make_recordings(out_dir: Path, n: int) -> list[Path]:
    """``n`` distinct short WAVs from the mono fixture (the last sample differs in each)."""
    with wave.open(str(MONO_WAV), "rb") as src:
        params = src.getparams()
        frames = bytearray(src.readframes(int(params.framerate * CLIP_S)))
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        data = bytearray(frames)
        data[-2:] = (i + 1).to_bytes(2, "little", signed=True)  # the last sample differs
        path = out_dir / f"call-{i:03d}.wav"
        with wave.open(str(path), "wb") as dst:
            dst.setparams(params)
            dst.writeframes(bytes(data))
        paths.append(path)
    return paths


@pytest.fixture
def service(postgres_url: str, tmp_path: Path) -> Iterator[Service]:
    from redis import Redis

    redis = Redis.from_url(REDIS_URL)
    try:
        redis.ping()
    except Exception as exc:  # a missing server fails the test, never skips it
        pytest.fail(f"Redis is required for integration tests ({REDIS_URL}): {exc}")
    redis.flushdb()
    svc = Service(postgres_url, tmp_path)
    try:
        svc.start_api()  # before any upload: threads must not each start a server
        yield svc
    finally:
        svc.close()
        redis.flushdb()
        redis.close()


class Service:
    """One shared database schema, Redis queue and audio store, and the workers on them."""

    def __init__(self, database_url: str, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.settings = Settings(
            database_url=database_url,
            redis_url=REDIS_URL,
            queue_name=f"qa-test-{uuid.uuid4().hex[:8]}",
            data_dir=tmp_path / "var",
            audio_store=tmp_path / "audio",
            stale_analysis_s=30,
            sweep_interval_s=5,
            job_retry_backoff_s=[1],
        )
        self.engine: Engine = make_engine(database_url)
        migrate(self.engine)
        self.sessions: sessionmaker[Session] = make_session_factory(self.engine)
        self.store = AudioStore(self.settings.resolved_audio_store)
        self.queue = RqJobQueue.from_settings(self.settings)
        self.workers: list[subprocess.Popen[bytes]] = []
        self.api: subprocess.Popen[bytes] | None = None
        self.base_url = ""
        with self.sessions.begin() as session:
            account = create_user(
                session, username="uploader", role="inspector", password=PASSWORDS["inspector"]
            )
            self.token = create_api_token(session, user_id=account.user_id, name="uploads")

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            DATABASE_URL=self.settings.database_url,
            REDIS_URL=REDIS_URL,
            QA_QUEUE_NAME=self.settings.queue_name,
            QA_DATA_DIR=str(self.settings.data_dir),
            QA_AUDIO_STORE=str(self.settings.resolved_audio_store),
            QA_STALE_ANALYSIS_S=str(self.settings.stale_analysis_s),
            QA_SWEEP_INTERVAL_S=str(self.settings.sweep_interval_s),
            QA_JOB_RETRY_BACKOFF_S="[1]",
            # Two workers share two cores: one thread each, greedy decoding. This tests the
            # queue, not recognition accuracy.
            QA_CPU_THREADS="1",
            QA_BEAM_SIZE="1",
        )
        return env

    def start_worker(self, *args: str) -> subprocess.Popen[bytes]:
        log = (self.tmp_path / f"worker-{len(self.workers)}.log").open("wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "qa_service.cli", "worker", *args],
            cwd=ROOT,
            env=self.env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            # Its own process group: rq's scheduler is a forked child that outlives a
            # SIGKILLed parent, and teardown must end it too.
            start_new_session=True,
        )
        self.workers.append(proc)
        return proc

    def start_api(self) -> None:
        """``qa-service serve`` on a free port, on the shared database, Redis and store."""
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        log = (self.tmp_path / "worker-api.log").open("wb")
        self.api = subprocess.Popen(
            [sys.executable, "-m", "qa_service.cli", "serve", "--port", str(port)],
            cwd=ROOT,
            env=self.env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
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

    def stop_api(self) -> None:
        """End the API process (its periodic sweep would race a test's own sweep)."""
        if self.api is not None:
            os.killpg(self.api.pid, signal.SIGTERM)
            self.api.wait(timeout=30)
            self.api = None

    def logs(self) -> str:
        return "\n".join(
            f"--- {p.name} ---\n" + p.read_text(errors="replace")[-3000:]
            for p in sorted(self.tmp_path.glob("worker-*.log"))
        )

    def submit(self, path: Path) -> Submission:
        """Upload one recording through the API, as any client would."""
        assert self.api is not None, "start_api() first"
        with path.open("rb") as fh:
            reply = httpx.post(
                f"{self.base_url}/api/v1/recordings",
                files={"file": (path.name, fh, "audio/wav")},
                headers={"Authorization": f"Bearer {self.token}"},
                timeout=60,
            )
        assert reply.status_code in (200, 202), reply.text
        body = reply.json()
        return Submission(
            call_id=body["call_id"],
            sha256=body["sha256"],
            status=CallStatus(body["status"]),
            created=reply.status_code == 202,
        )

    def statuses(self) -> dict[str, int]:
        with self.sessions() as session:
            return calls.count_by_status(session)

    def count(self, table: type) -> int:
        with self.sessions() as session:
            return session.scalar(select(func.count()).select_from(table)) or 0

    def wait_for(self, what: str, done: Callable[[], bool], timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if done():
                return
            for proc in self.workers:
                if proc.poll() not in (None, -signal.SIGKILL, 0):
                    pytest.fail(f"a worker exited with {proc.returncode}\n{self.logs()}")
            time.sleep(0.5)
        pytest.fail(f"timed out waiting for {what}: {self.statuses()}\n{self.logs()}")

    def close(self) -> None:
        for proc in [*self.workers, *([self.api] if self.api is not None else [])]:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(timeout=30)
        self.queue.close()
        self.engine.dispose()


def _busy_call(svc: Service, pid: int) -> str | None:
    """The call worker ``pid`` is analysing right now (its job started and claimed it)."""
    from rq import Worker

    for worker in Worker.all(queue=svc.queue.rq_queue):
        if worker.pid != pid:
            continue
        job_id = worker.get_current_job_id()
        if job_id is None:
            return None
        with svc.sessions() as session:
            for call in calls.calls_with_status(session, statuses=(CallStatus.ANALYZING,)):
                if call.job_id == job_id:
                    return call.call_id
    return None


def test_two_workers_one_killed_mid_call_lose_nothing(service: Service, tmp_path: Path) -> None:
    recordings = make_recordings(tmp_path / "calls", 30)
    submitted = [service.submit(path) for path in recordings]
    assert all(s.created for s in submitted)
    first = service.start_worker()
    service.start_worker()

    victim: list[str] = []

    def first_is_transcribing() -> bool:
        busy = _busy_call(service, first.pid)
        if busy is not None:
            victim.append(busy)
        return busy is not None

    service.wait_for("worker 1 to start a call", first_is_transcribing, timeout_s=180)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=30)

    service.wait_for(
        "every call analysed",
        lambda: service.statuses() == {CallStatus.ANALYZED.value: 30},
        timeout_s=300,
    )
    assert service.count(CallRow) == 30  # one call per recording
    with service.sessions() as session:
        killed = calls.get_queued_call(session, call_id=victim[0])
        runs_per_call = session.execute(
            select(AnalysisRunRow.call_id, func.count()).group_by(AnalysisRunRow.call_id)
        ).all()
    assert killed.status is CallStatus.ANALYZED
    assert killed.attempts == 2  # the killed attempt, then the one the sweep queued
    assert "心跳" in (killed.last_error or "")  # why it was queued again is on record
    assert len(runs_per_call) == 30 and all(n == 1 for _, n in runs_per_call)


def test_redis_flush_while_calls_wait_loses_nothing(service: Service, tmp_path: Path) -> None:
    for path in make_recordings(tmp_path / "calls", 10):
        service.submit(path)
    assert service.queue.rq_queue.count == 10

    service.queue.redis.flushdb()  # our own database number only
    assert service.queue.rq_queue.count == 0

    report = sweep(service.sessions, service.queue, settings=service.settings)
    assert len(report.requeued) == 10
    assert service.queue.rq_queue.count == 10

    worker = service.start_worker("--burst")
    assert worker.wait(timeout=240) == 0, service.logs()
    assert service.statuses() == {CallStatus.ANALYZED.value: 10}
    assert service.count(AnalysisRunRow) == 10


def test_same_recording_uploaded_ten_times_at_once_is_one_call_one_analysis(
    service: Service, tmp_path: Path
) -> None:
    (path,) = make_recordings(tmp_path / "calls", 1)
    barrier = threading.Barrier(10)
    results: list[Submission] = []
    errors: list[BaseException] = []

    def upload() -> None:
        try:
            barrier.wait()
            results.append(service.submit(path))
        except BaseException as exc:  # reported below, not lost in the thread
            errors.append(exc)

    threads = [threading.Thread(target=upload) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sum(r.created for r in results) == 1
    assert len({r.call_id for r in results}) == 1
    assert service.queue.rq_queue.count == 1  # one job

    worker = service.start_worker("--burst")
    assert worker.wait(timeout=180) == 0, service.logs()
    assert service.count(CallRow) == 1
    assert service.count(AnalysisRunRow) == 1
    assert service.statuses() == {CallStatus.ANALYZED.value: 1}


def test_rq_queue_holds_one_job_per_call_and_forgets_dead_ones(service: Service) -> None:
    from datetime import UTC, datetime, timedelta

    queue = service.queue
    assert queue.enqueue("C-1") is True
    assert queue.enqueue("C-1") is False  # live: not queued twice
    assert queue.rq_queue.count == 1 and queue.is_live("C-1")

    job = queue.rq_queue.fetch_job("analyze-C-1")
    assert job is not None
    # A retry scheduled long ago with no scheduler to run it (burst workers gone) is dead.
    queue.rq_queue.remove(job)
    queue.rq_queue.scheduled_job_registry.schedule(job, datetime.now(UTC) - timedelta(hours=1))
    job.set_status("scheduled")
    assert not queue.is_live("C-1")
    assert queue.enqueue("C-1") is True
    assert queue.rq_queue.count == 1

    queue.discard("C-1")
    assert not queue.is_live("C-1") and queue.rq_queue.count == 0


def test_rq_retries_a_failed_attempt_after_its_backoff(service: Service, tmp_path: Path) -> None:
    """The job's RetryAnalysis becomes rq's retry with backoff (no model: a fake analyser)."""
    from queue_fakes import FakeAnalyzer
    from rq import SimpleWorker

    from qa_service.worker import jobs

    jobs.start_runtime(service.settings, analyzer=FakeAnalyzer(fail_times=1))
    try:
        (path,) = make_recordings(tmp_path / "calls", 1)
        sub = service.submit(path)
        worker = SimpleWorker([service.queue.rq_queue], connection=service.queue.redis)
        worker.work(burst=True, with_scheduler=True)
        with service.sessions() as session:
            call = calls.get_queued_call(session, call_id=sub.call_id)
        assert call.status is CallStatus.QUEUED and call.attempts == 1
        assert service.queue.is_live(sub.call_id)  # scheduled for its retry
        time.sleep(1.5)  # job_retry_backoff_s = [1]
        worker = SimpleWorker([service.queue.rq_queue], connection=service.queue.redis)
        worker.work(burst=True, with_scheduler=True)
        assert service.statuses() == {CallStatus.ANALYZED.value: 1}
    finally:
        jobs.stop_runtime()


def test_queue_commands_list_retry_and_sweep(service: Service, tmp_path: Path) -> None:
    from qa_service.db.tables import utcnow

    (path,) = make_recordings(tmp_path / "calls", 1)
    sub = service.submit(path)
    service.stop_api()  # only the commands below may sweep
    with service.sessions.begin() as session:
        call = calls.get_queued_call(session, call_id=sub.call_id)
        calls.mark_failed(
            session, pk=call.pk, code="analysis_error", message="模型崩溃", now=utcnow()
        )
    service.queue.discard(sub.call_id)

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "qa_service.cli", "queue", *args],
            cwd=ROOT,
            env=service.env(),
            capture_output=True,
            text=True,
            timeout=120,
        )

    listed = cli("failed")
    assert listed.returncode == 0, listed.stderr
    assert sub.call_id in listed.stdout and "模型崩溃" in listed.stdout

    assert cli("retry", "NO-SUCH-CALL").returncode == 2
    retried = cli("retry", sub.call_id)
    assert retried.returncode == 0, retried.stderr
    assert service.statuses() == {CallStatus.QUEUED.value: 1}
    assert service.queue.is_live(sub.call_id)

    service.queue.redis.flushdb()
    swept = cli("sweep")
    assert swept.returncode == 0, swept.stderr
    assert "重新排队 1 通" in swept.stdout
    assert service.queue.is_live(sub.call_id)
