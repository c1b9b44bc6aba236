"""Read a CSV export as call centres and banks write them: the shared table reader.

Dial logs, do-not-call lists and the bank's complaint lists all come out of Excel or a
report screen: GBK or UTF-8 with a byte-order mark, UTF-16, comma, tab or semicolon
separators, Chinese column names, dates like ``2026/11/2 9:51``. One reader knows those
variants, so every import accepts the same files and reports a bad value the same way:
the file, the line and the column, in Chinese and English.

:func:`read_table` / :func:`parse_table` give a :class:`CsvTable`; its
:meth:`~CsvTable.map_columns` finds the columns by their known aliases and
:meth:`~CsvTable.rows` yields :class:`Row` objects whose :meth:`~Row.get` parses one cell,
turning a ``ValueError`` into the caller's error type with the line and column.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
import unicodedata
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import TypeVar

import charset_normalizer

from qa_service.errors import FileNotFound, InputError

_T = TypeVar("_T")

# A seconds unit in a header ("时长(秒)") says nothing about meaning; other units (分) would.
_SECONDS_SUFFIX = re.compile(r"\((?:秒|s|sec|secs|seconds)\)$")

# After datetime.fromisoformat, the layouts Excel and diallers write with Chinese locales.
_DATETIME_FORMATS = (
    "%Y/%m/%d %H:%M:%S",
    "%Y/%m/%d %H:%M",
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%d %H:%M",
    "%Y年%m月%d日 %H:%M:%S",
    "%Y年%m月%d日 %H:%M",
)


def parse_datetime(value: str, assume_offset: tzinfo) -> datetime:
    """A date and time as exports write them; without an offset it is ``assume_offset``.

    Raises ValueError ("中文 / English") for an unknown layout or a date without a time.
    """
    text = unicodedata.normalize("NFKC", value).strip()
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        for layout in _DATETIME_FORMATS:
            try:
                parsed = datetime.strptime(text, layout)
                break
            except ValueError:
                continue
        else:
            raise ValueError(
                f"无法识别的时间 {value!r}（例如 2026-11-02 09:51:31） / "
                f"unrecognised date/time {value!r} (e.g. 2026-11-02 09:51:31)"
            ) from None
    if ":" not in text:
        # fromisoformat reads a bare date as midnight, which would put the attempt in the
        # forbidden night hours; a dial log without times cannot be used for the hour rules.
        raise ValueError(
            f"时间 {value!r} 缺少时刻（例如 2026-11-02 09:51:31） / "
            f"{value!r} has no time of day (e.g. 2026-11-02 09:51:31)"
        )
    # An export without an offset is in the call centre's local time.
    parsed = parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=assume_offset)
    try:  # the store keeps UTC: 9999-12-31 23:59-05:00 has no UTC time
        parsed.astimezone(UTC)
    except OverflowError:
        raise ValueError(
            f"时间 {value!r} 超出可用范围 / {value!r} is out of the supported range"
        ) from None
    return parsed


def _normalise_header(name: str) -> str:
    key = unicodedata.normalize("NFKC", name).replace("\ufeff", "").lower()
    key = re.sub(r"\s+", "", key)
    return _SECONDS_SUFFIX.sub("", key)


def _decode(data: bytes) -> str | None:
    """Text of an export: UTF-16 by its BOM, else UTF-8, else GB18030, else a detector's guess."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return data.decode("utf-16")  # Excel's "Unicode text" export
    for encoding in ("utf-8-sig", "gb18030"):  # GB18030 is a superset of GBK and GB2312
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError:
            continue
        # GB18030 accepts the NUL bytes of BOM-less UTF-16; real CSV text never has them.
        if "\x00" not in text:
            return text
    match = charset_normalizer.from_bytes(data).best()
    return None if match is None else str(match)


class Row:
    """One data row, with the line it came from for error messages."""

    def __init__(self, table: CsvTable, line: int, cells: list[str]) -> None:
        self.table, self.line, self.cells = table, line, cells

    def get(self, columns: dict[str, int], name: str, parse: Callable[[str], _T]) -> _T:
        index = columns[name]
        value = self.cells[index] if index < len(self.cells) else ""
        try:
            return parse(value)
        except ValueError as exc:
            zh, _, en = str(exc).partition(" / ")
            t = self.table
            column = t.header[index]
            raise t.error(
                f"{t.path}：第 {self.line} 行“{column}”列：{zh} / "
                f"{t.path}: line {self.line}, column '{column}': {en or zh}",
                path=t.path,
                line=self.line,
                column=column,
            ) from exc


class CsvTable:
    """A decoded CSV export: its header and data rows, plus how to report errors in it."""

    def __init__(
        self, path: Path, error: type[InputError], text: str, delimiter: str, skip: int
    ) -> None:
        self.path, self.error, self.text = path, error, text
        self.delimiter, self._skip = delimiter, skip
        self.header: list[str] = [cell.strip() for cell in next(self._reader(), [])]

    @classmethod
    def read(cls, path: Path, error: type[InputError], zh_kind: str, en_kind: str) -> CsvTable:
        if not path.is_file():
            raise FileNotFound(f"{path}：文件不存在 / {path}: file not found", path=path)
        return cls.parse(path.read_bytes(), path, error, zh_kind, en_kind)

    @classmethod
    def parse(
        cls, data: bytes, path: Path, error: type[InputError], zh_kind: str, en_kind: str
    ) -> CsvTable:
        """The table in ``data``; ``path`` names it in messages (an upload's file name)."""
        if not data.strip():
            raise error(
                f"{path}：{zh_kind}文件是空的 / {path}: the {en_kind} file is empty", path=path
            )
        text = _decode(data)
        if text is None:
            raise error(
                f"{path}：无法识别{zh_kind}的文字编码（支持 UTF-8、GBK/GB18030、UTF-16） / "
                f"{path}: cannot tell the text encoding of the {en_kind} "
                "(UTF-8, GBK/GB18030 and UTF-16 are supported)",
                path=path,
            )
        first = text.lstrip().partition("\n")[0].strip()
        # Excel honours (and sometimes writes) a "sep=;" line naming the delimiter.
        if first.lower().startswith("sep=") and len(first) == 5:
            return cls(path, error, text, first[4], skip=1)
        counts = {d: first.count(d) for d in (",", "\t", ";")}
        delimiter = max(counts, key=lambda d: counts[d]) if any(counts.values()) else ","
        return cls(path, error, text, delimiter, skip=0)

    def _reader(self) -> _SkipBlank:
        reader = csv.reader(io.StringIO(self.text, newline=""), delimiter=self.delimiter)
        for _ in range(self._skip):
            next(reader, None)
        # Blank lines before the header (some report tools start with one) are not rows.
        return _SkipBlank(reader, self._unreadable)

    def _unreadable(self, line: int, exc: csv.Error) -> InputError:
        # An unclosed quote runs to the end of the file: past csv's 128 KiB field limit.
        return self.error(
            f"{self.path}：第 {line} 行无法按 CSV 读取（常见原因：引号未闭合）：{exc} / "
            f"{self.path}: line {line} cannot be read as CSV (often an unclosed quote): {exc}",
            path=self.path,
            line=line,
        )

    def map_columns(self, aliases: dict[str, tuple[str, ...]]) -> dict[str, int]:
        """Canonical column name → index, for the header cells that name a known column."""
        lookup = {alias: name for name, names in aliases.items() for alias in names}
        columns: dict[str, int] = {}
        for index, cell in enumerate(self.header):
            name = lookup.get(_normalise_header(cell))
            if name is None:
                continue  # other columns are the exporter's business
            if name in columns:
                first = self.header[columns[name]]
                raise self.error(
                    f"{self.path}：列“{first}”和“{cell}”都表示 {name}，无法确定用哪一列 / "
                    f"{self.path}: columns '{first}' and '{cell}' both mean {name}",
                    path=self.path,
                    column=cell,
                )
            columns[name] = index
        return columns

    def rows(self) -> Iterator[Row]:
        reader = self._reader()
        next(reader, None)  # the header
        for cells in reader:
            extra = [cell for cell in cells[len(self.header) :] if cell.strip()]
            if extra:
                # More values than columns: a separator inside an unquoted value has shifted
                # the row, so no value in it can be trusted to be in its column.
                raise self.error(
                    f"{self.path}：第 {reader.line_num} 行有 {len(cells)} 个值，但表头只有 "
                    f"{len(self.header)} 列 / {self.path}: line {reader.line_num} has "
                    f"{len(cells)} values but the header has {len(self.header)} columns",
                    path=self.path,
                    line=reader.line_num,
                )
            yield Row(self, reader.line_num, cells)


class _SkipBlank:
    """A csv reader that passes over rows with no content (Excel leaves ``,,,,`` lines)."""

    def __init__(
        self,
        reader: Iterator[list[str]],
        unreadable: Callable[[int, csv.Error], Exception],
    ) -> None:
        self._reader, self._unreadable = reader, unreadable

    @property
    def line_num(self) -> int:
        return int(getattr(self._reader, "line_num", 0))

    def __iter__(self) -> _SkipBlank:
        return self

    def __next__(self) -> list[str]:
        while True:
            try:
                cells = next(self._reader)
            except csv.Error as exc:
                raise self._unreadable(self.line_num + 1, exc) from exc
            if any(cell.strip() for cell in cells):
                return cells


def read_table(path: Path, *, error: type[InputError], kind_zh: str, kind_en: str) -> CsvTable:
    """The table in the file at ``path``; ``kind_zh``/``kind_en`` name the list in messages.

    Raises :class:`FileNotFound` for a missing file and ``error`` for an empty file or an
    unknown encoding.
    """
    return CsvTable.read(Path(path), error, kind_zh, kind_en)


def parse_table(
    data: bytes, *, name: str | Path, error: type[InputError], kind_zh: str, kind_en: str
) -> CsvTable:
    """The table in ``data`` (an upload called ``name``), as :func:`read_table`."""
    return CsvTable.parse(data, Path(name), error, kind_zh, kind_en)
