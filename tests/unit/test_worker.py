"""The job queue on SQLite with a fake analyser: submission, the job, retries, the sweep.

The real model, Redis and PostgreSQL are in tests/integration/test_queue_workers.py.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from alembic import command
from queue_fakes import FakeAnalyzer, RecordingQueue
from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session, sessionmaker

from qa_service.db import get_call, make_engine, make_session_factory, migrate
from qa_service.db import queue as calls
from qa_service.db.session import alembic_config
from qa_service.db.tables import AnalysisRunRow, CallRow, UtteranceRow, utcnow
from qa_service.domain import (
    CallMetadata,
    CallStatus,
)
from qa_service.errors import Conflict
from qa_service.ingest.store import AudioStore, StoredAudio
from qa_service.settings import Settings
from qa_service.worker.jobs import WorkerRuntime, run_analysis
from qa_service.worker.queue import InProcessJobQueue, job_id_for
from qa_service.worker.retry import RetryAnalysis, backoff_delay
from qa_service.worker.submit import (
    default_call_id,
    list_failed,
    requeue_failed,
    submit_recording,
)
from qa_service.worker.sweep import sweep


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        database_url=f"sqlite:///{tmp_path / 'qa.sqlite3'}",
        data_dir=tmp_path,
        audio_store=tmp_path / "audio",
        job_max_attempts=2,
        job_retry_backoff_s=[0],
        stale_analysis_s=30,
    )


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    engine = make_engine(settings.resolved_database_url)
    migrate(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    return make_session_factory(engine)


def _runtime(settings: Settings, engine: Engine, analyzer: FakeAnalyzer) -> WorkerRuntime:
    return WorkerRuntime(
        settings=settings,
        engine=engine,
        sessions=make_session_factory(engine),
        analyzer=analyzer,
        store=AudioStore(settings.resolved_audio_store),
        versions={"qa-service": "test"},
    )


def _store(settings: Settings, payload: bytes = b"fake audio bytes") -> StoredAudio:
    return AudioStore(settings.resolved_audio_store).put_stream(
        [payload], max_bytes=None, ext=".wav"
    )


def _count(sessions: sessionmaker[Session], table: type) -> int:
    with sessions() as session:
        return session.scalar(select(func.count()).select_from(table)) or 0


def test_the_same_upload_ten_times_at_once_is_one_call_and_one_job(
    settings: Settings, sessions: sessionmaker[Session]
) -> None:
    stored = _store(settings)
    queue = RecordingQueue()
    barrier = threading.Barrier(10)
    results = []

    def upload() -> None:
        barrier.wait()
        results.append(
            submit_recording(
                sessions,
                stored=stored,
                filename="C:\\exports\\call.wav",
                metadata=None,
                uploaded_by="inspector1",
                queue=queue,
            )
        )

    threads = [threading.Thread(target=upload) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert len(results) == 10
    assert sum(r.created for r in results) == 1
    assert {r.call_id for r in results} == {default_call_id(stored.sha256)}
    assert queue.enqueued == [default_call_id(stored.sha256)]
    assert _count(sessions, CallRow) == 1
    with sessions() as session:
        call = calls.get_queued_call(session, call_id=results[0].call_id)
    assert call.status is CallStatus.QUEUED
    assert call.recording == "call.wav"
    assert call.uploaded_by == "inspector1"
    assert call.audio_ext == ".wav"


def test_a_call_id_held_by_other_bytes_is_a_conflict(
    settings: Settings, sessions: sessionmaker[Session]
) -> None:
    meta = CallMetadata(call_id="C-1", recording="a.wav")
    queue = RecordingQueue()
    submit_recording(
        sessions,
        stored=_store(settings, b"one"),
        filename="a.wav",
        metadata=meta,
        uploaded_by=None,
        queue=queue,
    )
    with pytest.raises(Conflict):
        submit_recording(
            sessions,
            stored=_store(settings, b"two"),
            filename="b.wav",
            metadata=meta,
            uploaded_by=None,
            queue=queue,
        )


def test_job_saves_under_the_same_call_and_a_second_run_changes_nothing(
    settings: Settings, engine: Engine, sessions: sessionmaker[Session]
) -> None:
    meta = CallMetadata(call_id="C-7", recording="x.wav", agent_id="A07")
    sub = submit_recording(
        sessions,
        stored=_store(settings),
        filename="2026-11-30 agent A07.wav",
        metadata=meta,
        uploaded_by=None,
        queue=RecordingQueue(),
    )
    rt = _runtime(settings, engine, FakeAnalyzer())

    assert run_analysis(rt, sub.call_id) == "analyzed"
    assert run_analysis(rt, sub.call_id) == "analyzed"  # the job again: a no-op

    with sessions() as session:
        saved = get_call(session, call_id="C-7")
        call = calls.get_queued_call(session, call_id="C-7")
    assert saved.status is CallStatus.ANALYZED
    assert saved.recording == "2026-11-30 agent A07.wav"
    assert saved.metadata is not None and saved.metadata.agent_id == "A07"
    assert [u.text for u in saved.utterances] == ["您好，这里是信用卡中心"]
    assert call.attempts == 1 and call.heartbeat_at is None
    assert _count(sessions, CallRow) == 1
    assert _count(sessions, AnalysisRunRow) == 1


def test_job_caches_the_call_pages_waveform(
    settings: Settings, engine: Engine, sessions: sessionmaker[Session]
) -> None:
    from qa_service.ingest.waveform import CACHE_SUFFIX

    wav = Path(__file__).resolve().parents[1] / "fixtures" / "stereo_8k.wav"
    stored = _store(settings, wav.read_bytes())
    sub = submit_recording(
        sessions,
        stored=stored,
        filename="call.wav",
        metadata=None,
        uploaded_by=None,
        queue=RecordingQueue(),
    )
    assert run_analysis(_runtime(settings, engine, FakeAnalyzer()), sub.call_id) == "analyzed"
    store = AudioStore(settings.resolved_audio_store)
    assert store.derived_path(stored.sha256, CACHE_SUFFIX).is_file()


def test_transient_failures_retry_then_fail_with_the_reason_and_can_be_requeued(
    settings: Settings, engine: Engine, sessions: sessionmaker[Session]
) -> None:
    queue = RecordingQueue()
    sub = submit_recording(
        sessions,
        stored=_store(settings),
        filename="a.wav",
        metadata=None,
        uploaded_by=None,
        queue=queue,
    )
    analyzer = FakeAnalyzer(fail_times=5)
    rt = _runtime(settings, engine, analyzer)

    with pytest.raises(RetryAnalysis) as retry:
        run_analysis(rt, sub.call_id)
    assert retry.value.attempts == 1
    with sessions() as session:
        call = calls.get_queued_call(session, call_id=sub.call_id)
    assert call.status is CallStatus.QUEUED
    assert "CUDA out of memory" in (call.last_error or "")

    assert run_analysis(rt, sub.call_id) == "failed"  # job_max_attempts = 2
    failed = list_failed(sessions)
    assert [f.call_id for f in failed] == [sub.call_id]
    assert failed[0].error_code == "analysis_error"
    assert "2" in (failed[0].error_message or "")
    assert "CUDA out of memory" in (failed[0].error_message or "")

    analyzer.fail_times = 0
    queue.live.clear()
    again = requeue_failed(sessions, call_id=sub.call_id, queue=queue)
    assert again.status is CallStatus.QUEUED
    assert queue.enqueued[-1] == sub.call_id
    assert run_analysis(rt, sub.call_id) == "analyzed"
    assert list_failed(sessions) == []
    with pytest.raises(Conflict):  # only failed calls can be re-queued
        requeue_failed(sessions, call_id=sub.call_id, queue=queue)


def test_bad_input_fails_at_once_without_retries(
    settings: Settings, engine: Engine, sessions: sessionmaker[Session]
) -> None:
    sub = submit_recording(
        sessions,
        stored=_store(settings),
        filename="broken.wav",
        metadata=None,
        uploaded_by=None,
        queue=RecordingQueue(),
    )
    analyzer = FakeAnalyzer(bad_input=True)
    assert run_analysis(_runtime(settings, engine, analyzer), sub.call_id) == "failed"
    assert len(analyzer.calls) == 1
    with sessions() as session:
        saved = get_call(session, call_id=sub.call_id)
    assert saved.status is CallStatus.FAILED
    assert saved.error is not None and saved.error["code"] == "audio_decode_error"


def test_missing_audio_is_retried_not_failed_as_bad_input(
    settings: Settings, engine: Engine, sessions: sessionmaker[Session]
) -> None:
    stored = _store(settings)
    sub = submit_recording(
        sessions, stored=stored, filename="a.wav", metadata=None, uploaded_by=None,
        queue=RecordingQueue(),
    )  # fmt: skip
    stored.path.unlink()  # e.g. the shared mount is missing on this worker
    with pytest.raises(RetryAnalysis):
        run_analysis(_runtime(settings, engine, FakeAnalyzer()), sub.call_id)


def test_sweep_requeues_lost_jobs_and_takes_back_silent_workers(
    settings: Settings, sessions: sessionmaker[Session]
) -> None:
    queue = RecordingQueue()
    ids = []
    for i in range(4):
        sub = submit_recording(
            sessions,
            stored=_store(settings, f"rec {i}".encode()),
            filename=f"{i}.wav",
            metadata=None,
            uploaded_by=None,
            queue=queue,
        )
        ids.append(sub.call_id)
    queued, fresh, stale, spent = ids
    now = utcnow()
    with sessions.begin() as session:
        for call_id in (fresh, stale, spent):
            calls.claim_for_analysis(session, call_id=call_id, job_id=None, now=now)
        session.execute(
            text("UPDATE calls SET heartbeat_at = :t WHERE call_id IN (:a, :b)"),
            {"t": (now - timedelta(minutes=5)).replace(tzinfo=None), "a": stale, "b": spent},
        )
        session.execute(text("UPDATE calls SET attempts = 2 WHERE call_id = :c"), {"c": spent})

    queue.live.clear()  # Redis flushed
    queue.enqueued.clear()
    report = sweep(sessions, queue, now, settings=settings)

    assert report.requeued == (queued,)
    assert report.reclaimed == (stale,)
    assert report.failed == (spent,)
    assert sorted(queue.enqueued) == sorted([queued, stale])
    with sessions() as session:
        state = {c: calls.get_queued_call(session, call_id=c) for c in ids}
    assert state[fresh].status is CallStatus.ANALYZING  # its worker is alive
    assert state[stale].status is CallStatus.QUEUED
    assert "心跳" in (state[stale].last_error or "")
    assert state[spent].status is CallStatus.FAILED
    assert state[spent].error_code == "worker_lost"

    assert sweep(sessions, queue, now, settings=settings).changed == 0  # nothing twice


def test_in_process_queue_runs_the_job_and_retries_with_backoff(
    settings: Settings, engine: Engine, sessions: sessionmaker[Session]
) -> None:
    rt = _runtime(settings, engine, FakeAnalyzer(fail_times=1))
    queue = InProcessJobQueue(lambda call_id: run_analysis(rt, call_id), backoff_s=[0])
    queue.start()
    try:
        sub = submit_recording(
            sessions,
            stored=_store(settings),
            filename="a.wav",
            metadata=None,
            uploaded_by=None,
            queue=queue,
        )
        assert queue.wait_idle(timeout=20)
    finally:
        queue.stop()
    with sessions() as session:
        call = calls.get_queued_call(session, call_id=sub.call_id)
    assert call.status is CallStatus.ANALYZED
    assert call.attempts == 2


def test_job_ids_are_one_per_call_and_valid_for_rq() -> None:
    assert job_id_for("C-001") == "analyze-C-001"
    odd = job_id_for("通话/001")
    assert odd.startswith("analyze-h") and odd == job_id_for("通话/001")
    assert backoff_delay([10, 60, 300], 1) == 10
    assert backoff_delay([10, 60, 300], 9) == 300


def test_upgrade_to_the_queue_schema_keeps_existing_transcripts(tmp_path: Path) -> None:
    """0004 rebuilds ``calls`` on SQLite; that must not cascade into its utterances."""
    engine = make_engine(f"sqlite:///{tmp_path / 'old.sqlite3'}")
    try:
        with engine.begin() as connection:
            config = alembic_config()
            config.attributes["connection"] = connection
            command.upgrade(config, "0002")
        with engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO calls (id, call_id, sha256, recording, status, created_at, "
                    "updated_at) VALUES (1, 'OLD-1', :sha, 'old.wav', 'analyzed', "
                    "'2026-01-01 00:00:00', '2026-01-01 00:00:00')"
                ),
                {"sha": "c" * 64},
            )
            connection.execute(
                text(
                    "INSERT INTO utterances (call_id, seq, speaker, channel, start_s, end_s, "
                    "text) VALUES (1, 0, 'agent', 0, 0.0, 1.0, '您好')"
                )
            )
        migrate(engine)
        sessions = make_session_factory(engine)
        assert _count(sessions, UtteranceRow) == 1
        with sessions.begin() as session:
            session.execute(text("UPDATE calls SET status = 'queued' WHERE id = 1"))
            call = calls.get_queued_call(session, call_id="OLD-1")
            assert call.attempts == 0
        with pytest.raises(Exception, match="CHECK"), sessions.begin() as session:
            session.execute(text("UPDATE calls SET status = 'lost' WHERE id = 1"))
        with engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    finally:
        engine.dispose()


def test_in_process_queue_from_settings_loads_the_runtime_once_at_start(
    settings: Settings,
    engine: Engine,
    sessions: sessionmaker[Session],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from qa_service.worker import jobs

    rt = _runtime(settings, engine, FakeAnalyzer())
    built: list[Settings] = []

    def fake_start_runtime(given: Settings | None = None, **_: object) -> WorkerRuntime:
        built.append(given)  # type: ignore[arg-type]
        return rt

    monkeypatch.setattr(jobs, "start_runtime", fake_start_runtime)
    queue = InProcessJobQueue.from_settings(settings)
    queue.start()
    try:
        sub = submit_recording(
            sessions,
            stored=_store(settings),
            filename="a.wav",
            metadata=None,
            uploaded_by=None,
            queue=queue,
        )
        assert queue.wait_idle(timeout=20)
    finally:
        queue.stop()
    assert built and all(b is settings for b in built)  # serve's settings, not a re-read
    with sessions() as session:
        assert calls.get_queued_call(session, call_id=sub.call_id).status is CallStatus.ANALYZED
