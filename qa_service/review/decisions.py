"""An inspector's decisions: confirm or dismiss each finding, add missed ones, complete.

After every decision the call is re-scored with the existing rescoring
(:func:`qa_service.db.rescoring.rescore_call`, dismissed findings left out) and a changed
score is appended to the score history with reason ``review`` and a note naming the
decision, so the history says why the score moved.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from functools import lru_cache
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from qa_service.accounts.roles import Principal
from qa_service.db.rescoring import RescoreResult, rescore_call
from qa_service.db.tables import (
    CallRow,
    FindingRow,
    ReviewDecisionRow,
    UtteranceRow,
    utcnow,
)
from qa_service.errors import Conflict, FindingNotFound, InputError
from qa_service.review import history
from qa_service.review.queue import ensure_holder, renew_lease, review_row
from qa_service.review.states import Action, check_role
from qa_service.rules.catalogue import RULES
from qa_service.scoring.rubric import Rubric, load_rubric
from qa_service.settings import Settings


class Verdict(StrEnum):
    CONFIRM = "confirm"
    DISMISS = "dismiss"


class DismissReason(StrEnum):
    ASR_ERROR = "asr_error"  # the transcript is wrong, not the agent
    WRONG_SPEAKER = "wrong_speaker"  # said by the other party
    COMPLIANT_IN_CONTEXT = "compliant_in_context"
    RULE_NOT_APPLICABLE = "rule_not_applicable"
    OTHER = "other"


@dataclass(frozen=True)
class DecisionOutcome:
    """A decision taken, and what it did to the score."""

    finding_id: int
    decision: str
    score: float | None
    previous_score: float | None
    score_changed: bool


@lru_cache(maxsize=4)
def _load(path: str, mtime: float) -> Rubric:
    return load_rubric(Path(path))


def rubric_for(settings: Settings) -> Rubric:
    """The rubric new scores use (loaded once per file version, not per decision)."""
    path = settings.rubric_path
    return _load(str(path), path.stat().st_mtime if path.exists() else 0.0)


def _rescore(session: Session, call: CallRow, settings: Settings, note: str) -> RescoreResult:
    return rescore_call(
        session, call_id=call.call_id, rubric=rubric_for(settings), reason="review", note=note
    )


def _outcome(finding_id: int, decision: str, result: RescoreResult) -> DecisionOutcome:
    return DecisionOutcome(
        finding_id=finding_id,
        decision=decision,
        score=result.new.score,
        previous_score=result.old.score if result.old is not None else None,
        score_changed=result.recorded,
    )


def _held_call(
    session: Session, call_pk: int, principal: Principal, settings: Settings, now: datetime
) -> CallRow:
    check_role(principal.role, Action.COMPLETE)  # decisions are the reviewing inspector's
    review = review_row(session, call_pk=call_pk, now=now)
    ensure_holder(review, principal)
    renew_lease(review, settings, now)
    call = session.get(CallRow, call_pk)
    assert call is not None  # review_row found its review row, which cascades with the call
    return call


def decide(
    session: Session,
    *,
    finding_id: int,
    verdict: Verdict,
    principal: Principal,
    settings: Settings,
    reason_code: DismissReason | None = None,
    comment: str = "",
    now: datetime | None = None,
) -> DecisionOutcome:
    """Confirm or dismiss one finding of a call the inspector holds; re-score the call.

    A dismissal needs a reason code (422 without). Deciding again replaces the decision.
    """
    now = now or utcnow()
    finding = session.get(FindingRow, finding_id)
    if finding is None:
        raise FindingNotFound(f"找不到命中 {finding_id} / finding {finding_id} not found")
    call = _held_call(session, finding.call_id, principal, settings, now)
    if verdict is Verdict.DISMISS and reason_code is None:
        raise InputError(
            "驳回命中须选择原因 / a dismissal needs a reason_code", field="reason_code"
        )
    status = "confirmed" if verdict is Verdict.CONFIRM else "dismissed"
    row = session.scalars(
        select(ReviewDecisionRow).where(ReviewDecisionRow.finding_id == finding_id)
    ).first()
    if row is None:
        row = ReviewDecisionRow(
            call_id=call.id,
            finding_id=finding_id,
            rule=finding.rule,
            speaker=finding.speaker,
            start_s=finding.start_s,
            end_s=finding.end_s,
            text=finding.text,
            source=finding.source,
            overturned=False,
        )
        session.add(row)
    elif row.decision == "added":
        raise Conflict(
            "这是质检员补充的命中，请删除后重新添加 / an added finding cannot be re-decided",
            finding_id=finding_id,
        )
    row.decision = status
    row.reason_code = reason_code.value if verdict is Verdict.DISMISS and reason_code else None
    row.comment = comment
    row.decided_by_id = principal.user_id
    row.decided_at = now
    finding.review_status = status
    session.flush()
    why = f" ({reason_code.value})" if verdict is Verdict.DISMISS and reason_code else ""
    note = f"{principal.username} {status} finding {finding_id} {finding.rule}{why}"
    return _outcome(finding_id, status, _rescore(session, call, settings, note))


def _span_utterances(
    session: Session, call_pk: int, start: float, end: float
) -> list[UtteranceRow]:
    return list(
        session.scalars(
            select(UtteranceRow)
            .where(
                UtteranceRow.call_id == call_pk,
                UtteranceRow.start_s < end,
                UtteranceRow.end_s > start,
            )
            .order_by(UtteranceRow.seq)
        )
    )


def add_finding(
    session: Session,
    *,
    call_pk: int,
    rule: str,
    start: float,
    end: float,
    note: str,
    principal: Principal,
    settings: Settings,
    now: datetime | None = None,
) -> DecisionOutcome:
    """Add a finding the machine missed (rule, time span, note); it counts at once."""
    now = now or utcnow()
    rule = rule.upper()
    if rule not in RULES:
        raise InputError(f"未知规则 {rule} / unknown rule {rule}", field="rule")
    if not 0 <= start < end:
        raise InputError("时间段无效 / the time span must have 0 <= start < end", field="start")
    call = _held_call(session, call_pk, principal, settings, now)
    spoken = _span_utterances(session, call_pk, start, end)
    speakers = {u.speaker for u in spoken}
    text = "".join(u.text for u in spoken) or None
    finding = FindingRow(
        call_id=call_pk,
        rule=rule,
        speaker=speakers.pop() if len(speakers) == 1 else None,
        start_s=start,
        end_s=end,
        text=text,
        source="inspector",
        confidence=1.0,
        evidence={"added_by": principal.username, "note": note},
        review_status="confirmed",
    )
    session.add(finding)
    session.flush()
    session.add(
        ReviewDecisionRow(
            call_id=call_pk,
            finding_id=finding.id,
            decision="added",
            comment=note,
            rule=rule,
            speaker=finding.speaker,
            start_s=start,
            end_s=end,
            text=text,
            source="inspector",
            overturned=False,
            decided_by_id=principal.user_id,
            decided_at=now,
        )
    )
    session.flush()
    msg = f"{principal.username} added finding {finding.id} {rule} at {start:g}-{end:g}s"
    return _outcome(finding.id, "added", _rescore(session, call, settings, msg))


def complete(
    session: Session, *, call_pk: int, principal: Principal, now: datetime | None = None
) -> None:
    """Finish the review: every finding must be decided first (Conflict otherwise)."""
    now = now or utcnow()
    review = review_row(session, call_pk=call_pk, now=now)
    check_role(principal.role, Action.COMPLETE)
    ensure_holder(review, principal)
    pending = session.scalar(
        select(func.count())
        .select_from(FindingRow)
        .where(FindingRow.call_id == call_pk, FindingRow.review_status == "pending")
    )
    if pending:
        raise Conflict(
            f"还有 {pending} 条命中未确认或驳回 / {pending} finding(s) still undecided",
            pending=pending,
        )
    history.apply(
        session, review, Action.COMPLETE, actor=principal, reason="复核完成 / review done", now=now
    )
    review.lease_expires_at = None
    session.flush()


@dataclass(frozen=True)
class DecisionView:
    """A decision as the call's history and the agent's inbox show it."""

    decision_id: int
    finding_id: int | None
    rule: str
    decision: str
    reason_code: str | None
    comment: str
    coaching_note: str | None
    overturned: bool
    start_s: float | None
    end_s: float | None
    text: str | None
    decided_at: datetime


def decisions_for_call(session: Session, *, call_pk: int) -> list[DecisionView]:
    rows = session.scalars(
        select(ReviewDecisionRow)
        .where(ReviewDecisionRow.call_id == call_pk)
        .order_by(ReviewDecisionRow.id)
    )
    return [
        DecisionView(
            decision_id=r.id,
            finding_id=r.finding_id,
            rule=r.rule,
            decision=r.decision,
            reason_code=r.reason_code,
            comment=r.comment,
            coaching_note=r.coaching_note,
            overturned=r.overturned,
            start_s=r.start_s,
            end_s=r.end_s,
            text=r.text,
            decided_at=r.decided_at,
        )
        for r in rows
    ]
