"""The agency evaluation report carries the complaint figures (issue 11 item 6).

Complaints are seeded through the register (``complaints_support``) about calls of two
agencies over two months, plus one whose customer had no call in the link window (未分组),
one received just before and one just after local midnight at the month's turn, and one
after the period. The report's rows (by level, by outcome, per 1,000 calls) and the
``report agency --format xlsx`` workbook are checked against counts made here from the
seed specification. SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
import random
import struct
import wave
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from api_support import CST, Service, make_service
from complaints_support import seed_complaint
from openpyxl import load_workbook
from typer.testing import CliRunner

from qa_service.cli.main import app
from qa_service.cli.support import CLI_READER
from qa_service.complaints.vocabulary import Level, Outcome
from qa_service.db.repository import save_analysis
from qa_service.db.scores import agent_organisations, dial_attempts_between, scored_calls
from qa_service.domain import CallAnalysis, CallMetadata, CallStatus, Finding, Speaker, Utterance
from qa_service.reports.agency import build_agency_report
from qa_service.reports.scorecards import TOTAL, UNGROUPED, Period
from qa_service.reports.tables import agency_tables
from qa_service.rules.metadata import MetadataParams
from qa_service.settings import get_settings
from qa_service.trends.records import load_complaints

PERIOD = Period(datetime(2026, 10, 1).date(), datetime(2026, 11, 30).date())
LINK_DAYS = 30


def _at(month: int, day: int, hour: int = 10, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=CST)


@dataclass(frozen=True)
class CallSpec:
    call_id: str
    agency: str
    started_at: datetime


@dataclass(frozen=True)
class ComplaintSpec:
    call_id: str  # the customer is that call's
    received_at: datetime
    level: Level
    outcome: Outcome | None = None


CALLS = [
    CallSpec("a1-oct", "AG1", _at(10, 10)),
    CallSpec("a1-oct2", "AG1", _at(10, 20)),
    CallSpec("a1-nov1", "AG1", _at(11, 3)),
    CallSpec("a1-nov2", "AG1", _at(11, 5)),
    CallSpec("a1-nov3", "AG1", _at(11, 12)),
    CallSpec("a1-nov4", "AG1", _at(11, 13)),  # calls nobody complained about
    CallSpec("a1-nov5", "AG1", _at(11, 30, 23, 50)),
    CallSpec("a2-oct", "AG2", _at(10, 25)),
    CallSpec("a2-oct2", "AG2", _at(10, 3)),
    CallSpec("a2-nov1", "AG2", _at(11, 2)),
    CallSpec("a2-nov2", "AG2", _at(11, 15)),
    CallSpec("old", "AG2", _at(9, 20)),  # before the period; too old to link in November
]
COMPLAINTS = [
    ComplaintSpec("a1-oct", _at(10, 15, 9), Level.GENERAL, Outcome.AT_FAULT),
    ComplaintSpec("a1-oct2", _at(10, 31, 23, 30), Level.SERIOUS),  # October, local time
    ComplaintSpec("a1-oct2", _at(11, 1, 0, 30), Level.MAJOR, Outcome.PARTLY_AT_FAULT),  # Nov
    ComplaintSpec("a1-nov2", _at(11, 6), Level.GENERAL, Outcome.NOT_AT_FAULT),
    ComplaintSpec("a1-nov3", _at(11, 20), Level.SERIOUS),
    ComplaintSpec("a2-oct", _at(10, 28), Level.MAJOR, Outcome.AT_FAULT),
    ComplaintSpec("a2-nov1", _at(11, 10), Level.GENERAL, Outcome.AT_FAULT),
    ComplaintSpec("a2-nov2", _at(11, 16), Level.GENERAL),
    ComplaintSpec("old", _at(11, 20), Level.SERIOUS, Outcome.NOT_AT_FAULT),  # no linked call
    ComplaintSpec("a2-nov2", _at(12, 2), Level.MAJOR),  # after the period
]
LEVEL_HEADERS = {Level.GENERAL: "一般投诉", Level.SERIOUS: "严重投诉", Level.MAJOR: "重大投诉"}
OUTCOME_HEADERS = {
    Outcome.AT_FAULT: "有责投诉",
    Outcome.PARTLY_AT_FAULT: "部分有责投诉",
    Outcome.NOT_AT_FAULT: "无责投诉",
    None: "未结投诉",
}


def _seed_call(service: Service, spec: CallSpec, tmp: Path) -> None:
    """An analysed call with a recording of its own (the audio store is content-addressed)."""
    path = tmp / f"{spec.call_id}.wav"
    rng = random.Random(spec.call_id)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(b"".join(struct.pack("<h", rng.randint(-900, 900)) for _ in range(800)))
    stored = service.state.store.put_file(path, ext=".wav")
    team, agent = ("T1", "A1") if spec.agency == "AG1" else ("T3", "A3")
    text = "您好，这里是信用卡中心"
    analysis = CallAnalysis(
        call_id=spec.call_id,
        recording=path.name,
        status=CallStatus.ANALYZED,
        duration_s=0.1,
        channels="mono",
        sha256=stored.sha256,
        metadata=CallMetadata(
            call_id=spec.call_id,
            recording=path.name,
            agent_id=agent,
            team_id=team,
            agency_id=spec.agency,
            started_at=spec.started_at,
            channels="mono",
            has_sidecar=True,
        ),
        utterances=(Utterance(Speaker.AGENT, 0.0, 0.1, text, 0),),
        findings=(Finding("R03", "lexicon", 0.9, Speaker.AGENT, 0.0, 0.1, text),),
        score=90.0,
    )
    with service.state.sessions.begin() as session:
        save_analysis(session, analysis=analysis, source_path=None, versions={})


@pytest.fixture
def service(db_url: str, tmp_path: Path) -> Iterator[Service]:
    service = make_service(db_url, tmp_path, complaint_link_days=LINK_DAYS)
    for spec in CALLS:
        _seed_call(service, spec, tmp_path)
    for complaint in COMPLAINTS:
        seed_complaint(
            service,
            complaint.call_id,
            received_at=complaint.received_at,
            level=complaint.level,
            outcome=complaint.outcome,
        )
    yield service
    service.state.engine.dispose()


def _month(moment: datetime) -> str:
    return moment.astimezone(CST).strftime("%Y-%m")


def _expected() -> dict[tuple[str, str], dict[str, Any]]:
    """Per (agency, month) and (agency, 合计): the header → value the report must show."""
    calls = {c.call_id: c for c in CALLS}
    in_period = [c for c in CALLS if PERIOD.contains(c.started_at, CST)]
    call_counts = Counter((c.agency, _month(c.started_at)) for c in in_period)
    call_counts.update(Counter((c.agency, TOTAL) for c in in_period))
    levels: Counter[tuple[str, str, str]] = Counter()
    outcomes: Counter[tuple[str, str, str]] = Counter()
    keys: set[tuple[str, str]] = set(call_counts)
    for complaint in COMPLAINTS:
        if not PERIOD.contains(complaint.received_at, CST):
            continue
        call = calls[complaint.call_id]
        window = timedelta(days=LINK_DAYS)
        linked = call.started_at < complaint.received_at <= call.started_at + window
        agency = call.agency if linked else UNGROUPED
        for month in (_month(complaint.received_at), TOTAL):
            keys.add((agency, month))
            levels[(agency, month, LEVEL_HEADERS[complaint.level])] += 1
            outcomes[(agency, month, OUTCOME_HEADERS[complaint.outcome])] += 1
    expected = {}
    for agency, month in keys:
        row: dict[str, Any] = {"通话数": call_counts.get((agency, month), 0)}
        for header in LEVEL_HEADERS.values():
            row[header] = levels[(agency, month, header)]
        for header in OUTCOME_HEADERS.values():
            row[header] = outcomes[(agency, month, header)]
        row["投诉数"] = sum(row[h] for h in LEVEL_HEADERS.values())
        calls_n = row["通话数"]
        row["每千通投诉"] = round(1000 * row["投诉数"] / calls_n, 2) if calls_n else None
        expected[(agency, month)] = row
    return expected


def _rows_by_header(headers: list[str], rows: list[list[Any]]) -> dict[tuple[str, str], dict]:
    return {(r[0], r[1]): dict(zip(headers, r, strict=True)) for r in rows}


def _check(actual: dict[tuple[str, str], dict[str, Any]]) -> None:
    expected = _expected()
    assert set(actual) == set(expected)
    for key, row in expected.items():
        assert {h: actual[key][h] for h in row} == row, key


def test_report_tables_count_the_registered_complaints(service: Service) -> None:
    tz = service.state.settings.local_tz
    start, end = PERIOD.bounds(tz)
    with service.state.sessions() as session:
        report = build_agency_report(
            scored_calls(session, start=start, end=end),
            dial_attempts_between(session, start=start, end=end),
            [],
            period=PERIOD,
            params=MetadataParams.from_settings(service.state.settings),
            organisations=agent_organisations(session),
            complaints=load_complaints(session, principal=CLI_READER, start=start, end=end),
        )
    summary = agency_tables(report)[0]
    headers = [column.zh for column in summary.columns]
    rows = [[row.get(column.key) for column in summary.columns] for row in summary.rows]
    _check(_rows_by_header(headers, rows))
    # The figures the expectation relies on, spelled out once.
    ag1_nov = next(r for r in report.rows if (r.agency, r.month) == ("AG1", "2026-11"))
    assert ag1_nov.complaints.total == 3 and ag1_nov.stats.calls == 5
    assert ag1_nov.complaints_per_1000_calls == 600.0
    assert dict(ag1_nov.complaints.by_outcome)["open"] == 1
    ungrouped = next(r for r in report.rows if (r.agency, r.month) == (UNGROUPED, TOTAL))
    assert ungrouped.complaints.total == 1 and ungrouped.complaints_per_1000_calls is None


@pytest.fixture
def cli(service: Service, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    settings = service.state.settings
    monkeypatch.setenv("DATABASE_URL", settings.resolved_database_url)
    monkeypatch.setenv("QA_DATA_DIR", str(settings.data_dir))
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()


def test_cli_xlsx_and_json_carry_the_complaint_figures(
    service: Service, cli: CliRunner, tmp_path: Path
) -> None:
    out = tmp_path / "agency.xlsx"
    period = ["--from", "2026-10-01", "--to", "2026-11-30"]
    result = cli.invoke(
        app, ["report", "agency", *period, "--format", "xlsx", "--output", str(out)]
    )
    assert result.exit_code == 0, result.output
    sheet = load_workbook(out).worksheets[0]
    values = [[cell.value for cell in row] for row in sheet.iter_rows()]
    headers = [str(h) for h in values[0]]
    assert headers[:2] == ["机构", "月份"]
    for header in ("投诉数", *LEVEL_HEADERS.values(), *OUTCOME_HEADERS.values(), "每千通投诉"):
        assert header in headers
    _check(_rows_by_header(headers, values[1:]))

    result = cli.invoke(app, ["report", "agency", *period, "--agency", "AG2", "--format", "json"])
    assert result.exit_code == 0, result.output
    rows = {(r["agency"], r["month"]): r for r in json.loads(result.stdout)["rows"]}
    assert set(rows) == {("AG2", "2026-10"), ("AG2", "2026-11"), ("AG2", TOTAL)}
    assert rows[("AG2", TOTAL)]["complaints"] == {
        "total": 3,
        "by_level": {"general": 2, "serious": 0, "major": 1},
        "by_outcome": {"at_fault": 2, "partly_at_fault": 0, "not_at_fault": 0, "open": 1},
        "per_1000_calls": 750.0,
    }
