"""Applying a transition to a call's review row and keeping the record of it.

Every state change is written here, in the caller's transaction, as one ``review_events``
row (who, when, from, to, why): the history a supervisor or an auditor reads back.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from qa_service.accounts.roles import Principal
from qa_service.db.tables import CallReviewRow, CallScoreRow, ReviewEventRow, utcnow
from qa_service.review.states import Action, ReviewState, check


@dataclass(frozen=True)
class ReviewEvent:
    """One step of a call's review, as the history shows it."""

    action: str
    from_state: str | None
    to_state: str
    actor: str | None  # user name; None: the system
    reason: str
    at: datetime


def state_of(review: CallReviewRow | None) -> ReviewState | None:
    return ReviewState(review.state) if review is not None else None


def record_event(
    session: Session,
    *,
    call_pk: int,
    action: Action,
    from_state: ReviewState | None,
    to_state: ReviewState,
    actor: Principal | None,
    reason: str = "",
    now: datetime | None = None,
) -> None:
    """Write one history row (also for steps that keep the state, e.g. a reassignment)."""
    session.add(
        ReviewEventRow(
            call_id=call_pk,
            action=action.value,
            from_state=from_state.value if from_state is not None else None,
            to_state=to_state.value,
            actor_id=actor.user_id if actor is not None else None,
            actor=actor.username if actor is not None else None,
            reason=reason,
            created_at=now or utcnow(),
        )
    )


def apply(
    session: Session,
    review: CallReviewRow,
    action: Action,
    *,
    actor: Principal | None,
    reason: str = "",
    now: datetime | None = None,
) -> ReviewState:
    """Move ``review`` by ``action`` (checked against the table) and record it."""
    current = state_of(review)
    target = check(current, action, actor.role if actor is not None else None)
    now = now or utcnow()
    review.state = target.value
    review.updated_at = now
    record_event(
        session,
        call_pk=review.call_id,
        action=action,
        from_state=current,
        to_state=target,
        actor=actor,
        reason=reason,
        now=now,
    )
    session.flush()
    return target


def events_for_call(session: Session, *, call_pk: int) -> list[ReviewEvent]:
    """A call's review history, oldest first."""
    rows = session.scalars(
        select(ReviewEventRow).where(ReviewEventRow.call_id == call_pk).order_by(ReviewEventRow.id)
    )
    return [
        ReviewEvent(r.action, r.from_state, r.to_state, r.actor, r.reason, r.created_at)
        for r in rows
    ]


@dataclass(frozen=True)
class ScoreStep:
    """One row of a call's score history, with the note saying why it was recorded."""

    score: float
    passed: bool
    fatal: bool
    rubric_version: str
    reason: str
    note: str | None
    is_current: bool
    created_at: datetime


def score_steps(session: Session, *, call_pk: int) -> list[ScoreStep]:
    """A call's score history, oldest first (analysis, re-scores, review decisions)."""
    rows = session.scalars(
        select(CallScoreRow).where(CallScoreRow.call_id == call_pk).order_by(CallScoreRow.id)
    )
    return [
        ScoreStep(
            r.score,
            r.passed,
            r.fatal,
            r.rubric_version,
            r.reason,
            r.note,
            r.is_current,
            r.created_at,
        )
        for r in rows
    ]
