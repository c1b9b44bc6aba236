"""A call's recording, with HTTP range requests so that the player can seek, and its
waveform peaks, so that the player draws its lanes before any audio has arrived.

Starlette's FileResponse serves the ranges (206, Content-Range, multipart/byteranges);
this module finds the file and refuses a range that is malformed or outside the file with
the API's JSON error and 416 first (FileResponse would answer 400 in plain text).
"""

from __future__ import annotations

import mimetypes
import re
from pathlib import Path

from fastapi import APIRouter, Request, Response
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field

from qa_service.api.audit import actor_of, record_success, recording_failures
from qa_service.api.calls import not_found, visible_call_row
from qa_service.api.deps import Caller, State
from qa_service.api.schemas import ErrorResponse
from qa_service.audit.events import AuditEvent
from qa_service.db.rows import call_metadata
from qa_service.db.tables import CallRow
from qa_service.errors import RangeNotSatisfiable
from qa_service.ingest.waveform import cached_waveform, lanes

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


class WaveformLane(BaseModel):
    channel: int = Field(description="录音中的声道（从 0 起） / the recording's channel, from 0")
    speaker: str | None = Field(description="agent | customer；单声道为 null")
    scale: float = Field(
        description="该声道最大采样幅度（满幅 1.0） / the channel's loudest sample"
    )
    peaks: list[float] = Field(description="各时间段的峰值，相对该声道最大值，0–1")


class WaveformOut(BaseModel):
    call_id: str
    duration_s: float
    peaks_per_second: float
    channels: list[WaveformLane] = Field(description="坐席、客户两条（单声道一条）")


@router.get(
    "/{call_id}/waveform",
    response_model=WaveformOut,
    responses={404: {"model": ErrorResponse}, 415: {"model": ErrorResponse}},
)
def get_waveform(call_id: str, response: Response, state: State, principal: Caller) -> WaveformOut:
    """录音波形 / the recording's peaks per lane (agent, customer; one lane on mono).

    Whoever may hear the recording may see its waveform. Not audited: it holds no speech,
    and playing the recording is recorded by the audio route. Computed once per recording
    (usually by the worker after analysis) and cached in the audio store.
    """
    with state.sessions() as session:
        row = visible_call_row(session, principal, call_id)
        path = _recording_path(state, row)
        sha256 = row.sha256
        metadata = call_metadata(row)
    if path is None:
        raise not_found(call_id)
    waveform = cached_waveform(state.store, sha256, path)
    response.headers["Cache-Control"] = "private, no-store"
    return WaveformOut(
        call_id=call_id,
        duration_s=waveform.duration_s,
        peaks_per_second=waveform.peaks_per_second,
        channels=[
            WaveformLane(
                channel=lane.channel,
                speaker=lane.speaker.value if lane.speaker is not None else None,
                scale=lane.scale,
                peaks=list(lane.peaks),
            )
            for lane in lanes(waveform, metadata.channel_map if metadata else None)
        ],
    )
