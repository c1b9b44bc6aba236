"""When an analysis raises an alert: a complaint-intent finding, or a fatal rubric item.

Pure logic on the domain types, so the rule is testable without a database.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from qa_service.domain import CallAnalysis, CallStatus

COMPLAINT_RULE = "C01"


class AlertKind(StrEnum):
    COMPLAINT = "complaint"  # the customer showed complaint intent (C01)
    FATAL = "fatal"  # a fatal rubric item (一票否决) was triggered


ALERT_KIND_LABELS_ZH = {AlertKind.COMPLAINT: "投诉倾向", AlertKind.FATAL: "一票否决"}


@dataclass(frozen=True)
class AlertTrigger:
    """Why a call alerts: its kinds and the rule ids behind them."""

    kinds: tuple[AlertKind, ...]
    rules: tuple[str, ...]


def alert_trigger(analysis: CallAnalysis) -> AlertTrigger | None:
    """The alert ``analysis`` raises, or None (only successful analyses alert)."""
    if analysis.status is not CallStatus.ANALYZED:
        return None
    kinds: list[AlertKind] = []
    rules: list[str] = []
    if any(f.rule == COMPLAINT_RULE for f in analysis.findings):
        kinds.append(AlertKind.COMPLAINT)
        rules.append(COMPLAINT_RULE)
    detail = analysis.score_detail
    if detail is not None and detail.fatal:
        kinds.append(AlertKind.FATAL)
        rules.extend(rule for rule in detail.fatal_rules if rule not in rules)
    return AlertTrigger(tuple(kinds), tuple(rules)) if kinds else None
