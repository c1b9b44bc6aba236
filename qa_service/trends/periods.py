"""Trend periods: ISO weeks (Monday to Sunday) or calendar months, in the centre's local time.

A period is named by a label (``2026-W45``, ``2026-11``) so tables sort and read well; each
label knows its first local day and the label before it (the baseline of its change).
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, tzinfo
from enum import StrEnum

from qa_service.errors import InputError


class Granularity(StrEnum):
    WEEK = "week"
    MONTH = "month"


GRANULARITY_ZH = {Granularity.WEEK: "周", Granularity.MONTH: "月"}


def label_of(day: date, granularity: Granularity) -> str:
    """The label of the period holding ``day``."""
    if granularity is Granularity.MONTH:
        return f"{day.year:04d}-{day.month:02d}"
    year, week, _ = day.isocalendar()
    return f"{year:04d}-W{week:02d}"


def period_of(moment: datetime, tz: tzinfo, granularity: Granularity) -> str:
    """The label of the period a moment falls in, local time."""
    return label_of(moment.astimezone(tz).date(), granularity)


def first_day(label: str, granularity: Granularity) -> date:
    """The first local day of the period ``label``."""
    try:
        if granularity is Granularity.MONTH:
            year, month = label.split("-")
            return date(int(year), int(month), 1)
        year, week = label.split("-W")
        return date.fromisocalendar(int(year), int(week), 1)
    except ValueError as exc:
        raise InputError(f"无效的期间 {label!r} / invalid period {label!r}") from exc


def next_label(label: str, granularity: Granularity) -> str:
    start = first_day(label, granularity)
    if granularity is Granularity.MONTH:
        nxt = date(start.year + (start.month == 12), start.month % 12 + 1, 1)
    else:
        nxt = start + timedelta(days=7)
    return label_of(nxt, granularity)


def previous_label(label: str, granularity: Granularity) -> str:
    """The period just before ``label`` (the baseline of its change)."""
    return label_of(first_day(label, granularity) - timedelta(days=1), granularity)


def labels_between(start: date, end: date, granularity: Granularity) -> list[str]:
    """Every period touching ``start``..``end`` (inclusive), in order."""
    if end < start:
        raise InputError(
            f"结束日期 {end} 早于开始日期 {start} / end date {end} is before start date {start}"
        )
    labels = [label_of(start, granularity)]
    last = label_of(end, granularity)
    while labels[-1] != last:
        labels.append(next_label(labels[-1], granularity))
    return labels


def bounds(labels: list[str], granularity: Granularity, tz: tzinfo) -> tuple[datetime, datetime]:
    """``[start, end)`` covering these periods *and the one before the first* (its baseline)."""
    start = first_day(previous_label(labels[0], granularity), granularity)
    end = first_day(next_label(labels[-1], granularity), granularity)
    return datetime.combine(start, time.min, tzinfo=tz), datetime.combine(end, time.min, tzinfo=tz)
