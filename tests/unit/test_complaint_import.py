"""The bank's complaint list as banks export it: GBK or UTF-8 with BOM, Chinese headers,
Chinese labels, dates with or without a time; bad rows reported, good ones kept."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from qa_service.complaints.importer import parse_complaint_list
from qa_service.complaints.vocabulary import (
    ComplaintType,
    Level,
    Outcome,
    Source,
    label,
    parse_choice,
)
from qa_service.errors import ComplaintListError

CST = timezone(timedelta(hours=8))
LIST = (
    "投诉编号,受理渠道,投诉等级,投诉类型,客户号,联系电话,受理时间,投诉内容\n"
    "TS-001,银行转办,严重,辱骂或态度恶劣,C001,,2026/11/02 09:30,客户称坐席辱骂\n"
    "TS-002,热线,一般投诉,误导,,+86 138-0013-8000,2026-11-03,称被告知可减免\n"
    "TS-003,网点,特别大,其他,C003,,2026-11-04 10:00,等级写错\n"
    "TS-004,网点,重大,其他,,,2026-11-04 10:00,没有客户\n"
)


@pytest.mark.parametrize("encoding", ["gbk", "utf-8-sig"])
def test_list_is_read_in_both_encodings(encoding: str) -> None:
    parsed = parse_complaint_list(LIST.encode(encoding), name="投诉清单.csv", tz=CST)
    first, second = parsed.complaints
    assert (first.reference, first.source, first.level, first.type) == (
        "TS-001",
        Source.BANK_FORWARDED,
        Level.SERIOUS,
        ComplaintType.ABUSE,
    )
    assert first.received_at == datetime(2026, 11, 2, 9, 30, tzinfo=CST)
    assert first.customer_id == "C001" and first.phone is None
    # A bare date is the end of that day; the number is normalised as the dial log's are.
    assert second.received_at == datetime(2026, 11, 3, 23, 59, 59, tzinfo=CST)
    assert second.phone == "13800138000" and second.level is Level.GENERAL
    assert [r.line for r in parsed.rejected] == [4, 5]
    assert "重大" in parsed.rejected[0].reason  # the accepted labels are named


def test_a_list_without_the_customer_columns_is_refused() -> None:
    data = "受理渠道,投诉等级,投诉类型,受理时间\n热线,一般,其他,2026-11-02 09:30\n"
    with pytest.raises(ComplaintListError, match="customer_id / phone"):
        parse_complaint_list(data.encode(), name="x.csv", tz=CST)


def test_labels_are_per_vocabulary() -> None:
    # Source.OTHER and ComplaintType.OTHER share the code "other", not the label.
    assert label(Source, "other") == "其他渠道" and label(ComplaintType, "other") == "其他"
    assert parse_choice(Outcome, "部分有责") is Outcome.PARTLY_AT_FAULT
    assert parse_choice(Outcome, "not_at_fault") is Outcome.NOT_AT_FAULT
