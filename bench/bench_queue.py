"""Benchmark the job queue: calls per hour with 1 and 2 workers, upload → analysed latency.

Real ``qa-service worker`` processes on Redis and PostgreSQL (a throw-away schema and the
Redis database ``--redis`` names, flushed before and after), the real models, recordings
from a corpus directory with their sidecars. Model loading is not counted: workers are
started and ready before the first upload.

- throughput: ``--calls`` recordings submitted at once; calls per hour = n / (time from the
  first upload to the last call analysed) × 3600. Each of k workers gets cores / k threads.
- latency: a 60-s call (the first corpus recording, looped or cut to 60 s, one sample
  changed per run so that each run is a new recording) uploaded to one idle worker,
  ``--runs`` times; median and min–max of upload → ``analyzed``.

    python bench/bench_queue.py ../shared/corpus/dev/calls --calls 12 --runs 5 \\
        --out bench/results/queue.json

Only meaningful on a quiet machine (check ``uptime``): two workers share two cores.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
import wave
from pathlib import Path

import numpy as np
from sqlalchemy import create_engine, make_url, text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from qa_service.db import make_engine, make_session_factory, migrate  # noqa: E402
from qa_service.db import queue as calls  # noqa: E402
from qa_service.ingest.audio import decode_audio  # noqa: E402
from qa_service.ingest.recordings import discover_recordings, load_metadata  # noqa: E402
from qa_service.ingest.store import AudioStore  # noqa: E402
from qa_service.settings import Settings  # noqa: E402
from qa_service.worker.queue import RqJobQueue  # noqa: E402
from qa_service.worker.submit import submit_recording  # noqa: E402


class Bench:
    def __init__(self, postgres: str, redis_url: str, work: Path) -> None:
        self.schema = f"qa_bench_{uuid.uuid4().hex[:12]}"
        self.admin = create_engine(postgres)
        with self.admin.begin() as c:
            c.execute(text(f'CREATE SCHEMA "{self.schema}"'))
        url = make_url(postgres).update_query_dict({"options": f"-csearch_path={self.schema}"})
        self.database_url = url.render_as_string(hide_password=False)
        self.settings = Settings(
            database_url=self.database_url,
            redis_url=redis_url,
            queue_name=f"qa-bench-{uuid.uuid4().hex[:8]}",
            data_dir=work / "var",
            audio_store=work / "audio",
        )
        self.engine = make_engine(self.database_url)
        migrate(self.engine)
        self.sessions = make_session_factory(self.engine)
        self.store = AudioStore(self.settings.resolved_audio_store)
        self.queue = RqJobQueue.from_settings(self.settings)
        self.queue.redis.flushdb()
        self.work = work
        self.workers: list[subprocess.Popen[bytes]] = []

    def start_workers(self, k: int) -> None:
        threads = max(1, (os.cpu_count() or 2) // k)
        env = dict(
            os.environ,
            DATABASE_URL=self.database_url,
            REDIS_URL=self.settings.redis_url,
            QA_QUEUE_NAME=self.settings.queue_name,
            QA_DATA_DIR=str(self.settings.data_dir),
            QA_AUDIO_STORE=str(self.settings.resolved_audio_store),
            QA_CPU_THREADS=str(threads),
        )
        for i in range(k):
            log = (self.work / f"worker-{len(self.workers)}-{i}.log").open("wb")
            self.workers.append(
                subprocess.Popen(
                    [sys.executable, "-m", "qa_service.cli", "worker"],
                    cwd=ROOT,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
        from rq import Worker

        deadline = time.monotonic() + 300
        while len(Worker.all(queue=self.queue.rq_queue)) < k:
            if time.monotonic() > deadline:
                raise SystemExit("workers did not start; see " + str(self.work))
            time.sleep(0.5)

    def stop_workers(self) -> None:
        for proc in self.workers:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=60)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                os.killpg(proc.pid, signal.SIGKILL)
        self.workers = []
        # Dead rq worker registrations must not count as ready ones in the next round.
        self.queue.redis.flushdb()

    def submit(self, path: Path) -> str:
        stored = self.store.put_file(path, ext=path.suffix)
        metadata = load_metadata(path, assume_offset=self.settings.local_tz)
        if not metadata.has_sidecar:
            metadata = None
        sub = submit_recording(
            self.sessions,
            stored=stored,
            filename=path.name,
            metadata=metadata,
            uploaded_by="bench",
            queue=self.queue,
        )
        return sub.call_id

    def wait_analyzed(self, call_ids: list[str], timeout_s: float = 3600) -> None:
        deadline = time.monotonic() + timeout_s
        pending = set(call_ids)
        while pending:
            with self.sessions() as session:
                for call_id in list(pending):
                    status = calls.get_queued_call(session, call_id=call_id).status.value
                    if status in ("analyzed", "failed"):
                        pending.discard(call_id)
            if time.monotonic() > deadline:
                raise SystemExit(f"timed out; still pending: {sorted(pending)}")
            time.sleep(0.2)

    def close(self) -> None:
        self.stop_workers()
        self.queue.close()
        self.engine.dispose()
        with self.admin.begin() as c:
            c.execute(text(f'DROP SCHEMA "{self.schema}" CASCADE'))
        self.admin.dispose()


def call_of_60s(source: Path, out: Path, variant: int) -> Path:
    """A 60-s 8-kHz WAV from ``source`` (looped or cut), its last sample set by ``variant``."""
    n = 60 * 8000
    with decode_audio(source, sample_rate=8000) as audio:
        channels = [np.resize(ch.read(), n) for ch in audio.channels]
    pcm = (np.clip(np.stack(channels, axis=1), -1, 1) * 32767).astype("<i2")
    pcm[-1, 0] = variant
    with wave.open(str(out), "wb") as w:
        w.setnchannels(len(channels))
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(pcm.tobytes())
    return out


def throughput(bench: Bench, recordings: list[Path], k: int) -> dict[str, float]:
    bench.start_workers(k)
    t0 = time.perf_counter()
    ids = [bench.submit(p) for p in recordings]
    bench.wait_analyzed(ids)
    elapsed = time.perf_counter() - t0
    bench.stop_workers()
    return {
        "workers": k,
        "calls": len(ids),
        "seconds": round(elapsed, 1),
        "calls_per_hour": round(len(ids) / elapsed * 3600, 1),
    }


def latency(bench: Bench, source: Path, runs: int) -> dict[str, object]:
    bench.start_workers(1)
    seconds = []
    for i in range(runs):
        path = call_of_60s(source, bench.work / f"sixty-{i}.wav", variant=i + 1)
        t0 = time.perf_counter()
        call_id = bench.submit(path)
        bench.wait_analyzed([call_id])
        seconds.append(round(time.perf_counter() - t0, 2))
    bench.stop_workers()
    return {
        "runs": seconds,
        "median_s": statistics.median(seconds),
        "min_s": min(seconds),
        "max_s": max(seconds),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("calls", type=Path, help="directory of recordings (with sidecars)")
    parser.add_argument("--calls", dest="n", type=int, default=12, help="recordings per round")
    parser.add_argument("--runs", type=int, default=5, help="60-s latency runs")
    parser.add_argument(
        "--postgres",
        default=os.environ.get(
            "QA_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
        ),
    )
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/12")
    parser.add_argument("--out", type=Path, help="write the results as JSON")
    args = parser.parse_args(argv)

    recordings = discover_recordings([args.calls])
    if len(recordings) < args.n * 2:
        raise SystemExit(f"need {args.n * 2} recordings in {args.calls}")
    results: dict[str, object] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "load_average": os.getloadavg(),
        "date": time.strftime("%Y-%m-%d"),
    }
    with tempfile.TemporaryDirectory(prefix="qa-bench-queue-") as tmp:
        bench = Bench(args.postgres, args.redis, Path(tmp))
        try:
            # Different recordings per round: a recording analysed once is not queued again.
            results["one_worker"] = throughput(bench, recordings[: args.n], 1)
            results["two_workers"] = throughput(bench, recordings[args.n : 2 * args.n], 2)
            results["latency_60s"] = latency(bench, recordings[0], args.runs)
        finally:
            bench.close()
    print(json.dumps(results, indent=2, ensure_ascii=False))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
