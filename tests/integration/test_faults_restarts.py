"""Servers restarted under load: nothing accepted is lost, nothing is doubled (issue 13, 4).

Each test runs the real ``qa-service serve`` and ``qa-service worker`` (real model) on a
PostgreSQL or Redis server of its own (``fault_support``), never the shared ones, and
restarts that server while recordings are being uploaded and analysed. Afterwards every
accepted recording is one call, ``analyzed`` or ``failed`` with a reason, analysed once,
and ``qa-service audit verify`` passes. A worker SIGKILLed mid-transcription is covered by
``test_queue_workers.py::test_two_workers_one_killed_mid_call_lose_nothing``.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fault_support import (
    PrivatePostgres,
    PrivateRedis,
    Stack,
    assert_all_settled,
    make_recordings,
)

from qa_service.domain import CallStatus

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DONE = {CallStatus.ANALYZED.value, CallStatus.FAILED.value}


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path)
    yield server
    server.close()


class Uploader(threading.Thread):
    """Uploads recordings one after another like a client that retries a 503 or a dropped
    connection (uploads are idempotent by their bytes)."""

    def __init__(self, stack: Stack, paths: list[Path], pause_s: float = 0.0) -> None:
        super().__init__(daemon=True)
        self.stack = stack
        self.paths = paths
        self.pause_s = pause_s
        self.accepted: dict[str, str] = {}  # sha256 -> call id
        self.refusals: list[int | str] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            for path in self.paths:
                deadline = time.monotonic() + 90
                while True:
                    try:
                        reply = self.stack.upload(path, timeout=30)
                    except httpx.TransportError as exc:
                        self.refusals.append(type(exc).__name__)
                    else:
                        if reply.status_code in (200, 202):
                            body = reply.json()
                            self.accepted[body["sha256"]] = body["call_id"]
                            break
                        # A database restart must read as "try again", never as a bug.
                        assert reply.status_code == 503, reply.text
                        error = reply.json()["error"]
                        assert error["code"] in ("storage_error", "database_unavailable")
                        assert re.search(r"数据库|存储|稍后", error["message"]), error
                        self.refusals.append(reply.status_code)
                    assert time.monotonic() < deadline, f"{path.name} never accepted"
                    time.sleep(0.5)
                time.sleep(self.pause_s)
        except BaseException as exc:
            self.error = exc


def test_postgres_restarted_during_uploads_and_analyses(
    tmp_path: Path, redis: PrivateRedis
) -> None:
    pg = PrivatePostgres()
    stack = Stack(tmp_path, database_url=pg.url, redis_url=redis.url)
    try:
        stack.start_api()
        first, *rest = make_recordings(tmp_path / "calls", 5)
        warmup = Uploader(stack, [first])
        warmup.run()
        worker = stack.start_worker()
        stack.wait_for(
            "the worker analysing",
            lambda: stack.statuses().get(CallStatus.ANALYZING.value, 0) >= 1,
            timeout_s=120,
        )
        uploader = Uploader(stack, rest, pause_s=0.3)
        uploader.start()
        time.sleep(0.5)
        pg.stop()  # immediate: every connection of serve and the worker is cut mid-write
        time.sleep(3)
        pg.start()
        uploader.join(timeout=180)
        assert uploader.error is None, f"{uploader.error!r}\n{stack.logs()}"
        accepted = {**warmup.accepted, **uploader.accepted}
        assert len(accepted) == 5
        assert uploader.refusals, "the restart did not hit an upload"
        stack.wait_for(
            "every accepted recording settled",
            lambda: set(stack.statuses()) <= DONE and sum(stack.statuses().values()) == 5,
            timeout_s=240,
        )
        assert worker.poll() is None, "the worker died instead of recovering\n" + stack.logs()
        assert stack.api is not None and stack.api.poll() is None
        assert_all_settled(stack, accepted)
        # Served again without a restart of ours: a new upload is accepted at once.
        (late,) = make_recordings(tmp_path / "late", 1, tag=9)
        assert stack.upload(late).status_code == 202
        print(f"\nPostgreSQL restart: refusals seen by the client {uploader.refusals}, "
              f"final {stack.statuses()}")  # fmt: skip
    finally:
        stack.close()
        pg.close()


def test_redis_restarted_with_jobs_queued_and_running(
    tmp_path: Path, redis: PrivateRedis, postgres_url: str
) -> None:
    stack = Stack(tmp_path, database_url=postgres_url, redis_url=redis.url)
    try:
        stack.start_api()
        uploader = Uploader(stack, make_recordings(tmp_path / "calls", 4))
        uploader.run()
        assert uploader.error is None and len(uploader.accepted) == 4
        worker = stack.start_worker()
        stack.wait_for(
            "a job running",
            lambda: stack.statuses().get(CallStatus.ANALYZING.value, 0) >= 1,
            timeout_s=120,
        )
        queued = stack.statuses().get(CallStatus.QUEUED.value, 0)
        assert queued >= 1, "nothing left queued to lose"
        redis.kill()  # no persistence: every queued job is gone with it
        # Redis stays down until the running job has finished, so the worker's next Redis
        # call after the job (rq's heartbeat, outside its own reconnecting dequeue) fails:
        # rq then quits the work loop, and the worker must serve again once Redis is back.
        stack.wait_for(
            "the running job finished with Redis down",
            lambda: stack.statuses().get(CallStatus.ANALYZED.value, 0) >= 1,
            timeout_s=180,
        )
        time.sleep(2)
        redis.start()
        stack.wait_for(
            "every call analysed",
            lambda: stack.statuses() == {CallStatus.ANALYZED.value: 4},
            timeout_s=240,
        )
        assert worker.poll() is None, "the worker died instead of recovering\n" + stack.logs()
        assert_all_settled(stack, uploader.accepted)
        # serve reconnects too: an upload after the restart is queued and analysed.
        (late,) = make_recordings(tmp_path / "late", 1, tag=9)
        reply = stack.upload(late)
        assert reply.status_code == 202, reply.text
        stack.wait_for(
            "the late upload analysed",
            lambda: stack.statuses() == {CallStatus.ANALYZED.value: 5},
            timeout_s=120,
        )
        print(f"\nRedis restart: {queued} queued jobs lost with Redis, all analysed")
    finally:
        stack.close()
