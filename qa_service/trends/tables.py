"""The trend tables and the coaching list as export tables, under Chinese headers.

Kept apart from the figures (:mod:`.figures`) as :mod:`qa_service.reports.tables` is from
the scorecards: the numbers are tested on their own, the layout is decided here once for
the terminal, CSV and XLSX.
"""

from __future__ import annotations

from collections.abc import Sequence

from qa_service.complaints.coaching import CoachingEntry, TrainingEffect
from qa_service.reports.exports import Column, Table
from qa_service.trends.figures import DIMENSION_ZH, Dimension, TrendReport
from qa_service.trends.periods import GRANULARITY_ZH, Granularity


def _lead(dimension: Dimension, granularity: Granularity) -> tuple[Column, ...]:
    return (
        Column("group", DIMENSION_ZH[dimension], dimension.value),
        Column("period", f"期间（{GRANULARITY_ZH[granularity]}）", "period"),
    )


def trend_tables(report: TrendReport) -> list[Table]:
    """Every trend table of ``report``, one sheet each."""
    lead = _lead(report.dimension, report.granularity)
    rate = (
        Column("findings", "违规数", "findings", "int"),
        Column("calls_with", "涉及通话", "calls with it", "int"),
        Column("calls", "通话数", "calls", "int"),
        Column("per_100_calls", "每百通违规", "per 100 calls", "float"),
        Column("previous_per_100_calls", "上期每百通", "previous per 100", "float"),
        Column("change", "环比变化", "change", "delta"),
    )
    return [
        Table(
            "violations_rule",
            "违规趋势（按规则）",
            "violations by rule",
            (*lead, Column("key", "规则", "rule"), Column("name", "规则名称", "name"), *rate),
            report.violations_by_rule,
        ),
        Table(
            "violations_family",
            "违规趋势（按类别）",
            "violations by family",
            (*lead, Column("key", "类别", "family"), Column("name", "类别名称", "name"), *rate),
            report.violations_by_family,
        ),
        Table(
            "signals",
            "投诉倾向与安抚",
            "complaint signals",
            (
                *lead,
                Column("calls", "通话数", "calls", "int"),
                Column("c01_calls", "投诉倾向通话(C01)", "C01 calls", "int"),
                Column("c01_per_100_calls", "每百通投诉倾向", "C01 per 100 calls", "float"),
                Column("previous_c01_per_100_calls", "上期每百通", "previous", "float"),
                Column("c01_change", "环比变化", "change", "delta"),
                Column("de_escalated_calls", "已安抚通话", "de-escalated", "int"),
                Column("de_escalated_share", "安抚率", "de-escalated share", "percent"),
                Column("previous_de_escalated_share", "上期安抚率", "previous", "percent"),
                Column("de_escalated_change", "安抚率变化", "change", "delta_percent"),
            ),
            report.complaint_signals,
        ),
        Table(
            "complaints",
            "投诉统计",
            "complaints",
            (
                *lead,
                Column("breakdown", "维度", "breakdown"),
                Column("name", "分类", "value"),
                Column("complaints", "投诉数", "complaints", "int"),
                Column("previous_complaints", "上期投诉数", "previous", "int"),
                Column("change", "环比变化", "change", "int"),
            ),
            tuple(
                {**row, "breakdown": _BREAKDOWN_ZH.get(row["breakdown"], row["breakdown"])}
                for row in report.complaints
            ),
        ),
        Table(
            "early_warning",
            "投诉预警",
            "early warning",
            (
                *lead,
                Column("complaints", "投诉数", "complaints", "int"),
                Column("warned", "事前有投诉倾向", "warned before", "int"),
                Column("warned_share", "预警覆盖率", "warned share", "percent"),
                Column("median_lead_hours", "提前时长中位数(小时)", "median lead (h)", "float"),
                Column("previous_warned_share", "上期预警覆盖率", "previous", "percent"),
                Column("change", "环比变化", "change", "delta_percent"),
            ),
            report.early_warning,
        ),
        Table(
            "review",
            "复核统计",
            "review statistics",
            (
                *lead,
                Column("rule", "规则", "rule"),
                Column("name", "规则名称", "name"),
                Column("decided", "已复核机器命中", "machine findings decided", "int"),
                Column("confirmed", "确认", "confirmed", "int"),
                Column("precision", "确认率(生产精度)", "precision", "percent"),
                Column("previous_precision", "上期确认率", "previous", "percent"),
                Column("precision_change", "确认率变化", "change", "delta_percent"),
                Column("added", "质检员补充(漏检)", "added by inspectors", "int"),
                Column("appeals_ruled", "已裁决申诉", "appeals ruled", "int"),
                Column("overturned", "申诉撤销", "overturned", "int"),
                Column("overturn_rate", "申诉撤销率", "overturn rate", "percent"),
            ),
            report.review,
        ),
    ]


_BREAKDOWN_ZH = {
    "all": "全部",
    "level": "投诉等级",
    "type": "投诉类型",
    "source": "受理渠道",
    "outcome": "定责结果",
}


def coaching_tables(
    entries: Sequence[CoachingEntry], effects: Sequence[TrainingEffect]
) -> list[Table]:
    """The coaching list and the trainings with their before/after figures."""
    listed = Table(
        "coaching",
        "培训名单",
        "coaching list",
        (
            Column("agent_id", "坐席", "agent"),
            Column("team_id", "组别", "team"),
            Column("agency_id", "机构", "agency"),
            Column("reason_label", "原因", "reason"),
            Column("rule", "规则", "rule"),
            Column("rule_name", "规则名称", "rule name"),
            Column("calls", "通话数", "calls", "int"),
            Column("mean_score", "平均分", "mean score", "float"),
            Column("confirmed_calls", "确认违规通话", "calls with confirmed violation", "int"),
            Column("last_training_at", "最近培训", "last training"),
        ),
        tuple(e.as_json() for e in entries),
    )
    trained = Table(
        "trainings",
        "培训效果",
        "training effect",
        (
            Column("agent_id", "坐席", "agent"),
            Column("rule", "规则", "rule"),
            Column("rule_name", "规则名称", "rule name"),
            Column("trained_at", "培训时间", "trained at"),
            Column("recorded_by", "记录人", "recorded by"),
            Column("before_calls", "培训前通话", "calls before", "int"),
            Column("before_rate", "培训前每百通", "rate before", "float"),
            Column("after_calls", "培训后通话", "calls after", "int"),
            Column("after_rate", "培训后每百通", "rate after", "float"),
            Column("rate_change", "变化", "change", "delta"),
            Column("before_mean_score", "培训前均分", "mean score before", "float"),
            Column("after_mean_score", "培训后均分", "mean score after", "float"),
        ),
        tuple(
            {
                **e.training.as_json(),
                "before_calls": e.before_calls,
                "before_rate": e.before_rate,
                "after_calls": e.after_calls,
                "after_rate": e.after_rate,
                "rate_change": e.rate_change,
                "before_mean_score": e.before_mean_score,
                "after_mean_score": e.after_mean_score,
            }
            for e in effects
        ),
    )
    return [listed, trained]
