"""Personal data at rest, on SQLite and PostgreSQL: nothing readable in the raw rows.

Saves an analysis whose transcript, findings and metadata carry a card number, mobile
numbers (digits, spaced, spoken, split over two utterances) and an ID number, plus a dial
log and a do-not-call list; then reads every row of every table as the database holds it
and finds none of those numbers. Reading through the repository gives them back, the
dial-log rules still find attempts by number, and key rotation keeps everything readable.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from sqlalchemy import Engine, inspect
from sqlalchemy.orm import Session, sessionmaker

from qa_service.db import (
    add_do_not_call,
    dial_attempts_for_number,
    do_not_call_entries,
    do_not_call_numbers,
    get_call,
    make_engine,
    make_session_factory,
    migrate,
    save_analysis,
    save_dial_attempts,
)
from qa_service.db.listing import CallFilters, list_call_page
from qa_service.db.rotation import rotate_keys
from qa_service.db.sealed import number_digest
from qa_service.db.session import alembic_config
from qa_service.domain import (
    CallAnalysis,
    CallMetadata,
    CallStatus,
    DialAttempt,
    DoNotCallEntry,
    Finding,
    Speaker,
    Utterance,
)
from qa_service.privacy.keys import KeyRing, generate_key, ring_of, using_key_ring
from qa_service.rules.metadata import MetadataParams, scan_metadata

CST = timezone(timedelta(hours=8))
DAY = timedelta(days=1)
WHEN = datetime(2026, 11, 6, 14, 30, tzinfo=CST)
DIALED = "13812345678"
OTHER = "13987654321"
CARD = "4111111111111111"
ID_NO = "11010519491231002X"
# Every number the fixture mentions, in every form, must be absent from the raw rows.
SECRETS = (DIALED, OTHER, CARD, ID_NO)


@pytest.fixture
def ring() -> Iterator[KeyRing]:
    with using_key_ring(ring_of([generate_key()], generate_key())) as r:
        yield r


@pytest.fixture
def engine(db_url: str, ring: KeyRing) -> Iterator[Engine]:
    engine = make_engine(db_url)
    migrate(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    return make_session_factory(engine)


def _analysis(call_id: str = "pii-1", sha: str = "c" * 64) -> CallAnalysis:
    utterances = (
        Utterance(Speaker.AGENT, 0.0, 2.0, "请问您的卡号是多少"),
        Utterance(Speaker.CUSTOMER, 2.0, 4.0, "卡号4111 1111", raw_text="卡号4111 1111"),
        Utterance(Speaker.CUSTOMER, 4.0, 5.0, "1111 1111"),  # the rest of it, after a pause
        Utterance(Speaker.AGENT, 5.0, 6.0, "手机号呢"),
        Utterance(Speaker.CUSTOMER, 6.0, 8.0, "幺三八幺二三四五六七八，身份证" + ID_NO),
        Utterance(Speaker.CUSTOMER, 8.0, 9.0, f"我老婆电话 {OTHER[:3]} {OTHER[3:7]} {OTHER[7:]}"),
    )
    findings = (
        Finding(
            rule="P09",
            source="lexicon",
            confidence=0.9,
            speaker=Speaker.CUSTOMER,
            start=8.0,
            end=9.0,
            text=utterances[5].text,
            evidence={"quote": f"电话{OTHER}", "terms": [CARD]},
        ),
        Finding(rule="M01", source="metadata", confidence=1.0, evidence={"local_hour": 23}),
    )
    return CallAnalysis(
        call_id=call_id,
        recording=f"{call_id}.wav",
        status=CallStatus.ANALYZED,
        duration_s=9.0,
        channels="stereo",
        sha256=sha,
        metadata=CallMetadata(
            call_id=call_id,
            recording=f"{call_id}.wav",
            agent_id="A1",
            customer_id="C1",
            dialed_number=DIALED,
            contact_role="debtor",
            started_at=WHEN,
            has_sidecar=True,
        ),
        utterances=utterances,
        findings=findings,
        score=80.0,
    )


def _attempts() -> list[DialAttempt]:
    return [
        DialAttempt("A1", "C1", DIALED, WHEN - timedelta(hours=h), connected=False, duration_s=0)
        for h in range(1, 6)
    ] + [DialAttempt("A1", "C2", OTHER, WHEN, connected=True, duration_s=30)]


def _store(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        save_analysis(session, analysis=_analysis(), source_path=None, versions={})
        save_dial_attempts(session, attempts=_attempts())
        add_do_not_call(
            session,
            entries=[
                DoNotCallEntry(
                    OTHER,
                    reason=f"第三方拒绝：别再打{OTHER}",
                    source="C02",
                    added_at=WHEN - timedelta(days=1),
                )
            ],
        )


def _raw_values(engine: Engine) -> Iterator[tuple[str, str]]:
    """Every value of every row of every table, as text, as the database holds it."""
    with engine.connect() as connection:
        for table in inspect(connection).get_table_names():
            for row in connection.execute(sa.text(f'SELECT * FROM "{table}"')):
                for value in row:
                    if isinstance(value, bytes):
                        yield table, value.decode("latin-1")
                    elif value is not None:
                        yield table, str(value)


def _leaks(engine: Engine) -> list[str]:
    found = []
    for table, value in _raw_values(engine):
        digits = re.sub(r"\D", "", value)
        spoken = "幺三八幺二三四五六七八" in value
        for secret in SECRETS:
            if secret in value or secret.rstrip("X") in digits or spoken:
                found.append(f"{table}: {value[:120]}")
    return found


def test_raw_rows_hold_no_plaintext_card_or_phone_number(
    engine: Engine, sessions: sessionmaker[Session]
) -> None:
    _store(sessions)
    assert _leaks(engine) == []
    # The masked text is what the search index holds: the hidden digits are not findable.
    with sessions() as session:
        dialect = engine.dialect.name
        for query in ("4111 1111", "二三四", OTHER[3:7]):
            page = list_call_page(session, filters=CallFilters(text=query), scope=None, limit=5)
            assert page.items == (), (dialect, query)
        page = list_call_page(session, filters=CallFilters(text="手机号"), scope=None, limit=5)
        assert [c.call_id for c in page.items] == ["pii-1"]


def test_the_repository_gives_the_numbers_back(sessions: sessionmaker[Session]) -> None:
    _store(sessions)
    with sessions() as session:
        call = get_call(session, call_id="pii-1")
    assert call.utterances == _analysis().utterances
    assert call.findings == _analysis().findings
    assert call.metadata is not None and call.metadata.dialed_number == DIALED


def test_dial_log_rules_and_do_not_call_still_find_numbers(
    sessions: sessionmaker[Session],
) -> None:
    _store(sessions)
    day = datetime(2026, 11, 6, tzinfo=CST)
    with sessions.begin() as session:
        assert save_dial_attempts(session, attempts=_attempts()) == 0  # idempotent by hash
        assert add_do_not_call(session, entries=[DoNotCallEntry(OTHER)]) == 0
        attempts = dial_attempts_for_number(
            session, dialed_number=DIALED, start=day, end=day + timedelta(days=1)
        )
        assert [a.dialed_number for a in attempts] == [DIALED] * 5
        assert do_not_call_numbers(session) == {OTHER}
        entries = do_not_call_entries(session, dialed_number=OTHER)
        assert [e.reason for e in entries] == ["第三方拒绝：别再打139****4321"]
        assert do_not_call_entries(session, dialed_number=DIALED) == []
        all_entries = do_not_call_entries(session)
    meta = CallMetadata(
        call_id="pii-2",
        recording="pii-2.wav",
        customer_id="C2",
        dialed_number=OTHER,
        started_at=WHEN + timedelta(hours=1),
    )
    rules = {f.rule for f in scan_metadata(meta, attempts, all_entries, MetadataParams())}
    assert "M03" in rules  # the do-not-call list opened and matched
    meta_m02 = CallMetadata(
        call_id="pii-1", recording="pii-1.wav", dialed_number=DIALED, started_at=WHEN
    )
    rules = {f.rule for f in scan_metadata(meta_m02, attempts, (), MetadataParams())}
    assert "M02" in rules  # six attempts that day, found by number


def test_key_rotation_round_trip(engine: Engine, sessions: sessionmaker[Session]) -> None:
    old_key, new_key, search = generate_key(), generate_key(), generate_key()
    with using_key_ring(ring_of([old_key], search)):
        _store(sessions)
    # New key first, old one still there: everything opens before and after the rotation.
    new_ring = ring_of([new_key, old_key], search)
    with using_key_ring(new_ring):
        report = rotate_keys(engine, ring=new_ring, batch_size=2)
        assert report.resealed["calls.dialed_number"] == 1
        assert report.resealed["dial_attempts.dialed_number"] == 6
        assert report.resealed["utterances.pii_sealed"] >= 3
        assert rotate_keys(engine, ring=new_ring).resealed == {k: 0 for k in report.resealed}
    # The old key can go now: every value opens under the new key alone.
    with using_key_ring(ring_of([new_key], search)), sessions() as session:
        assert get_call(session, call_id="pii-1").utterances == _analysis().utterances
        assert do_not_call_numbers(session) == {OTHER}
    assert _leaks(engine) == []
    # A new search key takes over through the same command: lookups work again after it.
    new_search = ring_of([new_key], generate_key())
    with using_key_ring(new_search):
        assert rotate_keys(engine, ring=new_search).rehashed["dial_attempts.dialed_number"] == 6
        with sessions() as session:
            found = dial_attempts_for_number(
                session, dialed_number=DIALED, start=WHEN - timedelta(days=1), end=WHEN
            )
        assert len(found) == 5


def test_upgrade_seals_rows_stored_before_0008(db_url: str, ring: KeyRing) -> None:
    from alembic import command

    engine = make_engine(db_url)
    try:
        with engine.connect() as connection:
            config = alembic_config()
            config.attributes["connection"] = connection
            with connection.begin():
                command.upgrade(config, "0007")
            with connection.begin():
                connection.execute(
                    sa.text(
                        "INSERT INTO calls (id, call_id, sha256, recording, dialed_number, "
                        "status, metadata, created_at, updated_at, attempts) VALUES "
                        "(1, 'old-1', :sha, 'old-1.wav', :n, 'analyzed', :meta, :t, :t, 0)"
                    ),
                    {
                        "sha": "d" * 64,
                        "n": DIALED,
                        "meta": json.dumps(
                            {"call_id": "old-1", "recording": "old-1.wav", "dialed_number": DIALED}
                        ),
                        "t": WHEN,
                    },
                )
                for seq, (speaker, text) in enumerate(
                    [("customer", "卡号4111 1111"), ("customer", "1111 1111"), ("agent", "好")]
                ):
                    connection.execute(
                        sa.text(
                            "INSERT INTO utterances (call_id, seq, speaker, channel, start_s, "
                            "end_s, text, raw_text) VALUES (1, :seq, :sp, 0, :s, :s, :text, :text)"
                        ),
                        {"seq": seq, "sp": speaker, "s": float(seq), "text": text},
                    )
                connection.execute(
                    sa.text(
                        "INSERT INTO findings (call_id, rule, speaker, text, source, confidence,"
                        " evidence, review_status, created_at) VALUES (1, 'P09', 'customer', "
                        "'1111 1111', 'lexicon', 0.9, :ev, 'pending', :t)"
                    ),
                    {"ev": f'{{"quote": "{OTHER}"}}', "t": WHEN},
                )
                connection.execute(
                    sa.text(
                        "INSERT INTO dial_attempts (agent_id, customer_id, dialed_number, "
                        "started_at, connected, duration_s) VALUES ('A1', 'C1', :n, :t, "
                        "false, 0)"
                    ),
                    {"n": DIALED, "t": WHEN},
                )
                connection.execute(
                    sa.text(
                        "INSERT INTO do_not_call (dialed_number, reason, source, added_at) "
                        "VALUES (:n, :r, 'import', :t)"
                    ),
                    {"n": OTHER, "r": f"拒绝，号码{OTHER}", "t": WHEN},
                )
        migrate(engine)
        assert _leaks(engine) == []
        sessions = make_session_factory(engine)
        with sessions() as session:
            call = get_call(session, call_id="old-1")
            assert [u.text for u in call.utterances] == ["卡号4111 1111", "1111 1111", "好"]
            assert call.findings[0].evidence == {"quote": OTHER}
            assert call.metadata is not None and call.metadata.dialed_number == DIALED
            assert do_not_call_numbers(session) == {OTHER}
            assert (
                len(
                    dial_attempts_for_number(
                        session, dialed_number=DIALED, start=WHEN - DAY, end=WHEN + DAY
                    )
                )
                == 1
            )
            raw = session.execute(sa.text("SELECT text FROM utterances ORDER BY seq")).scalars()
            assert list(raw) == ["卡号**** ****", "**** 1111", "好"]
            stored_hash = session.execute(sa.text("SELECT dialed_number_hash FROM calls")).scalar()
            assert stored_hash == number_digest(DIALED)
    finally:
        engine.dispose()
