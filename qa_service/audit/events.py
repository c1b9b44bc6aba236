"""Recording audit events: the one append path of the hash-chained audit trail.

Every event names its operator (:class:`Actor`: a user, the OS user running the CLI, or
the service itself), a dotted event type (:class:`AuditEvent` lists the ones in use; any
``area.action`` string is accepted), a result, a target and JSON details. The row's hash
covers all of that plus the previous row's hash, so changing, deleting or inserting a row
breaks the chain where it happened (:mod:`qa_service.audit.chain` finds it).

Appends are serialised on one chain-head row: the UPDATE that claims the next ``seq`` takes
PostgreSQL's row lock, or SQLite's write lock, until the caller's transaction ends, so two
writers can never link to the same predecessor. :func:`record_event` runs in the caller's
transaction (the event commits or rolls back with the action it describes);
:func:`record_event_committed` writes in a transaction of its own, for failures whose
action is about to be rolled back.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import math
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from enum import Enum, StrEnum
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from qa_service.db.rows import storage_errors
from qa_service.db.tables import AuditChainHeadRow, AuditEventRow, utcnow
from qa_service.errors import InputError, QAServiceError, StorageError

GENESIS_HASH = "0" * 64
"""The ``prev_hash`` of the first event ever recorded."""

_EVENT_NAME = re.compile(r"[a-z][a-z0-9_]*(\.[a-z0-9_]+)+")


class AuditEvent(StrEnum):
    """Event types recorded today. Other modules may record their own ``area.action``."""

    LOGIN = "auth.login"
    LOGOUT = "auth.logout"
    ACCOUNT_CREATE = "account.create"
    ACCOUNT_UPDATE = "account.update"  # role, teams, display name, agent id
    ACCOUNT_DISABLE = "account.disable"
    ACCOUNT_ENABLE = "account.enable"
    ACCOUNT_LOCK = "account.lock"  # too many failed logins
    PASSWORD_CHANGE = "account.password_change"
    PASSWORD_RESET = "account.password_reset"
    TOKEN_CREATE = "token.create"
    TOKEN_REVOKE = "token.revoke"
    ROSTER_IMPORT = "roster.import"
    CALL_VIEW = "call.view"
    AUDIO_PLAY = "call.audio"
    RECORDING_UPLOAD = "recording.upload"
    DIAL_LOG_IMPORT = "import.dial_log"
    DNC_IMPORT = "import.do_not_call"
    JOB_REQUEUE = "job.requeue"
    EXPORT = "report.export"
    RESCORE = "score.rescore"
    SETTINGS_CHANGE = "settings.change"
    # The review loop (qa_service.review) records these.
    REVIEW_DECISION = "review.decision"
    APPEAL = "review.appeal"
    RULING = "review.ruling"
    AUDIT_VIEW = "audit.view"
    AUDIT_VERIFY = "audit.verify"
    AUDIT_REVIEW = "audit.review"
    AUDIT_CHECKPOINT = "audit.checkpoint"  # rows before it were purged by retention
    RETENTION_PURGE = "retention.purge"


class Outcome(StrEnum):
    SUCCESS = "success"
    FAILURE = "failure"


class _Person(Protocol):
    """What :meth:`Actor.of` needs from a caller (an accounts ``Principal``)."""

    @property
    def user_id(self) -> int: ...

    @property
    def username(self) -> str: ...


@dataclass(frozen=True)
class Actor:
    """Who acts, and from where: a signed-in user, the CLI's OS user, or the service."""

    kind: str  # "user" | "cli" | "system"
    name: str
    user_id: int | None = None
    client_ip: str | None = None

    @classmethod
    def of(cls, person: _Person, *, client_ip: str | None = None) -> Actor:
        """A signed-in caller (anything with ``user_id`` and ``username``)."""
        return cls("user", person.username, person.user_id, client_ip)

    @classmethod
    def claimed(cls, username: str, *, client_ip: str | None = None) -> Actor:
        """Someone who gave this user name but is not (yet) signed in: failed logins."""
        return cls("user", username.strip()[:128] or "?", None, client_ip)

    @classmethod
    def cli(cls) -> Actor:
        """Whoever runs a ``qa-service`` command: the OS user on this machine."""
        try:
            user = getpass.getuser()
        except (OSError, KeyError):  # no passwd entry (some containers)
            user = "unknown"
        return cls("cli", f"{user}@{socket.gethostname()}"[:128])

    @classmethod
    def system(cls, name: str = "qa-service") -> Actor:
        """The service acting on its own (lockouts, scheduled jobs)."""
        return cls("system", name)


@dataclass(frozen=True)
class AuditRecord:
    """One stored event, as read back."""

    seq: int
    occurred_at: datetime
    actor: Actor
    event: str
    result: Outcome
    target: str | None
    details: dict[str, Any]
    prev_hash: str
    row_hash: str


@dataclass(frozen=True)
class EventFilter:
    """Which events :func:`list_events` returns; every field is optional (None: any)."""

    start: datetime | None = None  # inclusive
    end: datetime | None = None  # exclusive
    user: str | None = None  # actor name (user name, or CLI user@host)
    event: str | None = None  # exact type, or an area prefix such as "account."
    result: Outcome | None = None
    target: str | None = None
    after_seq: int | None = None


# --- canonical form and hashing --------------------------------------------------------


def _plain(value: Any) -> Any:
    """``value`` as plain JSON types; anything else becomes its text, never an error."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = [_plain(v) for v in value]
        return sorted(items, key=str) if isinstance(value, set | frozenset) else items
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Enum):
        return _plain(value.value)
    if isinstance(value, Path):
        return str(value)
    return str(value)


def canonical_json(value: Any) -> str:
    """The one serialisation that is hashed: sorted keys, no spaces, UTF-8 kept."""
    return json.dumps(
        _plain(value), sort_keys=True, ensure_ascii=False, separators=(",", ":"), allow_nan=False
    )


def timestamp_text(moment: datetime) -> str:
    """A timestamp as hashed: UTC, microseconds (what both databases store exactly)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def row_fields(row: Any) -> dict[str, Any]:
    """The hashed fields of a stored row (an ``AuditEventRow`` or a selected row)."""
    return {
        "seq": row.seq,
        "occurred_at": timestamp_text(row.occurred_at),
        "actor_kind": row.actor_kind,
        "actor_id": row.actor_id,
        "actor_name": row.actor_name,
        "client_ip": row.client_ip,
        "event": row.event,
        "result": row.result,
        "target": row.target,
        "details": row.details,
    }


def row_digest(fields: Mapping[str, Any], prev_hash: str) -> str:
    """SHA-256 (hex) of the canonical JSON of ``fields`` followed by ``prev_hash``."""
    return hashlib.sha256((canonical_json(fields) + prev_hash).encode("utf-8")).hexdigest()


# --- appending ---------------------------------------------------------------------------


def _event_name(event: AuditEvent | str) -> str:
    name = str(event)
    if len(name) > 64 or not _EVENT_NAME.fullmatch(name):
        raise InputError(
            f"审计事件类型 {name!r} 无效（应为 area.action）/ invalid audit event type {name!r}",
            event=name,
        )
    return name


def record_event(
    session: Session,
    *,
    actor: Actor,
    event: AuditEvent | str,
    result: Outcome | str = Outcome.SUCCESS,
    target: str | None = None,
    details: Mapping[str, Any] | None = None,
    now: datetime | None = None,
) -> AuditRecord:
    """Append one event to the audit trail in the caller's transaction (flushes, no commit).

    ``target`` names what was acted on (``call:<id>``, ``user:<name>``, ``file:<name>``);
    ``details`` is any JSON-able mapping (other values are stored as text). The chain head
    stays locked until the caller commits or rolls back: call this at the end of the
    transaction's work, and keep the transaction short.
    """
    name = _event_name(event)
    outcome = Outcome(result)
    moment = now or utcnow()
    details_text = canonical_json(dict(details or {}))
    with storage_errors("record audit event", event=name):
        # The claim is an UPDATE, not a SELECT: it takes the row lock (PostgreSQL) or the
        # write lock (SQLite) before reading, so concurrent appends queue up here.
        claimed = session.execute(
            update(AuditChainHeadRow)
            .where(AuditChainHeadRow.id == 1)
            .values(last_seq=AuditChainHeadRow.last_seq + 1)
            .returning(AuditChainHeadRow.last_seq, AuditChainHeadRow.last_hash)
            .execution_options(synchronize_session=False)
        ).first()
        if claimed is None:
            raise StorageError(
                "审计链头缺失，请先执行数据库迁移 / the audit chain head row is missing; "
                "migrate the database",
            )
        seq, prev_hash = int(claimed[0]), str(claimed[1])
        row = AuditEventRow(
            seq=seq,
            occurred_at=moment,
            actor_kind=actor.kind,
            actor_id=actor.user_id,
            actor_name=_storable(actor.name)[:128],
            client_ip=_storable(actor.client_ip)[:64] if actor.client_ip else None,
            event=name,
            result=outcome.value,
            target=_storable(target)[:512] if target else None,
            details=details_text,
            prev_hash=prev_hash,
            row_hash="",
        )
        row.row_hash = row_digest(row_fields(row), prev_hash)
        session.add(row)
        session.flush()
        session.execute(
            update(AuditChainHeadRow)
            .where(AuditChainHeadRow.id == 1)
            .values(last_hash=row.row_hash)
            .execution_options(synchronize_session=False)
        )
    return record_from_row(row)


def record_event_committed(
    sessions: sessionmaker[Session],
    *,
    actor: Actor,
    event: AuditEvent | str,
    result: Outcome | str = Outcome.SUCCESS,
    target: str | None = None,
    details: Mapping[str, Any] | None = None,
    now: datetime | None = None,
) -> AuditRecord:
    """:func:`record_event` in a transaction of its own, committed before returning.

    For an action whose own transaction is rolled back (a refused request) or that has
    none (a read): the event must outlive the error that reports it.
    """
    with storage_errors("record audit event"), sessions.begin() as session:
        return record_event(
            session,
            actor=actor,
            event=event,
            result=result,
            target=target,
            details=details,
            now=now,
        )


def failure_details(exc: QAServiceError, **extra: Any) -> dict[str, Any]:
    """The details of a failure event: the error's code and English gist, plus ``extra``."""
    _, _, english = exc.message.partition(" / ")
    return {"error": exc.code, "reason": (english or exc.message)[:500], **extra}


def record_from_row(row: AuditEventRow) -> AuditRecord:
    try:
        details = json.loads(row.details)
    except ValueError:
        details = {"_unreadable": row.details}
    return AuditRecord(
        seq=row.seq,
        occurred_at=row.occurred_at,
        actor=Actor(row.actor_kind, row.actor_name, row.actor_id, row.client_ip),
        event=row.event,
        result=Outcome(row.result),
        target=row.target,
        details=details if isinstance(details, dict) else {"value": details},
        prev_hash=row.prev_hash,
        row_hash=row.row_hash,
    )


def list_events(session: Session, *, filters: EventFilter, limit: int = 200) -> list[AuditRecord]:
    """Events matching ``filters``, oldest first (page on with ``after_seq``)."""
    statement = select(AuditEventRow).order_by(AuditEventRow.seq).limit(limit)
    if filters.start is not None:
        statement = statement.where(AuditEventRow.occurred_at >= filters.start)
    if filters.end is not None:
        statement = statement.where(AuditEventRow.occurred_at < filters.end)
    if filters.user:
        statement = statement.where(AuditEventRow.actor_name == filters.user.strip())
    if filters.event:
        wanted = filters.event.strip()
        if wanted.endswith("."):
            statement = statement.where(AuditEventRow.event.startswith(wanted, autoescape=True))
        else:
            statement = statement.where(AuditEventRow.event == wanted)
    if filters.result is not None:
        statement = statement.where(AuditEventRow.result == filters.result.value)
    if filters.target:
        statement = statement.where(AuditEventRow.target == filters.target)
    if filters.after_seq is not None:
        statement = statement.where(AuditEventRow.seq > filters.after_seq)
    with storage_errors("list audit events"):
        return [record_from_row(row) for row in session.scalars(statement)]


def _storable(text: str) -> str:
    """Text PostgreSQL can hold: a NUL (typed into a login form, say) becomes U+FFFD, so
    the attempt is still recorded instead of failing the audit write."""
    return text.replace("\x00", "\ufffd")
