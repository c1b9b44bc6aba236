"""A call's evidence export: its transcript and findings as CSV or an Excel workbook.

Inspectors attach it to complaint files and supervisors hand it to agents, so it carries
exactly what the caller may read: masked numbers for a role without ``view_pii``
(:mod:`qa_service.api.pii`), like the call detail.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal
from urllib.parse import quote

from fastapi import APIRouter, Query
from fastapi.responses import Response

from qa_service.api.calls import visible_call_row
from qa_service.api.deps import Caller, State
from qa_service.api.pii import readable_analysis
from qa_service.api.schemas import ErrorResponse
from qa_service.db import repository as repo
from qa_service.domain import CallAnalysis
from qa_service.reports.exports import Column, Table, csv_text, xlsx_bytes

router = APIRouter(prefix="/api/v1/calls", tags=["calls"])

_COLUMNS = (
    Column("kind", "类型", "kind"),
    Column("rule", "规则", "rule"),
    Column("speaker", "说话人", "speaker"),
    Column("start", "开始（秒）", "start (s)", "float"),
    Column("end", "结束（秒）", "end (s)", "float"),
    Column("text", "文本", "text"),
)
_MEDIA = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


def evidence_table(analysis: CallAnalysis) -> Table:
    """The transcript (one row per utterance), then the findings (one row each)."""
    rows: list[dict[str, Any]] = [
        {"kind": "转写", "speaker": u.speaker.value, "start": u.start, "end": u.end, "text": u.text}
        for u in analysis.utterances
    ]
    rows.extend(
        {
            "kind": "发现",
            "rule": f.rule,
            "speaker": f.speaker.value if f.speaker is not None else None,
            "start": f.start,
            "end": f.end,
            "text": f.text,
        }
        for f in analysis.findings
    )
    return Table(
        name="evidence",
        title_zh=f"通话 {analysis.call_id}",
        title_en=f"call {analysis.call_id}",
        columns=_COLUMNS,
        rows=tuple(rows),
    )


@router.get(
    "/{call_id}/export",
    responses={
        200: {"content": {_MEDIA["csv"]: {}, _MEDIA["xlsx"]: {}}},
        404: {"model": ErrorResponse, "description": "no such call, or not yours to see"},
    },
    response_class=Response,
)
def export_call(
    call_id: str,
    state: State,
    principal: Caller,
    format: Annotated[Literal["csv", "xlsx"], Query(description="csv | xlsx")] = "csv",
) -> Response:
    """The call's transcript and findings as a file (numbers masked without ``view_pii``)."""
    with state.sessions() as session:
        visible_call_row(session, principal, call_id)
        analysis = readable_analysis(repo.get_call(session, call_id=call_id), principal)
    table = evidence_table(analysis)
    body = csv_text(table).encode("utf-8-sig") if format == "csv" else xlsx_bytes([table])
    filename = quote(f"{analysis.call_id}.{format}")
    return Response(
        content=body,
        media_type=_MEDIA[format],
        headers={"Content-Disposition": f"attachment; filename*=UTF-8''{filename}"},
    )
