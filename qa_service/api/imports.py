"""Dial-log and do-not-call imports: the CLI's ``cdr import`` and ``dnc import`` over HTTP.

The files are read by the same loaders as the CLI (every export variant they accept is
accepted here). A dial-log row that cannot be read is listed under ``rejected`` with its
line and column while the good rows are imported; a file that cannot be read at all
(encoding, missing columns) is refused whole with 422.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool

from qa_service.accounts.roles import Permission, Principal
from qa_service.api.audit import actor_of, record_failure
from qa_service.api.deps import State, require
from qa_service.api.schemas import ErrorResponse, ImportResult, RejectedRow
from qa_service.api.uploads import receive_upload
from qa_service.audit.events import AuditEvent, record_event
from qa_service.db import repository as repo
from qa_service.errors import DialLogError, QAServiceError
from qa_service.ingest.dial_log import parse_dial_log, parse_do_not_call

router = APIRouter(prefix="/api/v1", tags=["imports"])

# Dial logs of a month for a large centre stay well below this.
MAX_IMPORT_BYTES = 100 * 1024 * 1024

Importer = Annotated[Principal, Depends(require(Permission.IMPORT_DATA))]


def _multipart_doc(description: str) -> dict[str, object]:
    return {
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["file"],
                        "properties": {
                            "file": {
                                "type": "string",
                                "format": "binary",
                                "description": description,
                            }
                        },
                    }
                }
            },
        }
    }


_REFUSALS: dict[int | str, dict[str, Any]] = {
    413: {"model": ErrorResponse},
    422: {"model": ErrorResponse},
}


async def _read_upload(request: Request, state: State) -> tuple[str, bytes]:
    upload = await receive_upload(request, max_bytes=MAX_IMPORT_BYTES, tmp_dir=state.upload_tmp_dir)
    try:
        return upload.filename, upload.path.read_bytes()
    finally:
        upload.path.unlink(missing_ok=True)


def _rejected_row(exc: QAServiceError) -> RejectedRow:
    zh, _, en = exc.message.partition(" / ")
    line = exc.context.get("line")
    column = exc.context.get("column")
    return RejectedRow(
        line=int(str(line)) if line is not None else None,
        column=str(column) if column is not None else None,
        message=zh,
        detail=en or None,
    )


@router.post(
    "/dial-log",
    response_model=ImportResult,
    responses=_REFUSALS,
    openapi_extra=_multipart_doc("拨号记录 CSV（UTF-8、GBK 或 UTF-16）"),
)
async def import_dial_log(request: Request, state: State, caller: Importer) -> ImportResult:
    """Import a dial log (CSV) as ``qa-service cdr import`` does."""
    actor = actor_of(request, caller)
    try:
        name, data = await _read_upload(request, state)
        rejected: list[DialLogError] = []
        attempts = parse_dial_log(
            data, name=name, assume_offset=state.settings.local_tz, rejected=rejected
        )
    except QAServiceError as exc:
        await run_in_threadpool(
            record_failure, state, actor, AuditEvent.DIAL_LOG_IMPORT, "dial-log", exc
        )
        raise

    def save() -> int:
        with state.sessions.begin() as session:
            added = repo.save_dial_attempts(session, attempts=attempts)
            record_event(
                session,
                actor=actor,
                event=AuditEvent.DIAL_LOG_IMPORT,
                target=f"file:{name}",
                details={"rows": len(attempts), "imported": added, "rejected": len(rejected)},
            )
            return added

    imported = await run_in_threadpool(save)
    return ImportResult(imported=imported, rejected=[_rejected_row(e) for e in rejected])


@router.post(
    "/do-not-call",
    response_model=ImportResult,
    responses=_REFUSALS,
    openapi_extra=_multipart_doc("禁止拨打名单：CSV（号码列）或每行一个号码"),
)
async def import_do_not_call(request: Request, state: State, caller: Importer) -> ImportResult:
    """Add the numbers of a do-not-call list as ``qa-service dnc import`` does."""
    actor = actor_of(request, caller)
    try:
        name, data = await _read_upload(request, state)
        entries = parse_do_not_call(data, name=name)
    except QAServiceError as exc:
        await run_in_threadpool(
            record_failure, state, actor, AuditEvent.DNC_IMPORT, "do-not-call", exc
        )
        raise

    def save() -> int:
        with state.sessions.begin() as session:
            added = repo.add_do_not_call(session, entries=entries)
            record_event(
                session,
                actor=actor,
                event=AuditEvent.DNC_IMPORT,
                target=f"file:{name}",
                details={"numbers": len(entries), "added": added},
            )
            return added

    return ImportResult(imported=await run_in_threadpool(save), rejected=[])
