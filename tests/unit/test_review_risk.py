"""Review queue rules without a database: flagging, risk order, leases, the calibration draw."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from qa_service.domain import CallScore, Finding
from qa_service.review.risk import (
    TIER_CALIBRATION,
    TIER_COMPLAINT,
    TIER_COMPLAINT_NOT_DEESCALATED,
    TIER_FATAL,
    TIER_FLAGGED,
    QueueEntry,
    classify,
    in_calibration_sample,
    lease_expired,
    lease_until,
    queue_order,
    risk_tier,
    weak_evidence_kinds,
)

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def _score(score: float, *, fatal: bool = False, pass_mark: float = 80) -> CallScore:
    return CallScore(
        score=score,
        passed=not fatal and score >= pass_mark,
        fatal=fatal,
        rubric_version="t",
        pass_mark=pass_mark,
    )


def _finding(rule: str, *weak: str) -> Finding:
    return Finding(
        rule=rule, source="lexicon", confidence=0.9, evidence={"weak_evidence": list(weak)}
    )


def test_risk_tiers_complaint_first_above_all_without_de_escalation() -> None:
    assert risk_tier(["C01", "R04"], fatal=True) == TIER_COMPLAINT_NOT_DEESCALATED
    assert risk_tier(["C01"], fatal=True) == TIER_COMPLAINT
    assert risk_tier(["P03"], fatal=True) == TIER_FATAL
    assert risk_tier(["R04"], fatal=False) == TIER_FLAGGED  # R04 alone is not a complaint


def test_queue_order_tier_then_lowest_score() -> None:
    entries = [
        QueueEntry("low-score", TIER_FLAGGED, 40.0),
        QueueEntry("unscored", TIER_FLAGGED, None),
        QueueEntry("fatal", TIER_FATAL, 0.0),
        QueueEntry("complaint", TIER_COMPLAINT, 95.0),
        QueueEntry("complaint+r04", TIER_COMPLAINT_NOT_DEESCALATED, 80.0),
        QueueEntry("high-score", TIER_FLAGGED, 75.0),
        QueueEntry("calibration", TIER_CALIBRATION, 100.0),
    ]
    assert [e.call_id for e in queue_order(entries)] == [
        "complaint+r04",
        "complaint",
        "fatal",
        "low-score",
        "high-score",
        "unscored",
        "calibration",
    ]


def test_a_finding_or_a_failing_score_flags() -> None:
    kw = {"calibration_rate": 0.0, "calibration_seed": "s"}
    assert classify("c", [_finding("A01")], _score(97), **kw).flagged
    failing = classify("c", [], _score(60), **kw)
    assert failing.flagged and "pass mark" in failing.reason
    clean = classify("c", [], _score(100), **kw)
    assert not clean.flagged and not clean.calibration


def test_weak_evidence_kinds_are_collected() -> None:
    findings = [_finding("P01", "model_only"), _finding("C01", "guessed_speaker", "model_only")]
    assert weak_evidence_kinds(findings) == ("model_only", "guessed_speaker")
    assert weak_evidence_kinds([_finding("P01")]) == ()


def test_calibration_draw_is_deterministic_under_a_seed() -> None:
    ids = [f"call-{i}" for i in range(5000)]
    first = {c for c in ids if in_calibration_sample(c, rate=0.02, seed="s1")}
    again = {c for c in ids if in_calibration_sample(c, rate=0.02, seed="s1")}
    other = {c for c in ids if in_calibration_sample(c, rate=0.02, seed="s2")}
    assert first == again
    assert first != other
    assert 60 <= len(first) <= 140  # about 2 % of 5000
    assert not any(in_calibration_sample(c, rate=0.0, seed="s1") for c in ids)
    drawn = next(iter(first))
    result = classify(drawn, [], _score(100), calibration_rate=0.02, calibration_seed="s1")
    assert result.flagged and result.calibration and result.risk_tier == TIER_CALIBRATION


def test_lease_expires_after_idle_minutes() -> None:
    until = lease_until(NOW, 30)
    assert not lease_expired(until, NOW + timedelta(minutes=29, seconds=59))
    assert lease_expired(until, NOW + timedelta(minutes=30))
    assert not lease_expired(None, NOW + timedelta(days=30))  # an assignment holds
