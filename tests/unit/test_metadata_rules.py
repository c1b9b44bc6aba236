"""M01 forbidden hours, M02 call frequency, M03 do-not-call."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from qa_service.domain import CallMetadata, DialAttempt, DoNotCallEntry
from qa_service.rules.metadata import (
    MetadataParams,
    check_call_frequency,
    check_do_not_call,
    check_forbidden_hours,
    scan_metadata,
)

CST = timezone(timedelta(hours=8))
PARAMS = MetadataParams()


def _meta(started: datetime, **kw) -> CallMetadata:
    return CallMetadata(
        call_id=kw.pop("call_id", "c1"),
        recording="c1.wav",
        customer_id=kw.pop("customer_id", "CUST1"),
        dialed_number=kw.pop("dialed_number", "13800000000"),
        started_at=started,
        **kw,
    )


def _attempt(started: datetime, connected: bool, call_id: str | None = None, **kw) -> DialAttempt:
    return DialAttempt(
        agent_id="A1",
        customer_id=kw.get("customer_id", "CUST1"),
        dialed_number=kw.get("dialed_number", "13800000000"),
        started_at=started,
        connected=connected,
        duration_s=30.0 if connected else 0.0,
        call_id=call_id,
    )


@pytest.mark.parametrize(
    ("hour", "minute", "flagged"),
    [(21, 59, False), (22, 0, True), (23, 30, True), (0, 5, True), (7, 59, True), (8, 0, False)],
)
def test_forbidden_hours_boundaries(hour: int, minute: int, flagged: bool) -> None:
    meta = _meta(datetime(2026, 11, 2, hour, minute, tzinfo=CST))
    assert bool(check_forbidden_hours(meta, PARAMS)) is flagged


def test_forbidden_hours_use_local_time_not_utc() -> None:
    # 14:30 UTC is 22:30 in Beijing: forbidden there, although the UTC hour is harmless.
    meta = _meta(datetime(2026, 11, 2, 14, 30, tzinfo=UTC))
    [finding] = check_forbidden_hours(meta, PARAMS)
    assert finding.rule == "M01"
    assert finding.evidence["started_at_local"].startswith("2026-11-02T22:30")


def test_forbidden_hours_without_start_time_is_not_guessed() -> None:
    assert check_forbidden_hours(_meta(None), PARAMS) == []  # type: ignore[arg-type]


def test_fourth_attempt_after_customer_was_reached_is_m02() -> None:
    day = datetime(2026, 11, 2, 9, 0, tzinfo=CST)
    log = [_attempt(day + timedelta(hours=h), connected=(h == 0)) for h in range(3)]
    this = day + timedelta(hours=3)
    log.append(_attempt(this, connected=True, call_id="c1"))
    [finding] = check_call_frequency(_meta(this), log, PARAMS)
    assert finding.evidence == {
        "attempts_today": 4,
        "limit": 3,
        "reached_earlier": True,
        "local_day": "2026-11-02",
    }


def test_third_attempt_is_allowed_even_when_reached() -> None:
    day = datetime(2026, 11, 2, 9, 0, tzinfo=CST)
    log = [_attempt(day, True), _attempt(day + timedelta(hours=1), True)]
    this = day + timedelta(hours=2)
    log.append(_attempt(this, True, call_id="c1"))
    assert check_call_frequency(_meta(this), log, PARAMS) == []


def test_unreached_customer_gets_five_attempts_then_m02() -> None:
    day = datetime(2026, 11, 2, 9, 0, tzinfo=CST)
    unanswered = [_attempt(day + timedelta(minutes=10 * i), False) for i in range(4)]
    fifth = day + timedelta(hours=1)
    assert check_call_frequency(_meta(fifth), unanswered, PARAMS) == []  # not in log: counted
    sixth = day + timedelta(hours=2)
    log = [*unanswered, _attempt(fifth, False)]
    [finding] = check_call_frequency(_meta(sixth), log, PARAMS)
    assert finding.evidence["attempts_today"] == 6
    assert finding.evidence["limit"] == 5


def test_attempts_on_other_days_customers_or_later_do_not_count() -> None:
    day = datetime(2026, 11, 2, 12, 0, tzinfo=CST)
    log = [
        *[_attempt(day - timedelta(days=1, minutes=i), True) for i in range(5)],  # yesterday
        *[_attempt(day - timedelta(minutes=i + 1), True, customer_id="OTHER") for i in range(5)],
        *[_attempt(day + timedelta(minutes=i + 1), True) for i in range(5)],  # after this call
    ]
    assert check_call_frequency(_meta(day), log, PARAMS) == []


def test_local_day_boundary_is_midnight_in_call_centre_time() -> None:
    # 23:50 and 00:10 Beijing time are different days even though both are the same UTC day.
    late = datetime(2026, 11, 2, 23, 50, tzinfo=CST)
    log = [_attempt(late - timedelta(minutes=i), True) for i in range(4)]
    after_midnight = datetime(2026, 11, 3, 0, 10, tzinfo=CST)
    assert check_call_frequency(_meta(after_midnight), log, PARAMS) == []


def test_do_not_call_applies_only_after_listing() -> None:
    listed = datetime(2026, 11, 3, 10, 0, tzinfo=CST)
    entry = DoNotCallEntry(dialed_number="13800000000", source="C02", added_at=listed)
    before = _meta(listed - timedelta(hours=1))
    after = _meta(listed + timedelta(hours=1))
    assert check_do_not_call(before, [entry], PARAMS) == []
    [finding] = check_do_not_call(after, [entry], PARAMS)
    assert finding.rule == "M03"
    assert finding.evidence["listed_by"] == "C02"


def test_imported_entry_without_date_always_applies_and_other_numbers_do_not() -> None:
    entry = DoNotCallEntry(dialed_number="13900000000", source="import")
    meta = _meta(datetime(2026, 11, 2, 10, tzinfo=CST), dialed_number="13900000000")
    assert [f.rule for f in check_do_not_call(meta, [entry], PARAMS)] == ["M03"]
    other = _meta(datetime(2026, 11, 2, 10, tzinfo=CST))
    assert check_do_not_call(other, [entry], PARAMS) == []


def test_scan_metadata_combines_rules() -> None:
    night = datetime(2026, 11, 2, 23, 0, tzinfo=CST)
    entry = DoNotCallEntry(dialed_number="13800000000")
    rules = [f.rule for f in scan_metadata(_meta(night), [], [entry], PARAMS)]
    assert rules == ["M01", "M03"]
