"""Job queues: rq on Redis for workers anywhere, or a thread in the web process.

Both carry call ids to the same job function (:func:`qa_service.worker.jobs.analyze_call`)
and neither is the record of anything: the calls table is. A queue only has to say whether a
call has a live job (so the sweep does not queue it twice) and put one on when asked.
"""

from __future__ import annotations

import hashlib
import logging
import queue as stdlib_queue
import re
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Protocol

from qa_service.errors import QueueUnavailable
from qa_service.settings import Settings
from qa_service.worker.retry import RetryAnalysis, backoff_delay

if TYPE_CHECKING:
    from redis import Redis
    from rq import Queue

logger = logging.getLogger(__name__)

# By import path, so that enqueueing never imports the pipeline (the web process has no
# models) and rq workers resolve it in their own process.
JOB_FUNCTION = "qa_service.worker.jobs.analyze_call"

_PLAIN_ID = re.compile(r"[A-Za-z0-9_-]{1,80}")


def job_id_for(call_id: str) -> str:
    """The job id of a call: one per call, so a live job is never doubled (rq ids are
    ``[A-Za-z0-9_-]+``; other call ids are hashed)."""
    if _PLAIN_ID.fullmatch(call_id):
        return f"analyze-{call_id}"
    return "analyze-h" + hashlib.sha256(call_id.encode("utf-8")).hexdigest()[:40]


class JobQueue(Protocol):
    """What submission and the sweep need from a queue."""

    def enqueue(self, call_id: str) -> bool:
        """Queue the analysis of ``call_id``; False when a live job already has it."""
        ...

    def is_live(self, call_id: str) -> bool:
        """Whether a job for ``call_id`` is waiting, scheduled for a retry or running."""
        ...

    def discard(self, call_id: str) -> None:
        """Forget any job of ``call_id`` (its worker is gone); harmless when there is none."""
        ...

    def ping(self) -> None:
        """Raise :class:`QueueUnavailable` when jobs cannot be queued."""
        ...


def _unavailable(exc: Exception, url: str) -> QueueUnavailable:
    return QueueUnavailable(
        f"无法连接任务队列（Redis）：{exc} / the job queue (Redis) is unreachable: {exc}",
        redis_url=_redacted(url),
    )


def _redacted(url: str) -> str:
    return re.sub(r"//[^@/]*@", "//***@", url)


class RqJobQueue:
    """rq 2.x on Redis. Retries with backoff are rq's (``Retry``), run by the worker's
    scheduler; the number of attempts that counts is the database's."""

    def __init__(
        self,
        redis_url: str,
        name: str = "qa-analysis",
        *,
        job_timeout_s: int = 3600,
        max_attempts: int = 3,
        backoff_s: Sequence[int] = (10, 60, 300),
        stale_started_s: int = 180,
    ) -> None:
        from redis import Redis
        from rq import Queue

        self.redis_url = redis_url
        self.redis: Redis = Redis.from_url(
            redis_url, socket_connect_timeout=5, socket_timeout=30, health_check_interval=30
        )
        self.rq_queue: Queue = Queue(name, connection=self.redis)
        self.job_timeout_s = job_timeout_s
        self.max_attempts = max_attempts
        self.backoff_s = list(backoff_s)
        self.stale_started_s = stale_started_s

    @classmethod
    def from_settings(cls, settings: Settings) -> RqJobQueue:
        return cls(
            settings.redis_url,
            settings.queue_name,
            job_timeout_s=settings.job_timeout_s,
            max_attempts=settings.job_max_attempts,
            backoff_s=settings.job_retry_backoff_s,
            stale_started_s=settings.stale_analysis_s,
        )

    def ping(self) -> None:
        from redis.exceptions import RedisError

        try:
            self.redis.ping()
        except RedisError as exc:
            raise _unavailable(exc, self.redis_url) from exc

    def enqueue(self, call_id: str) -> bool:
        from redis.exceptions import RedisError
        from rq import Retry

        try:
            if self.is_live(call_id):
                return False
            # A finished, failed or stopped job under this id is history: rq would otherwise
            # keep its old registry entries next to the new job.
            self.discard(call_id)
            self.rq_queue.enqueue(
                JOB_FUNCTION,
                call_id,
                job_id=job_id_for(call_id),
                job_timeout=self.job_timeout_s,
                retry=Retry(max=self.max_attempts, interval=self.backoff_s or 0),
                result_ttl=24 * 3600,
                failure_ttl=7 * 24 * 3600,
                description=f"analyze call {call_id}",
            )
        except RedisError as exc:
            raise _unavailable(exc, self.redis_url) from exc
        return True

    def is_live(self, call_id: str) -> bool:
        from redis.exceptions import RedisError
        from rq.exceptions import NoSuchJobError
        from rq.job import Job, JobStatus

        try:
            job = Job.fetch(job_id_for(call_id), connection=self.redis)
            status = job.get_status(refresh=False)
            now = datetime.now(UTC)
            if status in (JobStatus.QUEUED, JobStatus.DEFERRED):
                return True
            if status == JobStatus.SCHEDULED:
                # A retry waits for a scheduler; one long overdue has none (burst workers).
                when = self.rq_queue.scheduled_job_registry.get_scheduled_time(job)
                return _aware(when) > now - timedelta(seconds=self.stale_started_s)
            if status == JobStatus.STARTED:
                # The job claims its call within a second of starting; a call still queued
                # long after its job started lost its worker before the claim.
                started = job.started_at
                return started is not None and _aware(started) > now - timedelta(
                    seconds=self.stale_started_s
                )
            return False
        except NoSuchJobError:  # no job, or a registry entry gone with it
            return False
        except RedisError as exc:
            raise _unavailable(exc, self.redis_url) from exc

    def discard(self, call_id: str) -> None:
        from redis.exceptions import RedisError
        from rq.exceptions import NoSuchJobError
        from rq.job import Job

        try:
            Job.fetch(job_id_for(call_id), connection=self.redis).delete()
        except NoSuchJobError:
            pass
        except RedisError as exc:
            raise _unavailable(exc, self.redis_url) from exc

    def close(self) -> None:
        self.redis.close()


def _aware(value: datetime | None) -> datetime:
    if value is None:
        return datetime.min.replace(tzinfo=UTC)
    # rq stores UTC, but returns naive datetimes in some versions.
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


JobFunction = Callable[[str], object]


class InProcessJobQueue:
    """One daemon thread running the job function, for ``serve`` without Redis.

    Jobs run one at a time (the process has one Analyzer); retries wait on timers. Nothing
    is kept across restarts, and nothing needs to be: the sweep at start-up re-queues what
    the database says is unfinished.
    """

    def __init__(
        self,
        job: JobFunction | None = None,
        *,
        backoff_s: Sequence[int] = (10, 60, 300),
        name: str = "qa-analysis-inprocess",
        warmup: Callable[[], object] | None = None,
    ) -> None:
        self._job = job
        self._warmup = warmup
        self.backoff_s = list(backoff_s)
        self.name = name
        self._pending: stdlib_queue.Queue[str | None] = stdlib_queue.Queue()
        self._live: set[str] = set()
        self._timers: dict[str, threading.Timer] = {}
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    @classmethod
    def from_settings(cls, settings: Settings, job: JobFunction | None = None) -> InProcessJobQueue:
        """The job on a runtime built from ``settings``; the models load in the worker
        thread as soon as it starts (not in the request path, not at import)."""
        if job is not None:
            return cls(job, backoff_s=settings.job_retry_backoff_s)

        def warmup() -> object:
            from qa_service.worker.jobs import start_runtime

            return start_runtime(settings)

        def run(call_id: str) -> object:
            from qa_service.worker.jobs import run_analysis, start_runtime

            return run_analysis(start_runtime(settings), call_id)

        return cls(run, backoff_s=settings.job_retry_backoff_s, warmup=warmup)

    def start(self) -> None:
        """Start the worker thread (idempotent)."""
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._stopping.clear()
            self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
            self._thread.start()

    def stop(self, timeout: float | None = 30.0) -> None:
        """Stop after the current job; queued call ids are dropped (the database keeps them)."""
        self._stopping.set()
        with self._lock:
            for timer in self._timers.values():
                timer.cancel()
            self._timers.clear()
        self._pending.put(None)
        if self._thread is not None:
            self._thread.join(timeout)

    def ping(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            raise QueueUnavailable(
                "进程内分析线程未运行 / the in-process analysis worker is not running"
            )

    def enqueue(self, call_id: str) -> bool:
        with self._lock:
            if call_id in self._live:
                return False
            self._live.add(call_id)
        self._pending.put(call_id)
        return True

    def is_live(self, call_id: str) -> bool:
        with self._lock:
            return call_id in self._live

    def discard(self, call_id: str) -> None:
        with self._lock:
            self._live.discard(call_id)
            timer = self._timers.pop(call_id, None)
            self._idle.notify_all()
        if timer is not None:
            timer.cancel()

    def wait_idle(self, timeout: float) -> bool:
        """Block until no job is waiting, running or scheduled (tests, demo); False on timeout."""
        with self._idle:
            return self._idle.wait_for(lambda: not self._live, timeout)

    def _job_function(self) -> JobFunction:
        if self._job is None:
            from qa_service.worker.jobs import analyze_call

            self._job = analyze_call
        return self._job

    def _run(self) -> None:
        if self._warmup is not None:
            try:
                self._warmup()
            except Exception:  # each job will meet (and log) the same error; keep serving
                logger.exception("in-process worker: loading the models failed")
        while not self._stopping.is_set():
            call_id = self._pending.get()
            if call_id is None:
                break
            retry: RetryAnalysis | None = None
            try:
                self._job_function()(call_id)
            except RetryAnalysis as exc:
                retry = exc
            except Exception:  # the database keeps the call queued; the sweep retries it
                logger.exception("in-process analysis of call %s failed", call_id)
            if retry is not None and not self._stopping.is_set():
                self._schedule_retry(call_id, backoff_delay(self.backoff_s, retry.attempts))
            else:
                self.discard(call_id)

    def _schedule_retry(self, call_id: str, delay_s: float) -> None:
        def fire() -> None:
            with self._lock:
                self._timers.pop(call_id, None)
            if not self._stopping.is_set():
                self._pending.put(call_id)

        timer = threading.Timer(delay_s, fire)
        timer.daemon = True
        with self._lock:
            self._timers[call_id] = timer
        timer.start()


def queue_from_settings(settings: Settings) -> RqJobQueue | InProcessJobQueue:
    """rq when ``REDIS_URL`` is set, else an in-process queue (the caller starts it)."""
    if settings.redis_url:
        return RqJobQueue.from_settings(settings)
    return InProcessJobQueue.from_settings(settings)
