"""Dial log and do-not-call imports, in the encodings and layouts call centres export."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from audio_factory import FIXTURES

from qa_service.domain import DialAttempt
from qa_service.errors import DialLogError, DoNotCallListError, FileNotFound
from qa_service.ingest.dial_log import load_dial_log, load_do_not_call, normalize_phone_number

CST = timezone(timedelta(hours=8))
UTF8_CSV = FIXTURES / "cdr_utf8.csv"
GBK_CSV = FIXTURES / "cdr_gbk.csv"


def _write(tmp_path: Path, text: str, encoding: str = "utf-8", name: str = "log.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def _replace_cell(line: int, column: str, value: str) -> str:
    """The UTF-8 fixture with one cell changed (``line`` counts the header as 1)."""
    rows = [r.split(",") for r in UTF8_CSV.read_text(encoding="utf-8").splitlines()]
    rows[line - 1][rows[0].index(column)] = value
    return "\n".join(",".join(r) for r in rows) + "\n"


# --- dial log ------------------------------------------------------------------------------


def test_utf8_dial_log_as_in_the_corpus() -> None:
    attempts = load_dial_log(UTF8_CSV)
    assert len(attempts) == 5
    assert attempts[0] == DialAttempt(
        call_id="dev-051",
        agent_id="A765",
        customer_id="CUST90683",
        dialed_number="15573927884",
        started_at=datetime(2026, 11, 2, 9, 51, 31, tzinfo=CST),
        connected=True,
        duration_s=39.56,
    )
    assert attempts[1].call_id is None  # an attempt without a recording
    assert (attempts[2].connected, attempts[2].duration_s) == (False, 0.0)
    assert [a.call_id for a in attempts] == ["dev-051", None, None, "dev-007", None]


def test_utf8_with_bom_reads_the_same(tmp_path: Path) -> None:
    path = tmp_path / "bom.csv"
    path.write_bytes(b"\xef\xbb\xbf" + UTF8_CSV.read_bytes())
    assert load_dial_log(path) == load_dial_log(UTF8_CSV)


def test_gbk_export_with_chinese_headers() -> None:
    attempts = load_dial_log(GBK_CSV)
    assert len(attempts) == 3  # the trailing ",,,,,,," row Excel leaves is not an attempt
    first, second, third = attempts
    assert first.call_id == "dev-051" and second.call_id is None
    assert (first.agent_id, first.customer_id) == ("A765", "CUST90683")
    assert first.dialed_number == "15573927884"  # "155 7392 7884"
    assert second.dialed_number == "18262243933"  # "+86 182-6224-3933"
    assert first.started_at == datetime(2026, 11, 2, 9, 51, tzinfo=CST)  # "2026/11/2 9:51"
    assert third.started_at == datetime(2026, 11, 2, 11, 57, 39, tzinfo=CST)
    assert [a.connected for a in attempts] == [True, True, False]  # 是 / 接通 / 否
    assert [a.duration_s for a in attempts] == [39.56, 184.0, 0.0]


def test_excel_unicode_text_export_is_tab_separated_utf16(tmp_path: Path) -> None:
    text = GBK_CSV.read_bytes().decode("gbk").replace(",", "\t")
    path = tmp_path / "unicode.txt"
    path.write_bytes(text.encode("utf-16"))
    assert load_dial_log(path) == load_dial_log(GBK_CSV)


def test_other_header_aliases_and_value_spellings(tmp_path: Path) -> None:
    text = (
        "通话ID,坐席,客户编号,拨打号码,开始时间,是否接通,通话时长（秒）\n"
        "c9,A1,C1,0086 138 0013 8000,2026年11月2日 21:05,true,0:03:04\n"
        "c10,A1,C1,13800138000,2026-11-02T22:10:00Z,未接通,0秒\n"
    )
    first, second = load_dial_log(_write(tmp_path, text, "gb18030"))
    assert first.call_id == "c9" and first.dialed_number == "13800138000"
    assert first.started_at == datetime(2026, 11, 2, 21, 5, tzinfo=CST)
    assert (first.connected, first.duration_s) == (True, 184.0)
    assert second.started_at == datetime(2026, 11, 2, 22, 10, tzinfo=UTC)
    assert (second.connected, second.duration_s) == (False, 0.0)


def test_naive_times_take_the_configured_offset(tmp_path: Path) -> None:
    text = _replace_cell(2, "started_at", "2026-11-02 09:51:31")
    (attempt, *_) = load_dial_log(_write(tmp_path, text), assume_offset=UTC)
    assert attempt.started_at == datetime(2026, 11, 2, 9, 51, 31, tzinfo=UTC)


def test_dial_log_without_call_id_column_is_usable(tmp_path: Path) -> None:
    rows = UTF8_CSV.read_text(encoding="utf-8").splitlines()
    text = "\n".join(line.split(",", 1)[1] for line in rows)
    attempts = load_dial_log(_write(tmp_path, text))
    assert len(attempts) == 5 and all(a.call_id is None for a in attempts)


@pytest.mark.parametrize(
    ("line", "column", "value", "problem"),
    [
        (3, "connected", "maybe", "is not one of"),
        (2, "started_at", "next Tuesday", "unrecognised date/time"),
        (4, "started_at", "2026-11-02", "no time of day"),
        (5, "duration_s", "-4", "not a valid duration"),
        (6, "duration_s", "abc", "not a valid duration"),
        (2, "agent_id", " ", "the value is empty"),
        (3, "dialed_number", "1.84515E+10", "scientific notation"),
        (4, "dialed_number", "n/a", "is not a phone number"),
    ],
)
def test_bad_row_names_file_line_and_column(
    tmp_path: Path, line: int, column: str, value: str, problem: str
) -> None:
    path = _write(tmp_path, _replace_cell(line, column, value))
    with pytest.raises(DialLogError) as info:
        load_dial_log(path)
    message = info.value.message
    assert f"{path}: line {line}, column '{column}': " in message
    assert f"第 {line} 行“{column}”列" in message
    assert problem in message


def test_bad_row_in_gbk_file_names_the_chinese_column(tmp_path: Path) -> None:
    text = GBK_CSV.read_bytes().decode("gbk").replace(",否,", ",不知道,")
    with pytest.raises(DialLogError, match="line 4, column '是否接通'"):
        load_dial_log(_write(tmp_path, text, "gbk"))


def test_missing_columns_are_listed_with_what_was_found(tmp_path: Path) -> None:
    text = "call_id,agent,phone,time\nc1,A1,13800138000,2026-11-02 10:00\n"
    with pytest.raises(DialLogError) as info:
        load_dial_log(_write(tmp_path, text))
    message = info.value.message
    assert "customer_id, started_at, connected, duration_s" in message
    assert "found call_id, agent, phone, time" in message
    assert info.value.context["missing"] == "customer_id, started_at, connected, duration_s"


def test_row_with_more_values_than_columns_is_rejected(tmp_path: Path) -> None:
    text = _replace_cell(3, "agent_id", "A765,extra")
    with pytest.raises(DialLogError, match="line 3 has 8 values but the header has 7"):
        load_dial_log(_write(tmp_path, text))


def test_two_columns_with_the_same_meaning_are_ambiguous(tmp_path: Path) -> None:
    text = UTF8_CSV.read_text(encoding="utf-8").replace("agent_id,", "agent_id,坐席工号,", 1)
    with pytest.raises(DialLogError, match="both mean agent_id"):
        load_dial_log(_write(tmp_path, text))


def test_header_only_is_an_empty_log_but_an_empty_file_is_an_error(tmp_path: Path) -> None:
    header = UTF8_CSV.read_text(encoding="utf-8").splitlines()[0]
    assert load_dial_log(_write(tmp_path, header + "\n")) == []
    with pytest.raises(DialLogError, match="empty"):
        load_dial_log(_write(tmp_path, "\n", name="blank.csv"))
    with pytest.raises(FileNotFound):
        load_dial_log(tmp_path / "none.csv")


# --- phone numbers -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("13800138000", "13800138000"),
        (" 138 0013 8000 ", "13800138000"),
        ("138-0013-8000", "13800138000"),
        ("+86 138 0013 8000", "13800138000"),
        ("+8613800138000", "13800138000"),
        ("0086-138-0013-8000", "13800138000"),
        ("8613800138000", "13800138000"),
        ("１３８００１３８０００", "13800138000"),  # full-width digits from a Chinese IME
        ("(0755) 8888-8888", "075588888888"),
        ("+86 755 8888 8888", "075588888888"),  # the trunk 0 comes back
        ("+86 10 1234 5678", "01012345678"),
        ("95555", "95555"),
    ],
)
def test_phone_numbers_are_normalised(raw: str, expected: str) -> None:
    assert normalize_phone_number(raw) == expected


@pytest.mark.parametrize("raw", ["", "abc", "1.38E+10", "138001380001380013800", "12"])
def test_non_numbers_are_rejected(raw: str) -> None:
    with pytest.raises(ValueError):
        normalize_phone_number(raw)


# --- do-not-call list ----------------------------------------------------------------------


def test_do_not_call_csv_with_chinese_headers_in_gbk(tmp_path: Path) -> None:
    text = "电话号码,原因,登记人\r\n138 0013 8000,客户投诉,王\r\n+86 139-0000-1111,律师函,李\r\n"
    entries = load_do_not_call(_write(tmp_path, text, "gbk"))
    assert [(e.dialed_number, e.reason) for e in entries] == [
        ("13800138000", "客户投诉"),
        ("13900001111", "律师函"),
    ]
    assert all(e.source == "import" for e in entries)


def test_do_not_call_csv_with_english_headers_and_no_reason(tmp_path: Path) -> None:
    text = "dialed_number\n13800138000\n\n0086 13900001111\n13800138000\n"
    entries = load_do_not_call(_write(tmp_path, text))
    assert [(e.dialed_number, e.reason) for e in entries] == [
        ("13800138000", ""),
        ("13900001111", ""),
    ]


def test_do_not_call_plain_text_one_number_per_line(tmp_path: Path) -> None:
    text = "# 投诉客户\n13800138000\n\n+86 139 0000 1111\n138-0013-8000\n"
    entries = load_do_not_call(_write(tmp_path, text, "utf-8-sig", name="dnc.txt"))
    assert [e.dialed_number for e in entries] == ["13800138000", "13900001111"]


def test_do_not_call_bad_line_is_named(tmp_path: Path) -> None:
    path = _write(tmp_path, "13800138000\n139 0000 1111 wife\n", name="dnc.txt")
    with pytest.raises(DoNotCallListError, match="line 2:") as info:
        load_do_not_call(path)
    assert str(path) in info.value.message and info.value.code == "invalid_do_not_call_list"


def test_do_not_call_csv_without_number_column_is_explained(tmp_path: Path) -> None:
    with pytest.raises(DoNotCallListError, match="needs a dialed_number column"):
        load_do_not_call(_write(tmp_path, "客户,备注\n张三,投诉\n"))


def test_do_not_call_empty_list_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(DoNotCallListError, match="empty"):
        load_do_not_call(_write(tmp_path, ""))
    with pytest.raises(DoNotCallListError, match="holds no numbers"):
        load_do_not_call(_write(tmp_path, "# nothing yet\n", name="dnc.txt"))
