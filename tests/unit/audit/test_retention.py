"""Retention: the 2-year floor, purging old calls and their audio, holds, the audit trail."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from api_support import FIXTURES, Service, make_service
from pydantic import ValidationError
from sqlalchemy import func, select, text, update
from typer.testing import CliRunner

from qa_service.audit.chain import verify_chain
from qa_service.audit.events import Actor, EventFilter, list_events, record_event
from qa_service.audit.retention import DEFAULT_HOLDS, TableHold, run_retention
from qa_service.cli.main import app as cli_app
from qa_service.db.repository import save_analysis
from qa_service.db.tables import CallRow, RetentionHoldRow, UtteranceRow, utcnow
from qa_service.domain import CallAnalysis, CallMetadata, CallStatus, Speaker, Utterance
from qa_service.errors import StorageError
from qa_service.settings import Settings, get_settings

THREE_YEARS_AGO = utcnow() - timedelta(days=3 * 365)


def test_a_period_below_two_years_is_refused() -> None:
    for name in ("retention_days_recordings", "retention_days_logs"):
        with pytest.raises(ValidationError, match="730"):
            Settings(**{name: 729})
    assert Settings().retention_days_recordings == Settings().retention_days_logs == 730
    assert Settings(retention_days_logs=3650).retention_days_logs == 3650


@pytest.mark.parametrize("name", ["QA_RETENTION_DAYS_RECORDINGS", "QA_RETENTION_DAYS_LOGS"])
def test_serve_refuses_to_start_below_the_legal_minimum(
    name: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("QA_DATA_DIR", str(tmp_path))
    monkeypatch.setenv(name, "365")
    get_settings.cache_clear()
    try:
        for args in (["serve", "--port", "1"], ["retention", "run"]):
            result = CliRunner().invoke(cli_app, args)
            assert result.exit_code == 2 and name in result.output and "730" in result.output
    finally:
        get_settings.cache_clear()


@pytest.fixture
def service(db_url: str, tmp_path: Path) -> Iterator[Service]:
    service = make_service(db_url, tmp_path)
    yield service
    service.state.engine.dispose()


def _age(service: Service, call_id: str, when: datetime) -> None:
    with service.state.sessions.begin() as session:
        session.execute(
            update(CallRow)
            .where(CallRow.call_id == call_id)
            .values(created_at=when, started_at=when)
        )


def _pk(service: Service, call_id: str) -> int:
    with service.state.sessions() as session:
        pk = session.scalar(select(CallRow.id).where(CallRow.call_id == call_id))
    assert pk is not None
    return pk


def _calls(service: Service) -> set[str]:
    with service.state.sessions() as session:
        return set(session.scalars(select(CallRow.call_id)))


def _store_call(service: Service, call_id: str, data: bytes) -> str:
    """An analysed call whose recording (``data``) is in the audio store; returns its sha256."""
    wav = service.state.store.root.parent / f"{call_id}.wav"
    wav.write_bytes(data)
    stored = service.state.store.put_file(wav, ext=".wav")
    metadata = CallMetadata(call_id=call_id, recording=wav.name, agent_id="A1", has_sidecar=True)
    analysis = CallAnalysis(
        call_id=call_id,
        recording=wav.name,
        status=CallStatus.ANALYZED,
        duration_s=4.0,
        channels="stereo",
        sha256=stored.sha256,
        metadata=metadata,
        utterances=(Utterance(Speaker.AGENT, 0.0, 1.0, "您好，这里是信用卡中心", 0),),
        findings=(),
        score=90.0,
    )
    with service.state.sessions.begin() as session:
        save_analysis(session, analysis=analysis, source_path=None, versions={})
    return stored.sha256


def _seed(service: Service) -> dict[str, str]:
    """Five calls (four old) with their own recordings; returns call id → sha256."""
    data = (FIXTURES / "stereo_8k.wav").read_bytes()
    shas = {}
    for index, call_id in enumerate(("old", "held", "complained", "settled", "ticketed", "recent")):
        shas[call_id] = _store_call(service, call_id, data + bytes([index]) * (index + 1))
        if call_id != "recent":
            _age(service, call_id, THREE_YEARS_AGO)
    with service.state.sessions.begin() as session:
        session.add(
            RetentionHoldRow(
                call_id=_pk(service, "held"),
                reason="诉讼保全",
                created_by="legal",
                created_at=utcnow(),
            )
        )
        # A table-backed hold, like appeals and complaints: its open rows hold their calls.
        session.execute(
            text(
                "CREATE TABLE disputes (id INTEGER PRIMARY KEY, call_id VARCHAR(128), "
                "status VARCHAR(16))"
            )
        )
        session.execute(
            text("INSERT INTO disputes (id, call_id, status) VALUES (1, 'complained', 'open')")
        )
        session.execute(
            text("INSERT INTO disputes (id, call_id, status) VALUES (2, 'settled', 'resolved')")
        )
        # A hold through a link table (as complaints ↔ complaint_calls), open until closed_at.
        session.execute(text("CREATE TABLE tickets (id INTEGER PRIMARY KEY, closed_at TEXT)"))
        session.execute(
            text(
                "CREATE TABLE ticket_calls (id INTEGER PRIMARY KEY, ticket_id INTEGER, "
                "call_id BIGINT)"
            )
        )
        session.execute(text("INSERT INTO tickets (id, closed_at) VALUES (1, NULL), (2, 'x')"))
        session.execute(
            text("INSERT INTO ticket_calls (id, ticket_id, call_id) VALUES (1, 1, :a), (2, 2, :b)"),
            {"a": _pk(service, "ticketed"), "b": _pk(service, "old")},
        )
    return shas


def test_retention_purges_old_calls_and_audio_and_keeps_held_ones(service: Service) -> None:
    shas = _seed(service)
    store, settings = service.state.store, service.state.settings
    old_event = utcnow() - timedelta(days=800)
    with service.state.sessions.begin() as session:  # an audit event past its period too
        record_event(session, actor=Actor.system(), event="auth.login", now=old_event)

    holds = (
        *DEFAULT_HOLDS,
        TableHold("disputes"),
        TableHold("tickets", link_table="ticket_calls", link_column="ticket_id"),
    )
    dry = run_retention(
        service.state.sessions,
        store=store,
        settings=settings,
        actor=Actor.cli(),
        dry_run=True,
        holds=holds,
    )
    assert sorted(c.call_id for c in dry.calls) == ["old", "settled"]
    assert len(_calls(service)) == 6
    assert all(store.find(sha) is not None for sha in shas.values())

    report = run_retention(
        service.state.sessions, store=store, settings=settings, actor=Actor.cli(), holds=holds
    )
    assert report.ok
    assert sorted((c.call_id, c.audio) for c in report.calls) == [
        ("old", "deleted"),
        ("settled", "deleted"),
    ]
    assert dict(report.held) == {
        "held": ("retention_holds",),
        "complained": ("disputes",),
        "ticketed": ("tickets",),
    }
    assert _calls(service) == {"held", "complained", "ticketed", "recent"}
    assert store.find(shas["old"]) is None and store.find(shas["settled"]) is None
    assert all(store.find(shas[c]) is not None for c in ("held", "complained", "ticketed"))
    with service.state.sessions() as session:  # the transcript went with the call
        assert session.scalar(select(func.count()).select_from(UtteranceRow)) == 4
        [purge] = list_events(session, filters=EventFilter(event="retention.purge"))
        report_chain = verify_chain(session)
    assert {c["call_id"] for c in purge.details["calls"]} == {"old", "settled"}
    assert {h["call_id"] for h in purge.details["held"]} == {"held", "complained", "ticketed"}
    assert purge.actor.kind == "cli"

    # The old audit event was purged behind a checkpoint; the chain still verifies.
    assert report.audit is not None and report.audit.rows >= 1
    assert report_chain.ok, report_chain.problem
    assert report_chain.first_seq == report.audit.through_seq + 1

    again = run_retention(
        service.state.sessions, store=store, settings=settings, actor=Actor.cli(), holds=holds
    )
    assert again.calls == () and again.audit is None


def test_a_broken_chain_is_not_purged(service: Service, db_url: str) -> None:
    with service.state.sessions.begin() as session:
        for _ in range(3):
            record_event(session, actor=Actor.system(), event="auth.login", now=THREE_YEARS_AGO)
    with service.state.engine.begin() as connection:  # tamper, triggers dropped
        if connection.dialect.name == "postgresql":
            connection.execute(text("DROP TRIGGER audit_events_append_only ON audit_events"))
        else:
            connection.execute(text("DROP TRIGGER audit_events_no_update"))
        connection.execute(
            text("UPDATE audit_events SET details = :d WHERE seq = 2"), {"d": '{"x":1}'}
        )
    report = run_retention(
        service.state.sessions,
        store=service.state.store,
        settings=service.state.settings,
        actor=Actor.cli(),
    )
    assert not report.ok and report.audit is None
    assert report.audit_refused is not None and report.audit_refused.seq == 2
    with service.state.sessions() as session:  # the evidence is still there
        assert session.scalar(select(func.min(text("seq"))).select_from(text("audit_events"))) == 1


def test_a_hold_table_without_call_ids_stops_the_run(service: Service) -> None:
    with service.state.sessions.begin() as session:
        session.execute(text("CREATE TABLE appeals (id INTEGER PRIMARY KEY, note TEXT)"))
    with pytest.raises(StorageError, match="appeals"):
        run_retention(
            service.state.sessions,
            store=service.state.store,
            settings=service.state.settings,
            actor=Actor.cli(),
            holds=(TableHold("appeals"),),
        )


def test_retention_cli(service: Service, monkeypatch: pytest.MonkeyPatch) -> None:
    _seed(service)
    monkeypatch.setenv("DATABASE_URL", str(service.state.engine.url.render_as_string(False)))
    monkeypatch.setenv("QA_AUDIO_STORE", str(service.state.store.root))
    get_settings.cache_clear()
    try:
        runner = CliRunner()
        dry = runner.invoke(cli_app, ["retention", "run", "--dry-run"])
        assert dry.exit_code == 0, dry.output
        assert "将清理通话 4 通" in dry.output and "保留 held" in dry.output
        assert "old" in _calls(service)
        done = runner.invoke(cli_app, ["retention", "run"])
        assert done.exit_code == 0, done.output
        assert "已清理通话 4 通" in done.output
        assert _calls(service) == {"held", "recent"}
        released = runner.invoke(cli_app, ["retention", "release", "held"])
        assert released.exit_code == 0, released.output
        assert runner.invoke(cli_app, ["retention", "run"]).exit_code == 0
        assert _calls(service) == {"recent"}
    finally:
        get_settings.cache_clear()


def test_a_call_under_an_open_appeal_is_kept(service: Service) -> None:
    """The review loop's real appeal (review_appeals): held by the default holds."""
    from api_support import add_role_users, seed_appeal, seed_call

    add_role_users(service)
    seed_call(service, "appealed")
    seed_appeal(service, "appealed", inspector="inspector", agent="agent")
    _age(service, "appealed", THREE_YEARS_AGO)
    report = run_retention(
        service.state.sessions,
        store=service.state.store,
        settings=service.state.settings,
        actor=Actor.cli(),
    )
    assert report.calls == () and dict(report.held) == {"appealed": ("review_appeals",)}
    assert "appealed" in _calls(service)
