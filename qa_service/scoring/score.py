"""Score stage: a call's findings and a rubric in, a 0–100 score with its breakdown out.

Pure (no database, no framework types), so the same function scores a fresh analysis, a
stored call re-scored with another rubric, and a call whose findings a reviewer dismissed.
Each breakdown item names the findings it deducted for (by their position in the list
given), so a supervisor can always see *why* a call scored what it did.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from qa_service.domain import CallScore, Finding, ItemScore
from qa_service.scoring.rubric import FULL_MARKS, Rubric

# A finding the reviewer rejected no longer counts against the agent (rq-style status text,
# the same values as the findings table's review_status).
DISMISSED = "dismissed"


@dataclass(frozen=True)
class ReviewedFinding:
    """A stored finding with the reviewer's verdict (pending, confirmed or dismissed)."""

    finding: Finding
    review_status: str = "pending"
    finding_id: int | None = None


@dataclass(frozen=True)
class StoredScore:
    """One row of a call's score history (never rewritten: re-scoring appends)."""

    call_id: str
    score: CallScore
    reason: str  # analysis | rescore | review
    is_current: bool
    created_at: datetime


@dataclass(frozen=True)
class ScoredCall:
    """One analysed call as reports see it: who, when, its current score, its findings.

    ``rule_counts`` counts the findings still standing (dismissed ones left out); the
    score fields are None when the call has no score (analysed before any rubric, or
    not under the rubric version asked for).
    """

    call_id: str
    agent_id: str | None
    team_id: str | None
    agency_id: str | None
    started_at: datetime | None
    score: float | None = None
    passed: bool | None = None
    fatal: bool | None = None
    rubric_version: str | None = None
    rule_counts: Mapping[str, int] = field(default_factory=dict)
    dismissed: int = 0

    @property
    def scored(self) -> bool:
        return self.score is not None

    def has(self, rule: str) -> bool:
        return self.rule_counts.get(rule, 0) > 0


def score_call(
    findings: Sequence[Finding], rubric: Rubric, *, excluded: Collection[int] = ()
) -> CallScore:
    """Score one call: 100 minus capped, weighted item deductions; 0 if a fatal item hit.

    ``excluded`` holds indexes into ``findings`` to leave out (dismissed findings);
    indexes in the breakdown always refer to positions in ``findings`` as given, so
    they stay valid links whatever is excluded.
    """
    skip = set(excluded)
    counted: dict[str, list[int]] = {}
    unscored: list[str] = []
    for index, finding in enumerate(findings):
        if index in skip:
            continue
        item = rubric.item_for_rule(finding.rule)
        if item is None:
            if finding.rule not in unscored:
                unscored.append(finding.rule)
            continue
        counted.setdefault(item.id, []).append(index)

    items: list[ItemScore] = []
    fatal_rules: list[str] = []
    for item in rubric.items:  # rubric order: sections, then items, as the file lists them
        indexes = counted.get(item.id)
        if not indexes:
            continue
        raw = item.deduction * len(indexes)
        capped = raw > item.cap
        triggered_fatal = item.fatal
        if triggered_fatal:
            for index in indexes:
                if findings[index].rule not in fatal_rules:
                    fatal_rules.append(findings[index].rule)
        items.append(
            ItemScore(
                item_id=item.id,
                section_id=item.section_id,
                name_zh=item.name_zh,
                name_en=item.name_en,
                occurrences=len(indexes),
                deduction=round(min(raw, item.cap) * item.weight, 2),
                capped=capped,
                fatal=triggered_fatal,
                finding_indexes=tuple(indexes),
            )
        )
    fatal = bool(fatal_rules)
    total = sum(item.deduction for item in items)
    score = 0.0 if fatal else round(max(0.0, FULL_MARKS - total), 2)
    return CallScore(
        score=score,
        passed=not fatal and score >= rubric.pass_mark,
        fatal=fatal,
        rubric_version=rubric.version,
        pass_mark=rubric.pass_mark,
        items=tuple(items),
        fatal_rules=tuple(sorted(fatal_rules)),
        unscored_rules=tuple(sorted(unscored)),
        excluded=tuple(sorted(i for i in skip if 0 <= i < len(findings))),
        rubric_digest=rubric.digest,
    )


def rescore_after_review(findings: Sequence[ReviewedFinding], rubric: Rubric) -> CallScore:
    """Recompute a call's score from the findings a reviewer has not dismissed.

    The review UI calls this (through :func:`qa_service.db.rescoring.rescore_call`) after a
    verdict; the breakdown's indexes still point into the full list of findings.
    """
    dismissed = [i for i, f in enumerate(findings) if f.review_status == DISMISSED]
    return score_call([f.finding for f in findings], rubric, excluded=dismissed)
