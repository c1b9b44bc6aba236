"""Failed analyses: listed for administrators and put back in the queue on request.

A call that failed every attempt stays ``failed`` with its reason in the database (the
record); nothing retries it behind anyone's back. Re-queueing resets its attempts.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request

from qa_service.accounts.roles import Permission, Principal
from qa_service.api.audit import actor_of, record_success, recording_failures
from qa_service.api.deps import State, require
from qa_service.api.schemas import ErrorResponse, FailedCall, FailedCallList, RequeueResult
from qa_service.audit.events import AuditEvent
from qa_service.worker.submit import list_failed, requeue_failed

router = APIRouter(prefix="/api/v1/jobs", tags=["jobs"])

JobManager = Annotated[Principal, Depends(require(Permission.MANAGE_JOBS))]


@router.get("/failed", response_model=FailedCallList)
def get_failed(state: State, _caller: JobManager) -> FailedCallList:
    """Calls whose analysis failed after every attempt, with the last reason."""
    rows = list_failed(state.sessions, limit=500)
    return FailedCallList(
        items=[
            FailedCall(
                call_id=r.call_id,
                recording=r.recording,
                attempts=r.attempts,
                reason=r.error_message or r.last_error,
                queued_at=r.queued_at,
            )
            for r in rows
        ]
    )


@router.post(
    "/failed/{call_id}/requeue",
    status_code=202,
    response_model=RequeueResult,
    responses={404: {"model": ErrorResponse}, 409: {"model": ErrorResponse}},
)
def post_requeue(call_id: str, request: Request, state: State, caller: JobManager) -> RequeueResult:
    """Put a failed call back in the queue (409 if it is not failed)."""
    actor = actor_of(request, caller)
    with recording_failures(state, actor, AuditEvent.JOB_REQUEUE, f"call:{call_id}"):
        submission = requeue_failed(state.sessions, call_id=call_id, queue=state.queue)
    record_success(state, actor, AuditEvent.JOB_REQUEUE, f"call:{call_id}")
    return RequeueResult(call_id=submission.call_id, status=str(submission.status))
