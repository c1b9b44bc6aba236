"""The hash chain on SQLite and PostgreSQL: tampering is found and named, appends never fork.

The tamper tests act as an attacker with database access: the append-only triggers are
dropped first (they would refuse the UPDATE and DELETE), then one row is changed, deleted
or inserted; ``verify_chain`` and ``qa-service audit verify`` must name the first bad event.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, func, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from qa_service.audit.chain import purge_audit_events, verify_chain
from qa_service.audit.events import (
    Actor,
    AuditEvent,
    Outcome,
    record_event,
    row_digest,
)
from qa_service.cli.main import app
from qa_service.db.tables import AuditEventRow
from qa_service.settings import get_settings

ADMIN = Actor("user", "admin", 1, "10.0.0.1")
T0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)


def _record(sessions: sessionmaker[Session], count: int, *, start: datetime = T0) -> None:
    for i in range(count):
        with sessions.begin() as session:
            record_event(
                session,
                actor=ADMIN,
                event=AuditEvent.CALL_VIEW,
                target=f"call:c{i}",
                details={"i": i, "说明": "查看"},
                now=start + timedelta(minutes=i),
            )


def _drop_triggers(engine: Engine) -> None:
    """What an attacker with the owner's rights does first."""
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("DROP TRIGGER audit_events_append_only ON audit_events"))
        else:
            connection.execute(text("DROP TRIGGER audit_events_no_update"))
            connection.execute(text("DROP TRIGGER audit_events_no_delete"))


def _verify(sessions: sessionmaker[Session]):  # type: ignore[no-untyped-def]
    with sessions() as session:
        return verify_chain(session)


@pytest.fixture
def cli_url(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("DATABASE_URL", db_url)
    get_settings.cache_clear()
    yield db_url
    get_settings.cache_clear()


def _cli_verify() -> tuple[int, str]:
    result = CliRunner().invoke(app, ["audit", "verify"])
    return result.exit_code, result.output


def test_a_clean_chain_verifies(sessions: sessionmaker[Session], cli_url: str) -> None:
    _record(sessions, 5)
    report = _verify(sessions)
    assert report.ok and report.problem is None
    assert (report.checked, report.first_seq, report.last_seq) == (5, 1, 5)
    code, out = _cli_verify()
    assert code == 0 and "审计链完整" in out


def test_an_empty_chain_verifies(sessions: sessionmaker[Session]) -> None:
    report = _verify(sessions)
    assert report.ok and report.checked == 0


def test_rows_link_and_hash(sessions: sessionmaker[Session]) -> None:
    _record(sessions, 3)
    with sessions() as session:
        rows = session.scalars(select(AuditEventRow).order_by(AuditEventRow.seq)).all()
    assert rows[0].prev_hash == "0" * 64
    assert rows[1].prev_hash == rows[0].row_hash and rows[2].prev_hash == rows[1].row_hash
    assert len({r.row_hash for r in rows}) == 3


def test_the_database_refuses_update_and_delete(
    engine: Engine, sessions: sessionmaker[Session]
) -> None:
    _record(sessions, 3)
    for statement in (
        "UPDATE audit_events SET details = '{}' WHERE seq = 2",
        "DELETE FROM audit_events WHERE seq = 2",
    ):
        with pytest.raises(DBAPIError), engine.begin() as connection:
            connection.execute(text(statement))
    assert _verify(sessions).ok


def test_postgres_refuses_truncate(engine: Engine, sessions: sessionmaker[Session]) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("TRUNCATE exists on PostgreSQL only")
    _record(sessions, 2)
    with pytest.raises(DBAPIError), engine.begin() as connection:
        connection.execute(text("TRUNCATE audit_events"))


def test_a_changed_row_is_named(
    engine: Engine, sessions: sessionmaker[Session], cli_url: str
) -> None:
    _record(sessions, 6)
    _drop_triggers(engine)
    with engine.begin() as connection:
        connection.execute(
            text("UPDATE audit_events SET details = :d WHERE seq = 3"), {"d": '{"i":99}'}
        )
    report = _verify(sessions)
    assert not report.ok and report.problem is not None
    assert (report.problem.seq, report.problem.kind) == (3, "changed")
    assert report.checked == 2
    code, out = _cli_verify()
    assert code == 1 and "seq 3" in out and "被修改" in out


def test_a_rewritten_row_with_a_recomputed_hash_is_named(
    engine: Engine, sessions: sessionmaker[Session]
) -> None:
    _record(sessions, 6)
    _drop_triggers(engine)
    with sessions.begin() as session:  # the attacker knows the algorithm
        row = session.get(AuditEventRow, 3)
        assert row is not None
        row.actor_name = "someone-else"
        from qa_service.audit.events import row_fields

        row.row_hash = row_digest(row_fields(row), row.prev_hash)
    report = _verify(sessions)
    assert report.problem is not None and report.problem.seq == 3


def test_a_deleted_middle_row_is_named(
    engine: Engine, sessions: sessionmaker[Session], cli_url: str
) -> None:
    _record(sessions, 6)
    _drop_triggers(engine)
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM audit_events WHERE seq = 3"))
    report = _verify(sessions)
    assert report.problem is not None
    assert (report.problem.seq, report.problem.kind) == (3, "missing")
    code, out = _cli_verify()
    assert code == 1 and "seq 3" in out and "缺失" in out


def test_a_deleted_last_row_is_named(engine: Engine, sessions: sessionmaker[Session]) -> None:
    _record(sessions, 4)
    _drop_triggers(engine)
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM audit_events WHERE seq = 4"))
    report = _verify(sessions)
    assert report.problem is not None
    assert (report.problem.seq, report.problem.kind) == (4, "missing")


def _forge(session: Session, seq: int, prev_hash: str) -> None:
    """A well-formed row with a correct hash: the best an attacker can do without the head."""
    row = AuditEventRow(
        seq=seq,
        occurred_at=T0 + timedelta(minutes=2, seconds=30),
        actor_kind="user",
        actor_id=7,
        actor_name="inspector",
        client_ip="10.0.0.9",
        event="call.view",
        result="success",
        target="call:alibi",
        details="{}",
        prev_hash=prev_hash,
        row_hash="",
    )
    from qa_service.audit.events import row_fields

    row.row_hash = row_digest(row_fields(row), prev_hash)
    session.add(row)


def test_a_row_inserted_in_the_middle_is_named(
    engine: Engine, sessions: sessionmaker[Session], cli_url: str
) -> None:
    _record(sessions, 6)
    _drop_triggers(engine)
    with sessions.begin() as session:
        # Make room after event 2 (highest first, so the primary key never collides) ...
        for seq in range(6, 2, -1):
            session.execute(
                text("UPDATE audit_events SET seq = :new WHERE seq = :old"),
                {"new": seq + 1, "old": seq},
            )
        two = session.scalar(select(AuditEventRow.row_hash).where(AuditEventRow.seq == 2))
        assert two is not None
        _forge(session, 3, two)  # ... and slip a forged event in, linked to event 2
    report = _verify(sessions)
    assert report.problem is not None
    assert (report.problem.seq, report.problem.kind) == (3, "inserted")
    code, out = _cli_verify()
    assert code == 1 and "seq 3" in out and "插入" in out


def test_a_row_appended_behind_the_heads_back_is_named(
    engine: Engine, sessions: sessionmaker[Session]
) -> None:
    _record(sessions, 4)
    with sessions.begin() as session:  # INSERT needs no trigger dropped
        last = session.scalar(select(AuditEventRow.row_hash).where(AuditEventRow.seq == 4))
        assert last is not None
        _forge(session, 5, last)
    report = _verify(sessions)
    assert report.problem is not None
    assert (report.problem.seq, report.problem.kind) == (5, "inserted")


def test_a_row_with_a_made_up_hash_is_named(
    engine: Engine, sessions: sessionmaker[Session]
) -> None:
    _record(sessions, 3)
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO audit_events (seq, occurred_at, actor_kind, actor_id, actor_name, "
                "client_ip, event, result, target, details, prev_hash, row_hash) VALUES "
                "(4, :t, 'user', NULL, 'x', NULL, 'auth.login', 'success', NULL, '{}', :p, :h)"
            ),
            {"t": T0 + timedelta(hours=1), "p": "1" * 64, "h": "2" * 64},
        )
    report = _verify(sessions)
    assert report.problem is not None and report.problem.seq == 4


def test_concurrent_appends_keep_one_chain(sessions: sessionmaker[Session]) -> None:
    threads, each = 6, 15
    errors: list[BaseException] = []
    barrier = threading.Barrier(threads)

    def append(worker: int) -> None:
        try:
            barrier.wait()
            for i in range(each):
                with sessions.begin() as session:
                    record_event(
                        session,
                        actor=Actor("user", f"u{worker}", worker),
                        event=AuditEvent.AUDIO_PLAY,
                        target=f"call:{worker}-{i}",
                    )
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    workers = [threading.Thread(target=append, args=(w,)) for w in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert not errors, errors
    report = _verify(sessions)
    assert report.ok, report.problem
    assert report.checked == threads * each and report.last_seq == threads * each


def test_an_event_rolled_back_with_its_action_leaves_no_gap(
    sessions: sessionmaker[Session],
) -> None:
    _record(sessions, 2)
    with pytest.raises(RuntimeError), sessions.begin() as session:
        record_event(session, actor=ADMIN, event="account.create", target="user:x")
        raise RuntimeError("the action failed")
    _record(sessions, 1)
    report = _verify(sessions)
    assert report.ok and report.last_seq == 3


def test_bad_event_names_are_refused(sessions: sessionmaker[Session]) -> None:
    from qa_service.errors import InputError

    with pytest.raises(InputError), sessions.begin() as session:
        record_event(session, actor=ADMIN, event="Not An Event", result=Outcome.FAILURE)


# --- purging behind a checkpoint -----------------------------------------------------------


def test_purged_rows_leave_a_verifiable_chain(
    engine: Engine, sessions: sessionmaker[Session]
) -> None:
    old = datetime(2023, 1, 1, tzinfo=UTC)
    _record(sessions, 5, start=old)
    _record(sessions, 3, start=T0)
    cutoff = datetime(2024, 12, 1, tzinfo=UTC)
    with sessions.begin() as session:
        purge = purge_audit_events(session, before=cutoff, actor=Actor.cli())
    assert purge is not None and purge.checkpoint is not None
    assert (purge.rows, purge.from_seq, purge.through_seq) == (5, 1, 5)
    assert purge.checkpoint.event == "audit.checkpoint"
    assert purge.checkpoint.details["purged_through_hash"] == purge.through_hash
    with sessions() as session:
        assert session.scalar(select(func.min(AuditEventRow.seq))) == 6
    report = _verify(sessions)
    assert report.ok, report.problem
    assert (report.first_seq, report.last_seq) == (6, 9)

    # Nothing more is old enough: a second run purges nothing and records nothing.
    with sessions.begin() as session:
        assert purge_audit_events(session, before=cutoff, actor=Actor.cli()) is None
    assert _verify(sessions).last_seq == 9

    # Deleting beyond the checkpoint is still refused by the database ...
    with pytest.raises(DBAPIError), engine.begin() as connection:
        connection.execute(text("DELETE FROM audit_events WHERE seq = 6"))
    # ... and found when done anyway.
    _drop_triggers(engine)
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM audit_events WHERE seq IN (6, 7)"))
    report = _verify(sessions)
    assert report.problem is not None
    assert (report.problem.seq, report.problem.kind) == (6, "missing")


def test_a_dry_run_purges_nothing(sessions: sessionmaker[Session]) -> None:
    _record(sessions, 3, start=datetime(2023, 1, 1, tzinfo=UTC))
    with sessions.begin() as session:
        purge = purge_audit_events(
            session, before=datetime(2025, 1, 1, tzinfo=UTC), actor=Actor.cli(), dry_run=True
        )
    assert purge is not None and purge.rows == 3 and purge.checkpoint is None
    report = _verify(sessions)
    assert report.ok and report.checked == 3
