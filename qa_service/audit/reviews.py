"""Audit reviews: the periodic review of the trail the bank's plan requires, on record.

A review names who reviewed which period and when, with a note; it verifies the chain at
that moment and keeps the head hash it saw (an anchor: whatever is rewritten later cannot
match it). Each review is also an audit event itself, so it is chained like the rest.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from qa_service.audit.chain import verify_chain
from qa_service.audit.events import Actor, AuditEvent, Outcome, record_event
from qa_service.db.rows import storage_errors
from qa_service.db.tables import AuditEventRow, AuditReviewRow, utcnow
from qa_service.errors import InputError

MAX_NOTE = 2000


@dataclass(frozen=True)
class AuditReview:
    """One recorded review of the audit trail."""

    review_id: int
    reviewed_at: datetime
    reviewer: Actor
    period_from: datetime
    period_to: datetime
    events: int
    first_seq: int | None
    last_seq: int | None
    head_hash: str
    chain_ok: bool
    note: str
    audit_seq: int


def parse_bound(value: str, *, option: str, tz: tzinfo, end: bool) -> datetime:
    """A period bound: ``YYYY-MM-DD`` (a local day; as an end, the whole day counts) or an
    ISO date-time (without an offset: local time)."""
    text = value.strip()
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            moment = datetime.combine(day, time(), tzinfo=tz)
            return moment + timedelta(days=1) if end else moment
        parsed = datetime.fromisoformat(text)
    except ValueError as exc:
        raise InputError(
            f"{option} 的时间 {value!r} 无效，应为 YYYY-MM-DD 或 ISO 时间 / {option}: invalid "
            f"date or time {value!r}",
            option=option,
        ) from exc
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=tz)


def check_period(start: datetime, end: datetime) -> None:
    if end <= start:
        raise InputError(
            "时间范围无效：结束须晚于开始 / the period must end after it starts",
            start=start.isoformat(),
            end=end.isoformat(),
        )


def record_review(
    session: Session,
    *,
    actor: Actor,
    period_from: datetime,
    period_to: datetime,
    note: str,
    now: datetime | None = None,
) -> AuditReview:
    """Record that ``actor`` reviewed the events of [period_from, period_to) (flushes)."""
    check_period(period_from, period_to)
    text = note.strip()
    if not text or len(text) > MAX_NOTE:
        raise InputError(
            f"审阅说明须为 1 到 {MAX_NOTE} 个字符 / the review note must be 1-{MAX_NOTE} characters"
        )
    now = now or utcnow()
    report = verify_chain(session)
    with storage_errors("audit review"):
        count, first, last = session.execute(
            select(func.count(), func.min(AuditEventRow.seq), func.max(AuditEventRow.seq)).where(
                AuditEventRow.occurred_at >= period_from, AuditEventRow.occurred_at < period_to
            )
        ).one()
    details = {
        "period_from": period_from,
        "period_to": period_to,
        "events": int(count),
        "first_seq": first,
        "last_seq": last,
        "head_hash": report.head_hash,
        "chain_ok": report.ok,
        "chain_problem": report.problem.as_dict() if report.problem else None,
        "note": text,
    }
    event = record_event(
        session,
        actor=actor,
        event=AuditEvent.AUDIT_REVIEW,
        result=Outcome.SUCCESS,
        target=f"audit:{period_from.isoformat()}/{period_to.isoformat()}",
        details=details,
        now=now,
    )
    row = AuditReviewRow(
        reviewed_at=now,
        reviewer_kind=actor.kind,
        reviewer_id=actor.user_id,
        reviewer_name=actor.name[:128],
        period_from=period_from,
        period_to=period_to,
        events=int(count),
        first_seq=first,
        last_seq=last,
        head_hash=report.head_hash,
        chain_ok=report.ok,
        note=text,
        audit_seq=event.seq,
    )
    with storage_errors("audit review"):
        session.add(row)
        session.flush()
    return _review(row)


def list_reviews(session: Session, *, limit: int = 100) -> list[AuditReview]:
    """The latest reviews, newest first."""
    statement = select(AuditReviewRow).order_by(AuditReviewRow.id.desc()).limit(limit)
    with storage_errors("list audit reviews"):
        return [_review(row) for row in session.scalars(statement)]


def _review(row: AuditReviewRow) -> AuditReview:
    return AuditReview(
        review_id=row.id,
        reviewed_at=row.reviewed_at,
        reviewer=Actor(row.reviewer_kind, row.reviewer_name, row.reviewer_id),
        period_from=row.period_from,
        period_to=row.period_to,
        events=row.events,
        first_seq=row.first_seq,
        last_seq=row.last_seq,
        head_hash=row.head_hash,
        chain_ok=row.chain_ok,
        note=row.note,
        audit_seq=row.audit_seq,
    )
