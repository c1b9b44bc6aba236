"""Scores in the database: history, re-scoring, scorecards and the agency report reconcile.

A synthetic month of analyses (several agents, teams and agencies, fatal and clean calls,
dismissed findings, a dial log with breaches) is stored through ``save_analysis`` exactly
as the pipeline would; every report figure is then checked against the per-call findings
read back one call at a time. No speech model is involved.
"""

from __future__ import annotations

import json
import random
import statistics
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import pytest
from openpyxl import load_workbook
from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from qa_service.cli.main import app
from qa_service.db import (
    add_do_not_call,
    agent_organisations,
    dial_attempts_between,
    do_not_call_entries,
    findings_for_call,
    get_call,
    make_engine,
    make_session_factory,
    migrate,
    save_analysis,
    save_dial_attempts,
    scored_calls,
    scores_for_call,
)
from qa_service.db.rescoring import rescore_call, rescore_period
from qa_service.db.tables import CallRow, CallScoreRow, FindingRow
from qa_service.domain import (
    CallAnalysis,
    CallMetadata,
    CallStatus,
    DialAttempt,
    DoNotCallEntry,
    Finding,
    Speaker,
)
from qa_service.errors import RubricError
from qa_service.reports.agency import build_agency_report
from qa_service.reports.exports import write_xlsx
from qa_service.reports.scorecards import TOTAL, UNGROUPED, GroupBy, Period, build_scorecards
from qa_service.reports.tables import agency_tables, scorecard_tables
from qa_service.rules.metadata import MetadataParams
from qa_service.scoring.rubric import Rubric, load_rubric, parse_rubric
from qa_service.scoring.score import DISMISSED, score_call
from qa_service.settings import PROJECT_ROOT, get_settings

CST = timezone(timedelta(hours=8))
RUBRIC_PATH = PROJECT_ROOT / "scoring" / "rubric.yaml"
VERSIONS = {"qa-service": "test"}
NOVEMBER = Period(date(2026, 11, 1), date(2026, 11, 30))
PARAMS = MetadataParams(local_tz=CST)

# agent → (team, agency) as the sidecars carry them; A5 has none, A6 names its agency
# only on its October calls (the report must still charge its November calls to AG2).
AGENTS = {
    "A1": ("T1", "AG1"),
    "A2": ("T1", "AG1"),
    "A3": ("T2", "AG2"),
    "A4": (None, "AG2"),
    "A5": (None, None),
    "A6": ("T2", "AG2"),
}
SPOKEN = ["P01", "P02", "P03", "P05", "P07", "R01", "R03", "R04", "A01", "A02", "C01", "C03"]


@dataclass
class World:
    sessions: sessionmaker[Session]
    rubric: Rubric
    call_ids: list[str]
    attempts: list[DialAttempt]
    url: str


def _findings(rng: random.Random, clean: bool) -> tuple[Finding, ...]:
    if clean:
        return ()
    out = []
    for rule in rng.sample(SPOKEN, rng.randint(1, 4)):
        if rule == "P01" and rng.random() < 0.6:
            continue  # keep fatal calls a minority
        for _ in range(rng.randint(1, 3)):
            t = round(rng.uniform(0, 60), 1)
            speaker = Speaker.CUSTOMER if rule.startswith("C") else Speaker.AGENT
            out.append(Finding(rule, "lexicon", 0.9, speaker, t, t + 1.5, "……"))
    for rule in ("M01", "M02", "M03"):
        if rng.random() < 0.15:
            out.append(Finding(rule, "metadata", 1.0))
    return tuple(sorted(out, key=lambda f: (f.start if f.start is not None else -1, f.rule)))


def _analysis(
    i: int,
    started: datetime | None,
    agent: str,
    findings: tuple[Finding, ...],
    rubric: Rubric,
    *,
    with_org: bool = True,
) -> CallAnalysis:
    team, agency = AGENTS[agent] if with_org else (None, None)
    call_id = f"syn-{i:03d}"
    detail = score_call(findings, rubric)
    return CallAnalysis(
        call_id=call_id,
        recording=f"{call_id}.wav",
        status=CallStatus.ANALYZED,
        duration_s=60.0,
        channels="stereo",
        sha256=f"{i:064x}",
        metadata=CallMetadata(
            call_id=call_id,
            recording=f"{call_id}.wav",
            agent_id=agent,
            customer_id=f"CUST{i % 7}",
            dialed_number=f"1380000{i % 7:04d}",
            started_at=started,
            team_id=team,
            agency_id=agency,
        ),
        findings=findings,
        score=detail.score,
        score_detail=detail,
    )


def _dial_log(rng: random.Random) -> list[DialAttempt]:
    attempts = []
    for day in (date(2026, 10, 20), date(2026, 11, 3), date(2026, 11, 4), date(2026, 11, 30)):
        for customer in range(4):
            hours = sorted(rng.sample(range(6, 24), rng.randint(1, 8)))
            for n, hour in enumerate(hours):
                agent = rng.choice(list(AGENTS) + ["A9"])  # A9: never in a recorded call
                attempts.append(
                    DialAttempt(
                        agent_id=agent,
                        customer_id=f"CUST{customer}",
                        dialed_number=f"1380000{customer:04d}",
                        started_at=datetime(day.year, day.month, day.day, hour, n, tzinfo=CST),
                        connected=rng.random() < 0.4,
                        duration_s=30.0,
                    )
                )
    return attempts


@pytest.fixture
def world(db_url: str) -> Iterator[World]:
    rng = random.Random(20261120)
    rubric = load_rubric(RUBRIC_PATH)
    engine: Engine = make_engine(db_url)
    migrate(engine)
    sessions = make_session_factory(engine)
    analyses = []
    for i in range(48):
        agent = list(AGENTS)[i % len(AGENTS)]
        month = 10 if i < 12 else 11
        started = datetime(2026, month, 1 + (i * 7) % 30, 8 + i % 14, i % 60, tzinfo=CST)
        with_org = not (agent == "A6" and month == 11)
        analyses.append(
            _analysis(i, started, agent, _findings(rng, i % 5 == 0), rubric, with_org=with_org)
        )
    # Local-time edges of November, one call in December, one without a start time.
    analyses.append(
        _analysis(
            48,
            datetime(2026, 11, 1, 0, 30, tzinfo=CST),
            "A1",
            (Finding("M01", "metadata", 1.0),),
            rubric,
        )
    )
    analyses.append(
        _analysis(
            49,
            datetime(2026, 11, 30, 23, 30, tzinfo=CST),
            "A3",
            (Finding("M01", "metadata", 1.0),),
            rubric,
        )
    )
    analyses.append(_analysis(50, datetime(2026, 12, 1, 9, 0, tzinfo=CST), "A1", (), rubric))
    analyses.append(_analysis(51, None, "A2", (), rubric))
    failed = CallAnalysis(
        "syn-err",
        "err.wav",
        CallStatus.ERROR,
        sha256="e" * 64,
        error={"code": "audio_decode_error", "message": "坏 / bad"},
    )
    attempts = _dial_log(rng)
    with sessions.begin() as session:
        for analysis in [*analyses, failed]:
            save_analysis(session, analysis=analysis, source_path=None, versions=VERSIONS)
        save_dial_attempts(session, attempts=attempts)
        add_do_not_call(
            session,
            entries=[
                DoNotCallEntry(
                    "13800000001", "第三方拒绝", "C02", datetime(2026, 11, 3, 12, 0, tzinfo=CST)
                ),
            ],
        )
    # Reviewers dismiss some findings; each dismissal is followed by a recomputation.
    with sessions.begin() as session:
        ids = list(session.scalars(select(FindingRow.id).order_by(FindingRow.id)))
        dismissed = ids[::6]
        session.execute(
            update(FindingRow).where(FindingRow.id.in_(dismissed)).values(review_status=DISMISSED)
        )
        touched = session.scalars(
            select(CallRow.call_id).join(FindingRow).where(FindingRow.id.in_(dismissed))
        ).unique()
        for call_id in sorted(set(touched)):
            rescore_call(session, call_id=call_id, rubric=rubric)
    yield World(sessions, rubric, [a.call_id for a in analyses], attempts, db_url)
    engine.dispose()


@dataclass
class Truth:
    """Per-call facts read back one call at a time: what every report must add up to."""

    call_id: str
    agent: str
    started: datetime | None
    standing: list[str]
    score: float | None


def _truth(world: World) -> list[Truth]:
    out = []
    with world.sessions() as session:
        for call_id in world.call_ids:
            call = get_call(session, call_id=call_id)
            reviewed = findings_for_call(session, call_id=call_id)
            assert [r.finding for r in reviewed] == list(call.findings)
            standing = [r.finding.rule for r in reviewed if r.review_status != DISMISSED]
            assert call.metadata is not None
            out.append(
                Truth(
                    call_id,
                    call.metadata.agent_id or "",
                    call.metadata.started_at,
                    standing,
                    call.score,
                )
            )
    return out


def _in_november(truth: Truth) -> bool:
    return NOVEMBER.contains(truth.started, CST)


# --- per-call scores -------------------------------------------------------------------


def test_every_stored_score_follows_the_standing_findings(world: World) -> None:
    truths = _truth(world)
    fatal_rules = world.rubric.fatal_rules
    fatal = [t for t in truths if fatal_rules & set(t.standing)]
    clean = [t for t in truths if not t.standing]
    assert fatal and clean  # the synthetic data exercises both
    assert all(t.score == 0.0 for t in fatal)
    assert all(t.score == 100.0 for t in clean)
    with world.sessions() as session:
        for t in truths:
            call = get_call(session, call_id=t.call_id)
            assert call.score_detail is not None and call.score == call.score_detail.score
            counted = sum(i.occurrences for i in call.score_detail.items)
            assert counted == len(t.standing)  # every standing finding is in the breakdown


def _a_fatal_call(world: World) -> tuple[CallScoreRow, str, list]:
    """The current score row of some call with a fatal finding, its call id and findings."""
    with world.sessions() as session:
        row = session.scalars(
            select(CallScoreRow).where(CallScoreRow.is_current.is_(True), CallScoreRow.fatal)
        ).first()
        assert row is not None
        call_id = session.get_one(CallRow, row.call_id).call_id
        return row, call_id, findings_for_call(session, call_id=call_id)


def test_breakdown_links_findings_by_database_id(world: World) -> None:
    row, _, reviewed = _a_fatal_call(world)
    by_id = {r.finding_id: r for r in reviewed}
    for item in row.breakdown["items"]:
        assert len(item["finding_ids"]) == item["occurrences"]
        for index, finding_id in zip(item["finding_indexes"], item["finding_ids"], strict=True):
            assert reviewed[index].finding_id == finding_id
            assert by_id[finding_id].review_status != DISMISSED


# --- scorecards -----------------------------------------------------------------------


@pytest.mark.parametrize("group_by", list(GroupBy))
def test_scorecard_totals_reconcile_with_per_call_findings(world: World, group_by: GroupBy) -> None:
    truths = [t for t in _truth(world) if _in_november(t)]
    with world.sessions() as session:
        start, end = NOVEMBER.previous().bounds(CST)[0], NOVEMBER.bounds(CST)[1]
        calls = scored_calls(session, start=start, end=end)
        organisations = agent_organisations(session)
    report = build_scorecards(
        calls, period=NOVEMBER, group_by=group_by, tz=CST, organisations=organisations
    )
    total = report.total.stats
    expected_rules = Counter(rule for t in truths for rule in t.standing)
    assert total.calls == len(truths) == sum(c.stats.calls for c in report.cards)
    assert dict(total.findings_by_rule) == dict(expected_rules)
    summed: Counter[str] = Counter()
    for card in report.cards:
        summed.update(card.stats.findings_by_rule)
    assert summed == expected_rules
    scores = [t.score for t in truths if t.score is not None]
    assert total.mean_score == round(statistics.fmean(scores), 2)
    assert total.median_score == round(statistics.median(scores), 2)
    assert total.fatal_calls == sum(1 for t in truths if world.rubric.fatal_rules & set(t.standing))
    assert total.passed_calls == sum(1 for s in scores if s >= world.rubric.pass_mark)
    assert sum(c.stats.passed_calls for c in report.cards) == total.passed_calls
    assert sum(c.stats.fatal_calls for c in report.cards) == total.fatal_calls
    assert total.c01_calls == sum(1 for t in truths if "C01" in t.standing)
    assert total.c03_calls == sum(1 for t in truths if "C03" in t.standing)
    assert report.total.per_100_calls("P02") == round(100 * expected_rules["P02"] / len(truths), 2)
    # The trend compares with the 30 days before November, which hold the October calls.
    october = [t for t in _truth(world) if NOVEMBER.previous().contains(t.started, CST)]
    assert report.total.trend.previous_calls == len(october) > 0
    keys = {c.key for c in report.cards}
    if group_by is GroupBy.AGENT:
        assert keys == {t.agent for t in truths}
        a6 = next(c for c in report.cards if c.key == "A6")
        assert (a6.team, a6.agency) == ("T2", "AG2")  # from A6's October calls
    elif group_by is GroupBy.TEAM:
        assert keys == {"T1", "T2", UNGROUPED}
    else:
        assert keys == {"AG1", "AG2", UNGROUPED}


def test_scorecard_for_one_agent_counts_only_their_calls(world: World) -> None:
    truths = [t for t in _truth(world) if _in_november(t) and t.agent == "A3"]
    with world.sessions() as session:
        calls = scored_calls(session)
    from qa_service.reports.scorecards import ScorecardFilter

    report = build_scorecards(
        calls,
        period=NOVEMBER,
        group_by=GroupBy.AGENT,
        tz=CST,
        filters=ScorecardFilter(agent_id="A3"),
    )
    [card] = report.cards
    assert card.key == "A3" and card.stats.calls == len(truths) == report.total.stats.calls
    assert report.undated_calls == 1


# --- agency report -----------------------------------------------------------------------


def _expected_dial(
    attempts: list[DialAttempt], agency_of: dict[str, str]
) -> dict[str, Counter[str]]:
    """An independent count of the dial-log breaches, per agency."""
    out: dict[str, Counter[str]] = {}
    days: dict[tuple[str, date], list[DialAttempt]] = {}
    for a in attempts:
        days.setdefault((a.customer_id, a.started_at.astimezone(CST).date()), []).append(a)
    for (customer, day), group in days.items():
        group.sort(key=lambda a: a.started_at)
        for n, a in enumerate(group, start=1):
            counts = out.setdefault(agency_of.get(a.agent_id, UNGROUPED), Counter())
            counts["attempts"] += 1
            hour = a.started_at.astimezone(CST).hour
            counts["forbidden"] += hour >= 22 or hour < 8
            reached = any(b.connected for b in group[: n - 1])
            if n > (3 if reached else 5):
                counts["over"] += 1
                counts[f"day:{customer}:{day}"] = 1
            dnc_since = datetime(2026, 11, 3, 12, 0, tzinfo=CST)
            counts["dnc"] += a.dialed_number == "13800000001" and a.started_at >= dnc_since
    return out


def test_agency_report_reconciles_with_calls_and_dial_log(world: World) -> None:
    truths = [t for t in _truth(world) if _in_november(t)]
    start, end = NOVEMBER.bounds(CST)
    with world.sessions() as session:
        calls = scored_calls(session, start=start, end=end)
        attempts = dial_attempts_between(session, start=start, end=end)
        organisations = agent_organisations(session)
        dnc = do_not_call_entries(session)
    report = build_agency_report(
        calls, attempts, dnc, period=NOVEMBER, params=PARAMS, organisations=organisations
    )
    totals = [r for r in report.rows if r.month == TOTAL]
    months = [r for r in report.rows if r.month != TOTAL]
    assert {r.month for r in months} == {"2026-11"}
    assert sum(r.stats.calls for r in totals) == len(truths)
    # Violations: every standing P/R/A/M finding, once.
    expected = Counter(rule for t in truths for rule in t.standing if rule[0] in "PRAM")
    got: Counter[str] = Counter()
    for row in totals:
        got.update(row.violations)
    assert got == expected
    compliant = sum(1 for t in truths if not any(r[0] in "PM" for r in t.standing))
    assert sum(r.compliant_calls for r in totals) == compliant
    fatal = sum(1 for t in truths if world.rubric.fatal_rules & set(t.standing))
    assert sum(r.stats.fatal_calls for r in totals) == fatal
    assert sum(r.stats.c01_calls for r in totals) == sum("C01" in t.standing for t in truths)
    for rule in ("M01", "M02", "M03"):
        assert sum(r.metadata_calls[rule] for r in totals) == sum(
            rule in t.standing for t in truths
        )
    # Dial log: attempts charged by agent, against an independent count.
    agency_of = {agent: org[1] or UNGROUPED for agent, org in organisations.items()}
    in_period = [a for a in world.attempts if NOVEMBER.contains(a.started_at, CST)]
    expected_dial = _expected_dial(in_period, agency_of)
    for row in totals:
        counts = expected_dial.get(row.agency, Counter())
        dial = row.dial_log
        assert dial.attempts == counts["attempts"]
        assert dial.forbidden_hour_attempts == counts["forbidden"]
        assert dial.over_frequency_attempts == counts["over"]
        assert dial.over_frequency_days == sum(1 for k in counts if k.startswith("day:"))
        assert dial.do_not_call_attempts == counts["dnc"]
    assert sum(r.dial_log.attempts for r in totals) == len(in_period)
    assert sum(r.dial_log.over_frequency_attempts for r in totals) > 0
    assert sum(r.dial_log.forbidden_hour_attempts for r in totals) > 0
    assert sum(r.dial_log.do_not_call_attempts for r in totals) > 0
    # A6's November calls carry no agency in their sidecar: charged to AG2 all the same.
    a6_calls = sum(1 for t in truths if t.agent == "A6")
    assert a6_calls and "A6" in organisations
    ag2 = next(r for r in totals if r.agency == "AG2")
    assert ag2.stats.calls == sum(1 for t in truths if t.agent in {"A3", "A4", "A6"})


# --- re-scoring ------------------------------------------------------------------------


def _v2(rubric_text: str) -> str:
    return rubric_text.replace('version: "2026.11-1"', 'version: "2027.01-1"').replace(
        "rules: [P02], deduction: 30, cap: 60", "rules: [P02], deduction: 40, cap: 80"
    )


def test_rescore_records_both_versions_and_leaves_history(world: World, tmp_path: Path) -> None:
    v2 = parse_rubric(_v2(RUBRIC_PATH.read_text(encoding="utf-8")), source=tmp_path / "v2.yaml")
    assert v2.version == "2027.01-1"
    with world.sessions() as session:
        before = {c: scores_for_call(session, call_id=c) for c in world.call_ids}
        current_before = {c.call_id: c.score for c in scored_calls(session)}
    start, end = NOVEMBER.bounds(CST)
    with world.sessions.begin() as session:
        results = rescore_period(session, rubric=v2, start=start, end=end)
    in_period = {t.call_id for t in _truth(world) if _in_november(t)}
    assert {r.call_id for r in results} == in_period
    assert all(r.recorded for r in results)  # new version: every call gets a row
    with world.sessions() as session:
        for call_id in world.call_ids:
            history = scores_for_call(session, call_id=call_id)
            if call_id not in in_period:
                assert history == before[call_id]
                continue
            assert history[:-1] == [replace(h, is_current=False) for h in before[call_id]]
            newest = history[-1]
            assert newest.is_current and newest.reason == "rescore"
            assert newest.score.rubric_version == "2027.01-1"
            assert get_call(session, call_id=call_id).score == newest.score.score
            assert sum(h.is_current for h in history) == 1
        changed = [r for r in results if r.old and r.new.score != r.old.score]
        assert changed and all(any(i.item_id == "insults" for i in r.new.items) for r in changed)
        # The old version's scores stay readable, unchanged, for comparison.
        old_scores = scored_calls(session, start=start, end=end, rubric_version="2026.11-1")
        assert {c.call_id: c.score for c in old_scores} == {c: current_before[c] for c in in_period}
    # Running it again records nothing new.
    with world.sessions.begin() as session:
        again = rescore_period(session, rubric=v2, start=start, end=end)
    assert not any(r.recorded for r in again)
    with world.sessions() as session:
        assert sum(len(scores_for_call(session, call_id=c)) for c in in_period) == sum(
            len(before[c]) + 1 for c in in_period
        )


def test_changed_rubric_under_an_old_version_is_refused(world: World) -> None:
    text = RUBRIC_PATH.read_text(encoding="utf-8").replace(
        "rules: [R03], deduction: 5, cap: 5", "rules: [R03], deduction: 6, cap: 6"
    )
    edited = parse_rubric(text)
    assert edited.version == world.rubric.version and edited.digest != world.rubric.digest
    with world.sessions() as session:
        before = session.scalars(select(CallScoreRow.id)).all()
    with pytest.raises(RubricError, match="bump the version"), world.sessions.begin() as session:
        rescore_period(session, rubric=edited)
    with world.sessions() as session:
        assert session.scalars(select(CallScoreRow.id)).all() == before


def test_dismissal_then_recompute_is_recorded_once(world: World) -> None:
    _, call_id, reviewed = _a_fatal_call(world)
    fatal_ids = [r.finding_id for r in reviewed if r.finding.rule in world.rubric.fatal_rules]
    with world.sessions.begin() as session:
        session.execute(
            update(FindingRow).where(FindingRow.id.in_(fatal_ids)).values(review_status=DISMISSED)
        )
        first = rescore_call(session, call_id=call_id, rubric=world.rubric)
        second = rescore_call(session, call_id=call_id, rubric=world.rubric)
    assert first.recorded and not first.new.fatal and first.new.score > 0
    assert first.old is not None and first.old.fatal
    assert not second.recorded
    with world.sessions() as session:
        history = scores_for_call(session, call_id=call_id)
    assert history[-1].reason == "review" and history[-1].score == first.new
    assert history[0].score.fatal  # the analysis-time score is kept as it was


def test_reanalysis_appends_a_score_and_a_failed_rerun_clears_current(world: World) -> None:
    call_id = world.call_ids[20]
    with world.sessions() as session:
        stored = get_call(session, call_id=call_id)
        count = len(scores_for_call(session, call_id=call_id))
    with world.sessions.begin() as session:
        save_analysis(session, analysis=stored, source_path=None, versions=VERSIONS)
    with world.sessions() as session:
        history = scores_for_call(session, call_id=call_id)
    assert len(history) == count + 1 and [h.is_current for h in history][-2:] == [False, True]
    assert history[-1].reason == "analysis"
    failed = replace(
        stored,
        status=CallStatus.ERROR,
        findings=(),
        score=None,
        score_detail=None,
        error={"code": "model_error", "message": "模型缺失 / model missing"},
    )
    with world.sessions.begin() as session:
        save_analysis(session, analysis=failed, source_path=None, versions=VERSIONS)
    with world.sessions() as session:
        assert not any(h.is_current for h in scores_for_call(session, call_id=call_id))
        row = session.scalars(select(CallRow).where(CallRow.call_id == call_id)).one()
        assert (row.score, row.rubric_version) == (None, None)
        assert get_call(session, call_id=call_id).score_detail is None


# --- exports and CLI -------------------------------------------------------------------


def test_xlsx_export_opens_with_chinese_headers(world: World, tmp_path: Path) -> None:
    start, end = NOVEMBER.bounds(CST)
    with world.sessions() as session:
        calls = scored_calls(session, start=start, end=end)
        attempts = dial_attempts_between(session, start=start, end=end)
    cards = build_scorecards(calls, period=NOVEMBER, group_by=GroupBy.AGENT, tz=CST)
    agency = build_agency_report(calls, attempts, [], period=NOVEMBER, params=PARAMS)
    path = write_xlsx([*scorecard_tables(cards), *agency_tables(agency)], tmp_path / "r.xlsx")
    book = load_workbook(path)
    assert len(book.sheetnames) == 4 and book.sheetnames[0].startswith("质检评分卡")
    sheet = book.worksheets[0]
    headers = [c.value for c in sheet[1]]
    assert headers[:5] == ["坐席", "组别", "机构", "通话数", "已评分"]
    assert sheet[1][0].font.bold and sheet.freeze_panes == "A2"
    assert sheet.max_row == len(cards.cards) + 2  # header, groups, 合计
    assert sheet.cell(row=sheet.max_row, column=1).value == TOTAL
    assert sheet.cell(row=sheet.max_row, column=4).value == cards.total.stats.calls
    pass_rate = headers.index("及格率") + 1
    assert sheet.cell(row=2, column=pass_rate).number_format == "0.0%"
    assert [c.value for c in book.worksheets[2][1]][:3] == ["机构", "月份", "通话数"]


@pytest.fixture
def cli_env(world: World, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    monkeypatch.setenv("DATABASE_URL", world.url)
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()


def test_cli_scorecard_json_and_xlsx(world: World, cli_env: CliRunner, tmp_path: Path) -> None:
    result = cli_env.invoke(
        app, ["scorecard", "--from", "2026-11-01", "--to", "2026-11-30", "--format", "json"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    truths = [t for t in _truth(world) if _in_november(t)]
    assert data["total"]["calls"] == len(truths)
    assert data["previous_period"] == {"from": "2026-10-02", "to": "2026-10-31"}
    assert sum(c["calls"] for c in data["scorecards"]) == len(truths)

    out = tmp_path / "cards.xlsx"
    result = cli_env.invoke(
        app,
        [
            "scorecard",
            "--by",
            "team",
            "--from",
            "2026-11-01",
            "--to",
            "2026-11-30",
            "--format",
            "xlsx",
            "--output",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    assert load_workbook(out).worksheets[0]["A1"].value == "组别"

    result = cli_env.invoke(app, ["scorecard", "--agent", "A1", "--lang", "both"])
    assert result.exit_code == 0, result.output
    assert "平均分 (mean score)" in result.stdout and "A1" in result.stdout
    assert "合计" in result.stdout


def test_cli_agency_report_csv(world: World, cli_env: CliRunner, tmp_path: Path) -> None:
    out = tmp_path / "agency.csv"
    result = cli_env.invoke(
        app,
        [
            "report",
            "agency",
            "--from",
            "2026-11-01",
            "--to",
            "2026-11-30",
            "--format",
            "csv",
            "--output",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    raw = out.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # Excel needs the BOM to read UTF-8 Chinese
    lines = raw.decode("utf-8-sig").splitlines()
    assert lines[0].startswith("机构,月份,通话数,合规通话,合规率")
    assert (tmp_path / "agency.violations.csv").is_file()
    result = cli_env.invoke(app, ["report", "agency", "--agency", "AG1", "--format", "json"])
    assert result.exit_code == 0, result.output
    assert {row["agency"] for row in json.loads(result.stdout)["rows"]} == {"AG1"}


def test_cli_rescore_prints_old_and_new(world: World, cli_env: CliRunner, tmp_path: Path) -> None:
    v2 = tmp_path / "rubric-v2.yaml"
    v2.write_text(_v2(RUBRIC_PATH.read_text(encoding="utf-8")), encoding="utf-8")
    args = ["rescore", "--rubric", str(v2), "--from", "2026-11-01", "--to", "2026-11-30"]
    dry = cli_env.invoke(app, [*args, "--dry-run", "--format", "json"])
    assert dry.exit_code == 0, dry.output
    assert not any(c["recorded"] for c in json.loads(dry.stdout)["calls"])
    result = cli_env.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "原评分" in result.stdout and "2027.01-1" in result.stdout
    with world.sessions() as session:
        versions = {
            c.rubric_version
            for c in scored_calls(
                session, start=NOVEMBER.bounds(CST)[0], end=NOVEMBER.bounds(CST)[1]
            )
        }
    assert versions == {"2027.01-1"}
    missing = cli_env.invoke(app, ["rescore", "--rubric-version", "1999.01-1"])
    assert missing.exit_code == 2 and "1999.01-1" in missing.output
    broken = tmp_path / "broken.yaml"
    broken.write_text("version: [\n", encoding="utf-8")
    refused = cli_env.invoke(app, ["rescore", "--rubric", str(broken)])
    assert refused.exit_code == 2 and "invalid_rubric" in refused.output


def test_cli_without_data_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'empty.sqlite3'}")
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, ["scorecard"])
        bad = CliRunner().invoke(app, ["scorecard", "--from", "2026-13-01"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0 and "no analysed calls" in result.output
    assert bad.exit_code == 2 and "YYYY-MM-DD" in bad.output


def test_stored_times_are_utc_and_aware(world: World) -> None:
    with world.sessions() as session:
        calls = scored_calls(session)
    dated = [c.started_at for c in calls if c.started_at is not None]
    assert dated and all(d.tzinfo is not None and d.utcoffset() == UTC.utcoffset(d) for d in dated)
