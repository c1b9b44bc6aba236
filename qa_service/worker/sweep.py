"""The sweep: rebuild the queue from the database, so that nothing is lost.

Redis may be flushed, a worker SIGKILLed mid-call, a server restarted: in every case the
calls table still says which calls are ``queued`` or ``analyzing``. The sweep re-queues a
queued call that has no live job, and takes back an analysing call whose worker stopped
beating (it then counts as a failed attempt; past the limit the call is ``failed``).
Workers run it at start and every ``sweep_interval_s``; the web server at start.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from qa_service.db import queue as calls
from qa_service.db.tables import utcnow
from qa_service.domain import CallStatus
from qa_service.settings import Settings, get_settings
from qa_service.worker.queue import JobQueue

logger = logging.getLogger(__name__)

WORKER_LOST = "worker_lost"


@dataclass(frozen=True)
class SweepReport:
    """What one sweep did, by call id."""

    requeued: tuple[str, ...] = ()  # queued, but no live job: a job was queued
    reclaimed: tuple[str, ...] = ()  # analysing with a silent worker: queued again
    failed: tuple[str, ...] = ()  # analysing with a silent worker, out of attempts

    @property
    def changed(self) -> int:
        return len(self.requeued) + len(self.reclaimed) + len(self.failed)


def sweep(
    sessions: sessionmaker[Session],
    queue: JobQueue,
    now: datetime | None = None,
    *,
    settings: Settings | None = None,
) -> SweepReport:
    """Re-queue every unfinished call that has no live job; see the module docstring."""
    settings = settings or get_settings()
    now = now or utcnow()
    stale_before = now - timedelta(seconds=settings.stale_analysis_s)
    with sessions() as session:
        pending = calls.calls_with_status(
            session, statuses=(CallStatus.QUEUED, CallStatus.ANALYZING), limit=100_000
        )
    requeued: list[str] = []
    reclaimed: list[str] = []
    failed: list[str] = []
    for call in pending:
        if call.status is CallStatus.QUEUED:
            if not queue.is_live(call.call_id) and queue.enqueue(call.call_id):
                requeued.append(call.call_id)
            continue
        if call.heartbeat_at is not None and call.heartbeat_at >= stale_before:
            continue  # a worker is on it
        silent = int((now - (call.heartbeat_at or now)).total_seconds())
        if call.attempts >= settings.job_max_attempts:
            message = (
                f"分析进程中断（{silent} 秒无心跳），已尝试 {call.attempts} 次，不再重试 / "
                f"the worker stopped while analysing ({silent} s without a heartbeat); "
                f"{call.attempts} attempts, giving up"
            )
            with sessions.begin() as session:
                done = calls.mark_failed(
                    session,
                    pk=call.pk,
                    code=WORKER_LOST,
                    message=message,
                    now=now,
                    only_from=CallStatus.ANALYZING,
                    started_at=call.analysis_started_at,
                )
            if done:
                queue.discard(call.call_id)
                failed.append(call.call_id)
            continue
        reason = (
            f"分析进程中断（{silent} 秒无心跳），重新排队 / the worker stopped while "
            f"analysing ({silent} s without a heartbeat); queued again"
        )
        with sessions.begin() as session:
            taken = calls.requeue_stale(
                session, call=call, reason=reason, stale_before=stale_before, now=now
            )
        if taken:
            queue.discard(call.call_id)
            queue.enqueue(call.call_id)
            reclaimed.append(call.call_id)
    report = SweepReport(tuple(requeued), tuple(reclaimed), tuple(failed))
    if report.changed:
        logger.info(
            "sweep: %d re-queued, %d taken back from silent workers, %d failed",
            len(requeued),
            len(reclaimed),
            len(failed),
        )
    return report


class Sweeper:
    """A daemon thread running :func:`sweep` every ``interval_s`` until stopped."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        queue: JobQueue,
        *,
        settings: Settings,
        interval_s: float | None = None,
    ) -> None:
        self.sessions = sessions
        self.queue = queue
        self.settings = settings
        self.interval_s = interval_s if interval_s is not None else settings.sweep_interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="qa-sweep", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                sweep(self.sessions, self.queue, settings=self.settings)
            except Exception:  # a dead Redis or database: log it, try again next time
                logger.exception("sweep failed; retrying in %s s", self.interval_s)
