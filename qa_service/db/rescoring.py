"""Explicit re-scoring: a stored call's findings scored again, the result appended to history.

Two callers: ``qa-service rescore`` (a new rubric version applied to a period) and the
review UI (a finding was dismissed, so the call's score is recomputed from the remaining
ones). Both go through here so that re-scoring always reads the same stored findings,
leaves dismissed ones out, and never rewrites an older score row.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from qa_service.db.scores import (
    current_score_of,
    findings_for_call,
    findings_for_period,
    record_score,
)
from qa_service.domain import CallScore
from qa_service.scoring.rubric import Rubric
from qa_service.scoring.score import rescore_after_review


@dataclass(frozen=True)
class RescoreResult:
    """One call re-scored: the score it had, the score it gets, whether that was stored."""

    call_id: str
    old: CallScore | None
    new: CallScore
    recorded: bool

    @property
    def changed(self) -> bool:
        """The new score differs from the current one (always true for an unscored call)."""
        return self.old != self.new

    @property
    def delta(self) -> float | None:
        return None if self.old is None else round(self.new.score - self.old.score, 2)


def rescore_call(
    session: Session,
    *,
    call_id: str,
    rubric: Rubric,
    reason: str = "review",
    note: str | None = None,
) -> RescoreResult:
    """Recompute ``call_id``'s score from its findings not dismissed; store it if it changed.

    The review UI calls this after each verdict (reason ``review``). Recording only a
    changed score keeps a repeated call idempotent: the history gains no duplicate rows.
    ``note`` is stored with the new score (which decision caused it).
    """
    findings = findings_for_call(session, call_id=call_id)
    new = rescore_after_review(findings, rubric)
    old = current_score_of(session, call_id=call_id)
    if old == new:
        return RescoreResult(call_id, old, new, recorded=False)
    record_score(session, call_id=call_id, score=new, reason=reason, note=note)
    return RescoreResult(call_id, old, new, recorded=True)


def rescore_period(
    session: Session,
    *,
    rubric: Rubric,
    start: datetime | None = None,
    end: datetime | None = None,
    dry_run: bool = False,
) -> list[RescoreResult]:
    """Re-score every analysed call started in ``[start, end)`` with ``rubric``.

    Each new score is appended (reason ``rescore``) and becomes current; the old rows stay.
    A call whose current score already equals the new one is left alone. ``dry_run``
    computes and reports without storing anything.
    """
    results = []
    for call_id, findings in findings_for_period(session, start=start, end=end).items():
        new = rescore_after_review(findings, rubric)
        old = current_score_of(session, call_id=call_id)
        changed = old != new
        if changed and not dry_run:
            record_score(session, call_id=call_id, score=new, reason="rescore")
        results.append(RescoreResult(call_id, old, new, recorded=changed and not dry_run))
    return results
