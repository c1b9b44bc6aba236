"""One complaint as people read it: the complaint, its linked calls, findings and decisions.

The API's complaint detail and the evidence pack show the same thing, built here once. Only
linked calls the caller may see are shown (``hidden_calls`` counts the others, e.g. another
team's calls for a supervisor). Numbers and quotes are shown as stored (masked) unless the
caller holds ``view_pii``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from qa_service.accounts.roles import Permission, Principal
from qa_service.accounts.scope import can_see_call
from qa_service.complaints.register import complaint_row, linked_call_rows
from qa_service.complaints.vocabulary import ComplaintType, Level, Outcome, Source, label
from qa_service.db.rows import finding_from_row
from qa_service.db.tables import CallRow, ComplaintRow, FindingRow
from qa_service.privacy.masking import mask_number
from qa_service.rules.catalogue import RULES, citation_for
from qa_service.trends.reviewed import DecisionRecord, decisions_by_call


@dataclass(frozen=True)
class FindingView:
    id: int
    rule: str
    rule_name: str
    speaker: str | None
    start_s: float | None
    end_s: float | None
    text: str | None
    source: str
    confidence: float
    review_status: str

    def as_json(self, *, with_citation: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = dict(self.__dict__)
        if with_citation:
            citation = citation_for(self.rule)
            out["citation"] = citation.as_dict() if citation is not None else None
        return out


@dataclass(frozen=True)
class LinkedCall:
    pk: int
    call_id: str
    recording: str
    sha256: str
    source_path: str | None
    started_at: datetime | None
    agent_id: str | None
    team_id: str | None
    agency_id: str | None
    status: str
    score: float | None
    findings: tuple[FindingView, ...]
    decisions: tuple[DecisionRecord, ...]

    def as_json(self, *, with_citations: bool = False) -> dict[str, Any]:
        return {
            "call_id": self.call_id,
            "recording": self.recording,
            "sha256": self.sha256,
            "started_at": self.started_at.isoformat() if self.started_at else None,
            "agent_id": self.agent_id,
            "team_id": self.team_id,
            "agency_id": self.agency_id,
            "status": self.status,
            "score": self.score,
            "findings": [f.as_json(with_citation=with_citations) for f in self.findings],
            "decisions": [_decision_json(d) for d in self.decisions],
        }


def _decision_json(d: DecisionRecord) -> dict[str, Any]:
    out = dict(d.__dict__)
    for key in ("decided_at", "ruled_at"):
        out[key] = out[key].isoformat() if out[key] is not None else None
    return out


@dataclass(frozen=True)
class ComplaintView:
    id: int
    reference: str | None
    source: str
    level: str
    type: str
    customer_id: str | None
    phone: str | None
    received_at: datetime
    description: str
    team_id: str | None
    agency_id: str | None
    agent_id: str | None
    outcome: str | None
    outcome_by: str | None
    outcome_at: datetime | None
    follow_up: str | None
    created_by: str
    created_at: datetime
    calls: tuple[LinkedCall, ...] = ()
    hidden_calls: int = 0

    @property
    def status(self) -> str:
        return "open" if self.outcome is None else "closed"

    def summary_json(self) -> dict[str, Any]:
        """The register's row: everything but the calls' content."""
        return {
            "id": self.id,
            "reference": self.reference,
            "source": {"code": self.source, "label": label(Source, self.source)},
            "level": {"code": self.level, "label": label(Level, self.level)},
            "type": {"code": self.type, "label": label(ComplaintType, self.type)},
            "customer_id": self.customer_id,
            "phone": self.phone,
            "received_at": self.received_at.isoformat(),
            "description": self.description,
            "team_id": self.team_id,
            "agency_id": self.agency_id,
            "agent_id": self.agent_id,
            "status": self.status,
            "outcome": None
            if self.outcome is None
            else {
                "code": self.outcome,
                "label": label(Outcome, self.outcome),
                "decided_by": self.outcome_by,
                "decided_at": self.outcome_at.isoformat() if self.outcome_at else None,
                "follow_up": self.follow_up,
            },
            "created_by": self.created_by,
            "created_at": self.created_at.isoformat(),
        }

    def as_json(self, *, with_citations: bool = False) -> dict[str, Any]:
        return {
            **self.summary_json(),
            "calls": [c.as_json(with_citations=with_citations) for c in self.calls],
            "hidden_calls": self.hidden_calls,
        }


def complaint_view(
    row: ComplaintRow,
    principal: Principal,
    calls: tuple[LinkedCall, ...] = (),
    hidden_calls: int = 0,
) -> ComplaintView:
    """The complaint row as shown to ``principal`` (the phone masked without view_pii)."""
    phone = row.phone
    if phone is not None and not principal.can(Permission.VIEW_PII):
        phone = mask_number(phone)
    return ComplaintView(
        id=row.id,
        reference=row.reference,
        source=row.source,
        level=row.level,
        type=row.type,
        customer_id=row.customer_id,
        phone=phone,
        received_at=row.received_at,
        description=row.description,
        team_id=row.team_id,
        agency_id=row.agency_id,
        agent_id=row.agent_id,
        outcome=row.outcome,
        outcome_by=row.outcome_by,
        outcome_at=row.outcome_at,
        follow_up=row.follow_up,
        created_by=row.created_by,
        created_at=row.created_at,
        calls=calls,
        hidden_calls=hidden_calls,
    )


def _finding_view(row: FindingRow, pii: bool) -> FindingView:
    text = finding_from_row(row).text if pii else row.text
    rule = RULES.get(row.rule)
    return FindingView(
        id=row.id,
        rule=row.rule,
        rule_name=rule.name_zh if rule else "",
        speaker=row.speaker,
        start_s=row.start_s,
        end_s=row.end_s,
        text=text,
        source=row.source,
        confidence=row.confidence,
        review_status=row.review_status,
    )


def linked_calls(
    session: Session, principal: Principal, complaint_pk: int
) -> tuple[list[LinkedCall], int]:
    """The linked calls ``principal`` may see (with findings and decisions), and how many not."""
    rows = linked_call_rows(session, complaint_pk=complaint_pk)
    visible = [r for r in rows if can_see_call(principal, r)]
    decisions = decisions_by_call(session, [r.id for r in visible])
    pii = principal.can(Permission.VIEW_PII)
    out = [_linked(r, decisions.get(r.id, []), pii) for r in visible]
    return out, len(rows) - len(visible)


def _linked(row: CallRow, decisions: list[DecisionRecord], pii: bool) -> LinkedCall:
    return LinkedCall(
        pk=row.id,
        call_id=row.call_id,
        recording=row.recording,
        sha256=row.sha256,
        source_path=row.source_path,
        started_at=row.started_at,
        agent_id=row.agent_id,
        team_id=row.team_id,
        agency_id=row.agency_id,
        status=row.status,
        score=row.score,
        findings=tuple(_finding_view(f, pii) for f in row.findings),
        decisions=tuple(decisions),
    )


def complaint_detail(session: Session, principal: Principal, complaint_id: int) -> ComplaintView:
    """The complaint with its visible linked calls; ComplaintNotFound outside the scope."""
    row = complaint_row(session, principal, complaint_id)
    calls, hidden = linked_calls(session, principal, row.id)
    return complaint_view(row, principal, tuple(calls), hidden)
