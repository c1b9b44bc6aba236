"""Feedback to the agent, the agent's answer (acknowledge or appeal), the supervisor's ruling.

The inspector sends a coaching note per standing finding; the call lands in the agent's
inbox with a deadline (``appeal_days``). The agent acknowledges, or appeals findings one
by one with a reason before the deadline; the supervisor of the agent's team upholds or
overturns each appeal. The ruling is final: an overturned finding is dismissed and the
call re-scored (reason ``review``, the note naming the appeal).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import ColumnElement, select, true
from sqlalchemy.orm import Session

from qa_service.accounts.roles import Principal
from qa_service.db.rescoring import rescore_call
from qa_service.db.tables import (
    CallReviewRow,
    CallRow,
    FindingRow,
    ReviewAppealRow,
    ReviewDecisionRow,
    utcnow,
)
from qa_service.errors import AppealNotFound, Conflict, FindingNotFound, InputError
from qa_service.review import history
from qa_service.review.decisions import DecisionView, decisions_for_call, rubric_for
from qa_service.review.queue import review_row
from qa_service.review.states import Action, ReviewState, check_role, next_state
from qa_service.settings import Settings


class Ruling(StrEnum):
    UPHOLD = "upheld"
    OVERTURN = "overturned"


def _standing(session: Session, call_pk: int) -> list[ReviewDecisionRow]:
    """Decisions whose finding stands against the agent (confirmed or added, not overturned)."""
    return list(
        session.scalars(
            select(ReviewDecisionRow)
            .where(
                ReviewDecisionRow.call_id == call_pk,
                ReviewDecisionRow.decision.in_(("confirmed", "added")),
                ReviewDecisionRow.overturned.is_(False),
            )
            .order_by(ReviewDecisionRow.id)
        )
    )


def send_feedback(
    session: Session,
    *,
    call_pk: int,
    principal: Principal,
    settings: Settings,
    notes: Mapping[int, str],
    summary: str = "",
    now: datetime | None = None,
) -> datetime:
    """Send the coaching notes (finding id → note) to the agent; returns the appeal deadline.

    Every confirmed or added finding needs a note (422 naming those without).
    """
    now = now or utcnow()
    review = review_row(session, call_pk=call_pk, now=now)
    check_role(principal.role, Action.SEND_FEEDBACK)
    next_state(history.state_of(review), Action.SEND_FEEDBACK)  # 409 before the notes
    if review.assignee_id != principal.user_id:
        raise Conflict(
            "只有复核该通话的质检员可以发送反馈 / only the inspector who reviewed the call "
            "sends its feedback",
        )
    standing = _standing(session, call_pk)
    missing = [d.finding_id for d in standing if not (notes.get(d.finding_id or -1) or "").strip()]
    if missing:
        raise InputError(
            f"以下命中缺少辅导意见：{missing} / coaching note missing for findings {missing}",
            field="notes",
        )
    unknown = sorted(set(notes) - {d.finding_id for d in standing})
    if unknown:
        raise InputError(
            f"这些命中不是已确认的命中：{unknown} / not confirmed findings of this call: {unknown}",
            field="notes",
        )
    history.apply(
        session,
        review,
        Action.SEND_FEEDBACK,
        actor=principal,
        reason=summary or "已发送辅导反馈 / feedback sent",
        now=now,
    )
    for decision in standing:
        decision.coaching_note = notes[decision.finding_id or -1].strip()
    review.feedback_summary = summary
    review.feedback_at = now
    review.appeal_deadline = now + timedelta(days=settings.appeal_days)
    session.flush()
    return review.appeal_deadline


def acknowledge(
    session: Session, *, call_pk: int, principal: Principal, now: datetime | None = None
) -> None:
    """The agent accepts the feedback (final)."""
    now = now or utcnow()
    review = review_row(session, call_pk=call_pk, now=now)
    history.apply(
        session,
        review,
        Action.ACKNOWLEDGE,
        actor=principal,
        reason="坐席已确认 / acknowledged",
        now=now,
    )


def appeal(
    session: Session,
    *,
    finding_id: int,
    principal: Principal,
    reason: str,
    now: datetime | None = None,
) -> int:
    """The agent contests one confirmed finding before the deadline; returns the appeal id."""
    now = now or utcnow()
    if not reason.strip():
        raise InputError("申诉须填写理由 / an appeal needs a reason", field="reason")
    decision = session.scalars(
        select(ReviewDecisionRow).where(ReviewDecisionRow.finding_id == finding_id)
    ).first()
    if decision is None:
        raise FindingNotFound(f"找不到命中 {finding_id} / finding {finding_id} not found")
    review = review_row(session, call_pk=decision.call_id, now=now)
    check_role(principal.role, Action.APPEAL)
    if decision.decision == "dismissed" or decision.overturned:
        raise Conflict(
            "该命中已被驳回，无需申诉 / this finding was dismissed: nothing to appeal",
            finding_id=finding_id,
        )
    if review.appeal_deadline is not None and now > review.appeal_deadline:
        raise Conflict(
            f"申诉期已于 {review.appeal_deadline.isoformat()} 结束 / the appeal window closed "
            f"at {review.appeal_deadline.isoformat()}",
            deadline=review.appeal_deadline.isoformat(),
        )
    exists = session.scalars(
        select(ReviewAppealRow.id).where(ReviewAppealRow.decision_id == decision.id)
    ).first()
    if exists is not None:
        raise Conflict(
            "该命中已经申诉过 / this finding has been appealed already", appeal_id=exists
        )
    history.apply(
        session,
        review,
        Action.APPEAL,
        actor=principal,
        reason=f"申诉命中 {finding_id}（{decision.rule}）：{reason.strip()} / appeal of "
        f"finding {finding_id}",
        now=now,
    )
    row = ReviewAppealRow(
        call_id=decision.call_id,
        decision_id=decision.id,
        appellant_id=principal.user_id,
        reason=reason.strip(),
        status="open",
        created_at=now,
    )
    session.add(row)
    session.flush()
    return row.id


@dataclass(frozen=True)
class AppealView:
    appeal_id: int
    call_id: str
    finding_id: int | None
    rule: str
    text: str | None
    coaching_note: str | None
    reason: str
    status: str
    ruling_note: str | None
    agent_id: str | None
    team_id: str | None
    created_at: datetime
    ruled_at: datetime | None


def list_appeals(
    session: Session,
    *,
    scope: ColumnElement[bool] | None,
    status: str | None = "open",
    call_pk: int | None = None,
) -> list[AppealView]:
    """Appeals within ``scope`` (a where-clause on calls), oldest first."""
    query = (
        select(ReviewAppealRow, ReviewDecisionRow, CallRow)
        .join(ReviewDecisionRow, ReviewDecisionRow.id == ReviewAppealRow.decision_id)
        .join(CallRow, CallRow.id == ReviewAppealRow.call_id)
        .where(scope if scope is not None else true())
        .order_by(ReviewAppealRow.id)
    )
    if status is not None:
        query = query.where(ReviewAppealRow.status == status)
    if call_pk is not None:
        query = query.where(ReviewAppealRow.call_id == call_pk)
    return [
        AppealView(
            appeal_id=a.id,
            call_id=c.call_id,
            finding_id=d.finding_id,
            rule=d.rule,
            text=d.text,
            coaching_note=d.coaching_note,
            reason=a.reason,
            status=a.status,
            ruling_note=a.ruling_note,
            agent_id=c.agent_id,
            team_id=c.team_id,
            created_at=a.created_at,
            ruled_at=a.ruled_at,
        )
        for a, d, c in session.execute(query)
    ]


def appeal_call_pk(session: Session, *, appeal_id: int) -> int | None:
    """The call an appeal belongs to (None: no such appeal)."""
    return session.scalar(select(ReviewAppealRow.call_id).where(ReviewAppealRow.id == appeal_id))


def rule_appeal(
    session: Session,
    *,
    appeal_id: int,
    ruling: Ruling,
    principal: Principal,
    settings: Settings,
    note: str = "",
    now: datetime | None = None,
) -> ReviewState:
    """Uphold or overturn one appeal (final); returns the call's review state afterwards.

    Overturning dismisses the finding and re-scores the call. When the last open appeal
    of the call is ruled, the call becomes ``ruled``.
    """
    now = now or utcnow()
    check_role(principal.role, Action.RULE)
    appeal_row = session.get(ReviewAppealRow, appeal_id)
    if appeal_row is None:
        raise AppealNotFound(f"找不到申诉 {appeal_id} / appeal {appeal_id} not found")
    if appeal_row.status != "open":
        raise Conflict(
            f"申诉 {appeal_id} 已裁决，裁决为最终结果 / appeal {appeal_id} was ruled already "
            "(rulings are final)",
            appeal_id=appeal_id,
        )
    review = review_row(session, call_pk=appeal_row.call_id, now=now)
    if review.state != ReviewState.APPEALED:
        next_state(history.state_of(review), Action.RULE)  # raises: not appealed
    decision = session.get(ReviewDecisionRow, appeal_row.decision_id)
    assert decision is not None  # the appeal row cascades with its decision
    appeal_row.status = ruling.value
    appeal_row.ruling_note = note
    appeal_row.ruled_by_id = principal.user_id
    appeal_row.ruled_at = now
    if ruling is Ruling.OVERTURN:
        decision.overturned = True
        finding = session.get(FindingRow, decision.finding_id) if decision.finding_id else None
        if finding is not None:
            finding.review_status = "dismissed"
        session.flush()
        call = session.get(CallRow, appeal_row.call_id)
        assert call is not None
        rescore_call(
            session,
            call_id=call.call_id,
            rubric=rubric_for(settings),
            reason="review",
            note=f"{principal.username} overturned appeal {appeal_id} on finding "
            f"{decision.finding_id} {decision.rule}",
        )
    session.flush()
    still_open = session.scalar(
        select(ReviewAppealRow.id).where(
            ReviewAppealRow.call_id == appeal_row.call_id, ReviewAppealRow.status == "open"
        )
    )
    verb = "维持" if ruling is Ruling.UPHOLD else "撤销"
    why = f"申诉 {appeal_id}：{verb}命中 / appeal {appeal_id} {ruling.value}"
    if note:
        why += f"：{note}"
    if still_open is None:
        return history.apply(session, review, Action.RULE, actor=principal, reason=why, now=now)
    # Other appeals of the call still wait: the ruling is recorded, the state stays.
    history.record_event(
        session,
        call_pk=review.call_id,
        action=Action.RULE,
        from_state=ReviewState.APPEALED,
        to_state=ReviewState.APPEALED,
        actor=principal,
        reason=why,
        now=now,
    )
    return ReviewState.APPEALED


# --- the agent's inbox ----------------------------------------------------------------

INBOX_STATES = (
    ReviewState.FEEDBACK_SENT,
    ReviewState.APPEALED,
    ReviewState.ACKNOWLEDGED,
    ReviewState.RULED,
)


@dataclass(frozen=True)
class InboxItem:
    call_id: str
    state: str
    needs_answer: bool  # feedback waiting for acknowledgement or appeal
    score: float | None
    summary: str | None
    feedback_at: datetime | None
    appeal_deadline: datetime | None
    findings: tuple[DecisionView, ...]
    appeals: tuple[AppealView, ...]


def inbox(
    session: Session, *, scope: ColumnElement[bool], now: datetime | None = None
) -> list[InboxItem]:
    """Feedback addressed to the agent (``scope``: the agent's calls), newest first."""
    now = now or utcnow()
    rows = session.execute(
        select(CallReviewRow, CallRow)
        .join(CallRow, CallRow.id == CallReviewRow.call_id)
        .where(CallReviewRow.state.in_([s.value for s in INBOX_STATES]), scope)
        .order_by(CallReviewRow.feedback_at.desc(), CallRow.id.desc())
    ).all()
    out = []
    for review, call in rows:
        open_window = review.appeal_deadline is None or now <= review.appeal_deadline
        out.append(
            InboxItem(
                call_id=call.call_id,
                state=review.state,
                needs_answer=review.state == ReviewState.FEEDBACK_SENT and open_window,
                score=call.score,
                summary=review.feedback_summary,
                feedback_at=review.feedback_at,
                appeal_deadline=review.appeal_deadline,
                findings=tuple(
                    d
                    for d in decisions_for_call(session, call_pk=call.id)
                    if d.decision != "dismissed"
                ),
                appeals=tuple(list_appeals(session, scope=None, status=None, call_pk=call.id)),
            )
        )
    return out


__all__ = [
    "AppealView",
    "InboxItem",
    "Ruling",
    "acknowledge",
    "appeal",
    "appeal_call_pk",
    "inbox",
    "list_appeals",
    "rule_appeal",
    "send_feedback",
]
