"""The reports as tables: which columns, in which order, under which Chinese header.

Separate from the figures (:mod:`scorecards`, :mod:`reports`) so that the numbers can be
tested on their own and the layout changed without touching them; one place decides what
a supervisor or the bank sees in the terminal, in CSV and in Excel.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from qa_service.reports.agency import AgencyMonth, AgencyReport
from qa_service.reports.exports import Column, Table
from qa_service.reports.scorecards import GroupBy, Scorecard, ScorecardReport
from qa_service.rules.catalogue import RULES

if TYPE_CHECKING:  # rescoring pulls in the database layer; only its type is needed here
    from qa_service.db.rescoring import RescoreResult

_GROUP_COLUMNS = {
    GroupBy.AGENT: (
        Column("key", "坐席", "agent"),
        Column("team", "组别", "team"),
        Column("agency", "机构", "agency"),
    ),
    GroupBy.TEAM: (Column("key", "组别", "team"), Column("agency", "机构", "agency")),
    GroupBy.AGENCY: (Column("key", "机构", "agency"),),
}

_SCORECARD_COLUMNS = (
    Column("calls", "通话数", "calls", "int"),
    Column("scored_calls", "已评分", "scored", "int"),
    Column("mean_score", "平均分", "mean score", "float"),
    Column("median_score", "中位数", "median score", "float"),
    Column("passed_calls", "及格通话", "passed", "int"),
    Column("pass_rate", "及格率", "pass rate", "percent"),
    Column("fatal_calls", "一票否决通话", "fatal calls", "int"),
    Column("fatal_rate", "一票否决率", "fatal rate", "percent"),
    Column("c01_rate", "投诉倾向率(C01)", "complaint signal rate (C01)", "percent"),
    Column("c03_rate", "还款困难率(C03)", "hardship rate (C03)", "percent"),
    Column("findings", "发现数", "findings", "int"),
    Column("findings_per_100", "每百通发现", "findings per 100 calls", "float"),
    Column("previous_calls", "上期通话数", "previous calls", "int"),
    Column("previous_mean_score", "上期平均分", "previous mean score", "float"),
    Column("mean_score_delta", "平均分变化", "mean score change", "delta"),
    Column("pass_rate_delta", "及格率变化", "pass rate change", "delta_percent"),
    Column("fatal_rate_delta", "一票否决率变化", "fatal rate change", "delta_percent"),
    Column("rubric_versions", "评分表版本", "rubric version", "text"),
)

_RULE_COLUMNS = (
    Column("rule", "规则", "rule"),
    Column("rule_name", "规则名称", "rule name"),
    Column("count", "次数", "findings", "int"),
    Column("calls_with", "涉及通话", "calls with it", "int"),
    Column("per_100_calls", "每百通", "per 100 calls", "float"),
)


def _rule_name(rule: str) -> str:
    known = RULES.get(rule)
    return known.name_zh if known else ""


def _card_row(card: Scorecard) -> dict[str, Any]:
    stats, trend = card.stats, card.trend
    return {
        "key": card.key,
        "team": card.team,
        "agency": card.agency,
        **{k: getattr(stats, k) for k in stats.__dataclass_fields__},
        "findings_per_100": (round(100 * stats.findings / stats.calls, 2) if stats.calls else None),
        "previous_calls": trend.previous_calls,
        "previous_mean_score": trend.previous_mean_score,
        "mean_score_delta": trend.mean_score_delta,
        "pass_rate_delta": trend.pass_rate_delta,
        "fatal_rate_delta": trend.fatal_rate_delta,
        "rubric_versions": "、".join(stats.rubric_versions),
    }


def scorecard_tables(report: ScorecardReport) -> list[Table]:
    """The scorecard (one row per group, then 合计) and its findings by rule."""
    group = _GROUP_COLUMNS[report.group_by]
    cards = [*report.cards, report.total]
    period = f"{report.period.label}，对比 {report.previous.label}"
    summary = Table(
        name="scorecard",
        title_zh=f"质检评分卡 {period}",
        title_en=f"QA scorecard {report.period.label} vs {report.previous.label}",
        columns=(*group, *_SCORECARD_COLUMNS),
        rows=tuple(_card_row(card) for card in cards),
    )
    rule_rows = []
    for card in cards:
        for rule, count in card.stats.findings_by_rule.items():
            rule_rows.append(
                {
                    "key": card.key,
                    "rule": rule,
                    "rule_name": _rule_name(rule),
                    "count": count,
                    "calls_with": card.stats.calls_by_rule.get(rule, 0),
                    "per_100_calls": card.per_100_calls(rule),
                }
            )
    rules = Table(
        name="rules",
        title_zh="各规则发现（每百通）",
        title_en="Findings by rule (per 100 calls)",
        columns=(group[0], *_RULE_COLUMNS),
        rows=tuple(rule_rows),
    )
    return [summary, rules]


_AGENCY_COLUMNS = (
    Column("agency", "机构", "agency"),
    Column("month", "月份", "month"),
    Column("calls", "通话数", "calls", "int"),
    Column("compliant_calls", "合规通话", "compliant calls", "int"),
    Column("compliance_rate", "合规率", "compliance rate", "percent"),
    Column("mean_score", "平均分", "mean score", "float"),
    Column("pass_rate", "及格率", "pass rate", "percent"),
    Column("fatal_calls", "一票否决通话", "fatal calls", "int"),
    Column("violations", "违规数", "violations", "int"),
    Column("c01_calls", "投诉倾向通话(C01)", "complaint-signal calls (C01)", "int"),
    Column("c01_rate", "投诉倾向率(C01)", "complaint-signal rate (C01)", "percent"),
    Column("complaints", "投诉数", "complaints", "int"),
    Column("complaints_general", "一般投诉", "general complaints", "int"),
    Column("complaints_serious", "严重投诉", "serious complaints", "int"),
    Column("complaints_major", "重大投诉", "major complaints", "int"),
    Column("complaints_at_fault", "有责投诉", "at fault", "int"),
    Column("complaints_partly_at_fault", "部分有责投诉", "partly at fault", "int"),
    Column("complaints_not_at_fault", "无责投诉", "not at fault", "int"),
    Column("complaints_open", "未结投诉", "open complaints", "int"),
    Column("complaints_per_1000", "每千通投诉", "complaints per 1,000 calls", "float"),
    Column("m01_calls", "禁止时段通话(M01)", "forbidden-hour calls (M01)", "int"),
    Column("m02_calls", "超频通话(M02)", "over-frequency calls (M02)", "int"),
    Column("m03_calls", "拒绝后再拨通话(M03)", "do-not-call calls (M03)", "int"),
    Column("attempts", "拨号次数", "dial attempts", "int"),
    Column("forbidden_hour_attempts", "禁止时段拨号", "forbidden-hour attempts", "int"),
    Column("over_frequency_attempts", "超频拨号", "over-frequency attempts", "int"),
    Column("over_frequency_days", "超频客户日", "over-frequency customer-days", "int"),
    Column("do_not_call_attempts", "拒绝后再拨拨号", "do-not-call attempts", "int"),
)

_MIX_COLUMNS = (
    Column("agency", "机构", "agency"),
    Column("month", "月份", "month"),
    Column("rule", "规则", "rule"),
    Column("rule_name", "规则名称", "rule name"),
    Column("count", "次数", "findings", "int"),
    Column("share", "占比", "share", "percent"),
)


def _agency_row(row: AgencyMonth) -> dict[str, Any]:
    return {
        "agency": row.agency,
        "month": row.month,
        "calls": row.stats.calls,
        "compliant_calls": row.compliant_calls,
        "compliance_rate": row.compliance_rate,
        "mean_score": row.stats.mean_score,
        "pass_rate": row.stats.pass_rate,
        "fatal_calls": row.stats.fatal_calls,
        "violations": row.total_violations,
        "c01_calls": row.stats.c01_calls,
        "c01_rate": row.stats.c01_rate,
        "complaints": row.complaints.total,
        **{f"complaints_{level}": n for level, n in row.complaints.by_level.items()},
        **{f"complaints_{outcome}": n for outcome, n in row.complaints.by_outcome.items()},
        "complaints_per_1000": row.complaints_per_1000_calls,
        **{f"{rule.lower()}_calls": n for rule, n in row.metadata_calls.items()},
        **row.dial_log.__dict__,
    }


def agency_tables(report: AgencyReport) -> list[Table]:
    """Monthly summary per agency (with a 合计 row each) and the violation mix."""
    summary = Table(
        name="agency",
        title_zh=f"外包机构考核 {report.period.label}",
        title_en=f"Agency evaluation {report.period.label}",
        columns=_AGENCY_COLUMNS,
        rows=tuple(_agency_row(row) for row in report.rows),
    )
    mix = Table(
        name="violations",
        title_zh="违规构成",
        title_en="Violation mix",
        columns=_MIX_COLUMNS,
        rows=tuple(
            {
                "agency": row.agency,
                "month": row.month,
                "rule": rule,
                "rule_name": _rule_name(rule),
                "count": count,
                "share": row.violation_share(rule),
            }
            for row in report.rows
            for rule, count in row.violations.items()
        ),
    )
    return [summary, mix]


_RESCORE_COLUMNS = (
    Column("call_id", "通话", "call"),
    Column("old_score", "原评分", "old score", "float"),
    Column("old_version", "原版本", "old version"),
    Column("new_score", "新评分", "new score", "float"),
    Column("new_version", "新版本", "new version"),
    Column("delta", "变化", "change", "delta"),
    Column("fatal", "一票否决", "fatal"),
    Column("status", "状态", "status"),
)


def rescore_table(results: Sequence[RescoreResult]) -> Table:
    """Old against new score, call by call."""
    rows = []
    for r in results:
        if r.recorded:
            status = "已记录"
        elif r.changed:
            status = "试算"
        else:
            status = "未变"
        rows.append(
            {
                "call_id": r.call_id,
                "old_score": r.old.score if r.old else None,
                "old_version": r.old.rubric_version if r.old else "",
                "new_score": r.new.score,
                "new_version": r.new.rubric_version,
                "delta": r.delta,
                "fatal": "是" if r.new.fatal else "",
                "status": status,
            }
        )
    return Table(
        name="rescore",
        title_zh="重新评分（原评分 → 新评分）",
        title_en="Re-scoring (old → new)",
        columns=_RESCORE_COLUMNS,
        rows=tuple(rows),
    )
