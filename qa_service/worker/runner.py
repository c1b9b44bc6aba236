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

from qa_service.settings import Settings
from qa_service.worker.jobs import start_runtime, stop_runtime
from qa_service.worker.queue import RqJobQueue
from qa_service.worker.sweep import Sweeper, sweep

logger = logging.getLogger(__name__)


def run_worker(settings: Settings, *, burst: bool = False) -> bool:
    """Serve the queue until stopped (or, with ``burst``, until it is empty).

    Returns whether any job was processed.
    """
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
    try:
        worker = SimpleWorker([queue.rq_queue], connection=queue.redis)
        # with_scheduler: rq's retries with backoff wait in its scheduled-job registry.
        return worker.work(burst=burst, with_scheduler=True, logging_level="INFO")
    finally:
        sweeper.stop()
        sweep_queue.close()
        queue.close()
        stop_runtime()
