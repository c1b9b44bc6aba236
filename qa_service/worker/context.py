"""What a job's analysis needs from the database besides the recording: dial log and DNC.

The same context the CLI's ``analyze`` gives (the customer's or the number's attempts on
the call's day, and the do-not-call list), read at the moment the call is scanned.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta

from sqlalchemy.orm import Session, sessionmaker

from qa_service.db import repository as repo
from qa_service.domain import CallMetadata, DialAttempt
from qa_service.pipeline import CallContext, ContextProvider
from qa_service.settings import Settings


def _day_bounds(meta: CallMetadata, settings: Settings) -> tuple[datetime, datetime] | None:
    if meta.started_at is None:
        return None
    tz = settings.local_tz
    day = meta.started_at.astimezone(tz).date()
    start = datetime.combine(day, time.min, tzinfo=tz)
    return start, start + timedelta(days=1)


def dial_context(sessions: sessionmaker[Session], settings: Settings) -> ContextProvider:
    """A context provider reading the dial log and do-not-call list through ``sessions``."""

    def context(meta: CallMetadata) -> CallContext:
        bounds = _day_bounds(meta, settings)
        with sessions() as session:
            dial_log: list[DialAttempt] = []
            if bounds and meta.customer_id:
                dial_log = repo.dial_attempts_for_customer(
                    session, customer_id=meta.customer_id, start=bounds[0], end=bounds[1]
                )
            elif bounds and meta.dialed_number:
                dial_log = repo.dial_attempts_for_number(
                    session, dialed_number=meta.dialed_number, start=bounds[0], end=bounds[1]
                )
            return CallContext(
                dial_log=tuple(dial_log), do_not_call=tuple(repo.do_not_call_entries(session))
            )

    return context
