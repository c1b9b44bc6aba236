"""Submission: a stored recording becomes a ``queued`` call and, once, a job.

Idempotent by the recording's SHA-256 under concurrency: the unique constraint on
``calls.sha256`` decides which of ten simultaneous uploads of the same bytes creates the
call; the others get that call back. Only the creator queues a job, and only after its
transaction committed (a worker must find the row it is sent).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from qa_service.db import queue as calls
from qa_service.db.tables import utcnow
from qa_service.domain import CallMetadata, CallStatus
from qa_service.errors import Conflict, StorageError
from qa_service.ingest.store import StoredAudio
from qa_service.worker.queue import JobQueue, job_id_for

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Submission:
    """The call an upload created or found."""

    call_id: str
    sha256: str
    status: CallStatus
    created: bool  # False: these bytes were already a call (HTTP 200 rather than 202)


def default_call_id(sha256: str) -> str:
    """The call id of an upload without metadata: stable for its bytes."""
    return f"rec-{sha256[:20]}"


def _display_name(filename: str | None, stored: StoredAudio) -> str:
    # Browsers send a bare name, some clients a path (C:\\calls\\a.wav): keep the last part.
    name = re.split(r"[\\/]", filename or "")[-1].strip()
    return name[:512] or f"{stored.sha256[:12]}{stored.ext}"


def submit_recording(
    sessions: sessionmaker[Session],
    *,
    stored: StoredAudio,
    filename: str | None,
    metadata: CallMetadata | None,
    uploaded_by: str | None,
    queue: JobQueue,
    now: datetime | None = None,
) -> Submission:
    """Record ``stored`` as a queued call and queue its analysis; see the module docstring.

    The same bytes again return the existing call (``created=False``), whatever its status.
    A call id (from ``metadata``) already held by other bytes raises :class:`Conflict`.
    When the queue is down the call is still recorded (``queued``) and
    :class:`~qa_service.errors.QueueUnavailable` is raised; the sweep queues it later.
    """
    recording = _display_name(filename, stored)
    call_id = metadata.call_id if metadata is not None else default_call_id(stored.sha256)
    if metadata is not None:
        metadata = replace(metadata, recording=recording)
    existing = _existing(sessions, stored.sha256)
    if existing is not None:
        return existing
    try:
        with sessions.begin() as session:
            calls.insert_queued_call(
                session,
                call_id=call_id,
                sha256=stored.sha256,
                recording=recording,
                audio_ext=stored.ext,
                metadata=metadata,
                uploaded_by=uploaded_by,
                job_id=job_id_for(call_id),
                now=now or utcnow(),
            )
    except IntegrityError:
        # Someone else stored these bytes (or this call id) first: theirs is the call.
        existing = _existing(sessions, stored.sha256)
        if existing is not None:
            return existing
        raise Conflict(
            f"通话编号 {call_id} 已属于另一段录音 / call id {call_id} already belongs to "
            "another recording",
            call_id=call_id,
            sha256=stored.sha256,
        ) from None
    except SQLAlchemyError as exc:
        raise StorageError(
            f"无法保存上传的录音记录 / cannot record the upload: {exc}", call_id=call_id
        ) from exc
    queue.enqueue(call_id)
    return Submission(call_id, stored.sha256, CallStatus.QUEUED, created=True)


def _existing(sessions: sessionmaker[Session], sha256: str) -> Submission | None:
    with sessions() as session:
        found = calls.find_queued_call(session, sha256=sha256)
    if found is None:
        return None
    return Submission(found.call_id, found.sha256, found.status, created=False)


def requeue_failed(sessions: sessionmaker[Session], *, call_id: str, queue: JobQueue) -> Submission:
    """Give a ``failed`` call fresh attempts and queue it (CallNotFound, Conflict if not failed)."""
    with sessions.begin() as session:
        call = calls.requeue_failed_call(
            session, call_id=call_id, job_id=job_id_for(call_id), now=utcnow()
        )
    queue.enqueue(call_id)
    return Submission(call.call_id, call.sha256, call.status, created=False)


def list_failed(
    sessions: sessionmaker[Session], *, limit: int = 100, offset: int = 0
) -> list[calls.QueuedCall]:
    """Failed calls with their reason (``error_code``, ``error_message``), oldest first."""
    with sessions() as session:
        return calls.calls_with_status(
            session, statuses=(CallStatus.FAILED,), limit=limit, offset=offset
        )
