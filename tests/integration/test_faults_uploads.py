"""The upload path under faults: a full disk, a server killed mid-upload (issue 13, 4).

Real ``qa-service serve`` processes on a throw-away PostgreSQL schema and a private Redis.
The audio store and the upload spool sit on tiny tmpfs mounts (the tests run as root in
CI; without ``mount`` they fail and say so), so the disk really fills: ENOSPC comes from
the kernel, not from a mock. Accepted recordings are then analysed through the real job
and queue with a model-free analyser (``fault_support.settle_with_fake_analyser``).
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fault_support import (
    PrivateRedis,
    Stack,
    assert_all_settled,
    make_recordings,
    settle_with_fake_analyser,
)
from sqlalchemy import func, select

from qa_service.db.tables import CallRow

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path)
    yield server
    server.close()


def _tmpfs(path: Path, size: str) -> None:
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.fail(
            f"the full-disk fault needs a tiny tmpfs (root and mount): {done.stderr.strip()}"
        )


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def _calls(stack: Stack) -> int:
    with stack.sessions() as session:
        return session.scalar(select(func.count()).select_from(CallRow)) or 0


@pytest.fixture
def mounts(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    store, data = tmp_path / "store", tmp_path / "data"
    _tmpfs(store, "200k")  # three 4-s recordings (64 KB each), not four
    _tmpfs(data, "160k")  # the spool takes a 4-s recording, not a 12-s one
    try:
        yield store, data
    finally:
        for path in (store, data):
            subprocess.run(["umount", "-l", str(path)], check=False)


def test_full_audio_store_and_full_spool_refuse_cleanly(
    tmp_path: Path, redis: PrivateRedis, postgres_url: str, mounts: tuple[Path, Path]
) -> None:
    store, data = mounts
    stack = Stack(
        tmp_path, database_url=postgres_url, redis_url=redis.url, audio_store=store, data_dir=data
    )
    try:
        stack.start_api()
        accepted: dict[str, str] = {}
        refused = None
        for path in make_recordings(tmp_path / "calls", 5):
            reply = stack.upload(path)
            if reply.status_code == 202:
                accepted[reply.json()["sha256"]] = reply.json()["call_id"]
                continue
            refused = reply
            break
        assert refused is not None, "the store never filled"
        assert len(accepted) >= 1
        assert refused.status_code == 503
        error = refused.json()["error"]
        assert error["code"] == "storage_error"
        assert "录音存储空间已满" in error["message"]
        # Nothing half-written: the store holds exactly the accepted recordings, no
        # temporary part; no call row for the refused upload; its spool file is gone.
        stored = _files(store)
        assert sorted(p.stem for p in stored) == sorted(accepted)
        assert not any(p.name.startswith(".upload-") for p in stored)
        assert _calls(stack) == len(accepted)
        assert _files(data / "tmp") == []

        # The spool itself full: a 12-s recording (192 KB) cannot be received.
        (long_call,) = make_recordings(tmp_path / "long", 1, seconds=12, tag=7)
        reply = stack.upload(long_call)
        assert reply.status_code == 503, reply.text
        assert "上传临时目录空间已满" in reply.json()["error"]["message"]
        assert _files(data / "tmp") == [] and _calls(stack) == len(accepted)

        # The refusals are on the audit trail, and the accepted calls are analysed.
        settle_with_fake_analyser(stack)
        assert_all_settled(stack, accepted)
        events = stack.cli("audit", "list", "--event", "recording.upload", "--json")
        assert events.returncode == 0, events.stderr
        assert events.stdout.count("storage_error") >= 2
        assert stack.api is not None and stack.api.poll() is None  # still serving
    finally:
        stack.close()


def _slow_multipart(path: Path, boundary: str, sent: list[int]) -> Iterator[bytes]:
    yield (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
        f'filename="{path.name}"\r\nContent-Type: audio/wav\r\n\r\n'
    ).encode()
    data = path.read_bytes()
    for start in range(0, len(data), 16384):
        sent.append(start)
        yield data[start : start + 16384]
        time.sleep(0.05)
    yield f"\r\n--{boundary}--\r\n".encode()


def test_api_killed_mid_upload_keeps_nothing_and_the_upload_succeeds_after(
    tmp_path: Path, redis: PrivateRedis, postgres_url: str
) -> None:
    stack = Stack(tmp_path, database_url=postgres_url, redis_url=redis.url)
    try:
        stack.start_api()
        assert stack.api is not None
        (path,) = make_recordings(tmp_path / "calls", 1, seconds=60)  # ~960 KB, ~3 s to send
        boundary = uuid.uuid4().hex
        sent: list[int] = []
        outcome: list[object] = []

        def client() -> None:
            try:
                outcome.append(
                    httpx.post(
                        f"{stack.base_url}/api/v1/recordings",
                        content=_slow_multipart(path, boundary, sent),
                        headers={
                            "Authorization": f"Bearer {stack.token}",
                            "Content-Type": f"multipart/form-data; boundary={boundary}",
                        },
                        timeout=60,
                    )
                )
            except httpx.TransportError as exc:
                outcome.append(exc)

        thread = threading.Thread(target=client, daemon=True)
        thread.start()
        spool = stack.data_dir / "tmp" / "uploads" / f"p{stack.api.pid}"
        stack.wait_for(
            "the server spooling the body",
            lambda: any(p.stat().st_size > 128 * 1024 for p in _files(spool)),
            timeout_s=30,
        )
        stack.kill(stack.api)  # SIGKILL, mid-body
        thread.join(timeout=60)
        assert isinstance(outcome[0], httpx.TransportError), outcome
        assert len(sent) * 16384 < path.stat().st_size  # the body was not all sent
        # No partial recording in the store, no call; only the dead process's spool.
        assert _files(stack.audio_store) == []
        assert _calls(stack) == 0
        assert _files(spool), "expected the killed server's partial spool file"

        stack.start_api()  # a restart removes what the dead server left
        assert not spool.exists()
        reply = stack.upload(path)
        assert reply.status_code == 202, reply.text
        body = reply.json()
        settle_with_fake_analyser(stack)
        assert_all_settled(stack, {body["sha256"]: body["call_id"]})
        # The recording, and beside it the waveform peaks the worker caches after analysis.
        [stored] = [p for p in _files(stack.audio_store) if not p.name.endswith(".peaks.json")]
        assert stored.stat().st_size == path.stat().st_size
        assert os.path.basename(stored).startswith(body["sha256"])
    finally:
        stack.close()
