"""The trend tables, computed from plain records (pure: no database, no framework).

Every table has one row per group (team or agency, plus 合计 over all of them), period, and
whatever the table breaks down by, with the value of the period before and the change:

- **violations by rule / by family**: standing findings (not dismissed, not overturned) of
  the violation families P, R, A, M per 100 analysed calls;
- **complaint signals**: calls with a standing C01 per 100 calls, and the share of those the
  agent de-escalated (no standing R04 on the call);
- **complaints** by level, type, source and outcome (``open`` while it has none), by the
  period they were received in;
- **early warning**: the share of complaints whose customer had a linked call with a
  standing C01 *before* the complaint arrived, and the median lead time (hours from the
  first such call to the complaint);
- **review**: per rule, machine findings inspectors confirmed among those they decided
  (precision in production), findings inspectors added (misses), and appeals ruled and
  overturned (overturn rate). Which finding counts as what: :mod:`.reviewed`.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import tzinfo
from enum import StrEnum
from typing import Any, TypeVar

from qa_service.complaints.vocabulary import ComplaintType, Level, Outcome, Source, label
from qa_service.reports.scorecards import TOTAL, UNGROUPED
from qa_service.rules.catalogue import FAMILY_NAMES_ZH, RULES
from qa_service.trends.periods import Granularity, period_of, previous_label
from qa_service.trends.records import COMPLAINT_INTENT, CallFact, ComplaintFact, TrendData
from qa_service.trends.reviewed import AppealFact

VIOLATION_FAMILIES = ("P", "R", "A", "M")
NOT_DE_ESCALATED = "R04"
OPEN = "open"
ALL_RULES = "合计"

Row = dict[str, Any]
_T = TypeVar("_T")


class Dimension(StrEnum):
    TEAM = "team"
    AGENCY = "agency"


DIMENSION_ZH = {Dimension.TEAM: "组别", Dimension.AGENCY: "机构"}
COMPLAINT_BREAKDOWNS: dict[str, tuple[str, type[StrEnum]]] = {
    "level": ("投诉等级", Level),
    "type": ("投诉类型", ComplaintType),
    "source": ("受理渠道", Source),
    "outcome": ("定责结果", Outcome),
}


@dataclass(frozen=True)
class TrendReport:
    granularity: Granularity
    dimension: Dimension
    periods: tuple[str, ...]
    violations_by_rule: tuple[Row, ...]
    violations_by_family: tuple[Row, ...]
    complaint_signals: tuple[Row, ...]
    complaints: tuple[Row, ...]
    early_warning: tuple[Row, ...]
    review: tuple[Row, ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            "granularity": self.granularity.value,
            "by": self.dimension.value,
            "periods": list(self.periods),
            "violations_by_rule": list(self.violations_by_rule),
            "violations_by_family": list(self.violations_by_family),
            "complaint_signals": list(self.complaint_signals),
            "complaints": list(self.complaints),
            "early_warning": list(self.early_warning),
            "review": list(self.review),
        }


def per_100(part: int, calls: int) -> float | None:
    return round(100 * part / calls, 2) if calls else None


def share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def change(now: float | None, before: float | None) -> float | None:
    return round(now - before, 4) if now is not None and before is not None else None


def _rule_order(rule: str) -> tuple[int, str]:
    return ("PCRAM".find(rule[:1]), rule)


class _Buckets(dict[tuple[str, str], list[_T]]):
    """(group, period) → items; every item also counts under (合计, period)."""

    def __missing__(self, key: tuple[str, str]) -> list[_T]:
        return []


def _bucket(
    items: Iterable[_T], group_of: Callable[[_T], str], period_of_item: Callable[[_T], str]
) -> _Buckets[_T]:
    out: _Buckets[_T] = _Buckets()
    for item in items:
        period = period_of_item(item)
        for group in (group_of(item), TOTAL):
            out.setdefault((group, period), []).append(item)
    return out


def _group_order(groups: Iterable[str]) -> list[str]:
    return sorted(set(groups) - {TOTAL}, key=lambda g: (g == UNGROUPED, g)) + [TOTAL]


def _violations(
    calls: _Buckets[CallFact],
    periods: tuple[str, ...],
    groups: list[str],
    gran: Granularity,
    key: Callable[[str], str],
) -> list[Row]:
    rows: list[Row] = []
    for group in groups:
        for period in periods:
            now, before = calls[(group, period)], calls[(group, previous_label(period, gran))]
            if not now:
                continue
            counts, with_now = _violation_counts(now, key)
            before_counts, _ = _violation_counts(before, key)
            for item in sorted(set(counts) | set(before_counts), key=_rule_order):
                rate = per_100(counts[item], len(now))
                before_rate = per_100(before_counts[item], len(before))
                rows.append(
                    {
                        "group": group,
                        "period": period,
                        "key": item,
                        "name": RULES[item].name_zh if item in RULES else FAMILY_NAMES_ZH[item],
                        "findings": counts[item],
                        "calls_with": with_now[item],
                        "calls": len(now),
                        "per_100_calls": rate,
                        "previous_per_100_calls": before_rate,
                        "change": change(rate, before_rate),
                    }
                )
    return rows


def _violation_counts(
    calls: list[CallFact], key: Callable[[str], str]
) -> tuple[Counter[str], Counter[str]]:
    counts: Counter[str] = Counter()
    calls_with: Counter[str] = Counter()
    for call in calls:
        seen = set()
        for f in call.findings:
            if f.stands and f.rule[:1] in VIOLATION_FAMILIES:
                counts[key(f.rule)] += 1
                seen.add(key(f.rule))
        calls_with.update(seen)
    return counts, calls_with


def _signal_figures(calls: list[CallFact]) -> tuple[int, int, float | None, float | None]:
    flagged = [c for c in calls if c.has_standing(COMPLAINT_INTENT)]
    calmed = [c for c in flagged if not c.has_standing(NOT_DE_ESCALATED)]
    return (
        len(flagged),
        len(calmed),
        per_100(len(flagged), len(calls)),
        share(len(calmed), len(flagged)),
    )


def _signals(
    calls: _Buckets[CallFact], periods: tuple[str, ...], groups: list[str], gran: Granularity
) -> list[Row]:
    rows: list[Row] = []
    for group in groups:
        for period in periods:
            now, before = calls[(group, period)], calls[(group, previous_label(period, gran))]
            if not now:
                continue
            flagged, calmed, rate, calmed_share = _signal_figures(now)
            _, _, before_rate, before_share = _signal_figures(before)
            rows.append(
                {
                    "group": group,
                    "period": period,
                    "calls": len(now),
                    "c01_calls": flagged,
                    "c01_per_100_calls": rate,
                    "previous_c01_per_100_calls": before_rate,
                    "c01_change": change(rate, before_rate),
                    "de_escalated_calls": calmed,
                    "de_escalated_share": calmed_share,
                    "previous_de_escalated_share": before_share,
                    "de_escalated_change": change(calmed_share, before_share),
                }
            )
    return rows


def _complaint_value(complaint: ComplaintFact, breakdown: str) -> str:
    if breakdown == "outcome":
        return complaint.outcome or OPEN
    return str(getattr(complaint, breakdown))


def _complaints(
    complaints: _Buckets[ComplaintFact],
    periods: tuple[str, ...],
    groups: list[str],
    gran: Granularity,
) -> list[Row]:
    rows: list[Row] = []
    for group in groups:
        for period in periods:
            now = complaints[(group, period)]
            before = complaints[(group, previous_label(period, gran))]
            if not now and not before:
                continue
            rows.append(_complaint_row(group, period, "all", "", "合计", len(now), len(before)))
            for breakdown, (_, kind) in COMPLAINT_BREAKDOWNS.items():
                counts = Counter(_complaint_value(c, breakdown) for c in now)
                before_counts = Counter(_complaint_value(c, breakdown) for c in before)
                values = [m.value for m in kind] + ([OPEN] if breakdown == "outcome" else [])
                for value in values:
                    if counts[value] or before_counts[value]:
                        name = "未结" if value == OPEN else label(kind, value)
                        rows.append(
                            _complaint_row(
                                group,
                                period,
                                breakdown,
                                value,
                                name,
                                counts[value],
                                before_counts[value],
                            )
                        )
    return rows


def _complaint_row(
    group: str, period: str, breakdown: str, value: str, name: str, now: int, before: int
) -> Row:
    return {
        "group": group,
        "period": period,
        "breakdown": breakdown,
        "value": value,
        "name": name,
        "complaints": now,
        "previous_complaints": before,
        "change": now - before,
    }


def _warning_figures(complaints: list[ComplaintFact]) -> tuple[int, float | None, float | None]:
    leads = [
        (c.received_at - c.warning_calls[0]).total_seconds() / 3600
        for c in complaints
        if c.warning_calls
    ]
    median = round(statistics.median(leads), 1) if leads else None
    return len(leads), share(len(leads), len(complaints)), median


def _early_warning(
    complaints: _Buckets[ComplaintFact],
    periods: tuple[str, ...],
    groups: list[str],
    gran: Granularity,
) -> list[Row]:
    rows: list[Row] = []
    for group in groups:
        for period in periods:
            now = complaints[(group, period)]
            if not now:
                continue
            warned, warned_share, median = _warning_figures(now)
            _, before_share, _ = _warning_figures(complaints[(group, previous_label(period, gran))])
            rows.append(
                {
                    "group": group,
                    "period": period,
                    "complaints": len(now),
                    "warned": warned,
                    "warned_share": warned_share,
                    "median_lead_hours": median,
                    "previous_warned_share": before_share,
                    "change": change(warned_share, before_share),
                }
            )
    return rows


def _review_counts(
    calls: list[CallFact], appeals: dict[int, list[AppealFact]]
) -> dict[str, Counter[str]]:
    out: dict[str, Counter[str]] = defaultdict(Counter)
    for call in calls:
        for f in call.findings:
            for rule in (f.rule, ALL_RULES):
                c = out[rule]
                c["decided"] += f.machine_decided
                c["confirmed"] += f.machine_decided and f.confirmed
                c["added"] += f.added_by_inspector
        for appeal in appeals.get(call.pk, ()):
            for rule in (appeal.rule, ALL_RULES):
                out[rule]["ruled"] += appeal.ruled
                out[rule]["overturned"] += appeal.overturned
    return out


def _review(
    calls: _Buckets[CallFact],
    appeals: dict[int, list[AppealFact]],
    periods: tuple[str, ...],
    groups: list[str],
    gran: Granularity,
) -> list[Row]:
    rows: list[Row] = []
    for group in groups:
        for period in periods:
            now = calls[(group, period)]
            if not now:
                continue
            counts = _review_counts(now, appeals)
            before = _review_counts(calls[(group, previous_label(period, gran))], appeals)
            rules = [r for r, c in counts.items() if c["decided"] or c["added"] or c["ruled"]]
            for rule in sorted(rules, key=lambda r: (r == ALL_RULES, _rule_order(r))):
                c, b = counts[rule], before.get(rule, Counter())
                precision = share(c["confirmed"], c["decided"])
                before_precision = share(b["confirmed"], b["decided"])
                rows.append(
                    {
                        "group": group,
                        "period": period,
                        "rule": rule,
                        "name": RULES[rule].name_zh if rule in RULES else "全部规则",
                        "decided": c["decided"],
                        "confirmed": c["confirmed"],
                        "precision": precision,
                        "previous_precision": before_precision,
                        "precision_change": change(precision, before_precision),
                        "added": c["added"],
                        "appeals_ruled": c["ruled"],
                        "overturned": c["overturned"],
                        "overturn_rate": share(c["overturned"], c["ruled"]),
                    }
                )
    return rows


def build_trends(
    data: TrendData,
    *,
    periods: list[str],
    granularity: Granularity,
    dimension: Dimension,
    tz: tzinfo,
) -> TrendReport:
    """Every trend table for ``periods`` (their baselines must be in ``data`` too)."""

    def group_of(item: CallFact | ComplaintFact) -> str:
        value = item.team_id if dimension is Dimension.TEAM else item.agency_id
        return value or UNGROUPED

    calls = _bucket(data.calls, group_of, lambda c: period_of(c.started_at, tz, granularity))
    complaints = _bucket(
        data.complaints, group_of, lambda c: period_of(c.received_at, tz, granularity)
    )
    appeals: dict[int, list[AppealFact]] = defaultdict(list)
    for appeal in data.appeals:
        appeals[appeal.call_pk].append(appeal)
    wanted = tuple(periods)
    groups = _group_order(g for (g, _) in [*calls, *complaints])
    return TrendReport(
        granularity=granularity,
        dimension=dimension,
        periods=wanted,
        violations_by_rule=tuple(_violations(calls, wanted, groups, granularity, lambda r: r)),
        violations_by_family=tuple(
            _violations(calls, wanted, groups, granularity, lambda r: r[:1])
        ),
        complaint_signals=tuple(_signals(calls, wanted, groups, granularity)),
        complaints=tuple(_complaints(complaints, wanted, groups, granularity)),
        early_warning=tuple(_early_warning(complaints, wanted, groups, granularity)),
        review=tuple(_review(calls, appeals, wanted, groups, granularity)),
    )
