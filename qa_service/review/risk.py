"""What puts a call in the review queue and where: flagging, risk tiers, the calibration draw.

Pure functions over domain values, so the ordering and the draw are tested without a
database. The queue reads the tier stored at classification (``call_reviews.risk_tier``)
and orders by it, then by score (lowest first).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from qa_service.domain import CallScore, Finding

# Kinds the detector writes into a finding's evidence["weak_evidence"].
WEAK_EVIDENCE_KINDS = ("model_only", "low_confidence", "low_asr_confidence", "guessed_speaker")

# Tiers, most urgent first. The plan asks collection to pause and a supervisor to call back
# when a customer shows complaint intent; an agent who carried on (R04) is the worst case.
TIER_COMPLAINT_NOT_DEESCALATED = 0
TIER_COMPLAINT = 1
TIER_FATAL = 2
TIER_FLAGGED = 3
TIER_CALIBRATION = 4
TIER_PASSED = 9


@dataclass(frozen=True)
class Classification:
    """What the analysis means for review: flagged or not, where in the queue, and why."""

    flagged: bool
    risk_tier: int
    calibration: bool
    weak_evidence: tuple[str, ...]
    reason: str  # "中文 / English", recorded with the transition


def weak_evidence_kinds(findings: Iterable[Finding]) -> tuple[str, ...]:
    """The weak-evidence kinds found on any of ``findings``, in the canonical order."""
    seen: set[str] = set()
    for f in findings:
        kinds = f.evidence.get("weak_evidence") or ()
        if isinstance(kinds, list | tuple):
            seen.update(str(k) for k in kinds)
    return tuple(k for k in WEAK_EVIDENCE_KINDS if k in seen) + tuple(
        sorted(seen - set(WEAK_EVIDENCE_KINDS))
    )


def risk_tier(rules: Iterable[str], *, fatal: bool) -> int:
    """The queue tier of a call with findings of ``rules`` (fatal: its score hit a veto)."""
    found = set(rules)
    if "C01" in found and "R04" in found:
        return TIER_COMPLAINT_NOT_DEESCALATED
    if "C01" in found:
        return TIER_COMPLAINT
    if fatal:
        return TIER_FATAL
    return TIER_FLAGGED


def in_calibration_sample(call_id: str, *, rate: float, seed: str) -> bool:
    """Whether ``call_id`` is drawn into the calibration sample (deterministic per seed).

    A hash rather than a random draw: analysing the same call again draws the same way, and
    any process agrees without shared state.
    """
    if rate <= 0:
        return False
    digest = hashlib.sha256(f"{seed}\x00{call_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < rate


def classify(
    call_id: str,
    findings: Sequence[Finding],
    score: CallScore | None,
    *,
    calibration_rate: float,
    calibration_seed: str,
) -> Classification:
    """Flag a call with any finding or a failing score; draw unflagged calls for calibration."""
    failing = score is not None and not score.passed
    weak = weak_evidence_kinds(findings)
    if findings or failing:
        tier = risk_tier((f.rule for f in findings), fatal=bool(score and score.fatal))
        rules = sorted({f.rule for f in findings})
        why_zh = f"命中 {'、'.join(rules)}" if rules else "得分未达合格线"
        why_en = f"findings {', '.join(rules)}" if rules else "score under the pass mark"
        if rules and failing:
            why_zh += "，得分未达合格线"
            why_en += "; score under the pass mark"
        return Classification(True, tier, False, weak, f"{why_zh} / {why_en}")
    if in_calibration_sample(call_id, rate=calibration_rate, seed=calibration_seed):
        return Classification(
            True,
            TIER_CALIBRATION,
            True,
            weak,
            "抽入校准样本（未命中规则的通话）/ drawn into the calibration sample",
        )
    return Classification(False, TIER_PASSED, False, weak, "未命中规则且得分合格 / nothing found")


def lease_expired(expires_at: datetime | None, now: datetime) -> bool:
    """A claim whose lease ran out (None: an assignment, which never expires)."""
    return expires_at is not None and expires_at <= now


def lease_until(now: datetime, minutes: int) -> datetime:
    """When a claim taken or renewed at ``now`` returns to the queue if left idle."""
    return now + timedelta(minutes=minutes)


@dataclass(frozen=True)
class QueueEntry:
    """What the queue order needs to know of a call."""

    call_id: str
    risk_tier: int
    score: float | None
    started_at: datetime | None = None


def queue_order(entries: Iterable[QueueEntry]) -> list[QueueEntry]:
    """Most urgent first: tier, then lowest score (unscored last), then oldest call.

    The database query orders the same way; this is the rule in one readable place.
    """
    return sorted(
        entries,
        key=lambda e: (
            e.risk_tier,
            e.score is None,
            e.score if e.score is not None else 0.0,
            e.started_at is None,
            e.started_at.timestamp() if e.started_at else 0.0,
            e.call_id,
        ),
    )
