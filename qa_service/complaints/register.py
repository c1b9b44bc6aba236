"""The complaint register: record complaints, link the customer's calls, record outcomes.

A complaint names its customer by customer id and/or phone number. Registering it links the
calls to that customer (same ``customer_id``, or the same number by its keyed hash) that
started in the ``complaint_link_days`` before it was received; the most recent of them
decides the complaint's team, agency and agent, i.e. which supervisors see it and where the
trends count it. A complaint is open until an outcome (有责 / 部分有责 / 无责) is recorded.

Recordings often arrive after the complaint (a dialler's nightly export, a re-upload): the
analysis save path calls :func:`link_saved_call`, which links a newly analysed call to the
complaints of its customer that it preceded inside the window, if they are still open or
were received within the last ``complaint_link_days``; ``qa-service complaints relink``
(:func:`relink_complaints`) does the same for calls stored before. Both are idempotent.

Scope (:func:`visible_complaints`): managers and inspectors see every complaint, a
supervisor those of its teams, everybody else none (the API refuses them with 403 before
asking). A complaint outside the caller's scope is :class:`ComplaintNotFound` (404).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, false, func, or_, select, true
from sqlalchemy.orm import Session

from qa_service.accounts.roles import Permission, Principal, Role
from qa_service.audit.events import Actor, record_event
from qa_service.complaints.vocabulary import ComplaintType, Level, Outcome, Source
from qa_service.db.rows import aware, storage_errors
from qa_service.db.sealed import number_digest
from qa_service.db.tables import CallRow, ComplaintCallRow, ComplaintRow, utcnow
from qa_service.errors import ComplaintNotFound, InputError

EVENT_REGISTER = "complaint.register"
EVENT_OUTCOME = "complaint.outcome"
EVENT_LINK = "complaint.link"


@dataclass(frozen=True)
class ComplaintInput:
    """A complaint as the bank reports it; ``phone`` normalised (digits, national form)."""

    source: Source
    level: Level
    type: ComplaintType
    received_at: datetime
    customer_id: str | None = None
    phone: str | None = None
    reference: str | None = None
    description: str = ""

    def check(self) -> None:
        """InputError unless the customer is named and the time is unambiguous."""
        if not (self.customer_id or self.phone):
            raise InputError(
                "投诉须填写客户号或电话号码 / a complaint needs a customer id or a phone number",
                field="customer_id",
            )
        if self.received_at.tzinfo is None or self.received_at.utcoffset() is None:
            raise InputError(
                "受理时间须带时区 / received_at needs a time zone", field="received_at"
            )


@dataclass(frozen=True)
class Registered:
    """What registering did: the complaint, whether it is new, how many calls it links."""

    complaint_id: int
    created: bool
    linked_calls: int


def visible_complaints(principal: Principal) -> ColumnElement[bool]:
    """A where-clause on :class:`ComplaintRow` selecting what ``principal`` may see."""
    if not principal.can(Permission.VIEW_COMPLAINTS):
        return false()
    if principal.role is Role.SUPERVISOR:
        if not principal.team_ids:
            return false()
        return ComplaintRow.team_id.in_(sorted(principal.team_ids))
    return true()


def _by_reference(session: Session, reference: str) -> ComplaintRow | None:
    return session.scalars(select(ComplaintRow).where(ComplaintRow.reference == reference)).first()


def register_complaint(
    session: Session, *, data: ComplaintInput, link_days: int, actor: Actor
) -> Registered:
    """Record ``data`` and link its customer's calls; a known ``reference`` is not added again."""
    data.check()
    with storage_errors("register_complaint"):
        if data.reference:
            existing = _by_reference(session, data.reference)
            if existing is not None:
                return Registered(existing.id, False, _count_links(session, existing.id))
        row = ComplaintRow(
            reference=data.reference or None,
            source=data.source.value,
            level=data.level.value,
            type=data.type.value,
            customer_id=data.customer_id or None,
            phone=data.phone or None,
            received_at=aware(data.received_at, "received_at"),
            description=data.description,
            created_by=actor.name,
        )
        session.add(row)
        session.flush()
        linked = link_calls(session, complaint=row, link_days=link_days)
        record_event(
            session,
            actor=actor,
            event=EVENT_REGISTER,
            target=f"complaint:{row.id}",
            details={
                "reference": row.reference,
                "level": row.level,
                "type": row.type,
                "source": row.source,
                "linked_calls": linked,
            },
        )
        return Registered(row.id, True, linked)


def _count_links(session: Session, complaint_pk: int) -> int:
    return (
        session.scalar(
            select(func.count())
            .select_from(ComplaintCallRow)
            .where(ComplaintCallRow.complaint_id == complaint_pk)
        )
        or 0
    )


def customer_calls_clause(customer_id: str | None, phone_hash: str | None) -> ColumnElement[bool]:
    """Calls of the customer named by id or by the keyed hash of a phone number."""
    conditions: list[ColumnElement[bool]] = []
    if customer_id:
        conditions.append(CallRow.customer_id == customer_id)
    if phone_hash:
        conditions.append(CallRow.dialed_number_hash == phone_hash)
    return or_(*conditions) if conditions else false()


def link_calls(session: Session, *, complaint: ComplaintRow, link_days: int) -> int:
    """Link the customer's calls of the ``link_days`` before the complaint; returns the total.

    Idempotent: calls already linked stay linked, new ones (e.g. uploaded late) are added.
    The team, agency and agent become those of the most recent linked call.
    """
    start = complaint.received_at - timedelta(days=link_days)
    calls = session.execute(
        select(CallRow.id, CallRow.team_id, CallRow.agency_id, CallRow.agent_id)
        .where(
            customer_calls_clause(complaint.customer_id, complaint.phone_hash),
            CallRow.started_at >= start,
            CallRow.started_at < complaint.received_at,
        )
        .order_by(CallRow.started_at, CallRow.id)
    ).all()
    known = set(
        session.scalars(
            select(ComplaintCallRow.call_id).where(ComplaintCallRow.complaint_id == complaint.id)
        )
    )
    for call_pk, *_ in calls:
        if call_pk not in known:
            session.add(ComplaintCallRow(complaint_id=complaint.id, call_id=call_pk))
    if calls:
        _, team_id, agency_id, agent_id = calls[-1]
        complaint.team_id, complaint.agency_id, complaint.agent_id = team_id, agency_id, agent_id
    session.flush()
    return len(known | {c[0] for c in calls})


def _customer_complaints_clause(
    customer_id: str | None, phone_hash: str | None
) -> ColumnElement[bool]:
    """Complaints of the customer named by id or by the keyed hash of a phone number."""
    conditions: list[ColumnElement[bool]] = []
    if customer_id:
        conditions.append(ComplaintRow.customer_id == customer_id)
    if phone_hash:
        conditions.append(ComplaintRow.phone_hash == phone_hash)
    return or_(*conditions) if conditions else false()


def _still_linkable(link_days: int, now: datetime) -> ColumnElement[bool]:
    """Open complaints, and closed ones received within the last ``link_days``."""
    return or_(
        ComplaintRow.outcome.is_(None),
        ComplaintRow.received_at >= now - timedelta(days=link_days),
    )


def _place(session: Session, complaint: ComplaintRow) -> None:
    """Team, agency and agent of the complaint: those of its most recent linked call."""
    latest = session.execute(
        select(CallRow.team_id, CallRow.agency_id, CallRow.agent_id)
        .join(ComplaintCallRow, ComplaintCallRow.call_id == CallRow.id)
        .where(ComplaintCallRow.complaint_id == complaint.id)
        .order_by(CallRow.started_at.desc(), CallRow.id.desc())
        .limit(1)
    ).first()
    if latest is not None:
        complaint.team_id, complaint.agency_id, complaint.agent_id = latest


def link_saved_call(
    session: Session,
    *,
    call_pk: int,
    link_days: int,
    actor: Actor,
    now: datetime | None = None,
) -> tuple[int, ...]:
    """Link a just-analysed call to its customer's complaints; the ids of those newly linked.

    A complaint qualifies when the call started in the ``link_days`` before it was received
    (the window :func:`link_calls` uses) and it is open or was received within the last
    ``link_days``. Called in the transaction that saves the analysis; only this call's link
    is added (other calls keep theirs), so a re-analysis or a second run adds nothing.
    """
    with storage_errors("link_saved_call"):
        call = session.get(CallRow, call_pk)
        if call is None or call.started_at is None:
            return ()
        started = aware(call.started_at, "started_at")
        complaints = session.scalars(
            select(ComplaintRow)
            .where(
                _customer_complaints_clause(call.customer_id, call.dialed_number_hash),
                ComplaintRow.received_at > started,
                ComplaintRow.received_at <= started + timedelta(days=link_days),
                _still_linkable(link_days, now or utcnow()),
            )
            .order_by(ComplaintRow.id)
        ).all()
        if not complaints:
            return ()
        known = set(
            session.scalars(
                select(ComplaintCallRow.complaint_id).where(
                    ComplaintCallRow.call_id == call_pk,
                    ComplaintCallRow.complaint_id.in_([c.id for c in complaints]),
                )
            )
        )
        linked = []
        for complaint in complaints:
            if complaint.id in known:
                continue
            session.add(ComplaintCallRow(complaint_id=complaint.id, call_id=call_pk))
            session.flush()
            _place(session, complaint)
            record_event(
                session,
                actor=actor,
                event=EVENT_LINK,
                target=f"complaint:{complaint.id}",
                details={"calls": [call.call_id], "late": True},
            )
            linked.append(complaint.id)
        session.flush()
        return tuple(linked)


@dataclass(frozen=True)
class Relinked:
    """What a relink did: complaints looked at, those that gained calls, calls added."""

    complaints: int
    changed: int
    added_links: int


def relink_complaints(
    session: Session,
    *,
    link_days: int,
    actor: Actor,
    everything: bool = False,
    now: datetime | None = None,
) -> Relinked:
    """Link every complaint's calls again (:func:`link_calls`), adding those stored since.

    By default only complaints still open or received within the last ``link_days``;
    ``everything`` takes all of them. Links already there stay; nothing is linked twice.
    """
    query = select(ComplaintRow).order_by(ComplaintRow.id)
    if not everything:
        query = query.where(_still_linkable(link_days, now or utcnow()))
    seen = changed = added = 0
    with storage_errors("relink_complaints"):
        for complaint in session.scalars(query).all():
            seen += 1
            before = set(
                session.scalars(
                    select(ComplaintCallRow.call_id).where(
                        ComplaintCallRow.complaint_id == complaint.id
                    )
                )
            )
            total = link_calls(session, complaint=complaint, link_days=link_days)
            if total == len(before):
                continue
            new_calls = session.scalars(
                select(CallRow.call_id)
                .join(ComplaintCallRow, ComplaintCallRow.call_id == CallRow.id)
                .where(
                    ComplaintCallRow.complaint_id == complaint.id,
                    ComplaintCallRow.call_id.not_in(before) if before else true(),
                )
                .order_by(CallRow.started_at, CallRow.id)
            ).all()
            changed += 1
            added += total - len(before)
            record_event(
                session,
                actor=actor,
                event=EVENT_LINK,
                target=f"complaint:{complaint.id}",
                details={"calls": list(new_calls), "late": False},
            )
    return Relinked(seen, changed, added)


def phone_digest(phone: str | None) -> str | None:
    """The keyed hash a (normalised) phone number is looked up by."""
    return number_digest(phone) if phone else None


def complaint_row(session: Session, principal: Principal, complaint_id: int) -> ComplaintRow:
    """The complaint if the caller may see it, else ComplaintNotFound."""
    row = session.scalars(
        select(ComplaintRow).where(ComplaintRow.id == complaint_id, visible_complaints(principal))
    ).first()
    if row is None:
        raise ComplaintNotFound(
            f"找不到投诉 {complaint_id} / complaint {complaint_id} not found",
            complaint_id=complaint_id,
        )
    return row


@dataclass(frozen=True)
class ComplaintFilters:
    """Optional list filters; ``status`` is ``open`` or ``closed``."""

    status: str | None = None
    level: Level | None = None
    received_from: datetime | None = None
    received_to: datetime | None = None
    customer_id: str | None = None


def list_complaints(
    session: Session,
    *,
    principal: Principal,
    filters: ComplaintFilters,
    limit: int = 100,
    offset: int = 0,
) -> list[ComplaintRow]:
    """The caller's complaints, newest received first."""
    query = select(ComplaintRow).where(visible_complaints(principal))
    if filters.status == "open":
        query = query.where(ComplaintRow.outcome.is_(None))
    elif filters.status == "closed":
        query = query.where(ComplaintRow.outcome.is_not(None))
    if filters.level is not None:
        query = query.where(ComplaintRow.level == filters.level.value)
    if filters.received_from is not None:
        query = query.where(ComplaintRow.received_at >= aware(filters.received_from, "from"))
    if filters.received_to is not None:
        query = query.where(ComplaintRow.received_at < aware(filters.received_to, "to"))
    if filters.customer_id:
        query = query.where(ComplaintRow.customer_id == filters.customer_id)
    with storage_errors("list_complaints"):
        return list(
            session.scalars(
                query.order_by(ComplaintRow.received_at.desc(), ComplaintRow.id.desc())
                .limit(limit)
                .offset(offset)
            )
        )


def linked_call_rows(session: Session, *, complaint_pk: int) -> list[CallRow]:
    """Every call linked to the complaint, oldest first (scope is the caller's to apply)."""
    return list(
        session.scalars(
            select(CallRow)
            .join(ComplaintCallRow, ComplaintCallRow.call_id == CallRow.id)
            .where(ComplaintCallRow.complaint_id == complaint_pk)
            .order_by(CallRow.started_at, CallRow.id)
        )
    )


def record_outcome(
    session: Session,
    *,
    complaint_id: int,
    outcome: Outcome,
    follow_up: str,
    principal: Principal,
    actor: Actor,
    now: datetime | None = None,
) -> ComplaintRow:
    """Record (or correct) the outcome: who decided, when, the follow-up. Closes it."""
    row = complaint_row(session, principal, complaint_id)
    previous = row.outcome
    row.outcome = outcome.value
    row.follow_up = follow_up.strip()
    row.outcome_by_id = principal.user_id
    row.outcome_by = principal.display_name or principal.username
    row.outcome_at = now or utcnow()
    session.flush()
    record_event(
        session,
        actor=actor,
        event=EVENT_OUTCOME,
        target=f"complaint:{row.id}",
        details={"outcome": outcome.value, "previous": previous},
    )
    return row
