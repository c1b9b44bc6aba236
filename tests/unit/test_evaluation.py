"""Scoring against labels: per-rule counts, family micro-F1, false alarms, CER."""

from __future__ import annotations

from dataclasses import replace

import pytest

from qa_service.domain import CallAnalysis, CallStatus, Finding, Speaker, Utterance
from qa_service.evaluation.metrics import CallLabels, character_errors, evaluate, normalize_for_cer


def _analysis(call_id: str, rules: list[str], utts=(), channels="stereo") -> CallAnalysis:
    return CallAnalysis(
        call_id=call_id,
        recording=f"{call_id}.wav",
        status=CallStatus.ANALYZED,
        channels=channels,
        utterances=tuple(utts),
        findings=tuple(Finding(rule=r, source="test", confidence=1.0) for r in rules),
    )


def _labels(call_id: str, rules: list[str], turns=()) -> CallLabels:
    return CallLabels(call_id, "stereo", frozenset(rules), tuple(turns))


def test_numbers_punctuation_and_script_are_normalised_before_cer() -> None:
    assert normalize_for_cer("欠款5,300元，拨打12378！") == "欠款五千三百元拨打一二三七八"
    assert character_errors("欠款五千三百元。", "欠款5300元") == (0, 7)
    assert character_errors("逾期六十天", "预期六十天") == (1, 5)


def test_rule_counts_and_family_scores() -> None:
    analyses = [
        _analysis("a", ["M01", "A01"]),  # M01 TP, A01 FP
        _analysis("b", []),  # M01 FN
        _analysis("c", ["M02"]),  # M02 TP
    ]
    labels = {
        "a": _labels("a", ["M01"]),
        "b": _labels("b", ["M01"]),
        "c": _labels("c", ["M02"]),
    }
    report = evaluate(analyses, labels)
    assert (report.rules["M01"].tp, report.rules["M01"].fn) == (1, 1)
    assert report.rules["A01"].fp == 1
    assert report.families["M"].f1 == pytest.approx(2 * 1.0 * (2 / 3) / (1 + 2 / 3))
    # A01 was flagged on one of three calls that had no A label.
    assert report.false_alarm["A"]["rate"] == pytest.approx(1 / 3, abs=1e-4)


def test_errors_are_reported_not_scored() -> None:
    failed = CallAnalysis(
        call_id="x", recording="x.wav", status=CallStatus.ERROR, error={"code": "empty_file"}
    )
    report = evaluate([failed], {"x": _labels("x", ["M01"])})
    assert report.errors == [{"call_id": "x", "error": {"code": "empty_file"}}]
    assert report.rules == {}


def test_cer_is_per_speaker_on_stereo() -> None:
    turns = [
        {"speaker": "agent", "start": 0, "end": 1, "text": "您好"},
        {"speaker": "customer", "start": 1, "end": 2, "text": "是我"},
    ]
    swapped = [
        Utterance(Speaker.AGENT, 0, 1, "是我"),
        Utterance(Speaker.CUSTOMER, 1, 2, "您好"),
    ]
    report = evaluate([_analysis("a", [], swapped)], {"a": _labels("a", [], turns)})
    assert report.cer["stereo"]["cer"] == 1.0  # right words, wrong speakers: all wrong


def _turn(speaker: str, start: float, end: float, rules: list[str]) -> dict:
    return {"speaker": speaker, "start": start, "end": end, "text": "…", "labels": rules}


def _finding(rule: str, speaker: Speaker, start: float, end: float) -> Finding:
    return Finding(rule=rule, source="test", confidence=1.0, speaker=speaker, start=start, end=end)


def test_localisation_needs_the_rule_on_the_labelled_utterance_and_speaker() -> None:
    turns = [
        _turn("agent", 10.0, 14.0, ["P01"]),  # flagged on this utterance: localised
        _turn("agent", 20.0, 24.0, ["P03"]),  # flagged, but 10 s later: not localised
        _turn("customer", 30.0, 32.0, ["C01"]),  # flagged on the agent's channel: not
        _turn("agent", 40.0, 44.0, ["P05"]),  # flagged with ASR timing slack: localised
    ]
    analysis = replace(
        _analysis("a", []),
        findings=(
            _finding("P01", Speaker.AGENT, 10.2, 13.8),
            _finding("P03", Speaker.AGENT, 34.0, 36.0),
            _finding("C01", Speaker.AGENT, 30.0, 32.0),
            _finding("P05", Speaker.AGENT, 44.3, 46.0),
        ),
    )
    report = evaluate([analysis], {"a": _labels("a", ["P01", "P03", "P05", "C01"], turns)})
    assert report.localisation["P"] == {"utterances": 3, "localised": 2, "rate": 0.6667}
    assert report.localisation["C"] == {"utterances": 1, "localised": 0, "rate": 0.0}


def test_localisation_on_mono_ignores_the_estimated_speaker() -> None:
    analysis = replace(
        _analysis("m", [], channels="mono"),
        findings=(_finding("C01", Speaker.AGENT, 30.0, 32.0),),
    )
    labels = CallLabels("m", "mono", frozenset({"C01"}), (_turn("customer", 30, 32, ["C01"]),))
    assert evaluate([analysis], {"m": labels}).localisation["C"]["localised"] == 1


def test_mono_attribution_by_utterance_and_by_time() -> None:
    turns = [
        _turn("agent", 0.0, 4.0, []),
        _turn("customer", 4.3, 6.0, []),
        _turn("agent", 6.3, 10.0, []),
    ]
    utts = [
        Utterance(Speaker.AGENT, 0.0, 4.0, "…"),  # right
        # customer's turn merged with the agent's next one, given to the customer: wrong by
        # majority (1.7 s customer vs 3.7 s agent), right for 1.7 s of its 5.4 s.
        Utterance(Speaker.CUSTOMER, 4.3, 10.0, "…"),
        Utterance(Speaker.AGENT, 20.0, 21.0, "…"),  # outside every label: not scored
    ]
    labels = CallLabels("m", "mono", frozenset(), tuple(turns))
    att = evaluate([_analysis("m", [], utts, channels="mono")], {"m": labels}).mono_attribution
    assert (att["utterances"], att["correct"], att["rate"]) == (2, 1, 0.5)
    assert att["time_rate"] == pytest.approx((4.0 + 1.7) / 9.4, abs=1e-3)
