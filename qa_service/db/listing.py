"""Listing calls: filters, keyset pagination and the review state of each call.

The API's ``GET /calls`` and the web UI's call list read through here. Ordering is by call
start time, newest first (calls without a start time after the dated ones), then by row
id; a page ends with a cursor naming its last row, so the next page starts right after it
even while new calls arrive (offset paging would skip or repeat rows).
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, and_, exists, or_, select, true
from sqlalchemy.orm import Session

from qa_service.db.rows import storage_errors
from qa_service.db.search import transcript_contains
from qa_service.db.tables import CallReviewRow, CallRow, FindingRow
from qa_service.errors import InputError


@dataclass(frozen=True)
class CallFilters:
    """What ``GET /calls`` may filter on; ``None`` means no filter. Times are aware."""

    agent_id: str | None = None
    team_id: str | None = None
    agency_id: str | None = None
    started_from: datetime | None = None  # inclusive
    started_before: datetime | None = None  # exclusive
    rule: str | None = None
    score_min: float | None = None
    score_max: float | None = None
    status: str | None = None
    review: str | None = None  # a review state (qa_service.review.states.ReviewState)
    text: str | None = None
    dialed_number_hash: str | None = None  # the keyed hash of a number (numbers are sealed)


@dataclass(frozen=True)
class CallSummary:
    """One row of the call list."""

    call_id: str
    recording: str
    status: str
    started_at: datetime | None
    agent_id: str | None
    team_id: str | None
    agency_id: str | None
    duration_s: float | None
    score: float | None
    rules: tuple[str, ...]
    review: str | None  # None: not analysed (yet), so not in the review loop


@dataclass(frozen=True)
class CallPage:
    items: tuple[CallSummary, ...]
    next_cursor: str | None


def _bad_cursor() -> InputError:
    return InputError("分页游标无效 / invalid pagination cursor", field="cursor")


def encode_cursor(started_at: datetime | None, row_id: int) -> str:
    raw = json.dumps([started_at.isoformat() if started_at else None, row_id])
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime | None, int]:
    """The (start time, row id) a cursor names; raises InputError if it is not one of ours."""
    try:
        raw = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        started, row_id = raw
        if not isinstance(row_id, int) or isinstance(row_id, bool):
            raise ValueError(row_id)
        return (datetime.fromisoformat(started) if started is not None else None), row_id
    except (ValueError, TypeError, binascii.Error, json.JSONDecodeError):
        raise _bad_cursor() from None


def _after(cursor: str) -> ColumnElement[bool]:
    started, row_id = decode_cursor(cursor)
    if started is None:
        return and_(CallRow.started_at.is_(None), CallRow.id < row_id)
    return or_(
        CallRow.started_at < started,
        and_(CallRow.started_at == started, CallRow.id < row_id),
        CallRow.started_at.is_(None),
    )


def _has_finding(*conditions: ColumnElement[bool]) -> ColumnElement[bool]:
    return exists().where(FindingRow.call_id == CallRow.id, *conditions)


def _review_clause(state: str) -> ColumnElement[bool]:
    return exists().where(CallReviewRow.call_id == CallRow.id, CallReviewRow.state == state)


def _conditions(filters: CallFilters, dialect: str) -> list[ColumnElement[bool]]:
    f = filters
    where: list[ColumnElement[bool]] = []
    for column, value in (
        (CallRow.agent_id, f.agent_id),
        (CallRow.team_id, f.team_id),
        (CallRow.agency_id, f.agency_id),
        (CallRow.status, f.status),
        (CallRow.dialed_number_hash, f.dialed_number_hash),
    ):
        if value is not None:
            where.append(column == value)
    if f.started_from is not None:
        where.append(CallRow.started_at >= f.started_from)
    if f.started_before is not None:
        where.append(CallRow.started_at < f.started_before)
    if f.score_min is not None:
        where.append(CallRow.score >= f.score_min)
    if f.score_max is not None:
        where.append(CallRow.score <= f.score_max)
    if f.rule is not None:
        where.append(_has_finding(FindingRow.rule == f.rule))
    if f.review is not None:
        where.append(_review_clause(f.review))
    if f.text is not None and f.text.strip():
        where.append(transcript_contains(dialect=dialect, query=f.text))
    return where


def _review_states(
    session: Session, ids: list[int]
) -> dict[int, tuple[tuple[str, ...], str | None]]:
    """Per call: its distinct rules (sorted) and its review state (None: not classified)."""
    if not ids:
        return {}
    rules: dict[int, set[str]] = {i: set() for i in ids}
    for call_pk, rule in session.execute(
        select(FindingRow.call_id, FindingRow.rule).where(FindingRow.call_id.in_(ids)).distinct()
    ):
        rules[call_pk].add(rule)
    states = dict(
        session.execute(
            select(CallReviewRow.call_id, CallReviewRow.state).where(CallReviewRow.call_id.in_(ids))
        ).all()
    )
    return {k: (tuple(sorted(v)), states.get(k)) for k, v in rules.items()}


def list_call_page(
    session: Session,
    *,
    filters: CallFilters,
    scope: ColumnElement[bool] | None,
    limit: int,
    cursor: str | None = None,
) -> CallPage:
    """One page of calls matching ``filters`` within ``scope`` (a where-clause on calls).

    ``scope`` None means every call; pass the caller's visibility clause from the accounts
    service, so that nothing outside it is ever counted or returned.
    """
    dialect = session.get_bind().dialect.name
    where = _conditions(filters, dialect)
    where.append(scope if scope is not None else true())
    if cursor is not None:
        where.append(_after(cursor))
    with storage_errors("list_call_page"):
        rows = session.scalars(
            select(CallRow)
            .where(*where)
            .order_by(CallRow.started_at.is_(None), CallRow.started_at.desc(), CallRow.id.desc())
            .limit(limit + 1)
        ).all()
        page = list(rows[:limit])
        review = _review_states(session, [row.id for row in page])
    items = []
    for row in page:
        rules, state = review.get(row.id, ((), None))
        items.append(
            CallSummary(
                call_id=row.call_id,
                recording=row.recording,
                status=row.status,
                started_at=row.started_at,
                agent_id=row.agent_id,
                team_id=row.team_id,
                agency_id=row.agency_id,
                duration_s=row.duration_s,
                score=row.score,
                rules=rules,
                review=state,
            )
        )
    last = page[-1] if page else None
    next_cursor = (
        encode_cursor(last.started_at, last.id) if last is not None and len(rows) > limit else None
    )
    return CallPage(items=tuple(items), next_cursor=next_cursor)
