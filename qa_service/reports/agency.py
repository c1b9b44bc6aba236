"""The outsourcer evaluation report: each collection agency, month by month.

The bank evaluates every agency at least yearly and before renewing its contract, on
compliance, violations, fatal calls, complaint signals and dialling discipline. Recorded
calls show what agents *said*; the dial log shows how they *dialled*, including the
attempts nobody recorded, so the metadata breaches (M01 hours, M02 frequency, M03
do-not-call) are counted from both, side by side.

Definitions (also in the CLI help and the report's JSON):

- **compliant call** (合规通话): an analysed call with no standing (not dismissed) finding
  of a P rule (prohibited conduct) or an M rule (dialling breach). R and A findings are
  service quality, C findings are customer signals: neither makes a call non-compliant.
  **Compliance rate** = compliant calls / analysed calls.
- **violation mix** (违规构成): standing findings of P, R, A and M rules, by rule, with each
  rule's share of the agency-month's violations.
- **fatal call**: its current score was set to 0 by a fatal item (一票否决).
- **dial-log breaches**, over every attempt in the dial log (recorded or not), charged to
  the agency of the agent who dialled: attempts in forbidden hours (M01); attempts over the
  daily limit (M02, same logic as the per-call rule) and the customer-days they fall on;
  attempts to a number on the do-not-call list since before the attempt (M03).
- **complaints** (投诉): the register's complaints received in the month (local time), as
  the trends load them (:func:`qa_service.trends.records.load_complaints`), charged to the
  agency of the complaint (that of its most recent linked call), else its agent's; by
  level (一般/严重/重大) and outcome (有责/部分有责/无责, 未结 while open). **Complaints
  per 1,000 calls** = complaints / analysed calls of the same agency and month × 1000.

Pure: records in, frozen dataclasses out; the rule logic is :mod:`metadata_rules`'s own.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any

from qa_service.complaints.vocabulary import Level, Outcome
from qa_service.domain import CallMetadata, DialAttempt, DoNotCallEntry
from qa_service.reports.scorecards import (
    TOTAL,
    UNGROUPED,
    CallStats,
    Organisations,
    Period,
    call_stats,
    organisation_of,
)
from qa_service.rules.metadata import (
    MetadataParams,
    check_call_frequency,
    check_do_not_call,
    check_forbidden_hours,
)
from qa_service.scoring.score import ScoredCall

if TYPE_CHECKING:  # the loader reads the database; only its record type is needed here
    from qa_service.trends.records import ComplaintFact

COMPLIANCE_FAMILIES = ("P", "M")
VIOLATION_FAMILIES = ("P", "R", "A", "M")
METADATA_RULES = ("M01", "M02", "M03")


@dataclass(frozen=True)
class DialLogStats:
    """Dialling discipline from the dial log (every attempt, recorded or not)."""

    attempts: int = 0
    forbidden_hour_attempts: int = 0  # M01
    over_frequency_attempts: int = 0  # M02
    over_frequency_days: int = 0  # customer-days with at least one M02 attempt
    do_not_call_attempts: int = 0  # M03


OPEN = "open"  # a complaint without an outcome yet (未结)


@dataclass(frozen=True)
class ComplaintStats:
    """The register's complaints of one agency-month: by level and by outcome."""

    by_level: Mapping[str, int] = field(default_factory=dict)  # Level codes, all present
    by_outcome: Mapping[str, int] = field(default_factory=dict)  # Outcome codes + "open"

    @property
    def total(self) -> int:
        return sum(self.by_level.values())

    def per_1000_calls(self, calls: int) -> float | None:
        return round(1000 * self.total / calls, 2) if calls else None


@dataclass(frozen=True)
class AgencyMonth:
    """One agency over one month (``month`` "YYYY-MM"), or over the period (合计)."""

    agency: str
    month: str
    stats: CallStats
    compliant_calls: int
    compliance_rate: float | None
    metadata_calls: Mapping[str, int]  # calls with a standing M01/M02/M03 finding
    violations: Mapping[str, int]  # standing P/R/A/M findings by rule
    dial_log: DialLogStats
    complaints: ComplaintStats = field(default_factory=ComplaintStats)

    @property
    def complaints_per_1000_calls(self) -> float | None:
        return self.complaints.per_1000_calls(self.stats.calls)

    @property
    def total_violations(self) -> int:
        return sum(self.violations.values())

    def violation_share(self, rule: str) -> float | None:
        total = self.total_violations
        return round(self.violations.get(rule, 0) / total, 4) if total else None


@dataclass(frozen=True)
class AgencyReport:
    period: Period
    rows: tuple[AgencyMonth, ...]  # per agency: its months in order, then its 合计 row
    undated_calls: int = 0
    definitions: Mapping[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """JSON form with stable English keys (the CLI's ``--format json``)."""
        return {
            "period": {"from": self.period.start.isoformat(), "to": self.period.end.isoformat()},
            "rows": [_row_dict(row) for row in self.rows],
            "undated_calls": self.undated_calls,
            "definitions": dict(self.definitions),
        }


DEFINITIONS = {
    "compliance_rate": "calls without a standing P or M finding / analysed calls",
    "violations": "standing findings of P, R, A and M rules",
    "fatal_calls": "calls whose current score is 0 by a fatal rubric item",
    "dial_log": "every dial-log attempt, charged to the agency of the agent who dialled",
    "complaints": "register complaints received in the month, charged to the agency of the "
    "complaint's most recent linked call; per 1,000 analysed calls of the same agency-month",
}


def _row_dict(row: AgencyMonth) -> dict[str, Any]:
    stats = row.stats
    return {
        "agency": row.agency,
        "month": row.month,
        "calls": stats.calls,
        "scored_calls": stats.scored_calls,
        "compliant_calls": row.compliant_calls,
        "compliance_rate": row.compliance_rate,
        "mean_score": stats.mean_score,
        "pass_rate": stats.pass_rate,
        "fatal_calls": stats.fatal_calls,
        "c01_calls": stats.c01_calls,
        "c01_rate": stats.c01_rate,
        "metadata_calls": dict(row.metadata_calls),
        "violations": {
            rule: {"count": n, "share": row.violation_share(rule)}
            for rule, n in row.violations.items()
        },
        "dial_log": dict(row.dial_log.__dict__),
        "complaints": {
            "total": row.complaints.total,
            "by_level": dict(row.complaints.by_level),
            "by_outcome": dict(row.complaints.by_outcome),
            "per_1000_calls": row.complaints_per_1000_calls,
        },
    }


@dataclass(frozen=True)
class _Attempt:
    """A dial-log attempt with its verdicts, worked out once for the whole period."""

    attempt: DialAttempt
    month: str
    agency: str
    forbidden: bool
    over_frequency: bool
    do_not_call: bool
    customer_day: tuple[str, date]


def _as_metadata(attempt: DialAttempt) -> CallMetadata:
    return CallMetadata(
        call_id=attempt.call_id or "",
        recording="",
        agent_id=attempt.agent_id,
        customer_id=attempt.customer_id,
        dialed_number=attempt.dialed_number,
        started_at=attempt.started_at,
    )


def _judge_attempts(
    attempts: Sequence[DialAttempt],
    do_not_call: Sequence[DoNotCallEntry],
    *,
    params: MetadataParams,
    organisations: Organisations,
) -> list[_Attempt]:
    """Apply the M rules to every attempt, frequency over the customer's whole local day.

    The day is judged across agents and agencies (the limit is per customer), then each
    breaching attempt is charged to the agency of whoever dialled it.
    """
    days: dict[tuple[str, date], list[DialAttempt]] = {}
    for attempt in attempts:
        local_day = attempt.started_at.astimezone(params.local_tz).date()
        days.setdefault((attempt.customer_id, local_day), []).append(attempt)
    judged = []
    for customer_day, same_day in days.items():
        for attempt in same_day:
            meta = _as_metadata(attempt)
            agency = organisations.get(attempt.agent_id, (None, None))[1] or UNGROUPED
            judged.append(
                _Attempt(
                    attempt=attempt,
                    month=attempt.started_at.astimezone(params.local_tz).strftime("%Y-%m"),
                    agency=agency,
                    forbidden=bool(check_forbidden_hours(meta, params)),
                    over_frequency=bool(check_call_frequency(meta, same_day, params)),
                    do_not_call=bool(check_do_not_call(meta, do_not_call, params)),
                    customer_day=customer_day,
                )
            )
    return judged


def _dial_stats(attempts: Sequence[_Attempt]) -> DialLogStats:
    over = [a for a in attempts if a.over_frequency]
    return DialLogStats(
        attempts=len(attempts),
        forbidden_hour_attempts=sum(a.forbidden for a in attempts),
        over_frequency_attempts=len(over),
        over_frequency_days=len({a.customer_day for a in over}),
        do_not_call_attempts=sum(a.do_not_call for a in attempts),
    )


def _complaint_stats(complaints: Sequence[ComplaintFact]) -> ComplaintStats:
    by_level = {level.value: 0 for level in Level}
    by_outcome = {outcome.value: 0 for outcome in Outcome} | {OPEN: 0}
    for complaint in complaints:
        by_level[complaint.level] = by_level.get(complaint.level, 0) + 1
        key = complaint.outcome or OPEN
        by_outcome[key] = by_outcome.get(key, 0) + 1
    return ComplaintStats(by_level, by_outcome)


def _family(rule: str, families: Iterable[str]) -> bool:
    return rule[:1] in families


def _agency_month(
    agency: str,
    month: str,
    calls: Sequence[ScoredCall],
    attempts: Sequence[_Attempt],
    complaints: Sequence[ComplaintFact],
) -> AgencyMonth:
    stats = call_stats(calls)
    compliant = sum(
        1
        for c in calls
        if not any(n > 0 and _family(r, COMPLIANCE_FAMILIES) for r, n in c.rule_counts.items())
    )
    violations = {
        rule: n for rule, n in stats.findings_by_rule.items() if _family(rule, VIOLATION_FAMILIES)
    }
    return AgencyMonth(
        agency=agency,
        month=month,
        stats=stats,
        compliant_calls=compliant,
        compliance_rate=round(compliant / len(calls), 4) if calls else None,
        metadata_calls={rule: stats.calls_by_rule.get(rule, 0) for rule in METADATA_RULES},
        violations=violations,
        dial_log=_dial_stats(attempts),
        complaints=_complaint_stats(complaints),
    )


def build_agency_report(
    calls: Iterable[ScoredCall],
    attempts: Iterable[DialAttempt],
    do_not_call: Sequence[DoNotCallEntry],
    *,
    period: Period,
    params: MetadataParams,
    organisations: Organisations | None = None,
    agency: str | None = None,
    complaints: Iterable[ComplaintFact] = (),
) -> AgencyReport:
    """Per agency (or only ``agency``) and month of ``period``, plus a 合计 row each.

    A call is charged to its own agency, else its agent's latest known one, else 未分组;
    a dial-log attempt to its agent's agency; a complaint (received in the period) to its
    own agency, else its agent's, else 未分组. Totals are computed over the whole period
    (not summed from months), so customer-day counts stay distinct.
    """
    organisations = organisations or {}
    tz = params.local_tz
    undated = 0
    by_agency: dict[str, dict[str, list[ScoredCall]]] = {}
    for call in calls:
        if call.started_at is None:
            undated += 1
            continue
        if not period.contains(call.started_at, tz):
            continue
        name = organisation_of(call, organisations)[1]
        month = call.started_at.astimezone(tz).strftime("%Y-%m")
        by_agency.setdefault(name, {}).setdefault(month, []).append(call)
    in_period = [a for a in attempts if period.contains(a.started_at, tz)]
    dial: dict[str, dict[str, list[_Attempt]]] = {}
    for judged in _judge_attempts(
        in_period, do_not_call, params=params, organisations=organisations
    ):
        dial.setdefault(judged.agency, {}).setdefault(judged.month, []).append(judged)
    registered: dict[str, dict[str, list[ComplaintFact]]] = {}
    for complaint in complaints:
        if not period.contains(complaint.received_at, tz):
            continue
        known_agency = organisations.get(complaint.agent_id or "", (None, None))[1]
        name = complaint.agency_id or known_agency or UNGROUPED
        month = complaint.received_at.astimezone(tz).strftime("%Y-%m")
        registered.setdefault(name, {}).setdefault(month, []).append(complaint)

    rows: list[AgencyMonth] = []
    for name in sorted(set(by_agency) | set(dial) | set(registered)):
        if agency is not None and name != agency:
            continue
        months = by_agency.get(name, {})
        dial_months = dial.get(name, {})
        complaint_months = registered.get(name, {})
        for month in sorted(set(months) | set(dial_months) | set(complaint_months)):
            rows.append(
                _agency_month(
                    name,
                    month,
                    months.get(month, []),
                    dial_months.get(month, []),
                    complaint_months.get(month, []),
                )
            )
        rows.append(
            _agency_month(
                name,
                TOTAL,
                [c for m in months.values() for c in m],
                [a for m in dial_months.values() for a in m],
                [c for m in complaint_months.values() for c in m],
            )
        )
    return AgencyReport(period, tuple(rows), undated, DEFINITIONS)
