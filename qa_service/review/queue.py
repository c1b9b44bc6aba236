"""The review queue: classification after analysis, risk order, claims with a lease, assignment.

:func:`classify_call` is the hook the analysis save path calls (worker job, CLI
``analyze --store``): it sets the call's review state to ``flagged`` or ``passed``. The
queue lists flagged calls most urgent first (:mod:`.risk`); an inspector claims one with
a lease that returns it to the queue after ``review_lease_minutes`` idle minutes (checked
lazily, with an injectable ``now``), and a supervisor can assign one to an inspector.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, exists, select, true
from sqlalchemy.orm import Session

from qa_service.accounts.roles import Principal, Role
from qa_service.db.rows import finding_from_row
from qa_service.db.scores import current_score
from qa_service.db.tables import CallReviewRow, CallRow, FindingRow, UserRow, utcnow
from qa_service.errors import CallNotFound, Conflict, InputError
from qa_service.review import history
from qa_service.review.risk import classify, lease_expired, lease_until
from qa_service.review.states import Action, ReviewState, check
from qa_service.settings import Settings

logger = logging.getLogger(__name__)

_CLASSIFIABLE = (None, ReviewState.FLAGGED, ReviewState.PASSED)

RISK_LABELS = {
    0: "投诉倾向且未升级处理 / complaint intent, not de-escalated",
    1: "投诉倾向 / complaint intent",
    2: "一票否决项 / fatal finding",
    3: "其他命中 / other findings",
    4: "校准抽样 / calibration sample",
    9: "无需复核 / passed",
}


def _call(session: Session, call_pk: int) -> CallRow:
    row = session.get(CallRow, call_pk)
    if row is None:
        raise CallNotFound(
            f"找不到通话（内部编号 {call_pk}）/ call row {call_pk} not found", call_pk=call_pk
        )
    return row


def review_row(session: Session, *, call_pk: int, now: datetime | None = None) -> CallReviewRow:
    """The call's review row, its lease checked first; Conflict if it was never classified."""
    review = session.scalars(select(CallReviewRow).where(CallReviewRow.call_id == call_pk)).first()
    if review is None:
        raise Conflict(
            "该通话尚未完成分析，不能复核 / the call has no review state yet (not analysed)",
            call_pk=call_pk,
        )
    now = now or utcnow()
    if review.state == ReviewState.IN_REVIEW and lease_expired(review.lease_expires_at, now):
        _expire(session, review, now)
    return review


def _expire(session: Session, review: CallReviewRow, now: datetime) -> None:
    review.assignee_id = None
    review.lease_expires_at = None
    history.apply(
        session,
        review,
        Action.EXPIRE,
        actor=None,
        reason="认领后长时间未操作，退回队列 / lease expired after idle time",
        now=now,
    )


def expire_leases(session: Session, *, now: datetime | None = None) -> int:
    """Return every claim whose lease ran out to the queue; how many there were."""
    now = now or utcnow()
    rows = session.scalars(
        select(CallReviewRow).where(
            CallReviewRow.state == ReviewState.IN_REVIEW.value,
            CallReviewRow.lease_expires_at.is_not(None),
            CallReviewRow.lease_expires_at <= now,
        )
    ).all()
    for review in rows:
        _expire(session, review, now)
    return len(rows)


def classify_call(
    session: Session, *, call_pk: int, settings: Settings, now: datetime | None = None
) -> ReviewState | None:
    """Set an analysed call's review state (flagged or passed) from its findings and score.

    Called in the transaction that saves the analysis. A call already under review keeps
    its state (a re-analysis does not undo people's work; logged), and a call that is not
    analysed gets none. Returns the state the call has afterwards.
    """
    row = _call(session, call_pk)
    review = session.scalars(select(CallReviewRow).where(CallReviewRow.call_id == call_pk)).first()
    current = history.state_of(review)
    if row.status != "analyzed":
        return current
    if current not in _CLASSIFIABLE:
        logger.warning("call %s re-analysed while %s: review state kept", row.call_id, current)
        return current
    findings = [
        finding_from_row(f)
        for f in session.scalars(
            select(FindingRow).where(FindingRow.call_id == call_pk).order_by(FindingRow.id)
        )
    ]
    result = classify(
        row.call_id,
        findings,
        current_score(session, call_pk=call_pk),
        calibration_rate=settings.review_calibration_rate,
        calibration_seed=settings.review_calibration_seed,
    )
    action = Action.FLAG if result.flagged else Action.PASS
    weak = "".join(f",{k}" for k in result.weak_evidence) + (",") * bool(result.weak_evidence)
    if review is None:
        target = check(None, action, None)
        review = CallReviewRow(call_id=call_pk, state=target.value)
        session.add(review)
        history.record_event(
            session,
            call_pk=call_pk,
            action=action,
            from_state=None,
            to_state=target,
            actor=None,
            reason=result.reason,
            now=now,
        )
    else:
        target = history.apply(session, review, action, actor=None, reason=result.reason, now=now)
    review.risk_tier = result.risk_tier
    review.calibration = result.calibration
    review.weak_evidence = weak
    session.flush()
    return target


# --- the queue ------------------------------------------------------------------------


@dataclass(frozen=True)
class QueueFilters:
    """Queue filters; None means no filter. ``weak``: a weak-evidence kind, or "any"."""

    rule: str | None = None
    team_id: str | None = None
    weak: str | None = None
    calibration: bool | None = None
    include_claimed: bool = False  # also list calls in review (who holds what)
    mine: bool = False  # only calls the caller holds


@dataclass(frozen=True)
class QueueItem:
    call_id: str
    state: str
    risk_tier: int
    risk: str
    score: float | None
    rules: tuple[str, ...]
    weak_evidence: tuple[str, ...]
    calibration: bool
    assignee: str | None
    lease_expires_at: datetime | None
    started_at: datetime | None
    agent_id: str | None
    team_id: str | None


def _queue_conditions(filters: QueueFilters, principal: Principal) -> list[ColumnElement[bool]]:
    states = [ReviewState.FLAGGED.value]
    if filters.include_claimed or filters.mine:
        states.append(ReviewState.IN_REVIEW.value)
    where: list[ColumnElement[bool]] = [CallReviewRow.state.in_(states)]
    if filters.mine:
        where.append(CallReviewRow.assignee_id == principal.user_id)
    if filters.rule:
        where.append(
            exists().where(FindingRow.call_id == CallRow.id, FindingRow.rule == filters.rule)
        )
    if filters.team_id:
        where.append(CallRow.team_id == filters.team_id)
    if filters.weak == "any":
        where.append(CallReviewRow.weak_evidence != "")
    elif filters.weak:
        where.append(CallReviewRow.weak_evidence.contains(f",{filters.weak},"))
    if filters.calibration is not None:
        where.append(CallReviewRow.calibration.is_(filters.calibration))
    return where


def list_queue(
    session: Session,
    *,
    principal: Principal,
    scope: ColumnElement[bool] | None,
    filters: QueueFilters,
    limit: int = 50,
    offset: int = 0,
    now: datetime | None = None,
) -> list[QueueItem]:
    """Flagged calls within ``scope``, most urgent first (see :func:`.risk.queue_order`)."""
    expire_leases(session, now=now)
    rows = session.execute(
        select(CallReviewRow, CallRow, UserRow.username)
        .join(CallRow, CallRow.id == CallReviewRow.call_id)
        .outerjoin(UserRow, UserRow.id == CallReviewRow.assignee_id)
        .where(*_queue_conditions(filters, principal), scope if scope is not None else true())
        .order_by(
            CallReviewRow.risk_tier,
            CallRow.score.is_(None),
            CallRow.score,
            CallRow.started_at.is_(None),
            CallRow.started_at,
            CallRow.id,
        )
        .limit(limit)
        .offset(offset)
    ).all()
    pks = [call.id for _, call, _ in rows]
    rules: dict[int, set[str]] = {pk: set() for pk in pks}
    if pks:
        for call_pk, rule in session.execute(
            select(FindingRow.call_id, FindingRow.rule).where(FindingRow.call_id.in_(pks))
        ):
            rules[call_pk].add(rule)
    return [
        QueueItem(
            call_id=call.call_id,
            state=review.state,
            risk_tier=review.risk_tier,
            risk=RISK_LABELS.get(review.risk_tier, str(review.risk_tier)),
            score=call.score,
            rules=tuple(sorted(rules[call.id])),
            weak_evidence=tuple(k for k in review.weak_evidence.split(",") if k),
            calibration=review.calibration,
            assignee=assignee,
            lease_expires_at=review.lease_expires_at,
            started_at=call.started_at,
            agent_id=call.agent_id,
            team_id=call.team_id,
        )
        for review, call, assignee in rows
    ]


# --- claims ---------------------------------------------------------------------------


def claim(
    session: Session,
    *,
    call_pk: int,
    principal: Principal,
    settings: Settings,
    now: datetime | None = None,
) -> CallReviewRow:
    """The inspector takes the call for review; the lease runs from now."""
    now = now or utcnow()
    review = review_row(session, call_pk=call_pk, now=now)
    history.apply(session, review, Action.CLAIM, actor=principal, reason="认领 / claimed", now=now)
    review.assignee_id = principal.user_id
    review.assigned_by_id = None
    review.lease_expires_at = lease_until(now, settings.review_lease_minutes)
    session.flush()
    return review


def ensure_holder(review: CallReviewRow, principal: Principal) -> None:
    """Conflict unless ``principal`` holds the call (claimed or was assigned it)."""
    if review.state != ReviewState.IN_REVIEW or review.assignee_id != principal.user_id:
        raise Conflict(
            "该通话不在你的复核中（未认领、已被他人认领或认领已超时）/ you do not hold this "
            "call for review (not claimed, claimed by someone else, or the lease expired)",
            state=review.state,
        )


def renew_lease(review: CallReviewRow, settings: Settings, now: datetime) -> None:
    """Activity on a claimed call keeps it claimed (assignments have no lease)."""
    if review.lease_expires_at is not None:
        review.lease_expires_at = lease_until(now, settings.review_lease_minutes)


def release(
    session: Session,
    *,
    call_pk: int,
    principal: Principal,
    reason: str = "",
    now: datetime | None = None,
) -> CallReviewRow:
    """Put the call back in the queue: its holder, or a supervisor, may."""
    now = now or utcnow()
    review = review_row(session, call_pk=call_pk, now=now)
    if principal.role is Role.INSPECTOR and review.state == ReviewState.IN_REVIEW:
        ensure_holder(review, principal)
    history.apply(
        session,
        review,
        Action.RELEASE,
        actor=principal,
        reason=reason or "放回队列 / released",
        now=now,
    )
    review.assignee_id = None
    review.assigned_by_id = None
    review.lease_expires_at = None
    session.flush()
    return review


def assign(
    session: Session,
    *,
    call_pk: int,
    principal: Principal,
    inspector: str,
    now: datetime | None = None,
) -> CallReviewRow:
    """A supervisor gives the call to an inspector (by user name); no lease expiry."""
    now = now or utcnow()
    target = session.scalars(select(UserRow).where(UserRow.username == inspector.lower())).first()
    if target is None or target.role != Role.INSPECTOR.value or target.disabled_at is not None:
        raise InputError(
            f"{inspector} 不是可用的质检员账号 / {inspector} is not an active inspector",
            field="inspector",
        )
    review = review_row(session, call_pk=call_pk, now=now)
    history.apply(
        session,
        review,
        Action.ASSIGN,
        actor=principal,
        reason=f"分派给 {target.username} / assigned to {target.username}",
        now=now,
    )
    review.assignee_id = target.id
    review.assigned_by_id = principal.user_id
    review.lease_expires_at = None
    session.flush()
    return review


def finding_verdicts(session: Session, *, call_pk: int) -> list[tuple[int, str]]:
    """(finding id, review status) of the call's findings in stored order."""
    return [
        (fid, status)
        for fid, status in session.execute(
            select(FindingRow.id, FindingRow.review_status)
            .where(FindingRow.call_id == call_pk)
            .order_by(FindingRow.id)
        )
    ]


def review_summary(session: Session, *, call_pk: int) -> dict[str, object]:
    """A call's review state for the call detail: state, holder, counts by verdict."""
    review = session.scalars(select(CallReviewRow).where(CallReviewRow.call_id == call_pk)).first()
    counts = {"pending": 0, "confirmed": 0, "dismissed": 0}
    for status in session.scalars(
        select(FindingRow.review_status).where(FindingRow.call_id == call_pk)
    ):
        counts[status] = counts.get(status, 0) + 1
    assignee = None
    if review is not None and review.assignee_id is not None:
        assignee = session.scalar(select(UserRow.username).where(UserRow.id == review.assignee_id))
    return {
        "state": review.state if review is not None else None,
        "calibration": bool(review.calibration) if review is not None else False,
        "risk_tier": review.risk_tier if review is not None else None,
        "weak_evidence": [k for k in review.weak_evidence.split(",") if k] if review else [],
        "assignee": assignee,
        "lease_expires_at": review.lease_expires_at.isoformat()
        if review is not None and review.lease_expires_at
        else None,
        "appeal_deadline": review.appeal_deadline.isoformat()
        if review is not None and review.appeal_deadline
        else None,
        "findings": counts,
    }


__all__ = [
    "QueueFilters",
    "QueueItem",
    "assign",
    "claim",
    "classify_call",
    "expire_leases",
    "finding_verdicts",
    "list_queue",
    "release",
    "review_row",
    "review_summary",
]
