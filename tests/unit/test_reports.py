"""Scorecard and agency-report figures on hand-made calls, exports, and sidecar organisation."""

from __future__ import annotations

import json
import unicodedata
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import pytest

from qa_service.domain import DialAttempt, DoNotCallEntry
from qa_service.errors import InputError
from qa_service.ingest.recordings import load_metadata
from qa_service.reports.agency import build_agency_report
from qa_service.reports.exports import Column, Lang, Table, csv_text, render_text, write_csv
from qa_service.reports.scorecards import (
    TOTAL,
    UNGROUPED,
    GroupBy,
    Period,
    ScorecardFilter,
    build_scorecards,
)
from qa_service.rules.metadata import MetadataParams
from qa_service.scoring.score import ScoredCall

CST = timezone(timedelta(hours=8))
NOV = Period(date(2026, 11, 1), date(2026, 11, 30))
PARAMS = MetadataParams(local_tz=CST)


def _call(
    call_id: str,
    when: datetime | None,
    score: float | None,
    *,
    agent: str = "A1",
    team: str | None = "T1",
    agency: str | None = "AG1",
    rules: dict[str, int] | None = None,
    fatal: bool = False,
) -> ScoredCall:
    return ScoredCall(
        call_id=call_id,
        agent_id=agent,
        team_id=team,
        agency_id=agency,
        started_at=when,
        score=score,
        passed=None if score is None else (not fatal and score >= 80),
        fatal=None if score is None else fatal,
        rubric_version=None if score is None else "v1",
        rule_counts=rules or {},
    )


def _nov(day: int, hour: int = 10, minute: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=CST)


# --- periods -----------------------------------------------------------------------------


def test_previous_period_has_equal_length_and_ends_the_day_before() -> None:
    assert NOV.days == 30
    assert NOV.previous() == Period(date(2026, 10, 2), date(2026, 10, 31))
    week = Period(date(2026, 3, 2), date(2026, 3, 8))
    assert week.previous() == Period(date(2026, 2, 23), date(2026, 3, 1))


def test_period_days_are_local_days() -> None:
    start, end = NOV.bounds(CST)
    assert start == datetime(2026, 11, 1, tzinfo=CST) and end == datetime(2026, 12, 1, tzinfo=CST)
    late = datetime(2026, 11, 30, 15, 30, tzinfo=UTC)  # 23:30 local on the 30th
    early = datetime(2026, 10, 31, 16, 30, tzinfo=UTC)  # 00:30 local on the 1st
    assert NOV.contains(late, CST) and NOV.contains(early, CST)
    assert not NOV.contains(datetime(2026, 11, 30, 16, 0, tzinfo=UTC), CST)
    assert not NOV.contains(None, CST)


def test_reversed_period_is_refused() -> None:
    with pytest.raises(InputError, match="before start date"):
        Period(date(2026, 11, 30), date(2026, 11, 1))


# --- scorecards --------------------------------------------------------------------------


def test_scorecard_figures() -> None:
    calls = [
        _call("1", _nov(2), 100),
        _call("2", _nov(3), 70, rules={"P02": 1, "M01": 1, "C01": 1}),
        _call("3", _nov(4), 0, rules={"P01": 2, "C03": 1}, fatal=True),
        _call("4", _nov(5), None, rules={"A01": 1}),  # analysed before any rubric
        _call("5", _nov(6), 90, agent="A2", rules={"C01": 2}),
        _call("old", datetime(2026, 10, 15, 9, tzinfo=CST), 50, rules={"P02": 1}),
    ]
    report = build_scorecards(calls, period=NOV, group_by=GroupBy.AGENT, tz=CST)
    a1, a2 = report.cards
    assert (a1.key, a2.key) == ("A1", "A2")
    s = a1.stats
    assert (s.calls, s.scored_calls) == (4, 3)
    assert s.mean_score == round((100 + 70 + 0) / 3, 2) and s.median_score == 70
    assert (s.passed_calls, s.pass_rate) == (1, round(1 / 3, 4))
    assert (s.fatal_calls, s.fatal_rate) == (1, round(1 / 3, 4))
    assert (s.c01_calls, s.c01_rate, s.c03_calls) == (1, 0.25, 1)  # over analysed calls
    assert dict(s.findings_by_rule) == {"P01": 2, "P02": 1, "C01": 1, "C03": 1, "A01": 1, "M01": 1}
    assert a1.per_100_calls("P01") == 50.0 and a1.per_100_calls("R01") == 0.0
    assert a1.trend.previous_calls == 1 and a1.trend.previous_mean_score == 50
    assert a1.trend.mean_score_delta == 6.67  # 56.67 - 50: the means as shown
    assert a2.stats.c01_calls == 1 and a2.stats.findings_by_rule == {"C01": 2}
    assert a2.trend.previous_calls == 0 and a2.trend.mean_score_delta is None
    assert report.total.key == TOTAL and report.total.stats.calls == 5


def test_grouping_filters_and_undated_calls() -> None:
    calls = [
        _call("1", _nov(2), 90, agent="A1", team="T1", agency="AG1"),
        _call("2", _nov(2), 90, agent="A2", team=None, agency="AG1"),
        _call("3", _nov(2), 90, agent="A3", team=None, agency=None),
        _call("4", None, 90, agent="A3"),
    ]
    by_team = build_scorecards(calls, period=NOV, group_by=GroupBy.TEAM, tz=CST)
    assert [(c.key, c.stats.calls) for c in by_team.cards] == [("T1", 1), (UNGROUPED, 2)]
    assert by_team.undated_calls == 1
    ungrouped = build_scorecards(
        calls,
        period=NOV,
        group_by=GroupBy.AGENT,
        tz=CST,
        filters=ScorecardFilter(agency_id=UNGROUPED),
    )
    assert [c.key for c in ungrouped.cards] == ["A3"]
    # An agent known (from other calls) to belong to AG9 is charged there.
    moved = build_scorecards(
        calls, period=NOV, group_by=GroupBy.AGENCY, tz=CST, organisations={"A3": ("T9", "AG9")}
    )
    assert [c.key for c in moved.cards] == ["AG1", "AG9"]


def test_scorecard_json_keys_are_stable_english() -> None:
    report = build_scorecards(
        [_call("1", _nov(2), 70, rules={"P02": 1})], period=NOV, group_by=GroupBy.AGENT, tz=CST
    )
    data = json.loads(json.dumps(report.as_dict()))
    card = data["scorecards"][0]
    assert card["key"] == "A1" and card["mean_score"] == 70
    assert card["findings_by_rule"]["P02"] == {"count": 1, "calls": 1, "per_100_calls": 100.0}
    assert card["trend"]["previous_calls"] == 0


# --- agency report -----------------------------------------------------------------------


def _attempt(
    day: int,
    hour: int,
    minute: int = 0,
    *,
    customer: str = "C1",
    agent: str = "A1",
    connected: bool = False,
    number: str = "13800000001",
) -> DialAttempt:
    return DialAttempt(agent, customer, number, _nov(day, hour, minute), connected, 10.0)


def test_compliance_counts_only_p_and_m_findings() -> None:
    calls = [
        _call("1", _nov(2), 100),
        _call("2", _nov(2), 90, rules={"R01": 1, "A01": 2, "C01": 1}),  # still compliant
        _call("3", _nov(2), 85, rules={"M02": 1}),
        _call("4", _nov(2), 70, rules={"P02": 1, "R03": 1}),
    ]
    report = build_agency_report(calls, [], [], period=NOV, params=PARAMS)
    month, total = report.rows
    assert (month.month, total.month) == ("2026-11", TOTAL)
    assert (month.compliant_calls, month.compliance_rate) == (2, 0.5)
    assert dict(month.violations) == {"P02": 1, "R01": 1, "R03": 1, "A01": 2, "M02": 1}
    assert month.violation_share("A01") == round(2 / 6, 4)
    assert dict(month.metadata_calls) == {"M01": 0, "M02": 1, "M03": 0}
    assert month.stats.c01_calls == 1


def test_dial_log_breaches() -> None:
    attempts = [
        _attempt(2, 7, 59),  # before 08:00: forbidden
        _attempt(2, 8, 0),
        _attempt(2, 22, 0),  # 22:00: forbidden
        *[_attempt(3, 9 + i) for i in range(6)],  # never reached: the 6th is over
        _attempt(4, 9, connected=True, customer="C2", number="139"),
        *[_attempt(4, 10 + i, customer="C2", number="139") for i in range(3)],  # reached: 4th
        _attempt(5, 9, agent="A9"),  # an agent nobody placed in an agency
    ]
    dnc = [DoNotCallEntry("13800000001", "拒绝", "C02", _nov(3, 12))]
    report = build_agency_report(
        [], attempts, dnc, period=NOV, params=PARAMS, organisations={"A1": ("T1", "AG1")}
    )
    rows = {(r.agency, r.month): r for r in report.rows}
    ag1 = rows[("AG1", TOTAL)].dial_log
    assert ag1.attempts == 13
    assert ag1.forbidden_hour_attempts == 2
    assert ag1.over_frequency_attempts == 2 and ag1.over_frequency_days == 2
    assert ag1.do_not_call_attempts == 3  # Nov 3 from 12:00 on; earlier ones were allowed
    stray = rows[(UNGROUPED, TOTAL)].dial_log
    assert (stray.attempts, stray.do_not_call_attempts) == (1, 1)
    only = build_agency_report(
        [],
        attempts,
        dnc,
        period=NOV,
        params=PARAMS,
        organisations={"A1": ("T1", "AG1")},
        agency="AG1",
    )
    assert {r.agency for r in only.rows} == {"AG1"}


def test_frequency_is_judged_per_customer_across_agencies() -> None:
    # Five attempts by AG1 and a sixth by AG2: the breach is AG2's.
    attempts = [_attempt(2, 9 + i) for i in range(5)] + [_attempt(2, 15, agent="B1")]
    report = build_agency_report(
        [],
        attempts,
        [],
        period=NOV,
        params=PARAMS,
        organisations={"A1": (None, "AG1"), "B1": (None, "AG2")},
    )
    totals = {r.agency: r.dial_log for r in report.rows if r.month == TOTAL}
    assert totals["AG1"].over_frequency_attempts == 0
    assert totals["AG2"].over_frequency_attempts == 1


# --- exports and sidecar -------------------------------------------------------------------

_TABLE = Table(
    name="t",
    title_zh="表",
    title_en="Table",
    columns=(
        Column("name", "坐席", "agent"),
        Column("rate", "及格率", "pass rate", "percent"),
        Column("delta", "变化", "change", "delta"),
    ),
    rows=({"name": "张三", "rate": 0.5, "delta": 3.0}, {"name": "A1", "rate": None, "delta": -1}),
)


def test_text_table_aligns_chinese() -> None:
    text = render_text([_TABLE])
    lines = text.splitlines()[1:5]
    header, _, first, second = lines
    assert header.startswith("坐席") and first.startswith("张三")
    assert "-1.00" in second and "+3.00" in first  # changes are signed

    def width(line: str) -> int:
        return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in line)

    # Every line ends at the same display column: CJK characters count double.
    assert len({width(line) for line in lines}) == 1


def test_csv_headers_in_the_language_asked(tmp_path: Path) -> None:
    assert csv_text(_TABLE).splitlines()[0] == "坐席,及格率,变化"
    assert csv_text(_TABLE, Lang.EN).splitlines()[0] == "agent,pass rate,change"
    assert csv_text(_TABLE, Lang.BOTH).splitlines()[0].startswith("坐席 (agent),")
    paths = write_csv([_TABLE, _TABLE], tmp_path / "out.csv")
    assert paths == [tmp_path / "out.csv", tmp_path / "out.t.csv"]
    assert paths[0].read_bytes().startswith("\ufeff坐席".encode())


def test_sidecar_team_and_agency(tmp_path: Path) -> None:
    recording = tmp_path / "c.wav"
    sidecar = {"call_id": "c", "agent_id": "A1", "team_id": 7, "agency_id": " "}
    recording.with_suffix(".json").write_text(json.dumps(sidecar), encoding="utf-8")
    meta = load_metadata(recording)
    assert (meta.team_id, meta.agency_id) == ("7", None)
