"""Tables for people: a terminal table, CSV that Excel opens, and styled xlsx workbooks.

Reports are read by supervisors and by the bank's vendor-management staff, mostly in a
spreadsheet program, so headers are Chinese (English on request), percentages are real
percentages rather than fractions, and CSV carries a byte-order mark so that Excel does not
show the Chinese as mojibake. xlsx is written with openpyxl, one sheet per table.
"""

from __future__ import annotations

import csv
import io
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

from qa_service.errors import InputError

# "delta" kinds are changes against a baseline: always signed, so a drop is not missed.
Kind = Literal["text", "int", "float", "percent", "delta", "delta_percent"]


class Lang(StrEnum):
    ZH = "zh"
    EN = "en"
    BOTH = "both"


@dataclass(frozen=True)
class Column:
    key: str
    zh: str
    en: str
    kind: Kind = "text"

    def header(self, lang: Lang) -> str:
        if lang is Lang.EN:
            return self.en
        if lang is Lang.BOTH:
            return f"{self.zh} ({self.en})"
        return self.zh


@dataclass(frozen=True)
class Table:
    """A titled table; ``name`` is its sheet name and CSV file suffix (ASCII, short)."""

    name: str
    title_zh: str
    title_en: str
    columns: tuple[Column, ...]
    rows: tuple[Mapping[str, Any], ...]

    def title(self, lang: Lang) -> str:
        return self.title_en if lang is Lang.EN else self.title_zh


def _text(value: Any, kind: Kind) -> str:
    if value is None:
        return ""
    if kind == "percent":
        return f"{value * 100:.1f}%"
    if kind == "delta_percent":
        return f"{value * 100:+.1f}%"
    if kind == "float":
        return f"{value:.2f}"
    if kind == "delta":
        return f"{value:+.2f}"
    return str(value)


def _width(text: str) -> int:
    """Display width: CJK characters take two terminal (and spreadsheet) columns."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _pad(text: str, width: int, right: bool) -> str:
    gap = " " * (width - _width(text))
    return gap + text if right else text + gap


def render_text(tables: Sequence[Table], lang: Lang = Lang.ZH) -> str:
    """Aligned plain-text tables for the terminal, each under its title."""
    blocks = []
    for table in tables:
        headers = [c.header(lang) for c in table.columns]
        cells = [[_text(row.get(c.key), c.kind) for c in table.columns] for row in table.rows]
        widths = [max([_width(h), *(_width(r[i]) for r in cells)]) for i, h in enumerate(headers)]
        right = [c.kind != "text" for c in table.columns]
        lines = [f"■ {table.title(lang)}"]
        lines.append(
            "  ".join(_pad(h, w, r) for h, w, r in zip(headers, widths, right, strict=True))
        )
        lines.append("  ".join("-" * w for w in widths))
        for row in cells:
            lines.append(
                "  ".join(_pad(v, w, r) for v, w, r in zip(row, widths, right, strict=True))
            )
        if not table.rows:
            lines.append("（无数据 / no data）")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"


def csv_text(table: Table, lang: Lang = Lang.ZH) -> str:
    """One table as CSV text (no byte-order mark; :func:`write_csv` adds it for files)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([c.header(lang) for c in table.columns])
    for row in table.rows:
        writer.writerow([_text(row.get(c.key), c.kind) for c in table.columns])
    return out.getvalue()


def write_csv(tables: Sequence[Table], path: Path, lang: Lang = Lang.ZH) -> list[Path]:
    """The first table to ``path``, each further one beside it as ``<stem>.<name>.csv``.

    UTF-8 with a byte-order mark: without it Excel on a Chinese Windows reads the file as
    GBK. Returns the paths written.
    """
    written = []
    for i, table in enumerate(tables):
        target = path if i == 0 else path.with_name(f"{path.stem}.{table.name}{path.suffix}")
        _write(target, csv_text(table, lang).encode("utf-8-sig"))
        written.append(target)
    return written


def write_text_file(path: Path, text: str) -> Path:
    """UTF-8 text to ``path`` (JSON, a plain-text table), creating its folder."""
    _write(path, text.encode("utf-8"))
    return path


def _write(path: Path, data: bytes) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    except OSError as exc:
        raise InputError(
            f"{path}：无法写入输出文件 / {path}: cannot write the output file: {exc}", path=path
        ) from exc


_NUMBER_FORMATS = {
    "int": "0",
    "float": "0.00",
    "percent": "0.0%",
    "delta": "+0.00;-0.00;0.00",
    "delta_percent": "+0.0%;-0.0%;0.0%",
}


def _cell_value(value: object) -> object:
    """Text as a worksheet can hold it: control characters (which openpyxl refuses, so a
    complaint typed with one broke the whole export) are dropped."""
    if isinstance(value, str):
        from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

        return ILLEGAL_CHARACTERS_RE.sub("", value)
    return value


def write_xlsx(tables: Sequence[Table], path: Path, lang: Lang = Lang.ZH) -> Path:
    """A workbook with one sheet per table: styled, frozen header row, fitted columns."""
    _write(path, xlsx_bytes(tables, lang))
    return path


def xlsx_bytes(tables: Sequence[Table], lang: Lang = Lang.ZH) -> bytes:
    """The workbook :func:`write_xlsx` writes, as bytes (for a download)."""
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font, PatternFill
    from openpyxl.utils import get_column_letter

    workbook = Workbook()
    workbook.remove(workbook.active)
    header_font = Font(bold=True, color="FFFFFF")
    header_fill = PatternFill("solid", fgColor="305496")
    for table in tables:
        # Sheet names: at most 31 characters, none of []:*?/\ (Excel's rules).
        title = "".join(ch for ch in table.title(lang) if ch not in "[]:*?/\\")[:31]
        sheet = workbook.create_sheet(title=title or table.name)
        sheet.append([c.header(lang) for c in table.columns])
        for cell in sheet[1]:
            cell.font = header_font
            cell.fill = header_fill
            cell.alignment = Alignment(horizontal="center", vertical="center", wrap_text=True)
        for row in table.rows:
            sheet.append([_cell_value(row.get(c.key)) for c in table.columns])
            for cell in sheet[sheet.max_row]:
                if cell.data_type == "f":  # text that looks like a formula stays text
                    cell.data_type = "s"
        for index, column in enumerate(table.columns, start=1):
            letter = get_column_letter(index)
            number_format = _NUMBER_FORMATS.get(column.kind)
            if number_format:
                for (cell,) in sheet.iter_rows(min_row=2, min_col=index, max_col=index):
                    cell.number_format = number_format
            longest = max(
                [
                    _width(column.header(lang)),
                    *(_width(_text(r.get(column.key), column.kind)) for r in table.rows),
                ]
            )
            sheet.column_dimensions[letter].width = min(60, longest + 2)
        sheet.freeze_panes = "A2"
        if table.rows:
            sheet.auto_filter.ref = sheet.dimensions
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()
