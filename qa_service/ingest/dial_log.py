"""Read the dial log (CDR) and the do-not-call list as call centres really export them.

The frequency rule (M02) and the do-not-call check depend on these files, and in a Chinese call
centre they come out of Excel or a dialler's report screen: GBK or UTF-8 with a byte-order mark,
Chinese column names, dates like ``2026/11/2 9:51``. Reading them strictly would turn every
export into a support ticket; reading them loosely would let a wrong column or a misread date
skew the rules silently. So: known variants are accepted, anything else is an error naming the
file, line and column.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
import unicodedata
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone, tzinfo
from pathlib import Path
from typing import TypeVar

import charset_normalizer

from qa_service.domain import DialAttempt, DoNotCallEntry
from qa_service.errors import DialLogError, DoNotCallListError, FileNotFound, InputError

# The call centre's clock (Settings.local_utc_offset): what a time without an offset means.
# Defined here rather than in ingest because ingest uses this module's number normalisation.
DEFAULT_OFFSET = timezone(timedelta(hours=8))

# Column names as they appear in exports, after _normalise_header (NFKC, lower case, no spaces).
_DIAL_LOG_COLUMNS: dict[str, tuple[str, ...]] = {
    "call_id": ("call_id", "callid", "通话id", "通话编号", "录音编号", "录音id", "呼叫id"),
    "agent_id": ("agent_id", "agentid", "agent", "坐席工号", "坐席", "坐席id", "坐席编号", "工号"),
    "customer_id": ("customer_id", "customerid", "customer", "客户号", "客户编号", "客户id"),
    "dialed_number": (
        "dialed_number", "dialednumber", "phone", "被叫号码", "拨打号码", "被叫", "电话号码",
    ),
    "started_at": (
        "started_at", "startedat", "start_time", "呼叫时间", "开始时间", "拨打时间", "外呼时间",
    ),
    "connected": ("connected", "是否接通", "接通", "接通状态"),
    "duration_s": ("duration_s", "duration", "通话时长", "时长"),
}  # fmt: skip
# call_id is optional: a dialler that does not record calls still has a usable log.
_DIAL_LOG_REQUIRED = (
    "agent_id",
    "customer_id",
    "dialed_number",
    "started_at",
    "connected",
    "duration_s",
)

_DO_NOT_CALL_COLUMNS: dict[str, tuple[str, ...]] = {
    "dialed_number": (
        "dialed_number", "phone", "phone_number", "number", "号码", "电话号码", "被叫号码",
        "手机号", "手机号码",
    ),
    "reason": ("reason", "原因", "备注"),
}  # fmt: skip

# A seconds unit in a header ("时长(秒)") says nothing about meaning; other units (分) would.
_SECONDS_SUFFIX = re.compile(r"\((?:秒|s|sec|secs|seconds)\)$")

_TRUE = frozenset({"1", "是", "true", "yes", "y", "t", "接通", "已接通"})
_FALSE = frozenset({"0", "否", "false", "no", "n", "f", "未接通"})

# After datetime.fromisoformat, the layouts Excel and diallers write with Chinese locales.
_DATETIME_FORMATS = (
    "%Y/%m/%d %H:%M:%S",
    "%Y/%m/%d %H:%M",
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%d %H:%M",
    "%Y年%m月%d日 %H:%M:%S",
    "%Y年%m月%d日 %H:%M",
)

# Excel shows long numbers as 1.84515E+10 and saves them that way: the digits are gone.
_SCIENTIFIC = re.compile(r"^[0-9.]+e\+?[0-9]+$", re.IGNORECASE)
_PHONE_JUNK = re.compile(r"[\s\-()]")

_T = TypeVar("_T")


def normalize_phone_number(raw: str) -> str:
    """Digits only, national format: ``+86 138-0013-8000`` → ``13800138000``.

    Spaces, dashes and brackets go; a leading +86/0086 (or 86 before an 11-digit mobile
    number) goes too, and a landline written internationally gets its trunk 0 back, so the
    same number matches whichever way an export wrote it. Raises ValueError if what remains
    is not a phone number.
    """
    text = unicodedata.normalize("NFKC", raw).strip()  # full-width digits → ASCII
    if _SCIENTIFIC.match(text):
        raise ValueError(
            f"号码 {raw!r} 被 Excel 存成了科学计数法，数字已丢失 / "
            f"number {raw!r} was saved by Excel in scientific notation; its digits are lost"
        )
    digits = _PHONE_JUNK.sub("", text)
    international = digits.startswith(("+86", "0086"))
    if international:
        digits = digits.removeprefix("+86").removeprefix("0086")
    elif len(digits) == 13 and digits.startswith("861"):
        digits = digits[2:]
    if international and not digits.startswith("0") and not _is_mobile(digits):
        digits = "0" + digits
    if not (digits.isascii() and digits.isdigit() and 3 <= len(digits) <= 20):
        raise ValueError(f"{raw!r} 不是电话号码 / {raw!r} is not a phone number")
    return digits


def load_dial_log(path: Path, *, assume_offset: tzinfo = DEFAULT_OFFSET) -> list[DialAttempt]:
    """Every attempt in the dial log CSV, in file order.

    Accepts UTF-8 (with or without BOM), GBK/GB18030 and UTF-16, comma/tab/semicolon
    separators, English or Chinese column names. A time without an offset is taken as
    ``assume_offset``. Raises :class:`DialLogError` naming the file, line and column.
    """
    table = _Table.read(Path(path), DialLogError, "拨号记录", "dial log")
    return _dial_attempts(table, assume_offset, None)


def parse_dial_log(
    data: bytes,
    *,
    name: str,
    assume_offset: tzinfo = DEFAULT_OFFSET,
    rejected: list[DialLogError] | None = None,
) -> list[DialAttempt]:
    """The attempts of dial-log bytes (an upload called ``name``), as :func:`load_dial_log`.

    With a ``rejected`` list, a row that cannot be read is appended to it as the error
    naming its line and column, and skipped; the file as a whole (encoding, header) must
    still be readable. Without one the first bad row raises, as the CLI wants.
    """
    table = _Table.parse(data, Path(name), DialLogError, "拨号记录", "dial log")
    return _dial_attempts(table, assume_offset, rejected)


def _dial_attempts(
    table: _Table, assume_offset: tzinfo, rejected: list[DialLogError] | None
) -> list[DialAttempt]:
    path = table.path
    columns = table.map_columns(_DIAL_LOG_COLUMNS)
    missing = [name for name in _DIAL_LOG_REQUIRED if name not in columns]
    if missing:
        raise DialLogError(
            f"{path}：拨号记录缺少必需的列 {', '.join(missing)}；文件中的列为 "
            f"{', '.join(table.header)} / {path}: the dial log lacks the required column(s) "
            f"{', '.join(missing)}; found {', '.join(table.header)}",
            path=path,
            missing=", ".join(missing),
            found=", ".join(table.header),
        )

    def parse_time(value: str) -> datetime:
        return _parse_datetime(value, assume_offset)

    attempts = []
    for row in table.rows():
        try:
            call_id = row.get(columns, "call_id", str.strip) if "call_id" in columns else ""
            attempts.append(
                DialAttempt(
                    call_id=call_id or None,
                    agent_id=row.get(columns, "agent_id", _required_text),
                    customer_id=row.get(columns, "customer_id", _required_text),
                    dialed_number=row.get(columns, "dialed_number", normalize_phone_number),
                    started_at=row.get(columns, "started_at", parse_time),
                    connected=row.get(columns, "connected", _parse_bool),
                    duration_s=row.get(columns, "duration_s", _parse_duration),
                )
            )
        except DialLogError as exc:
            if rejected is None:
                raise
            rejected.append(exc)
    return attempts


def load_do_not_call(path: Path) -> list[DoNotCallEntry]:
    """The numbers of a do-not-call list, normalised, each once (its first reason kept).

    Either a CSV with a number column (``dialed_number``, 号码, 电话号码, 被叫号码 ...) and an
    optional reason (``reason``, 原因), or plain text with one number per line (``#`` starts
    a comment). Raises :class:`DoNotCallListError` naming the file and line.
    """
    table = _Table.read(Path(path), DoNotCallListError, "禁止拨打名单", "do-not-call list")
    return _do_not_call_entries(table)


def parse_do_not_call(data: bytes, *, name: str) -> list[DoNotCallEntry]:
    """The numbers of do-not-call list bytes (an upload called ``name``), as above."""
    table = _Table.parse(data, Path(name), DoNotCallListError, "禁止拨打名单", "do-not-call list")
    return _do_not_call_entries(table)


def _do_not_call_entries(table: _Table) -> list[DoNotCallEntry]:
    path = table.path
    columns = table.map_columns(_DO_NOT_CALL_COLUMNS)
    if "dialed_number" in columns:
        pairs = [
            (
                row.get(columns, "dialed_number", normalize_phone_number),
                row.get(columns, "reason", str.strip) if "reason" in columns else "",
            )
            for row in table.rows()
        ]
    else:
        pairs = [(number, "") for number in _plain_numbers(path, table.text)]
    if not pairs:
        raise DoNotCallListError(
            f"{path}：禁止拨打名单里没有号码 / {path}: the do-not-call list holds no numbers",
            path=path,
        )
    entries: dict[str, DoNotCallEntry] = {}
    for number, reason in pairs:
        entries.setdefault(number, DoNotCallEntry(dialed_number=number, reason=reason))
    return list(entries.values())


def _plain_numbers(path: Path, text: str) -> Iterator[str]:
    for line_no, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            yield normalize_phone_number(line)
        except ValueError as exc:
            zh, _, en = str(exc).partition(" / ")
            raise DoNotCallListError(
                f"{path}：第 {line_no} 行：{zh}（纯文本名单每行一个号码；CSV 名单需要 号码/"
                f"电话号码/被叫号码/dialed_number 列） / {path}: line {line_no}: {en} (a plain "
                "list holds one number per line; a CSV list needs a dialed_number column)",
                path=path,
                line=line_no,
            ) from exc


def _is_mobile(digits: str) -> bool:
    return len(digits) == 11 and digits.startswith("1")


def _required_text(value: str) -> str:
    value = value.strip()
    if not value:
        raise ValueError("值为空 / the value is empty")
    return value


def _parse_bool(value: str) -> bool:
    key = unicodedata.normalize("NFKC", value).strip().lower()
    if key in _TRUE:
        return True
    if key in _FALSE:
        return False
    raise ValueError(
        f"{value!r} 不是 是/否、1/0、true/false、接通/未接通 之一 / "
        f"{value!r} is not one of 是/否, 1/0, true/false, 接通/未接通"
    )


def _parse_duration(value: str) -> float:
    """Seconds as a number (``39.56``, ``184秒``) or as a clock reading (``0:03:04``)."""
    text = unicodedata.normalize("NFKC", value).strip().removesuffix("秒").removesuffix("s")
    try:
        if ":" in text:
            seconds = 0.0
            for part in text.split(":"):
                seconds = seconds * 60 + float(part)
        else:
            seconds = float(text)
    except ValueError:
        seconds = float("nan")
    if not seconds >= 0 or seconds == float("inf"):
        raise ValueError(
            f"{value!r} 不是有效的时长（秒） / {value!r} is not a valid duration in seconds"
        )
    return seconds


def _parse_datetime(value: str, assume_offset: tzinfo) -> datetime:
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
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=assume_offset)


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


class _Row:
    """One data row, with the line it came from for error messages."""

    def __init__(self, table: _Table, line: int, cells: list[str]) -> None:
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


class _Table:
    """A decoded CSV export: its header and data rows, plus how to report errors in it."""

    def __init__(
        self, path: Path, error: type[InputError], text: str, delimiter: str, skip: int
    ) -> None:
        self.path, self.error, self.text = path, error, text
        self.delimiter, self._skip = delimiter, skip
        self.header: list[str] = [cell.strip() for cell in next(self._reader(), [])]

    @classmethod
    def read(cls, path: Path, error: type[InputError], zh_kind: str, en_kind: str) -> _Table:
        if not path.is_file():
            raise FileNotFound(f"{path}：文件不存在 / {path}: file not found", path=path)
        return cls.parse(path.read_bytes(), path, error, zh_kind, en_kind)

    @classmethod
    def parse(
        cls, data: bytes, path: Path, error: type[InputError], zh_kind: str, en_kind: str
    ) -> _Table:
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
        return _SkipBlank(reader)

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

    def rows(self) -> Iterator[_Row]:
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
            yield _Row(self, reader.line_num, cells)


class _SkipBlank:
    """A csv reader that passes over rows with no content (Excel leaves ``,,,,`` lines)."""

    def __init__(self, reader: Iterator[list[str]]) -> None:
        self._reader = reader

    @property
    def line_num(self) -> int:
        return int(getattr(self._reader, "line_num", 0))

    def __iter__(self) -> _SkipBlank:
        return self

    def __next__(self) -> list[str]:
        while True:
            cells = next(self._reader)
            if any(cell.strip() for cell in cells):
                return cells
