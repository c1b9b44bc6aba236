"""The storage layer on SQLite and PostgreSQL: migrations, idempotent saves, dial log, DNC."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, delete, func, inspect, select
from sqlalchemy.orm import Session, sessionmaker

from qa_service.db import (
    add_do_not_call,
    current_revision,
    dial_attempts_for_customer,
    dial_attempts_for_number,
    do_not_call_entries,
    do_not_call_numbers,
    find_call_id_by_sha256,
    get_call,
    list_calls,
    make_engine,
    make_session_factory,
    migrate,
    save_analysis,
    save_dial_attempts,
)
from qa_service.db.search import include_object
from qa_service.db.session import head_revision
from qa_service.db.tables import (
    AnalysisRunRow,
    Base,
    CallRow,
    DialAttemptRow,
    FindingRow,
    UtteranceRow,
)
from qa_service.domain import (
    CallAnalysis,
    CallMetadata,
    CallStatus,
    DialAttempt,
    DoNotCallEntry,
    Finding,
    Speaker,
    StageTiming,
    Utterance,
)
from qa_service.errors import CallNotFound, StorageError

CST = timezone(timedelta(hours=8))
SHA_A = "a" * 64
SHA_B = "b" * 64
VERSIONS = {"qa-service": "0.1.0", "faster-whisper": "1.1.0"}
TABLES = {"calls", "utterances", "findings", "analysis_runs", "dial_attempts", "do_not_call"}


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = make_engine(db_url)
    migrate(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    return make_session_factory(engine)


def _metadata(call_id: str, **changes: Any) -> CallMetadata:
    metadata = CallMetadata(
        call_id=call_id,
        recording=f"{call_id}.wav",
        agent_id="A07",
        customer_id="CUST-9",
        dialed_number="13800138000",
        contact_role="debtor",
        direction="outbound",
        started_at=datetime(2024, 5, 6, 21, 30, 15, 250000, tzinfo=CST),
        duration_s=62.5,
        channels="stereo",
        channel_map={0: Speaker.CUSTOMER, 1: Speaker.AGENT},
        has_sidecar=True,
    )
    return replace(metadata, **changes)


def _analysis(call_id: str = "C-001", sha256: str | None = SHA_A, **changes: Any) -> CallAnalysis:
    metadata = _metadata(call_id)
    analysis = CallAnalysis(
        call_id=call_id,
        recording=f"{call_id}.wav",
        status=CallStatus.ANALYZED,
        duration_s=62.48,
        channels="stereo",
        sha256=sha256,
        metadata=metadata,
        # Deliberately not in time order: stored order is the transcriber's, not start time.
        utterances=(
            Utterance(Speaker.AGENT, 0.5, 3.0, "您好，这里是某某银行信用卡中心", 1, -0.21, "您好"),
            Utterance(Speaker.CUSTOMER, 2.8, 4.0, "我没钱", 0),
            Utterance(Speaker.AGENT, 1.0, 2.0, "我是公安局的", 1, -0.5),
        ),
        findings=(
            Finding(
                rule="P03",
                source="lexicon",
                confidence=0.93,
                speaker=Speaker.AGENT,
                start=1.0,
                end=2.0,
                text="我是公安局的",
                evidence={"terms": ["公安局"], "span": [2, 5], "nested": {"score": 0.5}},
            ),
            Finding(rule="M01", source="metadata", confidence=1.0, evidence={"hour": 21}),
        ),
        score=71.5,
        timings=(StageTiming("ingest", 0.2), StageTiming("transcribe", 5.5)),
        model_name="base",
    )
    return replace(analysis, **changes)


def _count(session: Session, table: type[Base]) -> int:
    return session.scalar(select(func.count()).select_from(table)) or 0


# --- migrations --------------------------------------------------------------------


def test_migrate_twice_is_idempotent(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        assert current_revision(engine) is None
        migrate(engine)
        migrate(db_url)  # by URL too, as a fresh CLI process would
        assert current_revision(engine) == head_revision()
        # On PostgreSQL this is the test's own schema: alembic_version must be there too.
        assert set(inspect(engine).get_table_names()) >= TABLES | {"alembic_version"}
    finally:
        engine.dispose()


def test_migrations_match_the_orm_tables(engine: Engine) -> None:
    with engine.connect() as connection:
        # The transcript search index (migration 0005) is not an ORM table.
        context = MigrationContext.configure(connection, opts={"include_object": include_object})
        diff = compare_metadata(context, Base.metadata)
    assert diff == []


def test_sqlite_database_folder_is_created(tmp_path: Path) -> None:
    path = f"{tmp_path}/deep/er/qa.sqlite3"
    engine = make_engine(f"sqlite:///{path}")
    try:
        migrate(engine)
        assert current_revision(engine) == head_revision()
    finally:
        engine.dispose()


def test_unreachable_database_is_a_storage_error() -> None:
    with pytest.raises(StorageError, match="database unreachable"):
        migrate("postgresql+psycopg://postgres@127.0.0.1:1/nothing?connect_timeout=2")


def test_bad_url_is_a_storage_error() -> None:
    with pytest.raises(StorageError, match="invalid database URL"):
        make_engine("not a url")


# --- analyses ----------------------------------------------------------------------


def test_analysis_round_trip(sessions: sessionmaker[Session]) -> None:
    analysis = _analysis()
    with sessions.begin() as session:
        call_pk = save_analysis(
            session, analysis=analysis, source_path="/in/C-001.wav", versions=VERSIONS
        )
    assert call_pk is not None

    with sessions() as session:
        loaded = get_call(session, call_id="C-001")
        row = session.get_one(CallRow, call_pk)
        run = session.scalars(select(AnalysisRunRow)).one()
        assert find_call_id_by_sha256(session, sha256=SHA_A) == "C-001"
        assert find_call_id_by_sha256(session, sha256=SHA_B) is None

    assert loaded == analysis  # utterance order, evidence JSON, metadata, timings order
    assert [u.text for u in loaded.utterances] == [u.text for u in analysis.utterances]
    assert loaded.findings[0].evidence == {
        "terms": ["公安局"],
        "span": [2, 5],
        "nested": {"score": 0.5},
    }
    # Indexed columns hold the same instant, read back aware whatever the backend.
    assert row.started_at == datetime(2024, 5, 6, 13, 30, 15, 250000, tzinfo=UTC)
    assert row.started_at is not None and row.started_at.tzinfo is not None
    assert row.created_at.tzinfo is not None and row.updated_at.tzinfo is not None
    assert row.source_path == "/in/C-001.wav"
    assert run.versions == VERSIONS and run.status == "analyzed"
    assert run.started_at.tzinfo is not None and run.finished_at >= run.started_at
    assert run.finished_at - run.started_at == timedelta(seconds=5.7)


def test_same_recording_twice_keeps_one_call(sessions: sessionmaker[Session]) -> None:
    first = _analysis()
    second = _analysis(
        utterances=first.utterances[:2],
        findings=(Finding(rule="C01", source="classifier", confidence=0.8),),
        score=90.0,
    )
    with sessions.begin() as session:
        pk1 = save_analysis(session, analysis=first, source_path=None, versions=VERSIONS)
    with sessions.begin() as session:
        pk2 = save_analysis(session, analysis=second, source_path=None, versions=VERSIONS)

    assert pk1 == pk2
    with sessions() as session:
        assert _count(session, CallRow) == 1
        assert _count(session, AnalysisRunRow) == 2
        assert _count(session, UtteranceRow) == 2
        assert _count(session, FindingRow) == 1
        loaded = get_call(session, call_id="C-001")
    assert loaded == second


def test_same_recording_saved_twice_in_one_session(sessions: sessionmaker[Session]) -> None:
    # A job retried inside one transaction must not trip over its own pending rows.
    with sessions.begin() as session:
        save_analysis(session, analysis=_analysis(), source_path=None, versions=VERSIONS)
        get_call(session, call_id="C-001")
        save_analysis(session, analysis=_analysis(), source_path=None, versions=VERSIONS)
        assert get_call(session, call_id="C-001") == _analysis()
    with sessions() as session:
        assert _count(session, UtteranceRow) == 3
        assert _count(session, AnalysisRunRow) == 2


def test_other_recording_under_a_taken_call_id_is_refused(
    sessions: sessionmaker[Session],
) -> None:
    with sessions.begin() as session:
        save_analysis(session, analysis=_analysis(), source_path=None, versions=VERSIONS)
    with sessions() as session, pytest.raises(StorageError) as caught:
        save_analysis(
            session, analysis=_analysis(sha256=SHA_B), source_path=None, versions=VERSIONS
        )
    assert SHA_A in caught.value.message and SHA_B in caught.value.message
    with sessions() as session:
        assert get_call(session, call_id="C-001").sha256 == SHA_A


def test_same_recording_under_a_new_call_id_moves_with_its_bytes(
    sessions: sessionmaker[Session],
) -> None:
    with sessions.begin() as session:
        save_analysis(session, analysis=_analysis("stem-name"), source_path=None, versions=VERSIONS)
    with sessions.begin() as session:
        save_analysis(session, analysis=_analysis("C-001"), source_path=None, versions=VERSIONS)
    with sessions() as session:
        assert _count(session, CallRow) == 1
        assert find_call_id_by_sha256(session, sha256=SHA_A) == "C-001"


def test_error_analysis_is_stored_when_the_recording_is_known(
    sessions: sessionmaker[Session],
) -> None:
    error: dict[str, object] = {
        "code": "audio_decode_error",
        "message": "无法解码 / cannot decode",
        "context": {"path": "/in/x.wav"},
    }
    failed = CallAnalysis(
        call_id="C-002", recording="x.wav", status=CallStatus.ERROR, sha256=SHA_B, error=error
    )
    unread = CallAnalysis(
        call_id="C-003",
        recording="gone.wav",
        status=CallStatus.ERROR,
        error={"code": "file_not_found", "message": "找不到 / not found"},
    )
    with sessions.begin() as session:
        assert (
            save_analysis(session, analysis=failed, source_path="/in/x.wav", versions=VERSIONS)
            is not None
        )
        assert save_analysis(session, analysis=unread, source_path=None, versions=VERSIONS) is None

    with sessions() as session:
        loaded = get_call(session, call_id="C-002")
        row = session.scalars(select(CallRow)).one()
        with pytest.raises(CallNotFound):
            get_call(session, call_id="C-003")
        [listed] = list_calls(session)
    assert loaded.status is CallStatus.ERROR
    assert loaded.error == error and loaded.utterances == () and loaded.findings == ()
    assert (row.status, row.error_code) == ("error", "audio_decode_error")
    assert listed.error == {"code": "audio_decode_error", "message": "无法解码 / cannot decode"}


def test_failed_rerun_clears_the_previous_transcript(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        save_analysis(session, analysis=_analysis(), source_path=None, versions=VERSIONS)
    failed = _analysis(
        status=CallStatus.ERROR,
        utterances=(),
        findings=(),
        score=None,
        error={"code": "model_error", "message": "模型缺失 / model missing"},
    )
    with sessions.begin() as session:
        save_analysis(session, analysis=failed, source_path=None, versions=VERSIONS)
    with sessions() as session:
        assert (_count(session, UtteranceRow), _count(session, FindingRow)) == (0, 0)
        assert get_call(session, call_id="C-001").status is CallStatus.ERROR


def test_deleting_a_call_cascades(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        save_analysis(session, analysis=_analysis(), source_path=None, versions=VERSIONS)
    with sessions.begin() as session:
        session.execute(delete(CallRow))
    with sessions() as session:
        assert _count(session, UtteranceRow) == 0
        assert _count(session, FindingRow) == 0
        assert _count(session, AnalysisRunRow) == 0


def test_naive_datetimes_are_refused(sessions: sessionmaker[Session]) -> None:
    naive = _metadata("C-001", started_at=datetime(2024, 5, 6, 21, 30))
    with sessions() as session, pytest.raises(StorageError, match="timezone"):
        save_analysis(
            session, analysis=_analysis(metadata=naive), source_path=None, versions=VERSIONS
        )


def test_list_calls_newest_first_with_paging(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        for i in range(3):
            call_id = f"C-{i}"
            started = datetime(2024, 5, 1 + i, 9, tzinfo=CST)
            analysis = _analysis(
                call_id, f"{i}" * 64, metadata=_metadata(call_id, started_at=started)
            )
            save_analysis(
                session,
                analysis=analysis,
                source_path=None,
                versions=VERSIONS,
            )
    with sessions() as session:
        assert [c.call_id for c in list_calls(session)] == ["C-2", "C-1", "C-0"]
        page = list_calls(session, limit=1, offset=1)
    assert [c.call_id for c in page] == ["C-1"]
    assert page[0].utterances == () and len(page[0].findings) == 2


# --- dial log and do-not-call --------------------------------------------------------


def _attempt(minute: int, number: str = "13800138000", **changes: Any) -> DialAttempt:
    attempt = DialAttempt(
        agent_id="A07",
        customer_id="CUST-9",
        dialed_number=number,
        started_at=datetime(2024, 5, 6, 9, minute, tzinfo=CST),
        connected=False,
        duration_s=0.0,
    )
    return replace(attempt, **changes)


def test_dial_log_import_twice_adds_nothing(sessions: sessionmaker[Session]) -> None:
    log = [
        _attempt(0),
        _attempt(5, connected=True, duration_s=30.0, call_id="C-001"),
        _attempt(10),
        _attempt(10),
    ]  # the exporter repeats a row
    with sessions.begin() as session:
        assert save_dial_attempts(session, attempts=log) == 3
    # The same instant written in UTC is the same attempt.
    again = [*log, _attempt(0, started_at=datetime(2024, 5, 6, 1, 0, tzinfo=UTC))]
    with sessions.begin() as session:
        assert save_dial_attempts(session, attempts=again) == 0
        assert save_dial_attempts(session, attempts=[_attempt(15)]) == 1
        assert save_dial_attempts(session, attempts=[]) == 0
    with sessions() as session:
        assert _count(session, DialAttemptRow) == 4


def test_dial_attempts_by_date_range(sessions: sessionmaker[Session]) -> None:
    day = datetime(2024, 5, 6, tzinfo=CST)
    log = [
        _attempt(0, started_at=day),  # local midnight: first instant of the day
        _attempt(0, started_at=day + timedelta(hours=9)),
        _attempt(0, "13900139000", started_at=day + timedelta(hours=23, minutes=59)),
        _attempt(0, started_at=day + timedelta(days=1)),  # next day: excluded
        _attempt(0, started_at=day - timedelta(microseconds=1)),  # previous day: excluded
        _attempt(0, "13700137000", customer_id="OTHER", started_at=day + timedelta(hours=1)),
    ]
    with sessions.begin() as session:
        save_dial_attempts(session, attempts=log)
    with sessions() as session:
        by_number = dial_attempts_for_number(
            session, dialed_number="13800138000", start=day, end=day + timedelta(days=1)
        )
        by_customer = dial_attempts_for_customer(
            session, customer_id="CUST-9", start=day, end=day + timedelta(days=1)
        )
    assert [a.started_at for a in by_number] == [day, day + timedelta(hours=9)]
    assert all(a.started_at.tzinfo is not None for a in by_number + by_customer)
    assert [a.dialed_number for a in by_customer] == ["13800138000"] * 2 + ["13900139000"]
    assert by_number[0] == log[0]  # aware datetimes compare by instant


def test_do_not_call_list_is_idempotent(sessions: sessionmaker[Session]) -> None:
    first = [
        DoNotCallEntry("13800138000", "第三方要求勿扰", source="C02"),
        DoNotCallEntry("13900139000", "imported"),
    ]
    with sessions.begin() as session:
        assert add_do_not_call(session, entries=first, source_call_id="C-001") == 2
    with sessions.begin() as session:
        added = add_do_not_call(
            session,
            entries=[DoNotCallEntry("13800138000", "again"), DoNotCallEntry("13700137000")],
        )
        assert added == 1
    with sessions() as session:
        numbers = do_not_call_numbers(session)
        entries = do_not_call_entries(session)
    assert numbers == {"13800138000", "13900139000", "13700137000"}
    assert len(entries) == 3
    kept = next(e for e in entries if e.dialed_number == "13800138000")
    assert (kept.reason, kept.source) == ("第三方要求勿扰", "C02")  # the first refusal stays
    assert all(e.added_at is not None and e.added_at.tzinfo is not None for e in entries)
