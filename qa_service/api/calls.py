"""Calls: the list with its filters, one call in full, and its recording.

Visibility is the accounts service's where-clause (:func:`visible_calls`), applied to every
query; a call outside it answers 404 exactly like a call that does not exist, so nobody
learns that a call exists from a status code.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from sqlalchemy import select
from sqlalchemy.orm import Session

from qa_service.accounts.roles import Permission, Principal
from qa_service.accounts.scope import visible_calls
from qa_service.api.audit import actor_of, record_success, recording_failures
from qa_service.api.deps import Caller, State, require
from qa_service.api.pii import call_numbers, number_filter, readable_analysis, readable_page
from qa_service.api.rules import citation_json
from qa_service.api.schemas import CallDetail, CallList, ErrorResponse
from qa_service.audit.events import AuditEvent
from qa_service.db import repository as repo
from qa_service.db.listing import CallFilters, list_call_page
from qa_service.db.tables import CallRow
from qa_service.errors import CallNotFound
from qa_service.reports.output import analysis_to_json
from qa_service.review.queue import finding_verdicts, review_summary
from qa_service.review.states import ReviewState

router = APIRouter(prefix="/api/v1/calls", tags=["calls"])

_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorResponse, "description": "no such call, or not yours to see"}
}


def not_found(call_id: str) -> CallNotFound:
    return CallNotFound(f"找不到通话 {call_id} / call {call_id} not found", call_id=call_id)


def visible_call_row(session: Session, principal: Principal, call_id: str) -> CallRow:
    """The call's row if the caller may see it; CallNotFound otherwise (never 403)."""
    if not principal.can(Permission.VIEW_CALLS):
        raise not_found(call_id)
    row = session.scalars(
        select(CallRow).where(CallRow.call_id == call_id, visible_calls(principal))
    ).first()
    if row is None:
        raise not_found(call_id)
    return row


def _day_start(day: date, state: State) -> datetime:
    return datetime.combine(day, time(), tzinfo=state.settings.local_tz)


@router.get("", response_model=CallList)
def list_calls(
    state: State,
    principal: Annotated[Principal, Depends(require(Permission.VIEW_CALLS))],
    agent: Annotated[str | None, Query(description="坐席工号 agent id")] = None,
    team: Annotated[str | None, Query(description="团队 team id")] = None,
    agency: Annotated[str | None, Query(description="外包机构 agency id")] = None,
    date_from: Annotated[date | None, Query(description="通话日期起（含，本地时间）")] = None,
    date_to: Annotated[date | None, Query(description="通话日期止（含，本地时间）")] = None,
    rule: Annotated[str | None, Query(description="命中的规则，如 P03")] = None,
    score_min: Annotated[float | None, Query(ge=0, le=100)] = None,
    score_max: Annotated[float | None, Query(ge=0, le=100)] = None,
    status: Annotated[
        str | None, Query(pattern="^(queued|analyzing|analyzed|failed|error)$")
    ] = None,
    review: Annotated[ReviewState | None, Query(description="复核状态 review state")] = None,
    q: Annotated[str | None, Query(max_length=200, description="转写文本全文检索")] = None,
    number: Annotated[
        str | None, Query(max_length=32, description="被叫号码（需查看个人信息权限）")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> CallList:
    """Calls the caller may see, newest first; ``next_cursor`` fetches the next page."""
    filters = CallFilters(
        agent_id=agent,
        team_id=team,
        agency_id=agency,
        started_from=_day_start(date_from, state) if date_from else None,
        started_before=_day_start(date_to + timedelta(days=1), state) if date_to else None,
        rule=rule.upper() if rule else None,
        score_min=score_min,
        score_max=score_max,
        status=status,
        review=review.value if review is not None else None,
        text=q,
        dialed_number_hash=number_filter(number, principal) if number else None,
    )
    with state.sessions() as session:
        page = list_call_page(
            session, filters=filters, scope=visible_calls(principal), limit=limit, cursor=cursor
        )
    return CallList.from_page(readable_page(page, principal))


@router.get("/{call_id}", response_model=CallDetail, responses=_NOT_FOUND)
def get_call(call_id: str, request: Request, state: State, principal: Caller) -> dict[str, Any]:
    """The call as ``output.md`` describes it, plus its status, review state and metadata."""
    actor = actor_of(request, principal)
    target = f"call:{call_id}"
    with (
        recording_failures(state, actor, AuditEvent.CALL_VIEW, target),
        state.sessions() as session,
    ):
        row = visible_call_row(session, principal, call_id)
        analysis = repo.get_call(session, call_id=call_id)
        out = analysis_to_json(readable_analysis(analysis, principal))
        for finding in out["findings"]:  # why each finding is a violation (issue 10)
            finding["citation"] = citation_json(finding["rule"])
        out["review"] = review_summary(session, call_pk=row.id)
        # Stored order on both sides: the ids the review routes take, and each verdict.
        verdicts = finding_verdicts(session, call_pk=row.id)
        for finding, (finding_id, verdict) in zip(out["findings"], verdicts, strict=False):
            finding["finding_id"] = finding_id
            finding["review_status"] = verdict
        out["started_at"] = row.started_at.isoformat() if row.started_at else None
        for key in ("agent_id", "team_id", "agency_id", "direction", "contact_role"):
            out[key] = getattr(row, key)
        out["attempts"] = row.attempts
        out.update(call_numbers(row, principal))  # masked without view_pii
        if row.status == "failed":
            out["error"] = {"code": "analysis_failed", "message": row.last_error}
    record_success(state, actor, AuditEvent.CALL_VIEW, target)
    return out
