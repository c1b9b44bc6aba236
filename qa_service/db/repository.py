"""Data access: store and load domain objects; the only module that maps them to ORM rows.

Every function is keyword-only and takes the caller's ``Session`` first. They flush but
never commit: the caller owns the transaction (``with factory.begin() as session:``), so a
job can save an analysis and set its status atomically. Database failures surface as
:class:`~qa_service.errors.StorageError`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, selectinload

from qa_service.db.rows import (
    attempt_from_row,
    aware,
    call_metadata,
    finding_from_row,
    finding_row,
    metadata_to_json,
    storage_errors,
    utterance_from_row,
    utterance_row,
)
from qa_service.db.scores import current_score, store_analysis_score
from qa_service.db.sealed import number_digest
from qa_service.db.tables import (
    AnalysisRunRow,
    CallRow,
    DialAttemptRow,
    DoNotCallRow,
    FindingRow,
    UtteranceRow,
    utcnow,
)
from qa_service.domain import (
    CallAnalysis,
    CallStatus,
    DialAttempt,
    DoNotCallEntry,
    StageTiming,
)
from qa_service.errors import CallNotFound, StorageError
from qa_service.privacy.masking import mask_findings, mask_text, mask_utterances

# Bounds the number of bind parameters per existence query (SQLite allows 32 766,
# PostgreSQL 65 535); dial-log imports can hold tens of thousands of rows.
_KEY_CHUNK = 500


# --- calls ---------------------------------------------------------------------------


def _apply_analysis(row: CallRow, analysis: CallAnalysis, source_path: str | None) -> None:
    meta = analysis.metadata
    row.call_id = analysis.call_id
    row.recording = analysis.recording
    row.source_path = source_path
    row.agent_id = meta.agent_id if meta else None
    row.customer_id = meta.customer_id if meta else None
    row.dialed_number = meta.dialed_number if meta else None
    row.contact_role = meta.contact_role if meta else None
    row.direction = meta.direction if meta else None
    row.started_at = meta.started_at if meta else None
    row.duration_s = analysis.duration_s
    row.channels = analysis.channels
    row.status = CallStatus(analysis.status).value
    row.score = analysis.score
    row.sidecar = metadata_to_json(meta) if meta else None
    error = analysis.error or {}
    row.error_code = str(error["code"]) if "code" in error else None
    row.error_message = str(error["message"]) if "message" in error else None
    row.team_id = meta.team_id if meta else None
    row.agency_id = meta.agency_id if meta else None


def _call_from_row(
    row: CallRow, *, with_utterances: bool, run: AnalysisRunRow | None = None
) -> CallAnalysis:
    error: dict[str, object] | None = None
    if row.status in (CallStatus.ERROR.value, CallStatus.FAILED.value):
        # The run keeps the whole error (context included); the call row keeps its gist.
        if run is not None and run.error:
            error = dict(run.error)
        else:
            error = {"code": row.error_code, "message": row.error_message}
    utterances = row.utterances if with_utterances else []
    return CallAnalysis(
        call_id=row.call_id,
        recording=row.recording,
        status=CallStatus(row.status),
        duration_s=row.duration_s,
        channels=row.channels,
        sha256=row.sha256,
        metadata=call_metadata(row),
        utterances=tuple(utterance_from_row(u) for u in utterances),
        findings=tuple(finding_from_row(f) for f in row.findings),
        score=row.score,
        error=error,
        timings=tuple(StageTiming(k, float(v)) for k, v in run.timings.items()) if run else (),
        model_name=run.model_name if run else None,
    )


def _claim_call_row(session: Session, analysis: CallAnalysis, sha256: str) -> CallRow:
    """The row this recording owns: found by call id or by its bytes, or a new one.

    A call id already held by a recording with other bytes is refused rather than moved:
    the findings stored under that id belong to the other recording.
    """
    by_id = session.scalars(select(CallRow).where(CallRow.call_id == analysis.call_id)).first()
    if by_id is not None and by_id.sha256 != sha256:
        raise StorageError(
            f"通话编号 {analysis.call_id} 已属于另一段录音（sha256 {by_id.sha256}），"
            f"新录音 sha256 为 {sha256} / call id {analysis.call_id} already belongs to "
            f"recording sha256 {by_id.sha256}; refusing recording sha256 {sha256}",
            call_id=analysis.call_id,
            stored_sha256=by_id.sha256,
            new_sha256=sha256,
        )
    if by_id is not None:
        return by_id
    # Same bytes under a new call id (e.g. a sidecar added since) keep their one row: the
    # recording is identified by its bytes, and the newer metadata wins.
    by_sha = session.scalars(select(CallRow).where(CallRow.sha256 == sha256)).first()
    if by_sha is not None:
        return by_sha
    row = CallRow(call_id=analysis.call_id, sha256=sha256)
    session.add(row)
    return row


def _queued_row(session: Session, call_pk: int, analysis: CallAnalysis, sha256: str) -> CallRow:
    row = session.get(CallRow, call_pk)
    if row is None:
        raise CallNotFound(
            f"找不到通话（内部编号 {call_pk}） / call row {call_pk} not found",
            call_id=analysis.call_id,
        )
    if row.sha256 != sha256:
        raise StorageError(
            f"分析的录音（sha256 {sha256}）与通话 {row.call_id} 的录音不同 / the analysed "
            f"recording (sha256 {sha256}) is not call {row.call_id}'s",
            call_id=row.call_id,
            stored_sha256=row.sha256,
            new_sha256=sha256,
        )
    return row


def save_analysis(
    session: Session,
    *,
    analysis: CallAnalysis,
    source_path: str | None,
    versions: dict[str, str],
    started_at: datetime | None = None,
    call_pk: int | None = None,
) -> int | None:
    """Store an analysis and return the call's row id; idempotent per recording (sha256).

    Re-analysing a recording updates its call row, replaces its utterances and findings and
    appends one ``analysis_runs`` row. An error with a known sha256 is stored (status
    ``error``, no utterances or findings); one without (the file was never read) is not,
    and None is returned. ``started_at`` defaults to now minus the summed stage timings.
    An analysis carrying ``score_detail`` also appends that score to the call's score
    history (``call_scores``) as the current one; see :mod:`qa_service.db.scores`.

    ``call_pk`` names the row to update (a queued upload being analysed by a job): the
    analysis then lands on that call whatever its call id, and must be of the same bytes.
    """
    if analysis.sha256 is None:
        if analysis.status == CallStatus.ERROR:
            return None
        raise StorageError(
            "分析结果缺少录音 sha256，无法保存 / analysis has no recording sha256 to store it by",
            call_id=analysis.call_id,
        )
    finished_at = utcnow()
    if started_at is None:
        started_at = finished_at - timedelta(seconds=sum(t.seconds for t in analysis.timings))
    aware(started_at, "started_at")
    if analysis.metadata is not None and analysis.metadata.started_at is not None:
        aware(analysis.metadata.started_at, "metadata.started_at")

    with storage_errors("save_analysis", call_id=analysis.call_id):
        if call_pk is not None:
            row = _queued_row(session, call_pk, analysis, analysis.sha256)
        else:
            row = _claim_call_row(session, analysis, analysis.sha256)
        _apply_analysis(row, analysis, source_path)
        # Explicit, so a re-analysis that changes nothing still shows when it last ran.
        row.updated_at = finished_at
        session.flush()
        # Bulk deletes before the inserts: replacing through the relationship would let the
        # unit of work insert the new seq numbers before deleting the old ones.
        session.execute(delete(UtteranceRow).where(UtteranceRow.call_id == row.id))
        session.execute(delete(FindingRow).where(FindingRow.call_id == row.id))
        session.expire(row, ["utterances", "findings"])
        if analysis.status == CallStatus.ANALYZED:
            # Personal numbers are masked in the searchable columns and sealed beside them
            # (qa_service.privacy); reading the rows back restores what was said.
            masked = mask_utterances(analysis.utterances)
            masked_findings = mask_findings(analysis.findings, analysis.utterances, masked)
            session.add_all(
                utterance_row(row.id, seq, utt, m)
                for seq, (utt, m) in enumerate(zip(analysis.utterances, masked, strict=True))
            )
            session.add_all(
                finding_row(row.id, f, m)
                for f, m in zip(analysis.findings, masked_findings, strict=True)
            )
        session.add(
            AnalysisRunRow(
                call_id=row.id,
                started_at=started_at,
                finished_at=finished_at,
                status=row.status,
                model_name=analysis.model_name,
                versions=dict(versions),
                timings={t.stage: t.seconds for t in analysis.timings},
                error=dict(analysis.error) if analysis.error else None,
            )
        )
        session.flush()
        ok = analysis.status == CallStatus.ANALYZED
        store_analysis_score(session, row=row, score=analysis.score_detail if ok else None)
        return row.id


def _latest_run(session: Session, call_pk: int) -> AnalysisRunRow | None:
    return session.scalars(
        select(AnalysisRunRow)
        .where(AnalysisRunRow.call_id == call_pk)
        .order_by(AnalysisRunRow.id.desc())
        .limit(1)
    ).first()


def get_call(session: Session, *, call_id: str) -> CallAnalysis:
    """The stored analysis of ``call_id``, utterances in saved order; raises CallNotFound.

    Timings, model name and the full error come from the latest analysis run.
    """
    with storage_errors("get_call", call_id=call_id):
        row = session.scalars(
            select(CallRow)
            .where(CallRow.call_id == call_id)
            .options(selectinload(CallRow.utterances), selectinload(CallRow.findings))
        ).first()
        if row is None:
            raise CallNotFound(f"找不到通话 {call_id} / call {call_id} not found", call_id=call_id)
        analysis = _call_from_row(row, with_utterances=True, run=_latest_run(session, row.id))
        detail = current_score(session, call_pk=row.id)
        return replace(analysis, score_detail=detail) if detail is not None else analysis


def find_call_id_by_sha256(session: Session, *, sha256: str) -> str | None:
    """The call id under which these recording bytes were stored, if any."""
    with storage_errors("find_call_id_by_sha256", sha256=sha256):
        return session.scalars(select(CallRow.call_id).where(CallRow.sha256 == sha256)).first()


def list_calls(session: Session, *, limit: int = 100, offset: int = 0) -> list[CallAnalysis]:
    """Calls, most recent first, with findings but without utterances or run details."""
    with storage_errors("list_calls"):
        rows = session.scalars(
            select(CallRow)
            .options(selectinload(CallRow.findings))
            # Calls without a start time (no sidecar) sort after dated ones on every backend.
            .order_by(CallRow.started_at.is_(None), CallRow.started_at.desc(), CallRow.id.desc())
            .limit(limit)
            .offset(offset)
        ).all()
        return [_call_from_row(row, with_utterances=False) for row in rows]


# --- dial log ----------------------------------------------------------------------


def _chunks(items: list[str]) -> Iterator[list[str]]:
    for i in range(0, len(items), _KEY_CHUNK):
        yield items[i : i + _KEY_CHUNK]


_AttemptKey = tuple[str, datetime, str]


_INSERT_BATCH = 5_000


def save_dial_attempts(session: Session, *, attempts: Iterable[DialAttempt]) -> int:
    """Insert dial-log attempts not stored yet and return how many were new.

    An attempt is the same attempt when number, start time and agent match, so importing an
    overlapping or identical dial log again adds nothing. Existing keys are looked up
    rather than relying on ON CONFLICT, which is spelt differently per backend.
    """
    pending: dict[_AttemptKey, DialAttempt] = {}
    for attempt in attempts:
        started = aware(attempt.started_at, "dial_attempt.started_at").astimezone(UTC)
        pending.setdefault((attempt.dialed_number, started, attempt.agent_id), attempt)
    if not pending:
        return 0
    with storage_errors("save_dial_attempts"):
        earliest = min(key[1] for key in pending)
        latest = max(key[1] for key in pending)
        # Numbers are sealed; their keyed hashes identify them (and the unique constraint).
        digests = {key[0]: number_digest(key[0]) or "" for key in pending}
        existing: set[_AttemptKey] = set()
        for hashes in _chunks(sorted(set(digests.values()))):
            found = session.execute(
                select(
                    DialAttemptRow.dialed_number_hash,
                    DialAttemptRow.started_at,
                    DialAttemptRow.agent_id,
                ).where(
                    DialAttemptRow.dialed_number_hash.in_(hashes),
                    DialAttemptRow.started_at >= earliest,
                    DialAttemptRow.started_at <= latest,
                )
            )
            existing.update((h, s.astimezone(UTC), a) for h, s, a in found)
        new = [a for key, a in pending.items() if (digests[key[0]], *key[1:]) not in existing]
        # In batches, each flushed and then forgotten by the session: a 100,000-row log
        # held as ORM objects until commit cost ~3 KB a row (issue 13's import figures).
        for start in range(0, len(new), _INSERT_BATCH):
            rows = [
                DialAttemptRow(
                    call_id=a.call_id,
                    agent_id=a.agent_id,
                    customer_id=a.customer_id,
                    dialed_number=a.dialed_number,
                    started_at=a.started_at,
                    connected=a.connected,
                    duration_s=a.duration_s,
                )
                for a in new[start : start + _INSERT_BATCH]
            ]
            session.add_all(rows)
            session.flush()
            for row in rows:
                session.expunge(row)
        return len(new)


def _check_range(start: datetime, end: datetime) -> None:
    aware(start, "start")
    aware(end, "end")


def dial_attempts_for_number(
    session: Session, *, dialed_number: str, start: datetime, end: datetime
) -> list[DialAttempt]:
    """Attempts to ``dialed_number`` with ``start <= started_at < end``, oldest first."""
    _check_range(start, end)
    with storage_errors("dial_attempts_for_number", dialed_number=dialed_number):
        rows = session.scalars(
            select(DialAttemptRow)
            .where(
                DialAttemptRow.dialed_number_hash == number_digest(dialed_number),
                DialAttemptRow.started_at >= start,
                DialAttemptRow.started_at < end,
            )
            .order_by(DialAttemptRow.started_at, DialAttemptRow.id)
        ).all()
        return [attempt_from_row(row) for row in rows]


def dial_attempts_for_customer(
    session: Session, *, customer_id: str, start: datetime, end: datetime
) -> list[DialAttempt]:
    """Attempts to any number of ``customer_id`` with ``start <= started_at < end`` (M02)."""
    _check_range(start, end)
    with storage_errors("dial_attempts_for_customer", customer_id=customer_id):
        rows = session.scalars(
            select(DialAttemptRow)
            .where(
                DialAttemptRow.customer_id == customer_id,
                DialAttemptRow.started_at >= start,
                DialAttemptRow.started_at < end,
            )
            .order_by(DialAttemptRow.started_at, DialAttemptRow.id)
        ).all()
        return [attempt_from_row(row) for row in rows]


# --- do-not-call list ----------------------------------------------------------------


def add_do_not_call(
    session: Session, *, entries: Iterable[DoNotCallEntry], source_call_id: str | None = None
) -> int:
    """Add numbers to the do-not-call list and return how many were new.

    A number already listed keeps its first entry (reason, source, date): M03 asks whether
    the holder *ever* refused, and the earliest refusal is the one to cite.
    """
    pending: dict[str, DoNotCallEntry] = {}
    for entry in entries:
        if entry.added_at is not None:
            aware(entry.added_at, "do_not_call.added_at")
        pending.setdefault(entry.dialed_number, entry)
    if not pending:
        return 0
    with storage_errors("add_do_not_call"):
        digests = {number: number_digest(number) or "" for number in pending}
        existing: set[str] = set()
        for hashes in _chunks(sorted(digests.values())):
            existing.update(
                session.scalars(
                    select(DoNotCallRow.dialed_number_hash).where(
                        DoNotCallRow.dialed_number_hash.in_(hashes)
                    )
                )
            )
        now = utcnow()
        new = [e for number, e in pending.items() if digests[number] not in existing]
        session.add_all(
            DoNotCallRow(
                dialed_number=e.dialed_number,
                # A refusal's reason may quote the customer, numbers and all.
                reason=mask_text(e.reason),
                source=e.source,
                source_call_id=source_call_id,
                added_at=e.added_at or now,
            )
            for e in new
        )
        session.flush()
        return len(new)


def do_not_call_numbers(session: Session) -> set[str]:
    """Every listed number, for the M03 check."""
    with storage_errors("do_not_call_numbers"):
        return set(session.scalars(select(DoNotCallRow.dialed_number)))


def do_not_call_entries(
    session: Session, *, dialed_number: str | None = None
) -> list[DoNotCallEntry]:
    """The do-not-call list (only ``dialed_number``'s entry when given), oldest first."""
    query = select(DoNotCallRow).order_by(DoNotCallRow.added_at, DoNotCallRow.id)
    if dialed_number is not None:
        query = query.where(DoNotCallRow.dialed_number_hash == number_digest(dialed_number))
    with storage_errors("do_not_call_entries"):
        rows = session.scalars(query).all()
        return [
            DoNotCallEntry(
                dialed_number=row.dialed_number,
                reason=row.reason,
                source=row.source,
                added_at=row.added_at,
            )
            for row in rows
        ]
