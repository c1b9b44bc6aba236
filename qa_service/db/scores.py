"""Data access for scores and reports: score history, findings by period, scored calls.

Kept apart from :mod:`qa_service.db.repository` (which stores analyses) so neither module
grows past a readable size; it follows the same contract: keyword-only functions taking the
caller's ``Session``, flushing but never committing, database failures raised as
:class:`~qa_service.errors.StorageError`.

Scores are history: :func:`record_score` appends a row and moves the "current" mark, it
never edits an older row. ``calls.score`` and ``calls.rubric_version`` mirror the current
row so that anything reading the call sees the score a supervisor sees.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import Select, func, select, update
from sqlalchemy.orm import Session

from qa_service.db.rows import attempt_from_row, aware, finding_from_row, storage_errors
from qa_service.db.tables import SCORE_REASONS, CallRow, CallScoreRow, DialAttemptRow, FindingRow
from qa_service.domain import CallScore, CallStatus, DialAttempt
from qa_service.errors import CallNotFound, RubricError, StorageError
from qa_service.scoring.score import DISMISSED, ReviewedFinding, ScoredCall, StoredScore


def _call_row(session: Session, call_id: str) -> CallRow:
    row = session.scalars(select(CallRow).where(CallRow.call_id == call_id)).first()
    if row is None:
        raise CallNotFound(f"找不到通话 {call_id} / call {call_id} not found", call_id=call_id)
    return row


def _check_digest(session: Session, score: CallScore) -> None:
    """Refuse a rubric whose content changed while its version did not.

    Two different rubrics under one version would make stored scores incomparable while
    looking comparable: exactly the silent change the version is there to prevent.
    """
    if not score.rubric_digest:
        return
    clash = session.scalars(
        select(CallScoreRow.rubric_digest)
        .where(
            CallScoreRow.rubric_version == score.rubric_version,
            CallScoreRow.rubric_digest != score.rubric_digest,
        )
        .limit(1)
    ).first()
    if clash is not None:
        raise RubricError(
            f"评分表版本 {score.rubric_version} 的内容与已保存评分所用的不同；修改评分表后请"
            f"更新 version / rubric version {score.rubric_version} differs in content from "
            "the one stored scores used; bump the version after editing a rubric",
            rubric_version=score.rubric_version,
            stored_digest=clash,
            new_digest=score.rubric_digest,
        )


def _breakdown(session: Session, call_pk: int, score: CallScore) -> dict[str, Any]:
    """The score as JSON, each item also naming the database ids of its findings."""
    ids = list(
        session.scalars(
            select(FindingRow.id).where(FindingRow.call_id == call_pk).order_by(FindingRow.id)
        )
    )
    out = score.as_dict()
    for item in out["items"]:
        # Indexes are positions in the call's findings in stored order; ids survive a
        # reviewer's later edits, positions are what the pure scorer knows.
        item["finding_ids"] = [ids[i] for i in item["finding_indexes"] if i < len(ids)]
    return out


def _insert_score(
    session: Session, row: CallRow, score: CallScore, reason: str, note: str | None = None
) -> int:
    if reason not in SCORE_REASONS:
        raise StorageError(
            f"未知的评分原因 {reason!r} / unknown score reason {reason!r}", reason=reason
        )
    _check_digest(session, score)
    # Unmark first and flush: the partial unique index allows one current row per call.
    session.execute(
        update(CallScoreRow)
        .where(CallScoreRow.call_id == row.id, CallScoreRow.is_current.is_(True))
        .values(is_current=False)
    )
    score_row = CallScoreRow(
        call_id=row.id,
        rubric_version=score.rubric_version,
        rubric_digest=score.rubric_digest,
        score=score.score,
        passed=score.passed,
        fatal=score.fatal,
        breakdown=_breakdown(session, row.id, score),
        is_current=True,
        reason=reason,
        note=note,
    )
    session.add(score_row)
    row.score = score.score
    row.rubric_version = score.rubric_version
    session.flush()
    return score_row.id


def store_analysis_score(session: Session, *, row: CallRow, score: CallScore | None) -> None:
    """Called by ``save_analysis``: the fresh analysis's score becomes the current one.

    Older rows lose the current mark even when there is no new score (a failed re-run):
    their breakdown links findings that the re-run has just replaced.
    """
    if score is None:
        session.execute(
            update(CallScoreRow)
            .where(CallScoreRow.call_id == row.id, CallScoreRow.is_current.is_(True))
            .values(is_current=False)
        )
        row.rubric_version = None
        return
    _insert_score(session, row, score, "analysis")


def record_score(
    session: Session, *, call_id: str, score: CallScore, reason: str, note: str | None = None
) -> int:
    """Append ``score`` to the history of ``call_id`` and make it current; returns its row id.

    ``reason`` is ``analysis``, ``rescore`` or ``review``. The finding indexes in the score
    must refer to the call's stored findings in stored order (as :func:`findings_for_call`
    returns them). Raises CallNotFound, or RubricError for a changed rubric under an old
    version. ``note`` says why (e.g. which review decision caused the change).
    """
    with storage_errors("record_score", call_id=call_id):
        row = _call_row(session, call_id)
        return _insert_score(session, row, score, reason, note)


def _stored(call_id: str, row: CallScoreRow) -> StoredScore:
    return StoredScore(
        call_id=call_id,
        score=CallScore.from_dict(row.breakdown),
        reason=row.reason,
        is_current=row.is_current,
        created_at=row.created_at,
    )


def scores_for_call(session: Session, *, call_id: str) -> list[StoredScore]:
    """The score history of ``call_id``, oldest first."""
    with storage_errors("scores_for_call", call_id=call_id):
        row = _call_row(session, call_id)
        rows = session.scalars(
            select(CallScoreRow).where(CallScoreRow.call_id == row.id).order_by(CallScoreRow.id)
        ).all()
        return [_stored(call_id, r) for r in rows]


def current_score(session: Session, *, call_pk: int) -> CallScore | None:
    """The current score of the call with primary key ``call_pk``, if it has one."""
    with storage_errors("current_score", call_pk=call_pk):
        row = session.scalars(
            select(CallScoreRow).where(
                CallScoreRow.call_id == call_pk, CallScoreRow.is_current.is_(True)
            )
        ).first()
        return CallScore.from_dict(row.breakdown) if row is not None else None


def current_score_of(session: Session, *, call_id: str) -> CallScore | None:
    """The current score of ``call_id`` (by its public id); raises CallNotFound."""
    with storage_errors("current_score_of", call_id=call_id):
        row = _call_row(session, call_id)
    return current_score(session, call_pk=row.id)


def findings_for_call(session: Session, *, call_id: str) -> list[ReviewedFinding]:
    """The stored findings of ``call_id`` in stored order, with their review status."""
    with storage_errors("findings_for_call", call_id=call_id):
        row = _call_row(session, call_id)
        rows = session.scalars(
            select(FindingRow).where(FindingRow.call_id == row.id).order_by(FindingRow.id)
        ).all()
        return [ReviewedFinding(finding_from_row(f), f.review_status, f.id) for f in rows]


# Any select, whatever it returns: the period filter keeps the caller's result type.
_Query = TypeVar("_Query", bound=Select)


def _in_period(query: _Query, start: datetime | None, end: datetime | None) -> _Query:
    query = query.where(CallRow.status == CallStatus.ANALYZED.value)
    if start is not None:
        query = query.where(CallRow.started_at >= aware(start, "start"))
    if end is not None:
        query = query.where(CallRow.started_at < aware(end, "end"))
    return query


def findings_for_period(
    session: Session, *, start: datetime | None = None, end: datetime | None = None
) -> dict[str, list[ReviewedFinding]]:
    """Findings of every analysed call started in ``[start, end)``, by call id.

    A bound left out is open; with no bounds at all, calls without a start time are
    included too. Every analysed call in range has an entry, an empty list if it has no
    finding (a clean call is scored too).
    """
    with storage_errors("findings_for_period"):
        call_ids = session.execute(
            _in_period(select(CallRow.id, CallRow.call_id), start, end).order_by(CallRow.id)
        ).all()
        out: dict[str, list[ReviewedFinding]] = {call_id: [] for _, call_id in call_ids}
        rows = session.execute(
            _in_period(select(CallRow.call_id, FindingRow), start, end)
            .join(FindingRow, FindingRow.call_id == CallRow.id)
            .order_by(FindingRow.id)
        ).all()
        for call_id, f in rows:
            out[call_id].append(ReviewedFinding(finding_from_row(f), f.review_status, f.id))
        return out


def scored_calls(
    session: Session,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    rubric_version: str | None = None,
) -> list[ScoredCall]:
    """Analysed calls started in ``[start, end)`` with their score and standing findings.

    The score is the call's current one, or with ``rubric_version`` the latest score under
    that version (None where the call was never scored with it). Dismissed findings are
    counted apart, not in ``rule_counts``.
    """
    with storage_errors("scored_calls"):
        calls = session.scalars(_in_period(select(CallRow), start, end).order_by(CallRow.id)).all()
        score_query = _in_period(select(CallScoreRow), start, end).join(
            CallRow, CallScoreRow.call_id == CallRow.id
        )
        if rubric_version is None:
            score_query = score_query.where(CallScoreRow.is_current.is_(True))
        else:
            score_query = score_query.where(CallScoreRow.rubric_version == rubric_version)
        scores: dict[int, CallScoreRow] = {}
        for score_row in session.scalars(score_query.order_by(CallScoreRow.id)):
            scores[score_row.call_id] = score_row  # ascending ids: the latest one wins
        counts: dict[int, dict[str, int]] = defaultdict(dict)
        dismissed: dict[int, int] = defaultdict(int)
        count_query = _in_period(
            select(FindingRow.call_id, FindingRow.rule, FindingRow.review_status, func.count()),
            start,
            end,
        ).join(CallRow, FindingRow.call_id == CallRow.id)
        for call_pk, rule, status, n in session.execute(
            count_query.group_by(FindingRow.call_id, FindingRow.rule, FindingRow.review_status)
        ):
            if status == DISMISSED:
                dismissed[call_pk] += n
            else:
                counts[call_pk][rule] = counts[call_pk].get(rule, 0) + n
        out = []
        for row in calls:
            s = scores.get(row.id)
            out.append(
                ScoredCall(
                    call_id=row.call_id,
                    agent_id=row.agent_id,
                    team_id=row.team_id,
                    agency_id=row.agency_id,
                    started_at=row.started_at,
                    score=s.score if s else None,
                    passed=s.passed if s else None,
                    fatal=s.fatal if s else None,
                    rubric_version=s.rubric_version if s else None,
                    rule_counts=dict(counts.get(row.id, {})),
                    dismissed=dismissed.get(row.id, 0),
                )
            )
        return out


def dial_attempts_between(session: Session, *, start: datetime, end: datetime) -> list[DialAttempt]:
    """Every dial-log attempt with ``start <= started_at < end``, oldest first."""
    aware(start, "start")
    aware(end, "end")
    with storage_errors("dial_attempts_between"):
        rows = session.scalars(
            select(DialAttemptRow)
            .where(DialAttemptRow.started_at >= start, DialAttemptRow.started_at < end)
            .order_by(DialAttemptRow.started_at, DialAttemptRow.id)
        ).all()
        return [attempt_from_row(row) for row in rows]


def agent_organisations(session: Session) -> dict[str, tuple[str | None, str | None]]:
    """Agent id → (team id, agency id), from the latest call that names each.

    The dial log names agents only; this is how a dial-log breach is charged to an agency.
    An agent's newest known team or agency wins (agents move between teams).
    """
    with storage_errors("agent_organisations"):
        rows = session.execute(
            select(CallRow.agent_id, CallRow.team_id, CallRow.agency_id)
            .where(CallRow.agent_id.is_not(None))
            .where((CallRow.team_id.is_not(None)) | (CallRow.agency_id.is_not(None)))
            .order_by(CallRow.started_at.is_(None).desc(), CallRow.started_at, CallRow.id)
        ).all()
    out: dict[str, tuple[str | None, str | None]] = {}
    for agent_id, team_id, agency_id in rows:
        if agent_id is None:
            continue
        old_team, old_agency = out.get(agent_id, (None, None))
        out[agent_id] = (team_id or old_team, agency_id or old_agency)
    return out


def call_date_span(session: Session) -> tuple[datetime, datetime] | None:
    """Earliest and latest start time of analysed calls (None when there is none)."""
    with storage_errors("call_date_span"):
        first, last = session.execute(
            select(func.min(CallRow.started_at), func.max(CallRow.started_at)).where(
                CallRow.status == CallStatus.ANALYZED.value
            )
        ).one()
    if first is None or last is None:
        return None
    return _utc(first), _utc(last)


def _utc(value: datetime) -> datetime:
    # Aggregates bypass the column type's result processing: SQLite hands back naive text.
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def count_undated_calls(session: Session) -> int:
    """Analysed calls without a start time: no period report can place them."""
    with storage_errors("count_undated_calls"):
        return (
            session.scalar(
                select(func.count())
                .select_from(CallRow)
                .where(CallRow.status == CallStatus.ANALYZED.value, CallRow.started_at.is_(None))
            )
            or 0
        )


__all__: Sequence[str] = (
    "agent_organisations",
    "call_date_span",
    "count_undated_calls",
    "current_score",
    "current_score_of",
    "dial_attempts_between",
    "findings_for_call",
    "findings_for_period",
    "record_score",
    "scored_calls",
    "scores_for_call",
    "store_analysis_score",
)
