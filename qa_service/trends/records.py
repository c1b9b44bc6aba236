"""Load what the trends count, as plain records, within the caller's scope.

Calls: analysed calls started in the range that the caller may see
(:func:`qa_service.accounts.scope.visible_calls`), with their findings. Complaints: those
received in the range that the caller may see, each with the start times of its linked
calls that carry a standing complaint-intent (C01) finding and started before it arrived.
Appeals: those on the loaded calls.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from qa_service.accounts.roles import Principal
from qa_service.accounts.scope import visible_calls
from qa_service.complaints.register import visible_complaints
from qa_service.db.rows import aware, storage_errors
from qa_service.db.tables import CallRow, ComplaintCallRow, ComplaintRow, FindingRow
from qa_service.domain import CallStatus
from qa_service.trends.reviewed import (
    DISMISSED,
    AppealFact,
    FindingFact,
    appeal_facts,
    finding_facts,
)

COMPLAINT_INTENT = "C01"


@dataclass(frozen=True)
class CallFact:
    pk: int
    call_id: str
    agent_id: str | None
    team_id: str | None
    agency_id: str | None
    started_at: datetime
    score: float | None
    findings: tuple[FindingFact, ...]

    def standing(self, rule: str) -> int:
        return sum(1 for f in self.findings if f.rule == rule and f.stands)

    def has_standing(self, rule: str) -> bool:
        return any(f.rule == rule and f.stands for f in self.findings)


@dataclass(frozen=True)
class ComplaintFact:
    id: int
    team_id: str | None
    agency_id: str | None
    agent_id: str | None
    received_at: datetime
    level: str
    type: str
    source: str
    outcome: str | None
    # Start times of linked calls with a standing C01 finding, before the complaint.
    warning_calls: tuple[datetime, ...]


@dataclass(frozen=True)
class TrendData:
    calls: tuple[CallFact, ...]
    complaints: tuple[ComplaintFact, ...]
    appeals: tuple[AppealFact, ...]


def load_calls(
    session: Session, *, principal: Principal, start: datetime, end: datetime
) -> list[CallFact]:
    """Analysed calls the caller may see, started in ``[start, end)``, with their findings."""
    with storage_errors("trend calls"):
        rows = session.execute(
            select(
                CallRow.id,
                CallRow.call_id,
                CallRow.agent_id,
                CallRow.team_id,
                CallRow.agency_id,
                CallRow.started_at,
                CallRow.score,
            )
            .where(
                visible_calls(principal),
                CallRow.status == CallStatus.ANALYZED.value,
                CallRow.started_at >= aware(start, "start"),
                CallRow.started_at < aware(end, "end"),
            )
            .order_by(CallRow.started_at, CallRow.id)
        ).all()
        findings = finding_facts(session, [r[0] for r in rows])
    return [
        CallFact(pk, call_id, agent, team, agency, started, score, tuple(findings.get(pk, ())))
        for pk, call_id, agent, team, agency, started, score in rows
        if started is not None  # the range filter keeps undated calls out already
    ]


def load_complaints(
    session: Session, *, principal: Principal, start: datetime, end: datetime
) -> list[ComplaintFact]:
    """Complaints the caller may see, received in ``[start, end)``, with their warnings."""
    with storage_errors("trend complaints"):
        rows = list(
            session.scalars(
                select(ComplaintRow)
                .where(
                    visible_complaints(principal),
                    ComplaintRow.received_at >= aware(start, "start"),
                    ComplaintRow.received_at < aware(end, "end"),
                )
                .order_by(ComplaintRow.received_at, ComplaintRow.id)
            )
        )
        warnings: dict[int, list[datetime]] = defaultdict(list)
        ids = [r.id for r in rows]
        for offset in range(0, len(ids), 500):
            flagged = session.execute(
                select(ComplaintCallRow.complaint_id, CallRow.started_at)
                .join(CallRow, CallRow.id == ComplaintCallRow.call_id)
                .join(FindingRow, FindingRow.call_id == CallRow.id)
                .where(
                    ComplaintCallRow.complaint_id.in_(ids[offset : offset + 500]),
                    FindingRow.rule == COMPLAINT_INTENT,
                    FindingRow.review_status != DISMISSED,
                )
                .distinct()
            )
            for complaint_pk, started_at in flagged:
                if started_at is not None:
                    warnings[complaint_pk].append(started_at)
    return [
        ComplaintFact(
            id=r.id,
            team_id=r.team_id,
            agency_id=r.agency_id,
            agent_id=r.agent_id,
            received_at=r.received_at,
            level=r.level,
            type=r.type,
            source=r.source,
            outcome=r.outcome,
            warning_calls=tuple(sorted(t for t in warnings.get(r.id, []) if t < r.received_at)),
        )
        for r in rows
    ]


def load_trend_data(
    session: Session, *, principal: Principal, start: datetime, end: datetime
) -> TrendData:
    """Everything the trend tables count over ``[start, end)`` within the caller's scope."""
    calls = load_calls(session, principal=principal, start=start, end=end)
    complaints = load_complaints(session, principal=principal, start=start, end=end)
    with storage_errors("trend appeals"):
        appeals = appeal_facts(session, [c.pk for c in calls])
    return TrendData(tuple(calls), tuple(complaints), tuple(appeals))
