"""The evidence pack of one complaint: one ZIP for the bank.

For a complaint without fault the agency must show "详尽且确凿的证据" of compliant
collection; for one with fault, what happened. The pack holds, for every linked call the
caller may see: the recording exactly as stored (byte-identical, SHA-256 in the manifest),
the transcript, the findings with the clauses they cite, the review decisions, appeals and
rulings; plus the customer's dial-log entries of the linked window and a Chinese summary
(``摘要.xlsx`` with one sheet per part, and ``摘要.html`` to read without a spreadsheet).

Layout::

    摘要.xlsx  摘要.html  complaint.json  findings.json  dial_log.csv  manifest.json
    recordings/<call_id><ext>  transcripts/<call_id>.txt
"""

from __future__ import annotations

import csv
import hashlib
import html
import io
import json
import tempfile
import zipfile
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from qa_service.accounts.roles import Permission, Principal
from qa_service.complaints.detail import ComplaintView, LinkedCall, complaint_detail
from qa_service.complaints.vocabulary import ComplaintType, Level, Outcome, Source, label
from qa_service.db.rows import utterance_from_row
from qa_service.db.tables import ComplaintRow, DialAttemptRow, UtteranceRow
from qa_service.ingest.store import AudioStore
from qa_service.privacy.masking import mask_number
from qa_service.reports.exports import Column, Table, write_xlsx
from qa_service.rules.catalogue import citation_for

_SPEAKERS_ZH = {"agent": "坐席", "customer": "客户", "unknown": "未区分"}
_STATUS_ZH = {"pending": "待复核", "confirmed": "已确认", "dismissed": "已驳回"}
_DECISION_ZH = {"confirmed": "确认", "dismissed": "驳回", "added": "质检员补充"}
_APPEAL_ZH = {"open": "申诉中", "upheld": "维持", "overturned": "撤销"}


@dataclass(frozen=True)
class EvidencePack:
    """The ZIP's bytes, its file name, and what is in it."""

    filename: str
    data: bytes
    files: dict[str, str]  # archive name → sha256
    missing_recordings: tuple[str, ...] = ()
    call_ids: tuple[str, ...] = field(default_factory=tuple)


def _local(moment: datetime | None, tz: tzinfo) -> str:
    return moment.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S") if moment else ""


def _recording_path(store: AudioStore, call: LinkedCall) -> Path | None:
    # As the audio route finds it: the store, else the file a CLI run analysed.
    stored = store.find(call.sha256)
    if stored is not None:
        return stored.path
    if call.source_path and Path(call.source_path).is_file():
        return Path(call.source_path)
    return None


def _transcript(session: Session, call: LinkedCall, pii: bool, tz: tzinfo) -> str:
    rows = session.scalars(
        select(UtteranceRow).where(UtteranceRow.call_id == call.pk).order_by(UtteranceRow.seq)
    )
    lines = [
        f"通话 {call.call_id}  坐席 {call.agent_id or ''}  开始 {_local(call.started_at, tz)}",
        "",
    ]
    for row in rows:
        text = utterance_from_row(row).text if pii else row.text
        who = _SPEAKERS_ZH.get(row.speaker, row.speaker)
        lines.append(f"[{row.start_s:7.1f}–{row.end_s:7.1f} 秒] {who}：{text}")
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class _Attempt:
    started_at: datetime
    agent_id: str
    customer_id: str
    number: str
    connected: bool
    duration_s: float
    call_id: str | None


def _dial_log(session: Session, row: ComplaintRow, link_days: int, pii: bool) -> list[_Attempt]:
    conditions = []
    if row.customer_id:
        conditions.append(DialAttemptRow.customer_id == row.customer_id)
    if row.phone_hash:
        conditions.append(DialAttemptRow.dialed_number_hash == row.phone_hash)
    rows = session.scalars(
        select(DialAttemptRow)
        .where(
            or_(*conditions),
            DialAttemptRow.started_at >= row.received_at - timedelta(days=link_days),
            DialAttemptRow.started_at < row.received_at,
        )
        .order_by(DialAttemptRow.started_at, DialAttemptRow.id)
    )
    return [
        _Attempt(
            a.started_at,
            a.agent_id,
            a.customer_id,
            a.dialed_number if pii else mask_number(a.dialed_number),
            a.connected,
            a.duration_s,
            a.call_id,
        )
        for a in rows
    ]


def _dial_log_csv(attempts: list[_Attempt], tz: tzinfo) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(
        ["拨打时间", "坐席工号", "客户号", "被叫号码", "是否接通", "通话时长(秒)", "通话编号"]
    )
    for a in attempts:
        writer.writerow(
            [
                _local(a.started_at, tz),
                a.agent_id,
                a.customer_id,
                a.number,
                "是" if a.connected else "否",
                f"{a.duration_s:g}",
                a.call_id or "",
            ]
        )
    return out.getvalue().encode("utf-8-sig")  # Excel on a Chinese Windows needs the BOM


def _info_rows(view: ComplaintView, tz: tzinfo) -> list[tuple[str, str]]:
    return [
        ("投诉编号", view.reference or f"#{view.id}"),
        ("受理渠道", label(Source, view.source)),
        ("投诉等级", label(Level, view.level)),
        ("投诉类型", label(ComplaintType, view.type)),
        ("客户号", view.customer_id or ""),
        ("电话号码", view.phone or ""),
        ("受理时间", _local(view.received_at, tz)),
        ("投诉内容", view.description),
        ("所属机构", view.agency_id or ""),
        ("所属组别", view.team_id or ""),
        ("涉及坐席", view.agent_id or ""),
        ("处理状态", "未结" if view.outcome is None else "已结"),
        ("定责结果", label(Outcome, view.outcome)),
        ("定责人", view.outcome_by or ""),
        ("定责时间", _local(view.outcome_at, tz)),
        ("后续措施", view.follow_up or ""),
        ("关联通话数", str(len(view.calls))),
    ]


def _summary_tables(view: ComplaintView, attempts: list[_Attempt], tz: tzinfo) -> list[Table]:
    info = Table(
        "complaint",
        "投诉信息",
        "complaint",
        (Column("item", "项目", "item"), Column("value", "内容", "value")),
        tuple({"item": k, "value": v} for k, v in _info_rows(view, tz)),
    )
    calls = Table(
        "calls",
        "关联通话",
        "linked calls",
        (
            Column("call_id", "通话编号", "call"),
            Column("started_at", "开始时间", "started"),
            Column("agent_id", "坐席", "agent"),
            Column("team_id", "组别", "team"),
            Column("score", "质检得分", "score", "float"),
            Column("standing", "成立的命中数", "standing findings", "int"),
            Column("recording", "录音文件", "recording"),
        ),
        tuple(
            {
                "call_id": c.call_id,
                "started_at": _local(c.started_at, tz),
                "agent_id": c.agent_id,
                "team_id": c.team_id,
                "score": c.score,
                "standing": sum(f.review_status != "dismissed" for f in c.findings),
                "recording": f"recordings/{_recording_name(c)}",
            }
            for c in view.calls
        ),
    )
    finding_rows = []
    for c in view.calls:
        for f in c.findings:
            citation = citation_for(f.rule)
            clauses = (
                "；".join(
                    f"{cl.title_zh}{cl.article or cl.section_zh or ''}：{cl.requirement_zh}"
                    for cl in citation.clauses
                )
                if citation
                else ""
            )
            finding_rows.append(
                {
                    "call_id": c.call_id,
                    "rule": f.rule,
                    "rule_name": f.rule_name,
                    "span": f"{f.start_s:.1f}–{f.end_s:.1f}" if f.start_s is not None else "整通",
                    "speaker": _SPEAKERS_ZH.get(f.speaker or "", ""),
                    "text": f.text or "",
                    "status": _STATUS_ZH.get(f.review_status, f.review_status),
                    "clauses": clauses,
                }
            )
    findings = Table(
        "findings",
        "命中与依据条款",
        "findings",
        (
            Column("call_id", "通话编号", "call"),
            Column("rule", "规则", "rule"),
            Column("rule_name", "规则名称", "rule name"),
            Column("span", "时间(秒)", "span"),
            Column("speaker", "说话人", "speaker"),
            Column("text", "原话", "quote"),
            Column("status", "复核结论", "review"),
            Column("clauses", "依据条款", "clauses"),
        ),
        tuple(finding_rows),
    )
    decisions = Table(
        "decisions",
        "复核决定与申诉裁决",
        "review decisions",
        (
            Column("call_id", "通话编号", "call"),
            Column("rule", "规则", "rule"),
            Column("decision", "复核决定", "decision"),
            Column("reason", "驳回原因", "reason"),
            Column("comment", "说明", "comment"),
            Column("decided_by", "复核人", "by"),
            Column("decided_at", "复核时间", "at"),
            Column("appeal", "申诉", "appeal"),
            Column("ruling", "裁决说明", "ruling"),
        ),
        tuple(
            {
                "call_id": c.call_id,
                "rule": d.rule,
                "decision": _DECISION_ZH.get(d.decision, d.decision),
                "reason": d.reason_code or "",
                "comment": d.comment,
                "decided_by": d.decided_by or "",
                "decided_at": _local(d.decided_at, tz),
                "appeal": _APPEAL_ZH.get(d.appeal_status or "", ""),
                "ruling": d.ruling_note or "",
            }
            for c in view.calls
            for d in c.decisions
        ),
    )
    dial = Table(
        "dial_log",
        "拨号记录",
        "dial log",
        (
            Column("started_at", "拨打时间", "started"),
            Column("agent_id", "坐席工号", "agent"),
            Column("number", "被叫号码", "number"),
            Column("connected", "是否接通", "connected"),
            Column("duration_s", "通话时长(秒)", "duration", "float"),
            Column("call_id", "通话编号", "call"),
        ),
        tuple(
            {
                "started_at": _local(a.started_at, tz),
                "agent_id": a.agent_id,
                "number": a.number,
                "connected": "是" if a.connected else "否",
                "duration_s": a.duration_s,
                "call_id": a.call_id or "",
            }
            for a in attempts
        ),
    )
    return [info, calls, findings, decisions, dial]


def _xlsx_bytes(tables: list[Table]) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        path = write_xlsx(tables, Path(tmp) / "summary.xlsx")
        return path.read_bytes()


def _html(tables: list[Table], view: ComplaintView) -> bytes:
    parts = [
        "<!doctype html><html lang='zh-CN'><head><meta charset='utf-8'>",
        f"<title>投诉证据包 {html.escape(view.reference or str(view.id))}</title>",
        "<style>body{font-family:sans-serif}table{border-collapse:collapse;margin:1em 0}"
        "td,th{border:1px solid #999;padding:2px 6px;vertical-align:top}</style></head><body>",
        f"<h1>投诉证据包 {html.escape(view.reference or '#' + str(view.id))}</h1>",
    ]
    for table in tables:
        parts.append(f"<h2>{html.escape(table.title_zh)}</h2><table><tr>")
        parts.extend(f"<th>{html.escape(c.zh)}</th>" for c in table.columns)
        parts.append("</tr>")
        for row in table.rows:
            cells = "".join(
                f"<td>{html.escape('' if row.get(c.key) is None else str(row.get(c.key)))}</td>"
                for c in table.columns
            )
            parts.append(f"<tr>{cells}</tr>")
        if not table.rows:
            parts.append(f"<tr><td colspan='{len(table.columns)}'>（无）</td></tr>")
        parts.append("</table>")
    parts.append("</body></html>")
    return "".join(parts).encode("utf-8")


def _recording_name(call: LinkedCall) -> str:
    suffix = Path(call.recording).suffix or ".wav"
    return f"{call.call_id}{suffix}"


def build_evidence_pack(
    session: Session,
    *,
    principal: Principal,
    complaint_id: int,
    store: AudioStore,
    tz: tzinfo,
    link_days: int,
) -> EvidencePack:
    """The ZIP of one complaint as ``principal`` may see it (ComplaintNotFound otherwise)."""
    view = complaint_detail(session, principal, complaint_id)
    row = session.get(ComplaintRow, view.id)
    assert row is not None  # complaint_detail just read it
    pii = principal.can(Permission.VIEW_PII)
    attempts = _dial_log(session, row, link_days, pii)
    tables = _summary_tables(view, attempts, tz)
    files: dict[str, bytes] = {
        "摘要.xlsx": _xlsx_bytes(tables),
        "摘要.html": _html(tables, view),
        "complaint.json": _json(view.as_json(with_citations=False)),
        "findings.json": _json(
            [
                {
                    "call_id": c.call_id,
                    "findings": [f.as_json(with_citation=True) for f in c.findings],
                    "decisions": c.as_json()["decisions"],
                }
                for c in view.calls
            ]
        ),
        "dial_log.csv": _dial_log_csv(attempts, tz),
    }
    missing: list[str] = []
    recordings: dict[str, Path] = {}
    for call in view.calls:
        files[f"transcripts/{call.call_id}.txt"] = _transcript(session, call, pii, tz).encode()
        path = _recording_path(store, call)
        if path is None:
            missing.append(call.call_id)
        else:
            recordings[f"recordings/{_recording_name(call)}"] = path
    digests = {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
        for name, path in recordings.items():
            # Audio is compressed already; stored as is, byte for byte.
            archive.write(path, name, compress_type=zipfile.ZIP_STORED)
            digests[name] = _file_sha256(path)
        manifest: dict[str, Any] = {
            "complaint_id": view.id,
            "reference": view.reference,
            "generated_for": principal.username,
            "files": digests,
            "missing_recordings": missing,
            "hidden_calls": view.hidden_calls,
        }
        archive.writestr("manifest.json", _json(manifest))
    name = f"complaint-{view.reference or view.id}-evidence.zip"
    return EvidencePack(
        filename=name,
        data=buffer.getvalue(),
        files=digests,
        missing_recordings=tuple(missing),
        call_ids=tuple(c.call_id for c in view.calls),
    )


def _json(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, indent=2, default=str).encode("utf-8")


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
