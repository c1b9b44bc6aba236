"""Read the bank's complaint list (CSV) as banks export it: Excel, GBK or UTF-8, Chinese headers.

The list is read with the dial log's table reader (:mod:`qa_service.ingest.csv_table`:
encodings, separators, header aliases, line-numbered errors), so every export variant
accepted there is accepted here. A row that cannot be read is reported with its line and
reason and skipped; the others are registered. A received date without a time of day is
taken as the end of that local day, so the customer's calls on that day are linked too.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, time, tzinfo
from pathlib import Path

from qa_service.complaints.register import ComplaintInput
from qa_service.complaints.vocabulary import ComplaintType, Level, Source, parse_choice
from qa_service.errors import ComplaintListError, FileNotFound
from qa_service.ingest.csv_table import Row, parse_datetime, parse_table
from qa_service.ingest.dial_log import normalize_phone_number

_COLUMNS: dict[str, tuple[str, ...]] = {
    "reference": ("reference", "投诉编号", "工单号", "投诉单号", "编号", "complaint_no"),
    "source": ("source", "投诉渠道", "来源", "受理渠道", "渠道", "投诉来源"),
    "level": ("level", "投诉等级", "等级", "级别", "投诉级别"),
    "type": ("type", "投诉类型", "类型", "投诉类别"),
    "customer_id": ("customer_id", "customerid", "客户号", "客户编号", "客户id"),
    "phone": ("phone", "电话号码", "联系电话", "手机号", "手机号码", "来电号码"),
    "received_at": ("received_at", "受理时间", "投诉时间", "接收时间", "收到时间", "日期"),
    "description": ("description", "投诉内容", "内容", "描述", "投诉描述"),
}  # fmt: skip
_REQUIRED = ("source", "level", "type", "received_at")
_DATE_FORMATS = ("%Y-%m-%d", "%Y/%m/%d", "%Y年%m月%d日", "%Y.%m.%d")


@dataclass(frozen=True)
class RejectedComplaint:
    """A row not imported: its line and why (Chinese / English)."""

    line: int | None
    column: str | None
    reason: str


@dataclass(frozen=True)
class ParsedList:
    complaints: tuple[ComplaintInput, ...]
    rejected: tuple[RejectedComplaint, ...]


def _received(value: str, tz: tzinfo) -> datetime:
    text = unicodedata.normalize("NFKC", value).strip()
    for layout in _DATE_FORMATS:
        try:
            day = datetime.strptime(text, layout).date()
        except ValueError:
            continue
        return datetime.combine(day, time(23, 59, 59), tzinfo=tz)
    return parse_datetime(value, tz)


def _optional(value: str) -> str | None:
    return value.strip() or None


def _phone(value: str) -> str | None:
    return normalize_phone_number(value) if value.strip() else None


def parse_complaint_list(data: bytes, *, name: str, tz: tzinfo) -> ParsedList:
    """The complaints of a list's bytes (``name`` names it in messages)."""
    table = parse_table(
        data, name=name, error=ComplaintListError, kind_zh="投诉清单", kind_en="complaint list"
    )
    columns = table.map_columns(_COLUMNS)
    missing = [c for c in _REQUIRED if c not in columns]
    if missing or not ({"customer_id", "phone"} & columns.keys()):
        need = missing or ["customer_id / phone"]
        raise ComplaintListError(
            f"{name}：投诉清单缺少必需的列 {', '.join(need)}；文件中的列为 "
            f"{', '.join(table.header)} / {name}: the complaint list lacks the column(s) "
            f"{', '.join(need)}; found {', '.join(table.header)}",
            path=name,
        )
    out: list[ComplaintInput] = []
    rejected: list[RejectedComplaint] = []

    def get(row: Row, column: str, parse: Callable[[str], str | None]) -> str | None:
        return row.get(columns, column, parse) if column in columns else None

    for row in table.rows():
        try:
            complaint = ComplaintInput(
                source=row.get(columns, "source", lambda v: parse_choice(Source, v)),
                level=row.get(columns, "level", lambda v: parse_choice(Level, v)),
                type=row.get(columns, "type", lambda v: parse_choice(ComplaintType, v)),
                received_at=row.get(columns, "received_at", lambda v: _received(v, tz)),
                customer_id=get(row, "customer_id", _optional),
                phone=get(row, "phone", _phone),
                reference=get(row, "reference", _optional),
                description=get(row, "description", str.strip) or "",
            )
            if not (complaint.customer_id or complaint.phone):
                raise ComplaintListError(
                    f"{name}：第 {row.line} 行没有客户号也没有电话号码 / {name}: line "
                    f"{row.line} names neither a customer id nor a phone number",
                    line=row.line,
                )
        except ComplaintListError as exc:
            rejected.append(
                RejectedComplaint(
                    line=_int(exc.context.get("line")),
                    column=_str(exc.context.get("column")),
                    reason=exc.message,
                )
            )
            continue
        out.append(complaint)
    return ParsedList(tuple(out), tuple(rejected))


def load_complaint_list(path: Path, *, tz: tzinfo) -> ParsedList:
    """:func:`parse_complaint_list` on a file."""
    if not path.is_file():
        raise FileNotFound(f"{path}：文件不存在 / {path}: file not found", path=path)
    return parse_complaint_list(path.read_bytes(), name=str(path), tz=tz)


def _int(value: object) -> int | None:
    return int(str(value)) if value is not None else None


def _str(value: object) -> str | None:
    return str(value) if value is not None else None
