"""Per-call scoring: deductions, caps, weights, fatal items, dismissed findings, versions."""

from __future__ import annotations

import json

import pytest

from qa_service.domain import CallAnalysis, CallScore, CallStatus, Finding, Speaker
from qa_service.reports.output import analysis_to_json
from qa_service.scoring.rubric import load_rubric, parse_rubric
from qa_service.scoring.score import ReviewedFinding, rescore_after_review, score_call
from qa_service.settings import PROJECT_ROOT

RUBRIC = parse_rubric(
    """\
version: "t-1"
pass_mark: 80
sections:
  - id: compliance
    name_zh: 合规
    items:
      - {id: threats, name_zh: 威胁恐吓, rules: [P01], deduction: 100, cap: 100, fatal: true}
      - {id: insults, name_zh: 辱骂, rules: [P02], deduction: 15, cap: 40}
      - {id: hours, name_zh: 禁止时段, rules: [M01], deduction: 15, cap: 15}
  - id: communication
    name_zh: 沟通技巧
    items:
      - {id: dead_air, name_zh: 静音, rules: [A01], deduction: 3, cap: 9, weight: 0.5}
      - {id: interruption, name_zh: 抢话, rules: [A02], deduction: 4, cap: 8, weight: 2}
  - id: signals
    name_zh: 客户信号
    items:
      - {id: complaint, name_zh: 投诉倾向, rules: [C01], deduction: 0, cap: 0}
"""
)


def _f(rule: str, start: float | None = None) -> Finding:
    speaker = Speaker.AGENT if start is not None else None
    end = start + 1 if start is not None else None
    return Finding(rule=rule, source="test", confidence=1.0, speaker=speaker, start=start, end=end)


def test_no_finding_scores_full_marks() -> None:
    score = score_call([], RUBRIC)
    assert (score.score, score.passed, score.fatal, score.items) == (100.0, True, False, ())
    assert score.rubric_version == "t-1" and score.rubric_digest == RUBRIC.digest


def test_deductions_add_up_per_occurrence() -> None:
    score = score_call([_f("P02", 1), _f("M01")], RUBRIC)
    assert score.score == 70.0 and not score.passed  # 100 - 15 - 15, under the pass mark 80
    assert [(i.item_id, i.occurrences, i.deduction) for i in score.items] == [
        ("insults", 1, 15.0),
        ("hours", 1, 15.0),
    ]
    assert score.total_deduction == 30.0


def test_item_deduction_is_capped() -> None:
    score = score_call([_f("P02", t) for t in range(4)], RUBRIC)  # 4 × 15 = 60, cap 40
    [item] = score.items
    assert (item.occurrences, item.deduction, item.capped) == (4, 40.0, True)
    assert score.score == 60.0


def test_weight_multiplies_the_capped_deduction() -> None:
    dead_air = score_call([_f("A01", t) for t in range(5)], RUBRIC)  # min(15, 9) × 0.5
    interruptions = score_call([_f("A02", 1)], RUBRIC)  # 4 × 2
    assert dead_air.items[0].deduction == 4.5 and dead_air.score == 95.5
    assert interruptions.items[0].deduction == 8.0 and interruptions.score == 92.0


def test_fatal_item_scores_zero_whatever_else() -> None:
    score = score_call([_f("A01", 0.5), _f("P01", 3), _f("C01", 4)], RUBRIC)
    assert (score.score, score.fatal, score.passed) == (0.0, True, False)
    assert score.fatal_rules == ("P01",)
    threats = next(i for i in score.items if i.item_id == "threats")
    assert threats.fatal and threats.finding_indexes == (1,)


def test_score_never_goes_below_zero() -> None:
    findings = [_f("P02", t) for t in range(3)] + [_f("M01"), _f("A02", 1), _f("A01", 2)]
    rubric = parse_rubric(
        json.dumps(
            {
                "version": "harsh",
                "pass_mark": 60,
                "sections": [
                    {
                        "id": "all",
                        "name_zh": "全部",
                        "items": [
                            {
                                "id": "a",
                                "name_zh": "甲",
                                "rules": ["P02"],
                                "deduction": 50,
                                "cap": 100,
                            },
                            {
                                "id": "b",
                                "name_zh": "乙",
                                "rules": ["M01"],
                                "deduction": 30,
                                "cap": 30,
                            },
                        ],
                    }
                ],
            }
        )
    )
    score = score_call(findings, rubric)
    assert score.score == 0.0 and not score.fatal  # 130 deducted, floored at 0
    assert score.unscored_rules == ("A01", "A02")  # reported, not silently dropped


def test_customer_signals_are_visible_but_cost_nothing() -> None:
    score = score_call([_f("C01", 2), _f("C01", 5)], RUBRIC)
    assert score.score == 100.0 and score.passed
    [signal] = score.items
    assert (signal.item_id, signal.occurrences, signal.deduction) == ("complaint", 2, 0.0)
    assert signal.finding_indexes == (0, 1)


def test_breakdown_links_each_item_to_its_findings() -> None:
    findings = [_f("M01"), _f("P02", 1), _f("A01", 2), _f("P02", 3)]
    score = score_call(findings, RUBRIC)
    links = {i.item_id: i.finding_indexes for i in score.items}
    assert links == {"insults": (1, 3), "hours": (0,), "dead_air": (2,)}
    rules_of = {item.id: set(item.rules) for item in RUBRIC.items}
    for item in score.items:
        assert {findings[i].rule for i in item.finding_indexes} <= rules_of[item.item_id]


def test_dismissed_finding_is_left_out_and_the_score_recomputed() -> None:
    findings = [_f("P01", 1), _f("P02", 2), _f("A01", 3)]
    before = rescore_after_review([ReviewedFinding(f) for f in findings], RUBRIC)
    assert before.score == 0.0 and before.fatal
    # The reviewer rejects the threat: the call is no longer fatal.
    reviewed = [
        ReviewedFinding(findings[0], "dismissed"),
        ReviewedFinding(findings[1], "confirmed"),
        ReviewedFinding(findings[2], "pending"),
    ]
    after = rescore_after_review(reviewed, RUBRIC)
    assert (after.score, after.fatal, after.passed) == (83.5, False, True)  # 100 - 15 - 1.5
    assert after.excluded == (0,)
    # Indexes still point into the full list, not the shortened one.
    assert {i.item_id: i.finding_indexes for i in after.items} == {
        "insults": (1,),
        "dead_air": (2,),
    }
    assert after == score_call(findings, RUBRIC, excluded={0})


def test_dismissing_every_finding_gives_full_marks() -> None:
    findings = [_f("P02", 1), _f("M01")]
    score = score_call(findings, RUBRIC, excluded=[0, 1])
    assert score.score == 100.0 and score.items == () and score.excluded == (0, 1)


def test_pass_mark_is_inclusive() -> None:
    rubric = parse_rubric(
        """\
version: "edge"
pass_mark: 85
sections:
  - id: s
    name_zh: 区
    items:
      - {id: i, name_zh: 项, rules: [P02], deduction: 15, cap: 15}
"""
    )
    assert score_call([_f("P02", 1)], rubric).passed  # exactly 85


def test_versions_are_recorded_and_differ_between_rubrics() -> None:
    findings = [_f("P02", 1)]
    v1 = score_call(findings, RUBRIC)
    v2_rubric = parse_rubric((PROJECT_ROOT / "scoring" / "rubric.yaml").read_text(encoding="utf-8"))
    v2 = score_call(findings, v2_rubric)
    assert v1.rubric_version == "t-1" and v2.rubric_version == v2_rubric.version
    assert v1.rubric_digest != v2.rubric_digest
    assert v1.score == 85.0 and v2.score == 70.0


def test_score_round_trips_through_json() -> None:
    findings = [_f("P01", 1), _f("A01", 2), _f("A01", 3), _f("C03", 4), _f("R01", 0.5)]
    score = score_call(findings, RUBRIC, excluded=[2])
    restored = CallScore.from_dict(json.loads(json.dumps(score.as_dict())))
    assert restored == score


@pytest.mark.parametrize("rule", ["P01", "P03", "P04", "P06", "P08", "P09", "P10"])
def test_shipped_rubric_fatal_rules_score_zero(rule: str) -> None:
    rubric = load_rubric(PROJECT_ROOT / "scoring" / "rubric.yaml")
    score = score_call([_f("A01", 1), _f(rule, 2)], rubric)
    assert score.score == 0.0 and score.fatal and score.fatal_rules == (rule,)


def test_analysis_output_carries_score_and_breakdown() -> None:
    findings = (_f("P02", 1), _f("M01"))
    detail = score_call(findings, RUBRIC)
    analysis = CallAnalysis(
        call_id="c",
        recording="c.wav",
        status=CallStatus.ANALYZED,
        findings=findings,
        score=detail.score,
        score_detail=detail,
    )
    obj = json.loads(json.dumps(analysis_to_json(analysis), ensure_ascii=False))
    assert obj["score"] == 70.0
    breakdown = obj["score_breakdown"]
    assert breakdown["rubric_version"] == "t-1" and breakdown["total_deduction"] == 30.0
    assert [(i["item_id"], i["finding_indexes"]) for i in breakdown["items"]] == [
        ("insults", [0]),
        ("hours", [1]),
    ]
