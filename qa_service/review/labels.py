"""Learning from reviews: decisions as training labels, and the machine's precision per rule.

:func:`review_labels` turns confirmed, dismissed and inspector-added findings into labelled
utterances in the format of ``models/data/written/*.jsonl`` (``speaker``, ``text``,
``labels``; extra keys say where a line came from and are ignored by the trainer), so
``models/train_encoder_head.py --extra FILE`` retrains on what inspectors decided; each
line also has an ``id``, so ``qa-service eval-text FILE`` scores a head on them.
:func:`review_precision` counts, per rule, how many machine findings reviewers confirmed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from qa_service.db.tables import CallRow, ReviewDecisionRow
from qa_service.detection.classifier import LABELS

# A dismissal for these reasons says nothing about the words: the transcript was wrong
# (asr_error), so the line is not what was said and teaches nothing either way.
_NO_LABEL_REASONS = frozenset({"asr_error"})


def _stands(d: ReviewDecisionRow) -> bool:
    return d.decision in ("confirmed", "added") and not d.overturned


def _speaker(d: ReviewDecisionRow) -> str | None:
    """The line's speaker: stored, else the rule family's (P: agent, C: customer).

    A confirmed or added finding is the family's speaker whatever the transcript said: the
    inspector found the agent's violation (P) or the customer's signal (C) there, and the
    trainer learns a P label only from agent lines and a C label only from customer lines
    (an added C01 over a mono line attributed to the agent would teach nothing, and would
    be a negative for every P rule).
    """
    family = "agent" if d.rule.startswith("P") else "customer"
    if _stands(d):
        return family
    speaker = d.speaker if d.speaker in ("agent", "customer") else family
    if d.decision == "dismissed" and d.reason_code == "wrong_speaker":
        # The other party said it; as that party's line the rule does not apply.
        speaker = "customer" if speaker == "agent" else "agent"
    return speaker


@dataclass
class LabelExport:
    """The exported lines and what was left out (and why)."""

    lines: list[dict[str, Any]] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)

    def skip(self, why: str) -> None:
        self.skipped[why] = self.skipped.get(why, 0) + 1


def review_labels(session: Session) -> LabelExport:
    """Every reviewed finding of a text rule (P01–P10, C01–C03) as a labelled line.

    Lines are keyed by (speaker, text): a confirmed or added finding adds its rule to the
    labels, a dismissed or overturned one only makes the line a (partial) negative.
    """
    out = LabelExport()
    lines: dict[tuple[str, str], dict[str, Any]] = {}
    rows = session.execute(
        select(ReviewDecisionRow, CallRow.call_id)
        .join(CallRow, CallRow.id == ReviewDecisionRow.call_id)
        .order_by(ReviewDecisionRow.id)
    ).all()
    for d, call_id in rows:
        if d.rule not in LABELS:
            out.skip("not_a_text_rule")
            continue
        if not (d.text or "").strip():
            out.skip("no_text")
            continue
        if d.decision == "dismissed" and d.reason_code in _NO_LABEL_REASONS:
            out.skip(f"dismissed_{d.reason_code}")
            continue
        speaker = _speaker(d)
        assert speaker is not None
        text = (d.text or "").strip()
        line = lines.setdefault(
            (speaker, text),
            {
                # An id as `qa-service eval-text` wants one: the line's first finding
                # (its decision's, should the finding be gone).
                "id": f"review-{call_id}-{d.finding_id or f'd{d.id}'}",
                "speaker": speaker,
                "text": text,
                "labels": [],
                "source": "review",
                "call_id": call_id,
                "decisions": [],
            },
        )
        if _stands(d) and d.rule not in line["labels"]:
            line["labels"].append(d.rule)
        line["decisions"].append(
            {
                "finding_id": d.finding_id,
                "rule": d.rule,
                "decision": "overturned" if d.overturned else d.decision,
                "reason_code": d.reason_code,
            }
        )
    for line in lines.values():
        line["labels"].sort()
        out.lines.append(line)
    return out


@dataclass(frozen=True)
class RulePrecision:
    """Review outcomes of one rule's machine findings (inspector-added ones counted apart)."""

    rule: str
    confirmed: int
    dismissed: int
    added: int  # missed by the machine, added by an inspector
    by_reason: dict[str, int]

    @property
    def decided(self) -> int:
        return self.confirmed + self.dismissed

    @property
    def precision(self) -> float | None:
        return round(self.confirmed / self.decided, 4) if self.decided else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "confirmed": self.confirmed,
            "dismissed": self.dismissed,
            "added": self.added,
            "precision": self.precision,
            "dismiss_reasons": dict(self.by_reason),
        }


def review_precision(session: Session) -> list[RulePrecision]:
    """Per rule: confirmed vs dismissed machine findings (an overturned one is dismissed)."""
    counts: dict[str, dict[str, Any]] = {}
    for d in session.scalars(select(ReviewDecisionRow)):
        c = counts.setdefault(d.rule, {"confirmed": 0, "dismissed": 0, "added": 0, "reasons": {}})
        if d.decision == "added":
            c["added"] += 1
        elif _stands(d):
            c["confirmed"] += 1
        else:
            c["dismissed"] += 1
            reason = "appeal_overturned" if d.overturned else (d.reason_code or "other")
            c["reasons"][reason] = c["reasons"].get(reason, 0) + 1
    return [
        RulePrecision(rule, c["confirmed"], c["dismissed"], c["added"], c["reasons"])
        for rule, c in sorted(counts.items())
    ]
