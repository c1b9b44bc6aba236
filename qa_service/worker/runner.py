"""``qa-service worker``: an rq worker that loads the models once and never forks per job.

rq's default ``Worker`` forks a work horse for every job. The Analyzer takes about 10 s to
load (Whisper, classifier, sentence encoder) against 3-6 s to analyse a short call, so a
horse that loads its own models would spend most of its time loading; preloading them in
the parent and forking afterwards is unsafe, because CTranslate2 and PyTorch have started
their thread pools by then (a child of a threaded process may deadlock on their locks).
So the worker is rq's ``SimpleWorker``: jobs run in the worker process itself, on the
models loaded at start. Nothing is lost if that process dies (SIGKILL, out of memory): the
call stays ``analyzing`` without heartbeats, and the next sweep queues it again.
"""

from __future__ import annotations

import logging
import signal
import time

from qa_service.errors import QueueUnavailable
from qa_service.settings import Settings
from qa_service.worker.jobs import start_runtime, stop_runtime
from qa_service.worker.queue import RqJobQueue
from qa_service.worker.sweep import Sweeper, sweep

logger = logging.getLogger(__name__)


def run_worker(settings: Settings, *, burst: bool = False) -> bool:
    """Serve the queue until stopped (or, with ``burst``, until it is empty).

    Returns whether any job was processed.
    """
    from redis import exceptions as redis_errors
    from rq import SimpleWorker

    queue = RqJobQueue.from_settings(settings)
    queue.ping()
    runtime = start_runtime(settings)
    # The sweep thread gets its own Redis connection pool: rq's scheduler is a forked child
    # of this process and must not inherit a pool another thread may hold a lock on.
    sweep_queue = RqJobQueue.from_settings(settings)
    sweep(runtime.sessions, sweep_queue, settings=settings)
    sweeper = Sweeper(runtime.sessions, sweep_queue, settings=settings)
    sweeper.start()
    worked = False
    try:
        while True:
            worker = SimpleWorker([queue.rq_queue], connection=queue.redis)
            try:
                # with_scheduler: rq's retries with backoff wait in its scheduled-job registry.
                worked |= worker.work(burst=burst, with_scheduler=True, logging_level="INFO")
            except redis_errors.ConnectionError as exc:
                # rq retries a lost connection only while it waits for a job; one lost in its
                # heartbeat or maintenance makes it quit, and its teardown then fails on the
                # dead connection. A Redis restart must not take the worker with it.
                logger.warning("Redis connection lost, worker restarting: %s", exc)
            if burst or getattr(worker, "_shutdown_requested_date", None) is not None:
                return worked
            # rq quit on an error of its own (logged by rq): serve again once Redis answers.
            if not _wait_for_redis(queue):
                return worked
    finally:
        sweeper.stop()
        sweep_queue.close()
        queue.close()
        stop_runtime()


def _wait_for_redis(queue: RqJobQueue, *, max_wait_s: float = 30.0) -> bool:
    """Block until Redis answers again (backing off up to ``max_wait_s`` between tries);
    False when asked to stop meanwhile (Ctrl-C / SIGTERM)."""

    def stop(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    # rq's handlers belong to the worker that quit (they ask its dead connection whether a
    # job is running); between workers, a stop request simply ends the wait.
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    delay = 1.0
    while True:
        try:
            queue.ping()
            return True
        except QueueUnavailable as exc:
            logger.warning("job queue unavailable, retrying in %.0f s: %s", delay, exc)
        try:
            time.sleep(delay)
        except KeyboardInterrupt:
            return False
        delay = min(delay * 2, max_wait_s)
