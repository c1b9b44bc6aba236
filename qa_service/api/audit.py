"""The audit trail over HTTP (administrators), and the helpers routes use to record events.

``GET /api/v1/audit`` lists events, ``GET /api/v1/audit/verify`` checks the hash chain,
``POST /api/v1/audit/reviews`` records a periodic review (``GET`` lists them). Reading the
trail is itself recorded. Routes elsewhere build their :class:`Actor` with
:func:`actor_of` (user + client IP) and wrap refusals in :func:`recording_failures`, which
writes the failure event in its own transaction before the error propagates.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from qa_service.accounts.roles import Permission, Principal
from qa_service.api.deps import State, require
from qa_service.api.schemas import ErrorResponse
from qa_service.api.state import ServiceState
from qa_service.audit.chain import verify_chain
from qa_service.audit.events import (
    Actor,
    AuditEvent,
    AuditRecord,
    EventFilter,
    Outcome,
    failure_details,
    list_events,
    record_event_committed,
)
from qa_service.audit.reviews import AuditReview, list_reviews, parse_bound, record_review
from qa_service.errors import InputError, QAServiceError

router = APIRouter(prefix="/api/v1/audit", tags=["audit"])
logger = logging.getLogger(__name__)

Auditor = Annotated[Principal, Depends(require(Permission.VIEW_AUDIT))]


def client_ip(request: Request) -> str | None:
    """The peer address (behind a reverse proxy: configure uvicorn's --forwarded-allow-ips)."""
    return request.client.host if request.client is not None else None


def actor_of(request: Request, principal: Principal) -> Actor:
    """The signed-in caller of ``request`` as an audit actor."""
    return Actor.of(principal, client_ip=client_ip(request))


def record_success(
    state: ServiceState,
    actor: Actor,
    event: AuditEvent | str,
    target: str | None = None,
    **details: Any,
) -> None:
    """Record a done action in a transaction of its own (reads, or actions that commit
    themselves)."""
    record_event_committed(state.sessions, actor=actor, event=event, target=target, details=details)


def record_failure(
    state: ServiceState,
    actor: Actor,
    event: AuditEvent | str,
    target: str | None,
    exc: QAServiceError,
    **details: Any,
) -> None:
    """Record a refused action in a transaction of its own (the action's is rolled back)."""
    record_event_committed(
        state.sessions,
        actor=actor,
        event=event,
        result=Outcome.FAILURE,
        target=target,
        details=failure_details(exc, **details),
    )


@contextmanager
def recording_failures(
    state: ServiceState,
    actor: Actor,
    event: AuditEvent | str,
    target: str | None = None,
    **details: Any,
) -> Iterator[None]:
    """Record a refused action (a service error) as a failure event, then re-raise."""
    try:
        yield
    except QAServiceError as exc:
        record_failure(state, actor, event, target, exc, **details)
        raise


# --- schemas ------------------------------------------------------------------------------


class AuditEventOut(BaseModel):
    seq: int
    occurred_at: datetime
    actor_kind: str
    actor_id: int | None
    actor_name: str
    client_ip: str | None
    event: str
    result: str
    target: str | None
    details: dict[str, Any]
    prev_hash: str
    row_hash: str

    @classmethod
    def from_record(cls, record: AuditRecord) -> AuditEventOut:
        return cls(
            seq=record.seq,
            occurred_at=record.occurred_at,
            actor_kind=record.actor.kind,
            actor_id=record.actor.user_id,
            actor_name=record.actor.name,
            client_ip=record.actor.client_ip,
            event=record.event,
            result=record.result.value,
            target=record.target,
            details=record.details,
            prev_hash=record.prev_hash,
            row_hash=record.row_hash,
        )


class AuditEventList(BaseModel):
    items: list[AuditEventOut]
    next_cursor: str | None


class ChainProblemOut(BaseModel):
    seq: int
    kind: str
    message: str


class ChainReportOut(BaseModel):
    ok: bool
    checked: int
    first_seq: int | None
    last_seq: int | None
    head_hash: str
    problem: ChainProblemOut | None


class AuditReviewIn(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    period_from: str = Field(alias="from", description="开始：YYYY-MM-DD 或 ISO 时间（含）")
    period_to: str = Field(alias="to", description="结束：YYYY-MM-DD（含当日）或 ISO 时间")
    note: str = Field(description="审阅说明", max_length=2000)


class AuditReviewOut(BaseModel):
    review_id: int
    reviewed_at: datetime
    reviewer_kind: str
    reviewer_id: int | None
    reviewer_name: str
    period_from: datetime
    period_to: datetime
    events: int
    first_seq: int | None
    last_seq: int | None
    head_hash: str
    chain_ok: bool
    note: str
    audit_seq: int

    @classmethod
    def from_review(cls, review: AuditReview) -> AuditReviewOut:
        return cls(
            review_id=review.review_id,
            reviewed_at=review.reviewed_at,
            reviewer_kind=review.reviewer.kind,
            reviewer_id=review.reviewer.user_id,
            reviewer_name=review.reviewer.name,
            period_from=review.period_from,
            period_to=review.period_to,
            events=review.events,
            first_seq=review.first_seq,
            last_seq=review.last_seq,
            head_hash=review.head_hash,
            chain_ok=review.chain_ok,
            note=review.note,
            audit_seq=review.audit_seq,
        )


class AuditReviewList(BaseModel):
    items: list[AuditReviewOut]


# --- routes -------------------------------------------------------------------------------


def _cursor(cursor: str | None) -> int | None:
    if cursor is None:
        return None
    if not cursor.isdigit():
        raise InputError("分页游标无效 / invalid cursor", cursor=cursor)
    return int(cursor)


@router.get("", response_model=AuditEventList, responses={422: {"model": ErrorResponse}})
def get_events(
    request: Request,
    state: State,
    principal: Auditor,
    date_from: Annotated[
        str | None, Query(alias="from", description="开始：YYYY-MM-DD 或 ISO 时间（含）")
    ] = None,
    date_to: Annotated[
        str | None, Query(alias="to", description="结束：YYYY-MM-DD（含当日）或 ISO 时间")
    ] = None,
    user: Annotated[str | None, Query(max_length=128, description="操作人")] = None,
    event: Annotated[
        str | None, Query(max_length=64, description="事件类型，如 auth.login；auth. 为前缀")
    ] = None,
    result: Annotated[Literal["success", "failure"] | None, Query()] = None,
    target: Annotated[str | None, Query(max_length=512)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    cursor: Annotated[str | None, Query(max_length=32)] = None,
) -> AuditEventList:
    """Audit events, oldest first; ``next_cursor`` continues after the last one."""
    tz = state.settings.local_tz
    filters = EventFilter(
        start=parse_bound(date_from, option="from", tz=tz, end=False) if date_from else None,
        end=parse_bound(date_to, option="to", tz=tz, end=True) if date_to else None,
        user=user,
        event=event,
        result=Outcome(result) if result else None,
        target=target,
        after_seq=_cursor(cursor),
    )
    with state.sessions() as session:
        records = list_events(session, filters=filters, limit=limit + 1)
    more = len(records) > limit
    records = records[:limit]
    record_event_committed(
        state.sessions,
        actor=actor_of(request, principal),
        event=AuditEvent.AUDIT_VIEW,
        target="audit",
        details={
            "from": date_from,
            "to": date_to,
            "user": user,
            "event": event,
            "result": result,
            "target": target,
            "returned": len(records),
        },
    )
    return AuditEventList(
        items=[AuditEventOut.from_record(r) for r in records],
        next_cursor=str(records[-1].seq) if more and records else None,
    )


@router.get("/verify", response_model=ChainReportOut)
def get_verify(request: Request, state: State, principal: Auditor) -> dict[str, Any]:
    """Walk the hash chain; ``problem`` names the first changed, missing or inserted event."""
    with state.sessions() as session:
        report = verify_chain(session)
    try:
        record_event_committed(
            state.sessions,
            actor=actor_of(request, principal),
            event=AuditEvent.AUDIT_VERIFY,
            result=Outcome.SUCCESS if report.ok else Outcome.FAILURE,
            target="audit",
            details=report.as_dict(),
        )
    except QAServiceError:
        # A damaged chain (rows planted past its head) may refuse appends: the report
        # matters more than its record here.
        logger.warning("could not record an audit verification", exc_info=True)
    return report.as_dict()


@router.get("/reviews", response_model=AuditReviewList)
def get_reviews(state: State, _caller: Auditor) -> AuditReviewList:
    """The latest audit reviews, newest first."""
    with state.sessions() as session:
        reviews = list_reviews(session)
    return AuditReviewList(items=[AuditReviewOut.from_review(r) for r in reviews])


@router.post(
    "/reviews",
    status_code=201,
    response_model=AuditReviewOut,
    responses={422: {"model": ErrorResponse}},
)
def post_review(
    body: AuditReviewIn, request: Request, state: State, principal: Auditor
) -> AuditReviewOut:
    """Record that the caller reviewed the audit trail of a period (with a note)."""
    tz = state.settings.local_tz
    start = parse_bound(body.period_from, option="from", tz=tz, end=False)
    end = parse_bound(body.period_to, option="to", tz=tz, end=True)
    with state.sessions.begin() as session:
        review = record_review(
            session,
            actor=actor_of(request, principal),
            period_from=start,
            period_to=end,
            note=body.note,
        )
    return AuditReviewOut.from_review(review)
