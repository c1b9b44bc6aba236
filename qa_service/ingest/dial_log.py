"""Read the dial log (CDR) and the do-not-call list as call centres really export them.

The frequency rule (M02) and the do-not-call check depend on these files, and in a Chinese call
centre they come out of Excel or a dialler's report screen: GBK or UTF-8 with a byte-order mark,
Chinese column names, dates like ``2026/11/2 9:51``. Reading them strictly would turn every
export into a support ticket; reading them loosely would let a wrong column or a misread date
skew the rules silently. So: known variants are accepted, anything else is an error naming the
file, line and column. The CSV reading itself is :mod:`.csv_table`'s, shared with the bank's
complaint list.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone, tzinfo
from pathlib import Path

from qa_service.domain import DialAttempt, DoNotCallEntry
from qa_service.errors import DialLogError, DoNotCallListError
from qa_service.ingest.csv_table import CsvTable, parse_datetime, parse_table, read_table

# The call centre's clock (Settings.local_utc_offset): what a time without an offset means.
# Defined here rather than in ingest because ingest uses this module's number normalisation.
DEFAULT_OFFSET = timezone(timedelta(hours=8))

# Column names as they appear in exports, normalised by the table reader (NFKC, lower case,
# no spaces, no seconds unit).
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


_TRUE = frozenset({"1", "是", "true", "yes", "y", "t", "接通", "已接通"})
_FALSE = frozenset({"0", "否", "false", "no", "n", "f", "未接通"})


# Excel shows long numbers as 1.84515E+10 and saves them that way: the digits are gone.
_SCIENTIFIC = re.compile(r"^[0-9.]+e\+?[0-9]+$", re.IGNORECASE)
_PHONE_JUNK = re.compile(r"[\s\-()]")


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
    table = read_table(path, error=DialLogError, kind_zh="拨号记录", kind_en="dial log")
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
    table = parse_table(data, name=name, error=DialLogError, kind_zh="拨号记录", kind_en="dial log")
    return _dial_attempts(table, assume_offset, rejected)


def _dial_attempts(
    table: CsvTable, assume_offset: tzinfo, rejected: list[DialLogError] | None
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
        return parse_datetime(value, assume_offset)

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
    table = read_table(
        path, error=DoNotCallListError, kind_zh="禁止拨打名单", kind_en="do-not-call list"
    )
    return _do_not_call_entries(table)


def parse_do_not_call(data: bytes, *, name: str) -> list[DoNotCallEntry]:
    """The numbers of do-not-call list bytes (an upload called ``name``), as above."""
    table = parse_table(
        data,
        name=name,
        error=DoNotCallListError,
        kind_zh="禁止拨打名单",
        kind_en="do-not-call list",
    )
    return _do_not_call_entries(table)


def _do_not_call_entries(table: CsvTable) -> list[DoNotCallEntry]:
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
