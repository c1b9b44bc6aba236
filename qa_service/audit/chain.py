"""Checking the audit hash chain, and cutting its old end off without breaking it.

:func:`verify_chain` walks the events in ``seq`` order and recomputes every hash. It names
the first bad event: one whose content no longer matches its hash (changed), a gap in the
sequence (deleted), an event the next one does not link to (inserted), or a chain that
ends before or after the chain head says (tail deleted, row appended behind the head's
back). An attacker who rewrites every later hash *and* the head defeats any unkeyed chain;
audit reviews record the head hash they saw, which anchors the chain up to that point.

Retention deletes old events (:func:`purge_audit_events`): first it appends a checkpoint
event carrying the seq and hash of the last event it purges, then moves the head's purge
horizon (the only rows the append-only triggers let go), then deletes. Verification starts
from the checkpoint whose horizon is just before the first remaining event.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from qa_service.audit.events import (
    GENESIS_HASH,
    Actor,
    AuditEvent,
    AuditRecord,
    record_event,
    row_digest,
    row_fields,
)
from qa_service.db.rows import storage_errors
from qa_service.db.tables import AuditChainHeadRow, AuditEventRow, utcnow
from qa_service.errors import StorageError

# How many recent hashes are remembered to recognise an inserted run of events.
_RECENT = 4096
_BATCH = 1000


@dataclass(frozen=True)
class ChainProblem:
    """The first bad event: its ``seq`` and what is wrong (changed, missing, inserted)."""

    seq: int
    kind: str
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "kind": self.kind, "message": self.message}


@dataclass(frozen=True)
class ChainReport:
    """The result of :func:`verify_chain`."""

    ok: bool
    checked: int
    first_seq: int | None
    last_seq: int | None
    head_hash: str
    problem: ChainProblem | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "checked": self.checked,
            "first_seq": self.first_seq,
            "last_seq": self.last_seq,
            "head_hash": self.head_hash,
            "problem": self.problem.as_dict() if self.problem else None,
        }


@dataclass(frozen=True)
class AuditPurge:
    """Events purged (or, in a dry run, to be purged) by retention."""

    rows: int
    from_seq: int
    through_seq: int
    through_hash: str
    checkpoint: AuditRecord | None


def _changed(seq: int) -> ChainProblem:
    return ChainProblem(
        seq,
        "changed",
        f"第 {seq} 条审计记录被修改（内容与哈希不符）/ audit event {seq} was changed "
        "(its content does not match its hash)",
    )


def _rewritten(seq: int) -> ChainProblem:
    return ChainProblem(
        seq,
        "changed",
        f"第 {seq} 条审计记录被改写（其哈希与下一条记录的链接不符）/ audit event {seq} was "
        "rewritten (its hash does not match the next event's link)",
    )


def _missing(first: int, last: int) -> ChainProblem:
    span = f"{first}" if first == last else f"{first}–{last}"
    return ChainProblem(
        first,
        "missing",
        f"第 {span} 条审计记录缺失（被删除）/ audit event(s) {span} are missing (deleted)",
    )


def _inserted(first: int, last: int) -> ChainProblem:
    span = f"{first}" if first == last else f"{first}–{last}"
    return ChainProblem(
        first,
        "inserted",
        f"第 {span} 条审计记录是插入的（不在哈希链中）/ audit event(s) {span} were inserted "
        "(not part of the hash chain)",
    )


def _head(session: Session) -> tuple[int, str, int, str]:
    row = session.execute(
        select(
            AuditChainHeadRow.last_seq,
            AuditChainHeadRow.last_hash,
            AuditChainHeadRow.purged_through_seq,
            AuditChainHeadRow.purged_through_hash,
        ).where(AuditChainHeadRow.id == 1)
    ).first()
    if row is None:
        raise StorageError(
            "审计链头缺失，请先执行数据库迁移 / the audit chain head row is missing; "
            "migrate the database"
        )
    return int(row[0]), str(row[1]), int(row[2]), str(row[3])


def _checkpoints(session: Session, last_seq: int) -> dict[int, str]:
    """purged-through seq → hash, from the checkpoint events (their integrity is walked)."""
    found: dict[int, str] = {}
    statement = select(AuditEventRow.details).where(
        AuditEventRow.event == AuditEvent.AUDIT_CHECKPOINT.value, AuditEventRow.seq <= last_seq
    )
    for text in session.scalars(statement):
        try:
            details = json.loads(text)
            found[int(details["purged_through_seq"])] = str(details["purged_through_hash"])
        except (ValueError, KeyError, TypeError):
            continue  # a damaged checkpoint fails its own hash in the walk
    return found


def verify_chain(session: Session) -> ChainReport:
    """Walk the whole chain; the report names the first bad event, if any."""
    with storage_errors("verify audit chain"):
        last_seq, head_hash, _, _ = _head(session)
        checkpoints = _checkpoints(session, last_seq)
        columns = [getattr(AuditEventRow, c.key) for c in AuditEventRow.__table__.columns]
        rows = session.execute(
            select(*columns)
            .where(AuditEventRow.seq <= last_seq)
            .order_by(AuditEventRow.seq)
            .execution_options(yield_per=_BATCH)
        )
        problem, checked, first, last = _walk(rows, checkpoints, last_seq, head_hash)
        if problem is None:
            # Rows past the head read above: appended since (the head moved), or inserted.
            now_last, _, _, _ = _head(session)
            stray = session.scalar(
                select(func.min(AuditEventRow.seq)).where(AuditEventRow.seq > now_last)
            )
            if stray is not None:
                top = session.scalar(select(func.max(AuditEventRow.seq)))
                problem = _inserted(int(stray), int(top or stray))
    return ChainReport(
        ok=problem is None,
        checked=checked,
        first_seq=first,
        last_seq=last,
        head_hash=head_hash,
        problem=problem,
    )


def _walk(
    rows: Any, checkpoints: dict[int, str], head_seq: int, head_hash: str
) -> tuple[ChainProblem | None, int, int | None, int | None]:
    recent: OrderedDict[str, int] = OrderedDict()
    first: int | None = None
    prev_seq: int | None = None
    expected_seq = 1
    expected_prev = GENESIS_HASH
    checked = 0
    for row in rows:
        seq = int(row.seq)
        if first is None:
            first = seq
            if seq != 1:
                if seq - 1 not in checkpoints:
                    known = max((s for s in checkpoints if s < seq - 1), default=0)
                    return _missing(known + 1, seq - 1), 0, first, None
                expected_seq, expected_prev = seq, checkpoints[seq - 1]
        if seq != expected_seq:
            return _missing(expected_seq, seq - 1), checked, first, prev_seq
        intact = row_digest(row_fields(row), row.prev_hash) == row.row_hash
        if row.prev_hash != expected_prev:
            earlier = recent.get(row.prev_hash)
            if earlier is not None and earlier < seq - 1:
                return _inserted(earlier + 1, seq - 1), checked, first, prev_seq
            if intact and prev_seq is not None:
                return _rewritten(prev_seq), checked, first, prev_seq
            return _changed(seq), checked, first, prev_seq
        if not intact:
            return _changed(seq), checked, first, prev_seq
        recent[row.row_hash] = seq
        if len(recent) > _RECENT:
            recent.popitem(last=False)
        expected_prev = row.row_hash
        expected_seq = seq + 1
        prev_seq = seq
        checked += 1
    if prev_seq is None:
        if head_seq > 0:
            known = max(checkpoints, default=0)
            return _missing(known + 1, head_seq), 0, None, None
        return None, 0, None, None
    if prev_seq < head_seq:
        return _missing(prev_seq + 1, head_seq), checked, first, prev_seq
    if expected_prev != head_hash:
        return _rewritten(prev_seq), checked, first, prev_seq
    return None, checked, first, prev_seq


def purge_audit_events(
    session: Session,
    *,
    before: datetime,
    actor: Actor,
    dry_run: bool = False,
    now: datetime | None = None,
) -> AuditPurge | None:
    """Delete the oldest events, those before ``before``, keeping the chain verifiable.

    Only a run from the start of the chain goes (an old event after a newer one waits),
    so the rest still links to the checkpoint. None when nothing is old enough. The
    caller should verify the chain first: purging a damaged range would destroy evidence.
    """
    with storage_errors("purge audit events"):
        if not dry_run:
            # Lock the head first (row lock / SQLite write lock) so no append interleaves.
            session.execute(
                update(AuditChainHeadRow)
                .where(AuditChainHeadRow.id == 1)
                .values(last_seq=AuditChainHeadRow.last_seq)
                .execution_options(synchronize_session=False)
            )
        last_seq, _, purged_seq, _ = _head(session)
        start = purged_seq + 1
        first_kept = session.scalar(
            select(func.min(AuditEventRow.seq)).where(
                AuditEventRow.seq >= start, AuditEventRow.occurred_at >= before
            )
        )
        through = int(first_kept) - 1 if first_kept is not None else last_seq
        if through < start:
            return None
        through_hash = session.scalar(
            select(AuditEventRow.row_hash).where(AuditEventRow.seq == through)
        )
        rows = session.scalar(
            select(func.count())
            .select_from(AuditEventRow)
            .where(AuditEventRow.seq >= start, AuditEventRow.seq <= through)
        )
        if through_hash is None:
            raise StorageError(
                f"审计记录 {through} 缺失，无法清理；请先执行 audit verify / audit event "
                f"{through} is missing; run `qa-service audit verify`",
                seq=through,
            )
        if dry_run:
            return AuditPurge(int(rows or 0), start, through, through_hash, None)
        checkpoint = record_event(
            session,
            actor=actor,
            event=AuditEvent.AUDIT_CHECKPOINT,
            target=f"audit:{start}-{through}",
            details={
                "purged_from_seq": start,
                "purged_through_seq": through,
                "purged_through_hash": through_hash,
                "rows": int(rows or 0),
                "before": before,
            },
            now=now or utcnow(),
        )
        session.execute(
            update(AuditChainHeadRow)
            .where(AuditChainHeadRow.id == 1)
            .values(purged_through_seq=through, purged_through_hash=through_hash)
            .execution_options(synchronize_session=False)
        )
        session.execute(
            delete(AuditEventRow)
            .where(AuditEventRow.seq >= start, AuditEventRow.seq <= through)
            .execution_options(synchronize_session=False)
        )
    return AuditPurge(int(rows or 0), start, through, through_hash, checkpoint)
