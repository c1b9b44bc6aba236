"""Helpers for the complaint tests: register a complaint about a seeded call's customer.

Imported as ``complaints_support`` (``tests/`` is on ``sys.path``, as for ``api_support``).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from api_support import Service
from sqlalchemy import update

from qa_service.audit.events import Actor
from qa_service.complaints.register import ComplaintInput, register_complaint
from qa_service.complaints.vocabulary import ComplaintType, Level, Outcome, Source
from qa_service.db.tables import CallRow, ComplaintRow, utcnow

CST = timezone(timedelta(hours=8))


def seed_complaint(
    service: Service,
    call_id: str,
    *,
    received_at: datetime | None = None,
    level: Level = Level.GENERAL,
    outcome: Outcome | None = None,
) -> int:
    """A complaint by the customer of ``call_id`` (given a customer id here), received
    after the call; returns the complaint's id. The call decides its team (if it started
    in the link window). With ``outcome`` the complaint is closed, as the register does."""
    customer = f"cust-{call_id}"
    with service.state.sessions.begin() as session:
        session.execute(
            update(CallRow).where(CallRow.call_id == call_id).values(customer_id=customer)
        )
        done = register_complaint(
            session,
            data=ComplaintInput(
                source=Source.HOTLINE,
                level=level,
                type=ComplaintType.ABUSE,
                received_at=received_at or datetime(2026, 11, 10, 10, 0, tzinfo=CST),
                customer_id=customer,
            ),
            link_days=service.state.settings.complaint_link_days,
            actor=Actor.system("tests"),
        )
        if outcome is not None:
            session.execute(
                update(ComplaintRow)
                .where(ComplaintRow.id == done.complaint_id)
                .values(outcome=outcome.value, outcome_by="tests", outcome_at=utcnow())
            )
    return done.complaint_id
