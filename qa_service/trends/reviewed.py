"""What the review loop decided, read in one place: findings' standing, decisions, appeals.

Trends (precision in production, inspector-added misses, appeal overturn rate), coaching
("a confirmed violation") and the complaint evidence all ask the review loop the same
questions; they ask them here, so a change in how reviews are stored (``qa_service.review``,
migration 0006) is one edit:

- a finding **stands** unless an inspector dismissed it or an appeal overturned it
  (``findings.review_status`` is ``dismissed`` in both cases);
- a finding is **confirmed** when an inspector confirmed it or added it
  (``review_status`` ``confirmed``; added findings have ``source`` ``inspector``);
- a machine finding is **decided** when confirmed or dismissed; an overturned one counts as
  dismissed (the machine was wrong after all);
- an appeal is **ruled** when upheld or overturned.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from qa_service.db.tables import FindingRow, ReviewAppealRow, ReviewDecisionRow, UserRow

CONFIRMED = "confirmed"
DISMISSED = "dismissed"
PENDING = "pending"
INSPECTOR_SOURCE = "inspector"


@dataclass(frozen=True)
class FindingFact:
    """One finding as the figures see it."""

    rule: str
    review_status: str
    source: str

    @property
    def stands(self) -> bool:
        return self.review_status != DISMISSED

    @property
    def confirmed(self) -> bool:
        return self.review_status == CONFIRMED

    @property
    def added_by_inspector(self) -> bool:
        return self.source == INSPECTOR_SOURCE

    @property
    def machine_decided(self) -> bool:
        return not self.added_by_inspector and self.review_status in (CONFIRMED, DISMISSED)


@dataclass(frozen=True)
class AppealFact:
    """One appeal against a confirmed finding of a call, and its ruling (if any)."""

    call_pk: int
    rule: str
    status: str  # open | upheld | overturned

    @property
    def ruled(self) -> bool:
        return self.status in ("upheld", "overturned")

    @property
    def overturned(self) -> bool:
        return self.status == "overturned"


def finding_facts(session: Session, call_pks: Sequence[int]) -> dict[int, list[FindingFact]]:
    """The findings of these calls (call pk → facts, in stored order)."""
    out: dict[int, list[FindingFact]] = defaultdict(list)
    for chunk in _chunks(call_pks):
        rows = session.execute(
            select(FindingRow.call_id, FindingRow.rule, FindingRow.review_status, FindingRow.source)
            .where(FindingRow.call_id.in_(chunk))
            .order_by(FindingRow.id)
        )
        for call_pk, rule, status, source in rows:
            out[call_pk].append(FindingFact(rule, status, source))
    return out


def appeal_facts(session: Session, call_pks: Sequence[int]) -> list[AppealFact]:
    """The appeals on these calls, with the rule of the finding appealed."""
    out: list[AppealFact] = []
    for chunk in _chunks(call_pks):
        rows = session.execute(
            select(ReviewAppealRow.call_id, ReviewDecisionRow.rule, ReviewAppealRow.status)
            .join(ReviewDecisionRow, ReviewDecisionRow.id == ReviewAppealRow.decision_id)
            .where(ReviewAppealRow.call_id.in_(chunk))
            .order_by(ReviewAppealRow.id)
        )
        out.extend(AppealFact(call_pk, rule, status) for call_pk, rule, status in rows)
    return out


@dataclass(frozen=True)
class DecisionRecord:
    """An inspector's decision on a finding of a call, with the appeal and its ruling."""

    finding_id: int | None
    rule: str
    decision: str  # confirmed | dismissed | added
    reason_code: str | None
    comment: str
    overturned: bool
    decided_by: str | None
    decided_at: datetime
    appeal_status: str | None
    appeal_reason: str | None
    ruling_note: str | None
    ruled_at: datetime | None


def decisions_by_call(session: Session, call_pks: Iterable[int]) -> dict[int, list[DecisionRecord]]:
    """Every review decision on these calls, each with its appeal and ruling."""
    out: dict[int, list[DecisionRecord]] = defaultdict(list)
    for chunk in _chunks(list(call_pks)):
        rows = session.execute(
            select(ReviewDecisionRow, ReviewAppealRow, UserRow.username)
            .outerjoin(ReviewAppealRow, ReviewAppealRow.decision_id == ReviewDecisionRow.id)
            .outerjoin(UserRow, UserRow.id == ReviewDecisionRow.decided_by_id)
            .where(ReviewDecisionRow.call_id.in_(chunk))
            .order_by(ReviewDecisionRow.id)
        )
        for decision, appeal, username in rows:
            out[decision.call_id].append(
                DecisionRecord(
                    finding_id=decision.finding_id,
                    rule=decision.rule,
                    decision=decision.decision,
                    reason_code=decision.reason_code,
                    comment=decision.comment,
                    overturned=decision.overturned,
                    decided_by=username,
                    decided_at=decision.decided_at,
                    appeal_status=appeal.status if appeal is not None else None,
                    appeal_reason=appeal.reason if appeal is not None else None,
                    ruling_note=appeal.ruling_note if appeal is not None else None,
                    ruled_at=appeal.ruled_at if appeal is not None else None,
                )
            )
    return out


def _chunks(items: Sequence[int], size: int = 500) -> Iterable[list[int]]:
    # Bound the IN list: SQLite allows a limited number of parameters per statement.
    for start in range(0, len(items), size):
        yield list(items[start : start + size])
