"""Data access for the job queue: a call's progress through queued → analyzing → analyzed | failed.

The database is the record of every call's state; Redis only carries the jobs. Each state
change here is one conditional UPDATE (compare and set), so two workers, a sweep and a job
racing on the same call cannot both win: whoever updates zero rows backs off. Like the
repository, functions take the caller's ``Session`` first, flush and never commit.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from qa_service.db.rows import call_metadata, metadata_to_json, storage_errors
from qa_service.db.tables import CallRow
from qa_service.domain import CallMetadata, CallStatus
from qa_service.errors import CallNotFound, Conflict

# Longest stored reason: enough for the message and the exception's first lines.
_REASON_CHARS = 2000


@dataclass(frozen=True)
class QueuedCall:
    """A call as the queue sees it: identity, where its audio is, and its progress."""

    pk: int
    call_id: str
    sha256: str
    recording: str
    status: CallStatus
    attempts: int
    audio_ext: str | None
    metadata: CallMetadata | None
    last_error: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    job_id: str | None = None
    queued_at: datetime | None = None
    analysis_started_at: datetime | None = None
    heartbeat_at: datetime | None = None
    uploaded_by: str | None = None


def _queued_call(row: CallRow) -> QueuedCall:
    return QueuedCall(
        pk=row.id,
        call_id=row.call_id,
        sha256=row.sha256,
        recording=row.recording,
        status=CallStatus(row.status),
        attempts=row.attempts,
        audio_ext=row.audio_ext,
        metadata=call_metadata(row),
        last_error=row.last_error,
        error_code=row.error_code,
        error_message=row.error_message,
        job_id=row.job_id,
        queued_at=row.queued_at,
        analysis_started_at=row.analysis_started_at,
        heartbeat_at=row.heartbeat_at,
        uploaded_by=row.uploaded_by,
    )


def insert_queued_call(
    session: Session,
    *,
    call_id: str,
    sha256: str,
    recording: str,
    audio_ext: str,
    metadata: CallMetadata | None,
    uploaded_by: str | None,
    job_id: str,
    now: datetime,
) -> QueuedCall:
    """Insert a new ``queued`` call; a taken sha256 or call id raises IntegrityError on flush.

    The caller runs this inside a savepoint and, on IntegrityError, looks the existing call
    up: the unique constraints are what make concurrent uploads of one recording safe.
    """
    row = CallRow(
        call_id=call_id,
        sha256=sha256,
        recording=recording[:512],
        status=CallStatus.QUEUED.value,
        attempts=0,
        audio_ext=audio_ext,
        uploaded_by=uploaded_by,
        job_id=job_id,
        queued_at=now,
        created_at=now,
        updated_at=now,
    )
    if metadata is not None:
        row.sidecar = metadata_to_json(metadata)
        row.agent_id = metadata.agent_id
        row.customer_id = metadata.customer_id
        row.dialed_number = metadata.dialed_number
        row.contact_role = metadata.contact_role
        row.direction = metadata.direction
        row.started_at = metadata.started_at
        row.team_id = metadata.team_id
        row.agency_id = metadata.agency_id
    session.add(row)
    session.flush()
    return _queued_call(row)


def find_queued_call(
    session: Session, *, call_id: str | None = None, sha256: str | None = None
) -> QueuedCall | None:
    """The call with this call id or these bytes (sha256), if any."""
    query = select(CallRow)
    if call_id is not None:
        query = query.where(CallRow.call_id == call_id)
    elif sha256 is not None:
        query = query.where(CallRow.sha256 == sha256)
    else:
        raise ValueError("call_id or sha256 is required")
    with storage_errors("find_queued_call", call_id=call_id, sha256=sha256):
        row = session.scalars(query).first()
        return _queued_call(row) if row is not None else None


def get_queued_call(session: Session, *, call_id: str) -> QueuedCall:
    """Like :func:`find_queued_call` by call id, but raises CallNotFound."""
    found = find_queued_call(session, call_id=call_id)
    if found is None:
        raise CallNotFound(f"找不到通话 {call_id} / call {call_id} not found", call_id=call_id)
    return found


def claim_for_analysis(
    session: Session, *, call_id: str, job_id: str | None, now: datetime
) -> QueuedCall | None:
    """Move a ``queued`` call to ``analyzing`` (one more attempt); None if it is not queued.

    None means another worker holds it, or it is already analysed or failed: the job has
    nothing to do, which is what makes a job run twice harmless.
    """
    with storage_errors("claim_for_analysis", call_id=call_id):
        result = session.execute(
            update(CallRow)
            .where(CallRow.call_id == call_id, CallRow.status == CallStatus.QUEUED.value)
            .values(
                status=CallStatus.ANALYZING.value,
                attempts=CallRow.attempts + 1,
                analysis_started_at=now,
                heartbeat_at=now,
                job_id=job_id,
                updated_at=now,
            )
            .execution_options(synchronize_session=False)
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            return None
        return find_queued_call(session, call_id=call_id)


def _owned(pk: int, started_at: datetime):  # type: ignore[no-untyped-def]
    # The claim's start time identifies it: a call taken back by the sweep and claimed again
    # has a new one, so a worker that lost its claim cannot overwrite the newer run.
    return (
        CallRow.id == pk,
        CallRow.status == CallStatus.ANALYZING.value,
        CallRow.analysis_started_at == started_at,
    )


def still_owned(session: Session, *, call: QueuedCall) -> bool:
    """Whether ``call``'s claim (by :func:`claim_for_analysis`) still holds; locks the row."""
    assert call.analysis_started_at is not None
    with storage_errors("still_owned", call_id=call.call_id):
        query = select(CallRow.id).where(*_owned(call.pk, call.analysis_started_at))
        return session.scalars(query.with_for_update()).first() is not None


def beat(session: Session, *, call: QueuedCall, now: datetime) -> bool:
    """Record that the worker analysing ``call`` is alive; False if it lost the claim."""
    assert call.analysis_started_at is not None
    with storage_errors("heartbeat", call_id=call.call_id):
        result = session.execute(
            update(CallRow)
            .where(*_owned(call.pk, call.analysis_started_at))
            .values(heartbeat_at=now)
            .execution_options(synchronize_session=False)
        )
        return result.rowcount == 1  # type: ignore[attr-defined,no-any-return]


def finish_analysis(session: Session, *, call: QueuedCall, status: CallStatus) -> None:
    """After the analysis was saved: set the final status and clear the run's bookkeeping."""
    with storage_errors("finish_analysis", call_id=call.call_id):
        session.execute(
            update(CallRow)
            .where(CallRow.id == call.pk)
            .values(status=status.value, heartbeat_at=None)
            .execution_options(synchronize_session=False)
        )


def release_for_retry(session: Session, *, call: QueuedCall, reason: str, now: datetime) -> bool:
    """Put an ``analyzing`` call back to ``queued`` after a failed attempt (reason kept)."""
    assert call.analysis_started_at is not None
    with storage_errors("release_for_retry", call_id=call.call_id):
        result = session.execute(
            update(CallRow)
            .where(*_owned(call.pk, call.analysis_started_at))
            .values(
                status=CallStatus.QUEUED.value,
                last_error=reason[:_REASON_CHARS],
                heartbeat_at=None,
                queued_at=now,
                updated_at=now,
            )
            .execution_options(synchronize_session=False)
        )
        return result.rowcount == 1  # type: ignore[attr-defined,no-any-return]


def mark_failed(
    session: Session,
    *,
    pk: int,
    code: str,
    message: str,
    now: datetime,
    only_from: CallStatus | None = None,
    started_at: datetime | None = None,
) -> bool:
    """Set a call ``failed`` with its reason (listed and re-queueable); False if it changed."""
    conditions = [CallRow.id == pk]
    if only_from is not None:
        conditions.append(CallRow.status == only_from.value)
    if started_at is not None:
        conditions.append(CallRow.analysis_started_at == started_at)
    with storage_errors("mark_failed", pk=pk):
        result = session.execute(
            update(CallRow)
            .where(*conditions)
            .values(
                status=CallStatus.FAILED.value,
                error_code=code[:64],
                error_message=message[:_REASON_CHARS],
                last_error=message[:_REASON_CHARS],
                heartbeat_at=None,
                updated_at=now,
            )
            .execution_options(synchronize_session=False)
        )
        return result.rowcount == 1  # type: ignore[attr-defined,no-any-return]


def requeue_stale(
    session: Session, *, call: QueuedCall, reason: str, stale_before: datetime, now: datetime
) -> bool:
    """Take back an ``analyzing`` call whose worker stopped beating before ``stale_before``."""
    with storage_errors("requeue_stale", call_id=call.call_id):
        result = session.execute(
            update(CallRow)
            .where(
                CallRow.id == call.pk,
                CallRow.status == CallStatus.ANALYZING.value,
                or_(CallRow.heartbeat_at.is_(None), CallRow.heartbeat_at < stale_before),
            )
            .values(
                status=CallStatus.QUEUED.value,
                last_error=reason[:_REASON_CHARS],
                heartbeat_at=None,
                queued_at=now,
                updated_at=now,
            )
            .execution_options(synchronize_session=False)
        )
        return result.rowcount == 1  # type: ignore[attr-defined,no-any-return]


def requeue_failed_call(
    session: Session, *, call_id: str, job_id: str, now: datetime
) -> QueuedCall:
    """Give a ``failed`` call a fresh set of attempts; Conflict if it is not failed."""
    call = get_queued_call(session, call_id=call_id)
    if call.status is not CallStatus.FAILED:
        raise Conflict(
            f"通话 {call_id} 当前状态为 {call.status.value}，只有失败的通话可以重新排队 / "
            f"call {call_id} is {call.status.value}; only failed calls can be re-queued",
            call_id=call_id,
            status=call.status.value,
        )
    if call.audio_ext is None:
        raise Conflict(
            f"通话 {call_id} 的录音不在录音存储中，无法重新分析 / call {call_id} has no "
            "recording in the audio store to analyse again",
            call_id=call_id,
        )
    with storage_errors("requeue_failed_call", call_id=call_id):
        session.execute(
            update(CallRow)
            .where(CallRow.id == call.pk, CallRow.status == CallStatus.FAILED.value)
            .values(
                status=CallStatus.QUEUED.value,
                attempts=0,
                error_code=None,
                error_message=None,
                job_id=job_id,
                queued_at=now,
                heartbeat_at=None,
                updated_at=now,
            )
            .execution_options(synchronize_session=False)
        )
    return get_queued_call(session, call_id=call_id)


def calls_with_status(
    session: Session, *, statuses: tuple[CallStatus, ...], limit: int = 1000, offset: int = 0
) -> list[QueuedCall]:
    """Calls in any of ``statuses``, oldest queued first."""
    with storage_errors("calls_with_status"):
        rows = session.scalars(
            select(CallRow)
            .where(CallRow.status.in_([s.value for s in statuses]))
            .order_by(CallRow.queued_at.is_(None), CallRow.queued_at, CallRow.id)
            .limit(limit)
            .offset(offset)
        ).all()
        return [_queued_call(row) for row in rows]


def count_by_status(session: Session) -> dict[str, int]:
    """How many calls are in each status (for health pages and the bench)."""
    with storage_errors("count_by_status"):
        rows = session.execute(select(CallRow.status, func.count()).group_by(CallRow.status))
        return {status: count for status, count in rows}
