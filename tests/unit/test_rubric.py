"""The rubric file: the shipped one loads; every malformed one is refused with file, line, field."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from qa_service.errors import QAServiceError, RubricError
from qa_service.rules.catalogue import RULES
from qa_service.scoring.rubric import load_rubric, parse_rubric
from qa_service.settings import PROJECT_ROOT

SHIPPED = PROJECT_ROOT / "scoring" / "rubric.yaml"

VALID = """\
version: "t-1"
pass_mark: 80
sections:
  - id: compliance
    name_zh: 合规
    items:
      - id: threats
        name_zh: 威胁恐吓
        rules: [P01]
        deduction: 100
        cap: 100
        fatal: true
      - id: insults
        name_zh: 辱骂
        rules: [P02]
        deduction: 30
        cap: 60
        weight: 1.5
  - id: communication
    name_zh: 沟通技巧
    items:
      - id: dead_air
        name_zh: 静音
        rules: [A01]
        deduction: 3
        cap: 9
"""


def _refused(text: str, tmp_path: Path) -> RubricError:
    path = tmp_path / "rubric.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    with pytest.raises(RubricError) as caught:
        load_rubric(path)
    error = caught.value
    assert error.code == "invalid_rubric"
    assert isinstance(error, QAServiceError)
    assert str(path) in error.message  # the file is named
    zh, sep, en = error.message.partition(" / ")
    assert sep and zh and en  # Chinese first, then English
    return error


def test_shipped_rubric_loads_with_the_default_fatal_items() -> None:
    rubric = load_rubric(SHIPPED)
    assert rubric.version and 0 <= rubric.pass_mark <= 100
    assert rubric.fatal_rules == {"P01", "P03", "P04", "P06", "P08", "P09", "P10"}
    assert [s.id for s in rubric.sections][:3] == ["compliance", "service", "communication"]
    # Every rule in the catalogue is covered, so no finding goes unscored.
    assert {r for item in rubric.items for r in item.rules} == set(RULES)
    for rule in ("C01", "C02", "C03"):
        item = rubric.item_for_rule(rule)
        assert item is not None and item.informational and not item.fatal
    for rule in ("M01", "M02", "M03"):
        item = rubric.item_for_rule(rule)
        assert item is not None and item.section_id == "compliance" and item.deduction > 0


def test_valid_rubric_parses_items_weights_and_defaults() -> None:
    rubric = parse_rubric(VALID)
    threats = rubric.item_for_rule("P01")
    insults = rubric.item_for_rule("P02")
    dead_air = rubric.item_for_rule("A01")
    assert threats is not None and threats.fatal and threats.weight == 1.0
    assert insults is not None and (insults.deduction, insults.cap, insults.weight) == (30, 60, 1.5)
    assert dead_air is not None and dead_air.section_id == "communication"
    assert dead_air.name_en == "" and not dead_air.fatal
    assert rubric.item_for_rule("C01") is None


def test_digest_ignores_comments_but_not_content() -> None:
    base = parse_rubric(VALID)
    commented = parse_rubric("# a comment\n" + VALID.replace("pass_mark: 80", "pass_mark: 80.0"))
    assert commented.digest == base.digest
    changed = parse_rubric(VALID.replace("deduction: 30", "deduction: 25"))
    assert changed.digest != base.digest


@pytest.mark.parametrize(
    ("text", "line", "field", "words"),
    [
        (VALID.replace("[P02]", "[P99]"), 15, "sections[0].items[1].rules", "P99"),
        (
            VALID.replace("deduction: 30", "deduction: -5"),
            16,
            "sections[0].items[1].deduction",
            "negative",
        ),
        (VALID.replace("        cap: 9\n", ""), 22, "sections[1].items[0].cap", "missing"),
        (VALID.replace("deduction: 30", "deduction: 70"), 17, "sections[0].items[1].cap", "cap 60"),
        (VALID.replace("pass_mark: 80", "pass_mark: 120"), 2, "pass_mark", "between 0 and 100"),
        (
            VALID.replace("id: dead_air", "id: insults"),
            22,
            "sections[1].items[0].id",
            "duplicate item id insults",
        ),
        (
            VALID.replace("[A01]", "[P02]"),
            24,
            "sections[1].items[0].rules",
            "already mapped to item insults",
        ),
        (
            VALID.replace("weight: 1.5", "wieght: 1.5"),
            18,
            "sections[0].items[1].wieght",
            "unknown field",
        ),
        (VALID.replace('version: "t-1"', "version: 2026.11"), 1, "version", "quote numbers"),
        (
            VALID.replace("fatal: true", "fatal: maybe"),
            12,
            "sections[0].items[0].fatal",
            "true or false",
        ),
        (
            VALID.replace("deduction: 3\n", "deduction: yes\n"),
            25,
            "sections[1].items[0].deduction",
            "expected a number",
        ),
        (VALID.replace("pass_mark: 80\n", ""), 1, "pass_mark", "missing"),
        (
            VALID.replace(
                "    name_zh: 沟通技巧\n", "    name_zh: 沟通技巧\n    name_zh: 又一个\n"
            ),
            21,
            "name_zh",
            "duplicate key",
        ),
        (
            VALID.replace("rules: [A01]", "rules: []"),
            24,
            "sections[1].items[0].rules",
            "non-empty list",
        ),
    ],
    ids=[
        "unknown-rule",
        "negative-deduction",
        "missing-field",
        "cap-below-deduction",
        "pass-mark-range",
        "duplicate-item",
        "rule-in-two-items",
        "unknown-key",
        "numeric-version",
        "fatal-not-bool",
        "bool-as-number",
        "missing-pass-mark",
        "duplicate-key",
        "empty-rules",
    ],
)
def test_malformed_rubric_is_refused_naming_line_and_field(
    tmp_path: Path, text: str, line: int, field: str, words: str
) -> None:
    error = _refused(text, tmp_path)
    assert f"line {line}," in error.message and f"第 {line} 行" in error.message
    assert f"'{field}'" in error.message
    assert words in error.message
    assert error.context["line"] == line and error.context["field"] == field


def test_bad_yaml_names_line_and_column(tmp_path: Path) -> None:
    error = _refused(VALID.replace("rules: [P02]", "rules: [P02"), tmp_path)
    assert "invalid YAML" in error.message and "YAML 语法错误" in error.message
    assert "line 16, column 18" in error.message  # where the unclosed list runs into a key


def test_not_a_mapping_and_missing_file(tmp_path: Path) -> None:
    assert "expected a mapping" in _refused("- just\n- a list\n", tmp_path).message
    assert "expected a mapping" in _refused("", tmp_path).message
    with pytest.raises(RubricError, match="not found"):
        load_rubric(tmp_path / "nope.yaml")
