"""Property-based tests (hypothesis) of the hostile-input parsers (issue 13, item 5).

The sidecar, dial-log and roster parsers take files from outside the bank's control, and the
PII finder decides what a reader without ``view_pii`` sees. For each: arbitrary input never
raises anything but the parser's documented error, and generated valid input comes back with
its values. Each property runs at most a few dozen examples so that the file takes seconds.

Set ``CI=1`` (CI does) or ``QA_HYPOTHESIS_PROFILE=ci`` for the derandomised profile: the
same examples every run, no example database. Locally examples are random, so repeated runs
explore further; a failure prints the ``@reproduce_failure`` line to replay it.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import os
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from qa_service.accounts.roster import RosterEntry, parse_roster
from qa_service.db import make_engine, make_session_factory, migrate, save_dial_attempts
from qa_service.domain import DialAttempt, Speaker
from qa_service.errors import DialLogError, MetadataError, QAServiceError, RosterError
from qa_service.ingest.dial_log import parse_dial_log
from qa_service.ingest.recordings import load_metadata, parse_metadata, parse_metadata_bytes
from qa_service.privacy.keys import ring_of, using_key_ring
from qa_service.privacy.masking import MASK, mask_text
from qa_service.privacy.numbers import DIGIT_VALUES, NumberKind, find_numbers, luhn_valid

settings.register_profile("qa-ci", deadline=None, derandomize=True, database=None, print_blob=True)
settings.register_profile("qa-dev", deadline=None)
_CI = os.environ.get("QA_HYPOTHESIS_PROFILE") == "ci" or bool(os.environ.get("CI"))
_BASE = settings.get_profile("qa-ci" if _CI else "qa-dev")
# A profile applied per test, not loaded globally: other tests (schemathesis) keep their own.
FEW = settings(_BASE, max_examples=40, suppress_health_check=[HealthCheck.too_slow])
SOME = settings(_BASE, max_examples=100, suppress_health_check=[HealthCheck.too_slow])

CST = timezone(timedelta(hours=8))
_HAN = "\u4e00-\u9fff"


def _has_chinese(message: str) -> bool:
    return any("\u4e00" <= ch <= "\u9fff" for ch in message)


def _documented(exc: QAServiceError) -> None:
    """The error a client sees: Chinese first, then English after " / "."""
    assert _has_chinese(exc.message), exc.message
    assert " / " in exc.message, exc.message


# ---------------------------------------------------------------- shared text strategies

# Characters a cell or id can hold: anything printable (no control, surrogate or line
# separator characters; csv quoting takes care of commas and quotes).
_PRINTABLE = st.characters(blacklist_categories=("Cc", "Cs", "Co", "Cn", "Zl", "Zp"))
# GBK-encodable text: ASCII and common hanzi (Excel's "CSV" on a Chinese Windows).
_COMMON_HAN = "张王李赵刘陈杨黄周吴徐孙胡朱高林何郭马罗梁宋郑谢韩唐冯于董萧程曹袁邓许傅沈曾彭吕苏卢蒋蔡贾丁魏薛叶阎余潘杜戴夏钟汪田任姜范方石姚谭廖邹熊金陆郝孔白崔康毛邱秦江史顾侯邵孟龙万段雷钱汤尹黎易常武乔贺赖龚文组队催收外包公司华东南北"  # noqa: E501
_GBK_CHARS = st.sampled_from(
    [chr(c) for c in range(0x20, 0x7F) if chr(c) not in "\"'"] + list(_COMMON_HAN)
)


def _cell(chars: st.SearchStrategy[str], max_size: int = 20) -> st.SearchStrategy[str]:
    """A non-empty cell value without surrounding whitespace (parsers strip cells)."""
    return st.text(chars, min_size=1, max_size=max_size).map(str.strip).filter(bool)


def _not_also_utf8(data: bytes, encoding: str) -> bool:
    """GBK bytes that happen to be valid UTF-8 are read as UTF-8 (as documented): skip them."""
    if encoding != "gbk":
        return True
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return data.isascii()


# ======================================================================= sidecar metadata

_SIDECAR_KEYS = (
    "call_id",
    "agent_id",
    "customer_id",
    "dialed_number",
    "contact_role",
    "direction",
    "started_at",
    "duration_s",
    "channels",
    "channel_map",
    "team_id",
    "agency_id",
)
_JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=30)
    | st.sampled_from(
        ["agent", "Customer", "STEREO", "debtor", "2026-11-06T14:32:18+08:00", "0", " 1 "]
    )
)
_JSON = st.recursive(
    _JSON_SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.text(max_size=8) | st.sampled_from(["0", "1", " 2"]), inner, max_size=4
        )
    ),
    max_leaves=12,
)
# Mostly the sidecar's own keys, with any values: that is what reaches the validators.
_SIDECAR_LIKE = st.dictionaries(
    st.sampled_from(_SIDECAR_KEYS) | st.text(max_size=10), _JSON, max_size=8
)


def _parse_meta(raw: object) -> None:
    try:
        meta = parse_metadata(raw, source="call.json", recording="call.wav")
    except MetadataError as exc:
        _documented(exc)
        assert exc.context["sidecar"] == "call.json"
        return
    assert meta.has_sidecar and meta.recording == "call.wav"
    assert meta.call_id and meta.call_id == meta.call_id.strip()
    if meta.started_at is not None:
        assert meta.started_at.tzinfo is not None
        meta.started_at.astimezone(UTC)  # storage keeps UTC: the time must convert
    if meta.channel_map is not None:
        assert all(isinstance(k, int) for k in meta.channel_map)
        assert len(set(meta.channel_map.values())) == len(meta.channel_map)


@SOME
@given(_JSON | _SIDECAR_LIKE)
@example({"call_id": "x", "channel_map": {"9" * 5000: "agent"}})  # int() digit limit
@example({"call_id": "x", "started_at": "9999-12-31T23:59:59-23:59"})  # past year 9999 in UTC
@example({"call_id": "x", "started_at": "0001-01-01T00:00:00"})  # before year 1 in UTC
def test_sidecar_any_json_raises_only_metadata_error(raw: object) -> None:
    _parse_meta(raw)


@SOME
@given(
    st.binary(max_size=200)
    | _SIDECAR_LIKE.map(lambda d: json.dumps(d, default=str).encode())
    | st.tuples(_SIDECAR_LIKE, st.sampled_from(["utf-8-sig", "utf-16", "gb18030"])).map(
        lambda t: json.dumps(t[0], ensure_ascii=False).encode(t[1], errors="replace")
    )
)
@example(b"[" * 100_000)  # nesting deeper than the JSON decoder's recursion
@example(b'{"call_id": ' + b"1" * 5000 + b"}")  # an integer past Python's 4300-digit limit
@example(b'{"call_id": 1e400, "duration_s": NaN}')
def test_sidecar_any_bytes_raise_only_metadata_error(data: bytes) -> None:
    try:
        meta = parse_metadata_bytes(data, source="metadata", recording="call.wav")
    except MetadataError as exc:
        _documented(exc)
        return
    assert meta.call_id


_PHONE_FORMATS = (
    lambda d: d,
    lambda d: f"+86 {d[:3]}-{d[3:7]}-{d[7:]}",
    lambda d: f"0086{d}",
    lambda d: f"86{d}",
    lambda d: f"({d[:3]}) {d[3:7]} {d[7:]}",
    lambda d: d.translate({ord(c): chr(0xFF10 + int(c)) for c in "0123456789"}),  # full width
)
_MOBILES = st.from_regex(r"\A1[3-9][0-9]{9}\Z")
_TIMES = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31), allow_imaginary=True
)
_OFFSETS = st.none() | st.integers(-12 * 60, 14 * 60).map(lambda m: timezone(timedelta(minutes=m)))


def _case(word: str) -> st.SearchStrategy[str]:
    return st.sampled_from([word, word.upper(), word.title(), f" {word} "])


@st.composite
def _valid_sidecars(draw: st.DrawFn) -> tuple[dict[str, object], dict[str, object]]:
    """A valid sidecar as exporters write it, and the CallMetadata fields it must give."""
    raw: dict[str, object] = {}
    want: dict[str, object] = {}
    if draw(st.booleans()):
        number = draw(st.integers(0, 10**15))
        raw["call_id"], want["call_id"] = number, str(number)
    else:
        core = draw(_cell(_PRINTABLE, 30))
        pad = draw(st.sampled_from(["", " ", "\t", "  \n"]))
        raw["call_id"], want["call_id"] = f"{pad}{core}{pad}", core
    for field in ("agent_id", "customer_id"):
        choice = draw(st.sampled_from(["absent", "int", "text"]))
        if choice == "int":
            number = draw(st.integers(0, 10**12))
            raw[field], want[field] = number, str(number)
        elif choice == "text":
            raw[field] = want[field] = draw(_cell(_PRINTABLE))
        else:
            want[field] = None
    mobile = draw(_MOBILES)
    if draw(st.booleans()):
        raw["dialed_number"] = draw(st.sampled_from(_PHONE_FORMATS))(mobile)
        want["dialed_number"] = mobile
    elif draw(st.booleans()):
        raw["dialed_number"], want["dialed_number"] = int(mobile), mobile
    else:
        want["dialed_number"] = None
    for field, words in (
        ("contact_role", ("debtor", "third_party")),
        ("direction", ("outbound", "inbound")),
        ("channels", ("stereo", "mono")),
    ):
        word = draw(st.none() | st.sampled_from(words))
        if word is not None:
            raw[field] = draw(_case(word))
        want[field] = word
    when, offset = draw(_TIMES), draw(_OFFSETS)
    if draw(st.booleans()):
        local = when.replace(tzinfo=offset)
        sep = draw(st.sampled_from(["T", " "]))
        raw["started_at"] = local.isoformat(sep=sep)
        want["started_at"] = local if offset is not None else when.replace(tzinfo=CST)
    else:
        want["started_at"] = None
    if draw(st.booleans()):
        duration = draw(
            st.integers(0, 10**6) | st.floats(0, 1e6, allow_nan=False, allow_infinity=False)
        )
        raw["duration_s"], want["duration_s"] = duration, float(duration)
    else:
        want["duration_s"] = None
    if draw(st.booleans()):
        agent, customer = draw(st.permutations(["0", "1"]))
        raw["channel_map"] = {agent: draw(_case("agent")), customer: draw(_case("customer"))}
        want["channel_map"] = {int(agent): Speaker.AGENT, int(customer): Speaker.CUSTOMER}
    else:
        want["channel_map"] = None
    for field in ("team_id", "agency_id"):
        value = draw(st.none() | st.just("") | st.just("  ") | _cell(_PRINTABLE))
        if value is not None:
            raw[field] = value
        want[field] = value.strip() or None if value is not None else None
    # Exporters add keys of their own; they are ignored.
    raw.update(draw(st.dictionaries(st.text(min_size=1).map(lambda k: f"x-{k}"), _JSON_SCALARS)))
    return raw, want


_TMP = Path(tempfile.mkdtemp(prefix="qa-properties-"))


@SOME
@given(_valid_sidecars(), st.sampled_from(["utf-8", "utf-8-sig"]), st.booleans())
def test_valid_sidecars_round_trip(
    case: tuple[dict[str, object], dict[str, object]], encoding: str, ascii_only: bool
) -> None:
    raw, want = case
    data = json.dumps(raw, ensure_ascii=ascii_only).encode(encoding)
    from_bytes = parse_metadata_bytes(data, source="upload", recording="rec.wav")
    from_object = parse_metadata(raw, source="upload", recording="rec.wav")
    recording = _TMP / "rec.wav"
    recording.with_suffix(".json").write_bytes(data)
    from_file = load_metadata(recording)
    assert from_bytes == from_object == from_file
    got = {field: getattr(from_bytes, field) for field in want}
    assert got == want
    if want["started_at"] is not None:
        # Same instant and the writer's own offset kept, not converted to the service's.
        assert from_bytes.started_at.utcoffset() == want["started_at"].utcoffset()  # type: ignore[union-attr]
    assert from_bytes.recording == "rec.wav" and from_bytes.has_sidecar


# ============================================================================= dial log

_DIAL_ALIASES = {
    "call_id": ("call_id", "CallID", "通话ID", "通话编号", "录音编号", "呼叫ID"),
    "agent_id": ("agent_id", "AgentID", "Agent", "坐席工号", "坐席", "工号"),
    "customer_id": ("customer_id", "Customer", "客户号", "客户编号", "客户ID"),
    "dialed_number": ("dialed_number", "Phone", "被叫号码", "拨打号码", "电话号码"),
    "started_at": ("started_at", "Start_Time", "呼叫时间", "开始时间", "外呼时间"),
    "connected": ("connected", "是否接通", "接通", "接通状态"),
    "duration_s": ("duration_s", "Duration", "通话时长", "时长(秒)", "时长 (秒)", "时长"),
}
_ENCODINGS = ("utf-8", "utf-8-sig", "gbk", "utf-16")
_EXTRA_COLUMNS = st.sampled_from(["备注", "坐席姓名", "区域", "note", "批次", "队列"]).flatmap(
    lambda base: st.integers(1, 99).map(lambda n: f"{base}{n}")
)


def _time_text(when: datetime, offset: timezone | None, layout: int) -> tuple[str, datetime]:
    """A start time as some export writes it, and what it must be read as."""
    if layout == 0:
        local = when.replace(tzinfo=offset)
        return local.isoformat(sep=" "), local if offset else when.replace(tzinfo=CST)
    plain = when.replace(microsecond=0, tzinfo=CST)
    if layout == 1:  # Excel, Chinese locale: 2026/11/2 9:51
        return f"{when.year}/{when.month}/{when.day} {when.hour}:{when.minute:02d}", plain.replace(
            second=0
        )
    if layout == 2:
        return when.strftime("%Y-%m-%d %H:%M:%S"), plain
    return when.strftime("%Y年%m月%d日 %H:%M:%S"), plain


@st.composite
def _dial_rows(draw: st.DrawFn, chars: st.SearchStrategy[str]) -> tuple[list[str], DialAttempt]:
    """One dial-log row (canonical column → cell text) and the attempt it must give."""
    agent = draw(_cell(chars, 12))
    customer = draw(_cell(chars, 12))
    mobile = draw(_MOBILES)
    landline = draw(st.from_regex(r"\A0(10|2[0-9]|[3-9][0-9]{2})[2-8][0-9]{7}\Z"))
    number = draw(st.sampled_from([mobile, landline]))
    if number == mobile:
        number_text = draw(st.sampled_from(_PHONE_FORMATS[:5]))(mobile)
    else:
        number_text = draw(st.sampled_from([landline, f"{landline[:-8]}-{landline[-8:]}"]))
    time_text, started = _time_text(draw(_TIMES), draw(_OFFSETS), draw(st.integers(0, 3)))
    connected = draw(st.booleans())
    connected_text = draw(
        st.sampled_from(
            ["1", "是", "TRUE", "yes", "Y", "接通"]
            if connected
            else ["0", "否", "false", "No", "未接通"]
        )
    )
    seconds = draw(st.integers(0, 7200))
    duration_text = draw(
        st.sampled_from(
            [
                str(seconds),
                f"{seconds}秒",
                f"{seconds}.00",
                f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}",
            ]
        )
    )
    call_id = draw(st.none() | _cell(chars, 12))
    cells = {
        "call_id": call_id or "",
        "agent_id": agent,
        "customer_id": customer,
        "dialed_number": number_text,
        "started_at": time_text,
        "connected": connected_text,
        "duration_s": duration_text,
    }
    attempt = DialAttempt(
        call_id=call_id,
        agent_id=agent,
        customer_id=customer,
        dialed_number=number,
        started_at=started,
        connected=connected,
        duration_s=float(seconds),
    )
    return [cells[name] for name in _DIAL_ALIASES], attempt


@st.composite
def _csv_file(
    draw: st.DrawFn,
    aliases: dict[str, tuple[str, ...]],
    rows: list[list[str]],
    encoding: str,
    optional: tuple[str, ...] = (),
) -> tuple[bytes, list[str]]:
    """``rows`` (cells in ``aliases`` order) as an export: any header alias and column order,
    extra columns, blank lines, a delimiter and line ending."""
    names = [n for n in aliases if n not in optional or draw(st.booleans())]
    extras = draw(st.lists(_EXTRA_COLUMNS, max_size=3, unique=True))
    columns = draw(st.permutations(names + extras))
    header = [draw(st.sampled_from(aliases[c])) if c in aliases else c for c in columns]
    delimiter = draw(st.sampled_from([",", ",", ";", "\t"]))
    out = io.StringIO()
    writer = csv.writer(
        out, delimiter=delimiter, lineterminator=draw(st.sampled_from(["\n", "\r\n"]))
    )
    blank = delimiter * (len(columns) - 1)
    if draw(st.booleans()):
        out.write(draw(st.sampled_from(["", blank])) + "\n")  # report tools start with one
    writer.writerow(header)
    index = {name: i for i, name in enumerate(aliases)}
    for row in rows:
        for _ in range(draw(st.integers(0, 1))):
            out.write(draw(st.sampled_from(["", blank])) + "\n")
        writer.writerow(
            [
                row[index[c]] if c in index else draw(st.text(_GBK_CHARS, max_size=6))
                for c in columns
            ]
        )
    return out.getvalue().encode(encoding), names


@st.composite
def _dial_logs(draw: st.DrawFn) -> tuple[bytes, list[DialAttempt], str]:
    encoding = draw(st.sampled_from(_ENCODINGS))
    chars = _GBK_CHARS if encoding == "gbk" else _PRINTABLE
    pairs = draw(st.lists(_dial_rows(chars), min_size=1, max_size=8))
    # A dial log is exported twice over sometimes: whole rows repeated.
    pairs += draw(st.lists(st.sampled_from(pairs), max_size=3))
    pairs = draw(st.permutations(pairs))
    has_call_id = any(p[1].call_id for p in pairs)
    optional = () if has_call_id else ("call_id",)
    data, _ = draw(_csv_file(_DIAL_ALIASES, [p[0] for p in pairs], encoding, optional))
    return data, [p[1] for p in pairs], encoding


@SOME
@given(_dial_logs())
def test_generated_dial_logs_import_every_row(case: tuple[bytes, list[DialAttempt], str]) -> None:
    data, want, encoding = case
    assume(_not_also_utf8(data, encoding))
    rejected: list[DialLogError] = []
    got = parse_dial_log(data, name="log.csv", assume_offset=CST, rejected=rejected)
    assert rejected == []
    assert got == want
    assert [a.started_at.utcoffset() for a in got] == [a.started_at.utcoffset() for a in want]


_ANY_HEADER = ",".join(a[0] for a in _DIAL_ALIASES.values()).encode() + b"\n"


@SOME
@given(
    st.binary(max_size=300)
    | st.binary(max_size=300).map(lambda b: _ANY_HEADER + b)
    | st.lists(st.lists(st.text(max_size=12), max_size=9), max_size=6).map(
        lambda rows: (
            _ANY_HEADER + "\n".join(",".join(r) for r in rows).encode("utf-8", errors="replace")
        )
    ),
    st.booleans(),
)
@example(_ANY_HEADER + b'a,"b' + b"x" * 200_000 + b"\n", True)  # unclosed quote: a huge field
@example(_ANY_HEADER + b"a,b,13800138000,9999-12-31 23:59:59-23:59,1,1\n", True)
@example(_ANY_HEADER + b"a,b,13800138000,0001-01-01 00:00:00+08:00,1,1\n", False)
def test_dial_log_any_bytes_raise_only_dial_log_error(data: bytes, keep_going: bool) -> None:
    rejected: list[DialLogError] | None = [] if keep_going else None
    try:
        attempts = parse_dial_log(data, name="upload.csv", rejected=rejected)
    except DialLogError as exc:
        _documented(exc)
        return
    for attempt in attempts:
        attempt.started_at.astimezone(UTC)  # the store keeps UTC
        assert attempt.duration_s >= 0 and attempt.duration_s != float("inf")
    for error in rejected or []:
        _documented(error)
        assert isinstance(error.context["line"], int) and error.context["line"] >= 2


@pytest.fixture(scope="module")
def dial_store() -> Iterator[sessionmaker[Session]]:
    key = base64.b64encode(bytes(range(32))).decode()
    with using_key_ring(ring_of([key], key)):
        engine: Engine = make_engine(f"sqlite:///{_TMP / 'dial.sqlite3'}")
        migrate(engine)
        yield make_session_factory(engine)
        engine.dispose()


@FEW
@given(_dial_logs())
def test_duplicate_dial_rows_collapse_on_import(
    dial_store: sessionmaker[Session], case: tuple[bytes, list[DialAttempt], str]
) -> None:
    data, want, encoding = case
    assume(_not_also_utf8(data, encoding))
    attempts = parse_dial_log(data, name="log.csv", assume_offset=CST)
    keys = {(a.dialed_number, a.started_at.astimezone(UTC), a.agent_id) for a in attempts}
    session = dial_store()
    try:
        assert save_dial_attempts(session, attempts=attempts) == len(keys)
        assert save_dial_attempts(session, attempts=attempts) == 0  # the same log again
    finally:
        session.rollback()
        session.close()


# =============================================================================== roster

_ROSTER_ALIASES = {
    "agent_id": ("agent_id", "Agent", "工号", "坐席工号", "坐席ID", "员工编号"),
    "name": ("name", "Agent_Name", "姓名", "坐席姓名", "员工姓名"),
    "team_id": ("team", "Team_ID", "团队", "组别", "小组", "班组"),
    "agency_id": ("agency", "agency_id", "机构", "外包机构", "外包公司"),
}


@st.composite
def _rosters(draw: st.DrawFn) -> tuple[bytes, list[RosterEntry], str]:
    """A roster export and the entries it must give (left-out columns read as None)."""
    encoding = draw(st.sampled_from(_ENCODINGS))
    chars = _GBK_CHARS if encoding == "gbk" else _PRINTABLE
    agents = draw(st.lists(_cell(chars, 12), min_size=1, max_size=8, unique=True))
    entries = [
        RosterEntry(
            agent_id=agent,
            name=draw(st.none() | _cell(chars, 10)),
            team_id=draw(_cell(chars, 10)),
            agency_id=draw(st.none() | _cell(chars, 10)),
        )
        for agent in agents
    ]
    rows = [[e.agent_id, e.name or "", e.team_id or "", e.agency_id or ""] for e in entries]
    data, names = draw(_csv_file(_ROSTER_ALIASES, rows, encoding, ("name", "agency_id")))
    entries = [
        RosterEntry(
            agent_id=e.agent_id,
            name=e.name if "name" in names else None,
            team_id=e.team_id,
            agency_id=e.agency_id if "agency_id" in names else None,
        )
        for e in entries
    ]
    return data, entries, encoding


@SOME
@given(_rosters())
def test_generated_rosters_round_trip(case: tuple[bytes, list[RosterEntry], str]) -> None:
    data, entries, encoding = case
    assume(_not_also_utf8(data, encoding))
    got, rejected = parse_roster(data, source="roster.csv")
    assert rejected == []
    assert got == entries


@SOME
@given(_rosters(), st.data())
def test_roster_repeated_agent_rejected_with_its_line(
    case: tuple[bytes, list[RosterEntry], str], data: st.DataObject
) -> None:
    raw, entries, encoding = case
    assume(_not_also_utf8(raw, encoding))
    text = raw.decode("utf-16" if encoding == "utf-16" else encoding.replace("gbk", "gb18030"))
    lines = text.splitlines(keepends=True)
    # Repeat one data line (not the header, not a blank one) at the end of the file.
    content = [i for i, line in enumerate(lines) if line.strip(",;\t\r\n")]
    assume(len(content) >= 2)
    repeated = data.draw(st.sampled_from(content[1:]))
    ending = "" if lines[-1].endswith(("\n", "\r")) else "\n"
    doubled = "".join(lines) + ending + lines[repeated]
    got, rejected = parse_roster(
        doubled.encode("utf-16" if encoding == "utf-16" else encoding), source="roster.csv"
    )
    assert len(got) == len(entries)
    assert [r.line for r in rejected] == [len(lines) + 1]
    assert _has_chinese(rejected[0].reason) and " / " in rejected[0].reason


@SOME
@given(
    st.binary(max_size=300)
    | st.binary(max_size=300).map(lambda b: "工号,姓名,团队,机构\n".encode() + b)
    | st.lists(st.lists(st.text(max_size=70), max_size=6), max_size=6)
    .map(lambda rows: "agent_id,name,team,agency\n" + "\n".join(",".join(r) for r in rows))
    .map(lambda t: t.encode("utf-8", errors="replace"))
)
@example(b"agent_id,team\n" + b'a,"b' + b"x" * 200_000 + b"\n")  # unclosed quote
def test_roster_any_bytes_only_roster_error_or_rejected_rows(data: bytes) -> None:
    try:
        entries, rejected = parse_roster(data, source="upload.csv")
    except RosterError as exc:
        _documented(exc)
        return
    for row in rejected:
        assert isinstance(row.line, int) and row.line >= 2
        assert _has_chinese(row.reason) and " / " in row.reason
    assert [r.line for r in rejected] == sorted(r.line for r in rejected)
    assert len({e.agent_id for e in entries}) == len(entries)
    for entry in entries:
        assert entry.agent_id and entry.team_id
        assert len(entry.agent_id) <= 64 and len(entry.team_id) <= 64


# ========================================================================= PII finder

_SPOKEN = {
    "0": "零〇洞",
    "1": "幺一壹",
    "2": "二两贰",
    "3": "三叁",
    "4": "四肆",
    "5": "五伍",
    "6": "六陆",
    "7": "七柒",
    "8": "八捌",
    "9": "九玖",
}
# Filler: Chinese and punctuation that holds no digit, no amount word and no ID check X.
_NOT_FILLER = set(DIGIT_VALUES) | set("Xx×元块圆园万亿千百角毛分%％美人￥¥$")
_FILLER = st.text(
    st.sampled_from(
        [
            ch
            for ch in "您好请问是的我们这边是银行信用卡中心核实一下您的尾号账户还款逾期了吧嗯对"
            "好的谢谢再见，。？！ 、："
            if ch not in _NOT_FILLER
        ]
    ),
    max_size=12,
)


@st.composite
def _written(draw: st.DrawFn, digits: str) -> tuple[str, list[int]]:
    """``digits`` as ASR or a typist writes them: ASCII, full width or spoken numerals, in
    groups split by spaces, dashes or commas. Returns the text and its digits' offsets."""
    style = draw(st.sampled_from(["ascii", "fullwidth", "spoken", "mixed"]))
    chars = []
    for d in digits:
        kind = style if style != "mixed" else draw(st.sampled_from(["ascii", "spoken"]))
        if kind == "ascii":
            chars.append(d)
        elif kind == "fullwidth":
            chars.append(chr(0xFF10 + int(d)))
        else:
            chars.append(draw(st.sampled_from(_SPOKEN[d])))
    text, positions = "", []
    i = 0
    while i < len(chars):
        size = draw(st.integers(1, 6))
        if i:
            text += draw(st.sampled_from([" ", "-", "  ", "，", " - ", "\u3000"]))
        for ch in chars[i : i + size]:
            positions.append(len(text))
            text += ch
        i += size
    return text, positions


@st.composite
def _cards(draw: st.DrawFn) -> str:
    length = draw(st.integers(13, 19))
    body = draw(st.sampled_from("345689")) + "".join(
        draw(st.sampled_from("0123456789")) for _ in range(length - 2)
    )
    check = next(c for c in "0123456789" if luhn_valid(body + c))
    card = body + check
    assume(not (length == 13 and card.startswith(("861",))))  # +86 and a mobile number
    return card


@st.composite
def _embedded(draw: st.DrawFn, numbers: st.SearchStrategy[str]) -> tuple[str, str, list[int]]:
    digits = draw(numbers)
    written, positions = draw(_written(digits))
    before, after = draw(_FILLER), draw(_FILLER)
    return before + written + after, digits, [len(before) + p for p in positions]


def _survivors(text: str, masked: str, positions: list[int]) -> list[int]:
    assert len(masked) == len(text)
    for i, (a, b) in enumerate(zip(text, masked, strict=True)):
        assert a == b or (b == MASK and i in positions), (text, masked)
    return [i for i, p in enumerate(positions) if masked[p] != MASK]


@SOME
@given(_embedded(_cards()))
@example(("卡号是六二二二 零二一二 三四五六 七八九四，对吧", "6222021234567894", []))
def test_card_numbers_found_and_masked_to_last_four(case: tuple[str, str, list[int]]) -> None:
    text, digits, positions = case
    if not positions:  # the explicit example: find the digits' offsets
        positions = [i for i, ch in enumerate(text) if ch in DIGIT_VALUES]
    assert luhn_valid(digits)
    found = [m for m in find_numbers(text) if m.digits == digits]
    assert len(found) == 1 and list(found[0].digit_positions) == positions
    assert found[0].kind in (NumberKind.CARD, NumberKind.ID_CARD)
    masked = mask_text(text)
    n = len(digits)
    assert _survivors(text, masked, positions) == list(range(n - 4, n))
    assert mask_text(masked) == masked


@SOME
@given(_embedded(_MOBILES))
def test_mobile_numbers_found_and_masked(case: tuple[str, str, list[int]]) -> None:
    text, digits, positions = case
    found = [m for m in find_numbers(text) if m.digits == digits]
    assert len(found) == 1 and found[0].kind is NumberKind.MOBILE
    assert list(found[0].digit_positions) == positions
    masked = mask_text(text)
    # The documented exception to "last four only": a mobile keeps its carrier prefix too,
    # 138****8000; the four middle digits (the subscriber's) never survive.
    assert _survivors(text, masked, positions) == [0, 1, 2, 7, 8, 9, 10]
    assert mask_text(masked) == masked


_AMOUNTS = st.integers(0, 9_999_999_999).flatmap(
    lambda n: st.sampled_from([str(n), f"{n:,}", f"{n}.{n % 100:02d}", f"{n:,}.50"])
)


@SOME
@given(_FILLER, _AMOUNTS, st.sampled_from(["元", "块", " 元", "块钱", "元整", "万"]), _FILLER)
@example("账号", "1000000000.00", "元", "")  # found by CI: the cents split the run from 元
def test_amounts_are_left_alone(before: str, amount: str, unit: str, after: str) -> None:
    text = before + amount + unit + after
    assert find_numbers(text) == []
    assert mask_text(text) == text


@st.composite
def _short_runs(draw: st.DrawFn) -> str:
    """Text whose digit runs (separators included) hold at most nine digits: nothing in
    it is long enough to be a personal number."""
    pieces = []
    for _ in range(draw(st.integers(0, 6))):
        pieces.append(
            draw(st.text(st.sampled_from("的了吗啊呢；：!?abc\n"), min_size=1, max_size=4))
        )
        count = draw(st.integers(0, 9))
        digits = "".join(draw(st.sampled_from("0123456789")) for _ in range(count))
        if digits:
            pieces.append(draw(_written(digits))[0])
    pieces.append(draw(st.text(st.sampled_from("的了吗啊呢；："), min_size=1, max_size=3)))
    return "".join(pieces)


@SOME
@given(_short_runs() | _FILLER)
def test_text_without_long_digit_runs_is_unchanged(text: str) -> None:
    assert find_numbers(text) == []
    assert mask_text(text) == text


@SOME
@given(
    st.text(max_size=80)
    | st.text(st.sampled_from("0123456789幺两洞零一三八 -，元块账号X"), max_size=60)
)
def test_masking_keeps_length_and_is_idempotent(text: str) -> None:
    masked = mask_text(text)
    assert len(masked) == len(text)
    for before, after in zip(text, masked, strict=True):
        assert before == after or (after == MASK and (before in DIGIT_VALUES or before in "Xx×"))
    assert mask_text(masked) == masked
