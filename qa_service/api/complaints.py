"""The complaint register over HTTP: list, register, import the bank's list, detail,
outcome, and the evidence pack (ZIP).

Who may do what (``qa_service.accounts.roles``): managers, supervisors and inspectors read
the register (``view_complaints``), supervisors and inspectors register complaints and
record outcomes (``manage_complaints``); admins and agents are refused (403). Scope
(:func:`qa_service.complaints.register.visible_complaints`): a supervisor sees its teams'
complaints, managers and inspectors all; a complaint outside it is 404.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from qa_service.accounts.roles import Permission, Principal
from qa_service.api.audit import actor_of, record_success
from qa_service.api.deps import State, require
from qa_service.api.imports import MAX_IMPORT_BYTES
from qa_service.api.schemas import ErrorResponse, RejectedRow
from qa_service.api.uploads import receive_upload
from qa_service.complaints.detail import complaint_detail, complaint_view, linked_calls
from qa_service.complaints.evidence import build_evidence_pack
from qa_service.complaints.importer import parse_complaint_list
from qa_service.complaints.register import (
    ComplaintFilters,
    ComplaintInput,
    list_complaints,
    record_outcome,
    register_complaint,
)
from qa_service.complaints.vocabulary import ComplaintType, Level, Outcome, Source
from qa_service.db.tables import ComplaintRow
from qa_service.errors import InputError
from qa_service.ingest.dial_log import normalize_phone_number

router = APIRouter(prefix="/api/v1/complaints", tags=["complaints"])

Reader = Annotated[Principal, Depends(require(Permission.VIEW_COMPLAINTS))]
Manager = Annotated[Principal, Depends(require(Permission.MANAGE_COMPLAINTS))]
_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": ErrorResponse}}


class ComplaintIn(BaseModel):
    source: Source = Field(description="受理渠道")
    level: Level = Field(description="投诉等级：general 一般 / serious 严重 / major 重大")
    type: ComplaintType = Field(description="投诉类型")
    received_at: datetime = Field(description="受理时间（须带时区，例如 +08:00）")
    customer_id: str | None = Field(default=None, max_length=64)
    phone: str | None = Field(default=None, max_length=32)
    reference: str | None = Field(default=None, max_length=64, description="银行投诉编号")
    description: str = Field(default="", max_length=20000)


class RegisterOut(BaseModel):
    complaint_id: int
    created: bool
    linked_calls: int
    complaint: dict[str, Any]


class ImportOut(BaseModel):
    imported: int
    already_known: int
    linked_calls: int
    rejected: list[RejectedRow]


class OutcomeIn(BaseModel):
    outcome: Outcome = Field(
        description="at_fault 有责 / partly_at_fault 部分有责 / not_at_fault 无责"
    )
    follow_up: str = Field(default="", max_length=20000, description="后续措施")


def _phone(raw: str | None) -> str | None:
    if not raw or not raw.strip():
        return None
    try:
        return normalize_phone_number(raw)
    except ValueError as exc:
        zh, _, en = str(exc).partition(" / ")
        raise InputError(f"电话号码无效：{zh} / invalid phone: {en}", field="phone") from exc


@router.get("")
def get_complaints(
    state: State,
    principal: Reader,
    status: Annotated[
        str | None, Query(pattern="^(open|closed)$", description="open 未结 / closed 已结")
    ] = None,
    level: Level | None = None,
    customer_id: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> dict[str, Any]:
    """The register, newest received first, within the caller's scope."""
    filters = ComplaintFilters(status=status, level=level, customer_id=customer_id)
    with state.sessions() as session:
        rows = list_complaints(
            session, principal=principal, filters=filters, limit=limit, offset=offset
        )
        items = [complaint_view(r, principal).summary_json() for r in rows]
    return {"items": items, "next_offset": offset + limit if len(items) == limit else None}


@router.post("", status_code=201, response_model=RegisterOut)
def post_complaint(
    body: ComplaintIn, request: Request, state: State, principal: Manager
) -> RegisterOut:
    """Register a complaint; the customer's calls of the preceding days are linked."""
    data = ComplaintInput(
        source=body.source,
        level=body.level,
        type=body.type,
        received_at=body.received_at,
        customer_id=(body.customer_id or "").strip() or None,
        phone=_phone(body.phone),
        reference=(body.reference or "").strip() or None,
        description=body.description.strip(),
    )
    with state.sessions.begin() as session:
        done = register_complaint(
            session,
            data=data,
            link_days=state.settings.complaint_link_days,
            actor=actor_of(request, principal),
        )
        # Shown to its registrar even when the linked calls put it in another team than the
        # caller's (the calls themselves stay scoped).
        row = session.get(ComplaintRow, done.complaint_id)
        assert row is not None  # registered just now
        calls, hidden = linked_calls(session, principal, row.id)
        view = complaint_view(row, principal, tuple(calls), hidden)
    return RegisterOut(
        complaint_id=done.complaint_id,
        created=done.created,
        linked_calls=done.linked_calls,
        complaint=view.as_json(),
    )


@router.post("/import", response_model=ImportOut)
async def import_complaints(request: Request, state: State, principal: Manager) -> ImportOut:
    """Import the bank's complaint list (CSV: UTF-8 or GBK, Chinese headers)."""
    upload = await receive_upload(request, max_bytes=MAX_IMPORT_BYTES, tmp_dir=state.upload_tmp_dir)
    try:
        data = upload.path.read_bytes()
    finally:
        upload.path.unlink(missing_ok=True)
    parsed = parse_complaint_list(data, name=upload.filename, tz=state.settings.local_tz)
    actor = actor_of(request, principal)

    def save() -> ImportOut:
        created = known = linked = 0
        with state.sessions.begin() as session:
            for complaint in parsed.complaints:
                done = register_complaint(
                    session,
                    data=complaint,
                    link_days=state.settings.complaint_link_days,
                    actor=actor,
                )
                created += done.created
                known += not done.created
                linked += done.linked_calls if done.created else 0
        return ImportOut(
            imported=created,
            already_known=known,
            linked_calls=linked,
            rejected=[_rejected(r.line, r.column, r.reason) for r in parsed.rejected],
        )

    return await run_in_threadpool(save)


def _rejected(line: int | None, column: str | None, reason: str) -> RejectedRow:
    zh, _, en = reason.partition(" / ")
    return RejectedRow(line=line, column=column, message=zh, detail=en or None)


@router.get("/{complaint_id}", responses=_NOT_FOUND)
def get_complaint(complaint_id: int, state: State, principal: Reader) -> dict[str, Any]:
    """The complaint with its linked calls (those the caller may see), findings, decisions."""
    with state.sessions() as session:
        return complaint_detail(session, principal, complaint_id).as_json(with_citations=True)


@router.post("/{complaint_id}/outcome", responses=_NOT_FOUND)
def post_outcome(
    complaint_id: int, body: OutcomeIn, request: Request, state: State, principal: Manager
) -> dict[str, Any]:
    """Record the outcome (有责 / 部分有责 / 无责) and follow-up; the complaint is closed."""
    with state.sessions.begin() as session:
        row = record_outcome(
            session,
            complaint_id=complaint_id,
            outcome=body.outcome,
            follow_up=body.follow_up,
            principal=principal,
            actor=actor_of(request, principal),
        )
        return complaint_view(row, principal).summary_json()


_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


@router.get(
    "/{complaint_id}/evidence",
    response_class=Response,
    responses={
        200: {"content": {"application/zip": {}}, "description": "证据包 ZIP"},
        **_NOT_FOUND,
    },
)
def get_evidence(complaint_id: int, request: Request, state: State, principal: Reader) -> Response:
    """The evidence pack: recordings, transcripts, findings with clauses, decisions, dial log."""
    with state.sessions() as session:
        pack = build_evidence_pack(
            session,
            principal=principal,
            complaint_id=complaint_id,
            store=state.store,
            tz=state.settings.local_tz,
            link_days=state.settings.complaint_link_days,
        )
    record_success(
        state,
        actor_of(request, principal),
        "complaint.evidence",
        f"complaint:{complaint_id}",
        calls=list(pack.call_ids),
    )
    name = _SAFE_NAME.sub("_", pack.filename)
    return Response(
        pack.data,
        media_type="application/zip",
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            "Cache-Control": "private, no-store",
        },
    )
