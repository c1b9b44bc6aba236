"""A call's recording, with HTTP range requests so that the player can seek.

Starlette's FileResponse serves the ranges (206, Content-Range, multipart/byteranges);
this module finds the file and refuses a range that is malformed or outside the file with
the API's JSON error and 416 first (FileResponse would answer 400 in plain text).
"""

from __future__ import annotations

import mimetypes
import re
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse

from qa_service.api.audit import actor_of, record_success, recording_failures
from qa_service.api.calls import not_found, visible_call_row
from qa_service.api.deps import Caller, State
from qa_service.api.schemas import ErrorResponse
from qa_service.audit.events import AuditEvent
from qa_service.db.tables import CallRow
from qa_service.errors import RangeNotSatisfiable

router = APIRouter(prefix="/api/v1/calls", tags=["calls"])

_RANGE_SPEC = re.compile(r"\s*(\d*)\s*-\s*(\d*)\s*")
_MAX_RANGES = 16


def check_range(header: str, size: int) -> None:
    """Raise RangeNotSatisfiable unless ``header`` is a byte range (list) within ``size``."""
    unit, sep, spec = header.partition("=")
    parts = spec.split(",")
    ok = bool(sep) and unit.strip().lower() == "bytes" and 0 < len(parts) <= _MAX_RANGES
    for part in parts if ok else ():
        match = _RANGE_SPEC.fullmatch(part)
        if match is None or not (match[1] or match[2]):
            ok = False
        elif match[1]:  # first-last or first-
            first = int(match[1])
            ok = ok and first < size and (not match[2] or int(match[2]) >= first)
        else:  # -suffix
            ok = ok and int(match[2]) > 0 and size > 0
    if not ok:
        raise RangeNotSatisfiable(
            f"请求的范围无效或超出录音长度（{size} 字节） / the requested range {header!r} "
            f"is malformed or outside the recording ({size} bytes)",
            size=size,
        )


def _recording_path(state: State, row: CallRow) -> Path | None:
    stored = state.store.find(row.sha256)
    if stored is not None:
        return stored.path
    # Calls analysed by the CLI were never copied into the store; their file may still be
    # where it was analysed from.
    if row.source_path and Path(row.source_path).is_file():
        return Path(row.source_path)
    return None


@router.get(
    "/{call_id}/audio",
    response_class=FileResponse,
    responses={
        200: {"content": {"audio/*": {}}, "description": "the whole recording"},
        206: {"description": "the requested byte range(s)"},
        404: {"model": ErrorResponse},
        416: {"model": ErrorResponse},
    },
)
def get_audio(call_id: str, request: Request, state: State, principal: Caller) -> FileResponse:
    """The recording's bytes; ``Range: bytes=...`` gives 206 with that part."""
    actor = actor_of(request, principal)
    target = f"call:{call_id}"
    header = request.headers.get("range")
    with recording_failures(state, actor, AuditEvent.AUDIO_PLAY, target, range=header):
        with state.sessions() as session:
            row = visible_call_row(session, principal, call_id)
            path = _recording_path(state, row)
            name = row.recording
        if path is None:
            raise not_found(call_id)
        if header is not None:
            check_range(header, path.stat().st_size)
    # A player fetches one recording in many ranges: a play is recorded once, at its start.
    if header is None or header.replace(" ", "").lower().startswith("bytes=0-"):
        record_success(state, actor, AuditEvent.AUDIO_PLAY, target, range=header)
    media_type = mimetypes.guess_type(name)[0] or mimetypes.guess_type(path.name)[0]
    return FileResponse(
        path,
        media_type=media_type or "application/octet-stream",
        filename=name,
        content_disposition_type="inline",
        headers={"Cache-Control": "private, no-store"},
    )
