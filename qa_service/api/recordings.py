"""Uploading a recording: stream it in, check it, store it by its bytes, queue its analysis.

Order matters, so that a refusal leaves nothing behind: the body streams into a temporary
file under the size limit (413 while streaming), the metadata is checked with the CLI's
sidecar rules (422), the content is checked by opening it with PyAV whatever its name
(415), and only then is it copied into the content-addressed store and submitted. The
same bytes uploaded again find their call: 200 with it, no second call and no second job.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from starlette.concurrency import run_in_threadpool

from qa_service.accounts.roles import Permission, Principal
from qa_service.api.audit import actor_of, record_failure, record_success
from qa_service.api.deps import State, require
from qa_service.api.schemas import ErrorResponse, UploadResult
from qa_service.api.state import ServiceState
from qa_service.api.uploads import ReceivedUpload, receive_upload
from qa_service.audit.events import AuditEvent
from qa_service.domain import CallMetadata
from qa_service.errors import (
    AudioDecodeError,
    EmptyFile,
    ImplausibleAudio,
    QAServiceError,
    UnsupportedFormat,
)
from qa_service.ingest.audio import probe_audio
from qa_service.ingest.recordings import parse_metadata_bytes
from qa_service.worker.submit import Submission, submit_recording

router = APIRouter(prefix="/api/v1", tags=["recordings"])

Uploader = Annotated[Principal, Depends(require(Permission.UPLOAD_RECORDINGS))]

_UPLOAD_DOC: dict[str, object] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {"type": "string", "format": "binary", "description": "录音文件"},
                        "metadata": {
                            "type": "string",
                            "description": "JSON：录音元数据（与命令行 sidecar 字段、规则相同）",
                        },
                    },
                }
            }
        },
    }
}


def _metadata(state: ServiceState, upload: ReceivedUpload) -> CallMetadata | None:
    if upload.metadata is None or not upload.metadata.strip():
        return None
    return parse_metadata_bytes(
        upload.metadata,
        source="metadata",
        recording=upload.filename,
        assume_offset=state.settings.local_tz,
    )


def _check_audio(state: ServiceState, upload: ReceivedUpload) -> None:
    try:
        probe_audio(upload.path, max_duration_s=state.settings.max_audio_hours * 3600)
    except (UnsupportedFormat, AudioDecodeError, EmptyFile) as exc:
        # The temporary file's server path means nothing to the client: name its file.
        message = exc.message.replace(str(upload.path), upload.filename)
        zh, _, reason = message.partition(" / ")
        if isinstance(exc, ImplausibleAudio):  # the header's claim, said in Chinese too
            raise ImplausibleAudio(message, filename=upload.filename) from exc
        raise UnsupportedFormat(
            f"{upload.filename}：不是可识别的音频（内容检查未通过） / {upload.filename}: "
            f"the content is not audio we can decode ({reason or exc.code})",
            filename=upload.filename,
        ) from exc


def _store_and_submit(
    state: ServiceState, upload: ReceivedUpload, principal: Principal
) -> Submission:
    metadata = _metadata(state, upload)
    _check_audio(state, upload)
    stored = state.store.put_file(upload.path, ext=upload.path.suffix)
    return submit_recording(
        state.sessions,
        stored=stored,
        filename=upload.filename,
        metadata=metadata,
        uploaded_by=principal.username,
        queue=state.queue,
    )


@router.post(
    "/recordings",
    status_code=202,
    response_model=UploadResult,
    openapi_extra=_UPLOAD_DOC,
    responses={
        200: {"model": UploadResult, "description": "these bytes were uploaded before"},
        413: {"model": ErrorResponse, "description": "larger than QA_MAX_UPLOAD_MB"},
        415: {
            "model": ErrorResponse,
            "description": "the content is not audio, or its header is implausible",
        },
        503: {"model": ErrorResponse, "description": "the audio store is full or unwritable"},
        422: {"model": ErrorResponse, "description": "invalid metadata or request"},
    },
)
async def upload_recording(
    request: Request, response: Response, state: State, principal: Uploader
) -> UploadResult:
    """Upload one recording (multipart ``file`` + optional ``metadata`` JSON) for analysis."""
    actor = actor_of(request, principal)
    filename: str | None = None
    try:
        upload = await receive_upload(
            request, max_bytes=state.max_upload_bytes, tmp_dir=state.upload_tmp_dir
        )
        filename = upload.filename
        try:
            submission = await run_in_threadpool(_store_and_submit, state, upload, principal)
        finally:
            upload.path.unlink(missing_ok=True)
    except QAServiceError as exc:
        await run_in_threadpool(
            record_failure,
            state,
            actor,
            AuditEvent.RECORDING_UPLOAD,
            "recording",
            exc,
            filename=filename,
        )
        raise
    await run_in_threadpool(
        record_success,
        state,
        actor,
        AuditEvent.RECORDING_UPLOAD,
        f"call:{submission.call_id}",
        filename=filename,
        sha256=submission.sha256,
        created=submission.created,
    )
    if not submission.created:
        response.status_code = 200
    return UploadResult(
        call_id=submission.call_id, sha256=submission.sha256, status=str(submission.status)
    )
