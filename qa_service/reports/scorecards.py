"""Scorecards: how an agent, a team or an agency scored over a period, and the trend.

Supervisors judge agents by these figures and banks judge agencies, so every figure is
derived from the per-call scores and standing findings in the simplest way that can be
re-derived by hand (see the definitions on :class:`Scorecard`), and group figures always
add up to the total row. Pure: it works on :class:`~qa_service.scoring.score.ScoredCall` records
the data layer loads; nothing here touches the database.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, tzinfo
from enum import StrEnum
from typing import Any

from qa_service.errors import InputError
from qa_service.rules.catalogue import RULES
from qa_service.scoring.score import ScoredCall

UNGROUPED = "未分组"  # an agent, team or call without a team / agency
UNKNOWN_AGENT = "未知坐席"  # a call whose metadata names no agent
TOTAL = "合计"

# Agent id → (team id, agency id) as the data layer knows them (latest call naming each).
Organisations = Mapping[str, tuple[str | None, str | None]]


class GroupBy(StrEnum):
    AGENT = "agent"
    TEAM = "team"
    AGENCY = "agency"


@dataclass(frozen=True)
class Period:
    """A run of whole local days, ``start`` to ``end`` inclusive."""

    start: date
    end: date

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise InputError(
                f"结束日期 {self.end} 早于开始日期 {self.start} / "
                f"end date {self.end} is before start date {self.start}",
                start=self.start,
                end=self.end,
            )

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    @property
    def label(self) -> str:
        return f"{self.start.isoformat()}~{self.end.isoformat()}"

    def previous(self) -> Period:
        """The period of equal length just before this one (the trend's baseline)."""
        end = self.start - timedelta(days=1)
        return Period(end - timedelta(days=self.days - 1), end)

    def bounds(self, tz: tzinfo) -> tuple[datetime, datetime]:
        """``[start, end)`` as aware datetimes: local midnight to the midnight after ``end``."""
        start = datetime.combine(self.start, time.min, tzinfo=tz)
        return start, datetime.combine(self.end + timedelta(days=1), time.min, tzinfo=tz)

    def contains(self, moment: datetime | None, tz: tzinfo) -> bool:
        return moment is not None and self.start <= moment.astimezone(tz).date() <= self.end


@dataclass(frozen=True)
class CallStats:
    """Figures any set of calls has; shared by scorecards and the agency report.

    - ``calls``: analysed calls; ``scored_calls``: those with a score (under the version
      asked for); score figures and rates over scored calls only.
    - ``pass_rate`` / ``fatal_rate``: share of scored calls that passed / scored 0 by a
      fatal item (一票否决).
    - ``c01_rate`` / ``c03_rate``: share of calls with at least one standing C01 / C03.
    - ``findings_by_rule``: standing (not dismissed) findings per rule.
    """

    calls: int = 0
    scored_calls: int = 0
    mean_score: float | None = None
    median_score: float | None = None
    passed_calls: int = 0
    pass_rate: float | None = None
    fatal_calls: int = 0
    fatal_rate: float | None = None
    c01_calls: int = 0
    c01_rate: float | None = None
    c03_calls: int = 0
    c03_rate: float | None = None
    findings: int = 0
    dismissed_findings: int = 0
    findings_by_rule: Mapping[str, int] = field(default_factory=dict)
    calls_by_rule: Mapping[str, int] = field(default_factory=dict)
    rubric_versions: tuple[str, ...] = ()


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def call_stats(calls: Sequence[ScoredCall]) -> CallStats:
    """The figures of ``calls`` (see :class:`CallStats` for definitions)."""
    scores = [c.score for c in calls if c.score is not None]
    scored = [c for c in calls if c.score is not None]
    by_rule: dict[str, int] = {}
    calls_by_rule: dict[str, int] = {}
    for call in calls:
        for rule, n in call.rule_counts.items():
            if n > 0:
                by_rule[rule] = by_rule.get(rule, 0) + n
                calls_by_rule[rule] = calls_by_rule.get(rule, 0) + 1
    passed = sum(1 for c in scored if c.passed)
    fatal = sum(1 for c in scored if c.fatal)
    c01 = sum(1 for c in calls if c.has("C01"))
    c03 = sum(1 for c in calls if c.has("C03"))
    return CallStats(
        calls=len(calls),
        scored_calls=len(scored),
        mean_score=round(statistics.fmean(scores), 2) if scores else None,
        median_score=round(statistics.median(scores), 2) if scores else None,
        passed_calls=passed,
        pass_rate=_rate(passed, len(scored)),
        fatal_calls=fatal,
        fatal_rate=_rate(fatal, len(scored)),
        c01_calls=c01,
        c01_rate=_rate(c01, len(calls)),
        c03_calls=c03,
        c03_rate=_rate(c03, len(calls)),
        findings=sum(by_rule.values()),
        dismissed_findings=sum(c.dismissed for c in calls),
        findings_by_rule=dict(sorted(by_rule.items(), key=lambda kv: _rule_order(kv[0]))),
        calls_by_rule=dict(sorted(calls_by_rule.items(), key=lambda kv: _rule_order(kv[0]))),
        rubric_versions=tuple(sorted({c.rubric_version for c in scored if c.rubric_version})),
    )


_RULE_IDS = list(RULES)


def _rule_order(rule: str) -> tuple[int, str]:
    return (_RULE_IDS.index(rule) if rule in RULES else len(_RULE_IDS), rule)


def _delta(now: float | None, before: float | None) -> float | None:
    return None if now is None or before is None else round(now - before, 4)


@dataclass(frozen=True)
class Trend:
    """This period against the previous one of equal length (deltas: now minus then)."""

    previous_calls: int
    previous_mean_score: float | None
    previous_pass_rate: float | None
    previous_fatal_rate: float | None
    mean_score_delta: float | None
    pass_rate_delta: float | None
    fatal_rate_delta: float | None
    c01_rate_delta: float | None

    @classmethod
    def between(cls, now: CallStats, before: CallStats) -> Trend:
        return cls(
            previous_calls=before.calls,
            previous_mean_score=before.mean_score,
            previous_pass_rate=before.pass_rate,
            previous_fatal_rate=before.fatal_rate,
            mean_score_delta=_delta(now.mean_score, before.mean_score),
            pass_rate_delta=_delta(now.pass_rate, before.pass_rate),
            fatal_rate_delta=_delta(now.fatal_rate, before.fatal_rate),
            c01_rate_delta=_delta(now.c01_rate, before.c01_rate),
        )


@dataclass(frozen=True)
class Scorecard:
    """One agent, team or agency (``key``) over the period; ``team``/``agency`` say where
    the group belongs (for an agent: the team and agency of their latest call)."""

    key: str
    team: str
    agency: str
    stats: CallStats
    trend: Trend

    def per_100_calls(self, rule: str) -> float | None:
        """Standing findings of ``rule`` per 100 analysed calls."""
        if not self.stats.calls:
            return None
        return round(100 * self.stats.findings_by_rule.get(rule, 0) / self.stats.calls, 2)


@dataclass(frozen=True)
class ScorecardReport:
    group_by: GroupBy
    period: Period
    previous: Period
    cards: tuple[Scorecard, ...]
    total: Scorecard
    undated_calls: int = 0

    def as_dict(self) -> dict[str, Any]:
        """JSON form with stable English keys (the CLI's ``--format json``)."""
        return {
            "group_by": self.group_by.value,
            "period": {"from": self.period.start.isoformat(), "to": self.period.end.isoformat()},
            "previous_period": {
                "from": self.previous.start.isoformat(),
                "to": self.previous.end.isoformat(),
            },
            "scorecards": [_card_dict(card) for card in self.cards],
            "total": _card_dict(self.total),
            "undated_calls": self.undated_calls,
        }


def _card_dict(card: Scorecard) -> dict[str, Any]:
    stats = {k: v for k, v in card.stats.__dict__.items() if k != "calls_by_rule"}
    stats["findings_by_rule"] = {
        rule: {
            "count": n,
            "calls": card.stats.calls_by_rule.get(rule, 0),
            "per_100_calls": card.per_100_calls(rule),
        }
        for rule, n in card.stats.findings_by_rule.items()
    }
    stats["rubric_versions"] = list(card.stats.rubric_versions)
    return {
        "key": card.key,
        "team": card.team,
        "agency": card.agency,
        **stats,
        "trend": dict(card.trend.__dict__),
    }


@dataclass(frozen=True)
class ScorecardFilter:
    """Restrict a report to one agent, team or agency (None: everyone)."""

    agent_id: str | None = None
    team_id: str | None = None
    agency_id: str | None = None


def organisation_of(call: ScoredCall, organisations: Organisations) -> tuple[str, str]:
    """(team, agency) labels of a call: its own metadata first, else its agent's latest."""
    known_team, known_agency = organisations.get(call.agent_id or "", (None, None))
    return (call.team_id or known_team or UNGROUPED, call.agency_id or known_agency or UNGROUPED)


def _key(call: ScoredCall, group_by: GroupBy, organisations: Organisations) -> str:
    team, agency = organisation_of(call, organisations)
    if group_by is GroupBy.AGENT:
        return call.agent_id or UNKNOWN_AGENT
    return team if group_by is GroupBy.TEAM else agency


def _matches(call: ScoredCall, filters: ScorecardFilter, organisations: Organisations) -> bool:
    team, agency = organisation_of(call, organisations)
    return (
        (filters.agent_id is None or (call.agent_id or UNKNOWN_AGENT) == filters.agent_id)
        and (filters.team_id is None or team == filters.team_id)
        and (filters.agency_id is None or agency == filters.agency_id)
    )


def _latest_placement(calls: Iterable[ScoredCall], organisations: Organisations) -> tuple[str, str]:
    dated = sorted(
        calls, key=lambda c: (c.started_at is not None, c.started_at or datetime.min, c.call_id)
    )
    return organisation_of(dated[-1], organisations) if dated else (UNGROUPED, UNGROUPED)


def build_scorecards(
    calls: Iterable[ScoredCall],
    *,
    period: Period,
    group_by: GroupBy,
    tz: tzinfo,
    filters: ScorecardFilter | None = None,
    organisations: Organisations | None = None,
) -> ScorecardReport:
    """Scorecards per ``group_by`` for ``period``, each with its trend.

    ``calls`` may hold calls of any dates (the data layer loads this period and the
    previous one together); calls without a start time cannot be placed and are only
    counted in ``undated_calls``.
    """
    filters = filters or ScorecardFilter()
    organisations = organisations or {}
    previous = period.previous()
    undated = 0
    now: dict[str, list[ScoredCall]] = {}
    before: dict[str, list[ScoredCall]] = {}
    for call in calls:
        if call.started_at is None:
            undated += 1
            continue
        if not _matches(call, filters, organisations):
            continue
        key = _key(call, group_by, organisations)
        if period.contains(call.started_at, tz):
            now.setdefault(key, []).append(call)
        elif previous.contains(call.started_at, tz):
            before.setdefault(key, []).append(call)

    def card(key: str, current: list[ScoredCall], earlier: list[ScoredCall]) -> Scorecard:
        team, agency = _latest_placement(current or earlier, organisations)
        if group_by is GroupBy.TEAM:
            team = key
        elif group_by is GroupBy.AGENCY:
            team, agency = "", key
        stats = call_stats(current)
        return Scorecard(key, team, agency, stats, Trend.between(stats, call_stats(earlier)))

    # Groups active in the period only: a group with calls only in the previous period
    # still shows in the total row's trend, but has nothing to score this time.
    cards = tuple(card(key, now[key], before.get(key, [])) for key in sorted(now))
    all_now = [c for group in now.values() for c in group]
    all_before = [c for group in before.values() for c in group]
    total_stats = call_stats(all_now)
    total = Scorecard(
        TOTAL, "", "", total_stats, Trend.between(total_stats, call_stats(all_before))
    )
    return ScorecardReport(group_by, period, previous, cards, total, undated)
