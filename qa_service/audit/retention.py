"""Retention: purge calls, recordings and audit events past their legal retention period.

Art. 68 and the bank's plan keep recordings and logs at least 2 years; the settings
(``QA_RETENTION_DAYS_RECORDINGS``, ``QA_RETENTION_DAYS_LOGS``) cannot go below that. A call
is past its period when both its upload and its start are older than the period (the later
of the two counts, so a late import keeps an old recording its full term). A call under a
*hold* is never touched: holds are pluggable (:class:`RetentionHold`), the defaults being
explicit ``retention_holds`` rows and the open rows of the appeal and complaint tables,
whichever exist. A hold table this module cannot interpret stops the run: keeping too much
is recoverable, purging a disputed recording is not.

Database rows go first, in one transaction with the audit events that list them; stored
audio is deleted after the commit, so a failure leaves a file kept too long, never a call
whose recording is gone. Audit events are purged only when the chain verifies (a damaged
range is evidence) and behind a checkpoint, see :mod:`qa_service.audit.chain`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import Integer, MetaData, Row, Table, delete, inspect, or_, select
from sqlalchemy.orm import Session, sessionmaker

from qa_service.audit.chain import AuditPurge, ChainProblem, purge_audit_events, verify_chain
from qa_service.audit.events import (
    Actor,
    AuditEvent,
    Outcome,
    record_event,
    record_event_committed,
)
from qa_service.db.rows import storage_errors
from qa_service.db.tables import CallRow, RetentionHoldRow, utcnow
from qa_service.errors import StorageError
from qa_service.ingest.store import AudioStore
from qa_service.settings import Settings

# Calls in the queue or being analysed are left alone whatever their age.
_IN_FLIGHT = ("queued", "analyzing")
# Statuses that mean an appeal or complaint is settled; any other status holds its call.
CLOSED_STATUSES = frozenset(
    {"closed", "resolved", "withdrawn", "rejected", "dismissed", "upheld", "overturned", "ruled"}
)
# Columns that, when set, mark a row settled (used only when the table has no status).
_CLOSED_AT = ("closed_at", "resolved_at", "ruled_at", "outcome_at")
_BATCH = 1000


class RetentionHold(Protocol):
    """Something that keeps calls from being purged; ``held_calls`` gives their ``calls.id``."""

    @property
    def name(self) -> str: ...

    def held_calls(self, session: Session) -> set[int]: ...


@dataclass(frozen=True)
class ExplicitHolds:
    """Unreleased rows of ``retention_holds`` (a legal hold placed on a call)."""

    name: str = "retention_holds"

    def held_calls(self, session: Session) -> set[int]:
        statement = select(RetentionHoldRow.call_id).where(RetentionHoldRow.released_at.is_(None))
        return set(session.scalars(statement))


@dataclass(frozen=True)
class TableHold:
    """The calls of the open rows of ``table`` (appeals, complaints), if the table exists.

    "Open" is read from the table's columns: a ``status`` outside :data:`CLOSED_STATUSES`,
    else none of ``closed_at``/``resolved_at``/``ruled_at``/``outcome_at`` set yet, else
    every row. The calls are the table's own ``call_id`` column (``calls.id`` if an
    integer, the call's id if text), or, with ``link_table``, the ``call_id`` of the link
    rows whose ``link_column`` points at an open row (complaints ↔ complaint_calls). When
    neither can be found the hold cannot be decided and the run stops.
    """

    table: str
    link_table: str | None = None
    link_column: str | None = None
    closed_statuses: frozenset[str] = CLOSED_STATUSES

    @property
    def name(self) -> str:
        return self.table

    def held_calls(self, session: Session) -> set[int]:
        connection = session.connection()
        inspector = inspect(connection)
        if not inspector.has_table(self.table):
            return set()
        table = Table(self.table, MetaData(), autoload_with=connection)
        source: Table = table
        if self.link_table and self.link_column and inspector.has_table(self.link_table):
            link = Table(self.link_table, MetaData(), autoload_with=connection)
            source = link
            statement = select(link.c.call_id).join(table, table.c.id == link.c[self.link_column])
        elif "call_id" in table.c:
            statement = select(table.c.call_id)
        else:
            raise StorageError(
                f"无法判断表 {self.table} 中哪些通话被保全（缺少 call_id 列），保存期清理已停止 / "
                f"cannot tell which calls table {self.table} holds (no call_id column); "
                "retention stopped",
                table=self.table,
            )
        statement = statement.where(source.c.call_id.is_not(None)).distinct()
        if "status" in table.c:
            statement = statement.where(
                or_(table.c.status.is_(None), table.c.status.not_in(sorted(self.closed_statuses)))
            )
        else:
            for column in _CLOSED_AT:
                if column in table.c:
                    statement = statement.where(table.c[column].is_(None))
                    break
        values = list(session.scalars(statement))
        if isinstance(source.c.call_id.type, Integer):
            return {int(v) for v in values}
        if not values:
            return set()
        ids = select(CallRow.id).where(CallRow.call_id.in_([str(v) for v in values]))
        return set(session.scalars(ids))


DEFAULT_HOLDS: tuple[RetentionHold, ...] = (
    ExplicitHolds(),
    TableHold("review_appeals"),
    TableHold("complaints", link_table="complaint_calls", link_column="complaint_id"),
)
"""Holds checked by every run; a module with a new kind of hold adds it here."""


@dataclass(frozen=True)
class PurgedCall:
    """A call past its period: purged (or to be purged), and what became of its audio."""

    call_id: str
    sha256: str
    started_at: datetime | None
    audio: str  # "deleted", "not_in_store", "pending" (dry run) or "error: ..."


@dataclass(frozen=True)
class RetentionReport:
    """What a retention run purged, kept under a hold, and did to the audit trail."""

    dry_run: bool
    calls_before: datetime
    logs_before: datetime
    calls: tuple[PurgedCall, ...]
    held: tuple[tuple[str, tuple[str, ...]], ...]
    audit: AuditPurge | None
    audit_refused: ChainProblem | None

    @property
    def ok(self) -> bool:
        """False when audio could not be deleted or the audit purge was refused."""
        audio_failed = any(c.audio.startswith("error") for c in self.calls)
        return not audio_failed and self.audit_refused is None


def hold_map(session: Session, holds: Iterable[RetentionHold]) -> dict[int, list[str]]:
    """``calls.id`` → the names of the holds keeping it."""
    held: dict[int, list[str]] = {}
    with storage_errors("retention holds"):
        for hold in holds:
            for pk in hold.held_calls(session):
                held.setdefault(pk, []).append(hold.name)
    return held


def run_retention(
    sessions: sessionmaker[Session],
    *,
    store: AudioStore,
    settings: Settings,
    actor: Actor,
    dry_run: bool = False,
    holds: Sequence[RetentionHold] = DEFAULT_HOLDS,
    now: datetime | None = None,
) -> RetentionReport:
    """Purge what is past its retention period (see the module docstring)."""
    now = now or utcnow()
    calls_before = now - timedelta(days=settings.retention_days_recordings)
    logs_before = now - timedelta(days=settings.retention_days_logs)
    with storage_errors("retention run"), sessions.begin() as session:
        expired = session.execute(
            select(CallRow.id, CallRow.call_id, CallRow.sha256, CallRow.started_at)
            .where(
                CallRow.created_at < calls_before,
                or_(CallRow.started_at.is_(None), CallRow.started_at < calls_before),
                CallRow.status.not_in(_IN_FLIGHT),
            )
            .order_by(CallRow.id)
        ).all()
        held_by = hold_map(session, holds)
        doomed = [row for row in expired if row.id not in held_by]
        held = tuple((row.call_id, tuple(held_by[row.id])) for row in expired if row.id in held_by)
        audit: AuditPurge | None = None
        refused: ChainProblem | None = None
        if dry_run:
            audit = purge_audit_events(session, before=logs_before, actor=actor, dry_run=True)
        else:
            _purge_calls(session, doomed, held, actor, calls_before, now)
            chain = verify_chain(session)
            if chain.ok:
                audit = purge_audit_events(session, before=logs_before, actor=actor, now=now)
            else:
                refused = chain.problem
    calls = tuple(
        PurgedCall(
            row.call_id,
            row.sha256,
            row.started_at,
            "pending" if dry_run else _delete_audio(store, row.sha256),
        )
        for row in doomed
    )
    failed = [c for c in calls if c.audio.startswith("error")]
    if failed:
        record_event_committed(
            sessions,
            actor=actor,
            event=AuditEvent.RETENTION_PURGE,
            result=Outcome.FAILURE,
            target="audio",
            details={
                "audio_not_deleted": [
                    {"call_id": c.call_id, "sha256": c.sha256, "error": c.audio} for c in failed
                ]
            },
        )
    return RetentionReport(dry_run, calls_before, logs_before, calls, held, audit, refused)


def _purge_calls(
    session: Session,
    doomed: Sequence[Row[int, str, str, datetime | None]],
    held: tuple[tuple[str, tuple[str, ...]], ...],
    actor: Actor,
    calls_before: datetime,
    now: datetime,
) -> None:
    # One event per batch keeps each row readable; together they list every purged call.
    batches = [doomed[i : i + _BATCH] for i in range(0, len(doomed), _BATCH)] or [[]]
    for index, batch in enumerate(batches):
        ids = [row.id for row in batch]
        if ids:
            # utterances, findings, runs and scores go with the call (ON DELETE CASCADE).
            session.execute(
                delete(CallRow)
                .where(CallRow.id.in_(ids))
                .execution_options(synchronize_session=False)
            )
        record_event(
            session,
            actor=actor,
            event=AuditEvent.RETENTION_PURGE,
            target="calls",
            details={
                "calls_before": calls_before,
                "batch": index + 1,
                "batches": len(batches),
                "calls": [{"call_id": row.call_id, "sha256": row.sha256} for row in batch],
                "held": [{"call_id": c, "holds": list(h)} for c, h in held] if index == 0 else [],
            },
            now=now,
        )


def _delete_audio(store: AudioStore, sha256: str) -> str:
    try:
        return "deleted" if store.delete(sha256) else "not_in_store"
    except StorageError as exc:
        return f"error: {exc.message}"
