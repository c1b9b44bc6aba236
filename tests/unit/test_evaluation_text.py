"""Text-only evaluation: counting, contexts and refusals, with the real detector."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qa_service.errors import InputError
from qa_service.evaluation.text import LabelledLine, detect_line, evaluate_lines, load_lines
from qa_service.pipeline import build_detector
from qa_service.settings import Settings

LINES = [
    {
        "id": "p01",
        "speaker": "agent",
        "text": "你再不还钱，小心你家里人出门出点什么事。",
        "labels": ["P01"],
    },
    {
        "id": "p06",
        "speaker": "agent",
        "text": "你是他老婆，他欠银行三万块，你得替他还。",
        "labels": ["P06"],
    },
    {
        "id": "c02",
        "speaker": "customer",
        "text": "我跟他没关系，以后别再打这个电话了。",
        "labels": ["C02"],
    },
    {"id": "n1", "speaker": "agent", "text": "请您通过银行官方渠道按时还款，谢谢。", "labels": []},
    {"id": "n2", "speaker": "customer", "text": "好的，我下周发工资就还。", "labels": []},
]


@pytest.fixture(scope="module")
def detector():
    return build_detector(Settings(), 1)


def _write(tmp_path: Path, rows: list[dict]) -> Path:
    path = tmp_path / "lines.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
    return path


def test_scores_rules_families_and_false_alarms(detector, tmp_path: Path) -> None:
    report = evaluate_lines(detector, load_lines(_write(tmp_path, LINES)))
    assert report.lines == 5
    assert report.rules["P01"]["tp"] == 1 and report.rules["P06"]["tp"] == 1
    assert report.rules["C02"]["tp"] == 1  # scanned on a call a third party answered
    assert report.false_alarms["agent"] == {"lines": 1, "flagged": 0, "rate": 0.0}
    assert report.families["P"]["recall"] == 1.0
    assert report.reliability and sum(r["findings"] for r in report.reliability) >= 3


def test_harmless_lines_are_scanned_on_the_debtors_own_call(detector) -> None:
    # A debt statement to the debtor is the job; only on a third-party call is it P06.
    line = LabelledLine("x", "agent", "您的信用卡欠款三万元已经逾期。", ())
    assert [f.rule for f in detect_line(detector, line)] == []


def test_a_bad_line_is_refused_with_its_place(tmp_path: Path) -> None:
    path = _write(
        tmp_path, [LINES[0], {"id": "z", "speaker": "agent", "text": "x", "labels": ["P99"]}]
    )
    with pytest.raises(InputError, match=r"lines\.jsonl:2"):
        load_lines(path)
