"""Simplified-Chinese normalisation and pinyin-based correction of domain terms."""

from __future__ import annotations

from pathlib import Path

import pytest

from qa_service.asr.textnorm import DomainVocabulary, TextNormalizer

VOCAB = DomainVocabulary.load(Path(__file__).resolve().parents[2] / "lexicons/asr_vocabulary.yaml")


def test_traditional_output_becomes_simplified_with_chinese_punctuation() -> None:
    norm = TextNormalizer()
    assert norm.normalize("您在華信銀行的信用卡已經逾期了, 請問 您什麼時候還款?") == (
        "您在华信银行的信用卡已经逾期了，请问您什么时候还款？"
    )


@pytest.mark.parametrize(
    ("heard", "expected"),
    [
        ("您的信用卡已经预期六十天了", "您的信用卡已经逾期六十天了"),
        ("律师寒已经寄出", "律师函已经寄出"),
        ("可以申请见面部分利息", "可以申请减免部分利息"),
        ("请尽快换款", "请尽快还款"),  # fuzzy: huan-kuan ~ huan-kuan after an/ang collapse
        ("目前签款五千元", "目前欠款五千元"),
        ("可以向银行申请个性化分七", "可以向银行申请个性化分期"),
    ],
)
def test_homophones_of_domain_terms_are_corrected(heard: str, expected: str) -> None:
    assert TextNormalizer(VOCAB, correct=True).normalize(heard) == expected


def test_correction_is_off_unless_asked_and_leaves_real_words_alone() -> None:
    assert TextNormalizer(VOCAB).normalize("已经预期了") == "已经预期了"
    corrected = TextNormalizer(VOCAB, correct=True)
    assert corrected.normalize("我们一起想办法") == "我们一起想办法"  # 一起 is listed to keep
    assert corrected.normalize("预计下周还") == "预计下周还"


def test_prompt_lists_terms_and_organisations() -> None:
    vocab = DomainVocabulary(prompt_terms=("逾期", "还款"))
    prompt = vocab.prompt(("安和资产管理公司",))
    assert prompt == "信用卡催收电话录音：安和资产管理公司，逾期，还款。"
    assert DomainVocabulary().prompt() is None


def test_known_confusions_and_organisation_names_are_corrected() -> None:
    norm = TextNormalizer(VOCAB.with_terms(("长城商业银行",)), correct=True)
    assert norm.normalize("目前线款五千元") == "目前欠款五千元"
    assert norm.normalize("我是推售专员") == "我是催收专员"
    assert norm.normalize("受长程商业银行委托") == "受长城商业银行委托"
