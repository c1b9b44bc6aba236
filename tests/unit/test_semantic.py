"""Meaning-level detection: similarity rules, the encoder head, fusion and weak evidence."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from qa_service.detection.classifier import UtteranceClassifier
from qa_service.detection.detect import ConductLexicon, Detector, FusionParams
from qa_service.detection.lexicon import LexiconMatcher
from qa_service.detection.lexicon_schema import load_lexicon
from qa_service.detection.semantic import (
    EncoderHead,
    SemanticScorer,
    SentenceEncoder,
    SimilarityIndex,
)
from qa_service.domain import CallMetadata, Speaker, Utterance
from qa_service.errors import LexiconError, ModelError
from qa_service.evaluation.text import reliability_table

ROOT = Path(__file__).resolve().parents[2]
RULES_DIR = ROOT / "lexicons" / "rules"
A, C = Speaker.AGENT, Speaker.CUSTOMER
OPENING = "您好，我是安和资产管理公司的专员，受华信银行信用卡中心委托联系您。"
CLOSING = "好的，感谢您的配合，再见。"
DEBTOR = CallMetadata(call_id="c", recording="c.wav", contact_role="debtor")


@pytest.fixture(scope="module")
def encoder(tmp_path_factory: pytest.TempPathFactory) -> SentenceEncoder:
    return SentenceEncoder(num_threads=1, cache_dir=tmp_path_factory.mktemp("enc"))


@pytest.fixture(scope="module")
def lexicon():
    return load_lexicon(RULES_DIR, user_dictionary=ROOT / "lexicons" / "collection_terms.txt")


@pytest.fixture(scope="module")
def classifier() -> UtteranceClassifier:
    return UtteranceClassifier.load(ROOT / "models" / "classifier", num_threads=1)


def _detector(lexicon, classifier, encoder, examples=None, params=None) -> Detector:
    similarity = SimilarityIndex(
        examples if examples is not None else lexicon.examples, lexicon.counter_examples, encoder
    )
    semantic = SemanticScorer(
        encoder, EncoderHead.load(ROOT / "models" / "encoder_head"), similarity
    )
    return Detector(
        LexiconMatcher(lexicon),
        classifier,
        ConductLexicon.load(ROOT / "lexicons" / "conduct.yaml"),
        params or FusionParams(),
        semantic,
    )


@pytest.fixture(scope="module")
def detector(lexicon, classifier, encoder) -> Detector:
    return _detector(lexicon, classifier, encoder)


def _call(*turns: tuple[Speaker, str]) -> list[Utterance]:
    return [Utterance(s, i * 5.0, i * 5.0 + 4.0, t) for i, (s, t) in enumerate(turns)]


# --- the lexicon's similarity sections ---------------------------------------------------


def _copy_rules(tmp_path: Path) -> Path:
    target = tmp_path / "rules"
    shutil.copytree(RULES_DIR, target)
    return target


def test_every_rule_ships_examples_and_the_common_file_counter_examples(lexicon) -> None:
    assert set(lexicon.examples) == {*(f"P{i:02d}" for i in range(1, 11)), "C01", "C02", "C03"}
    assert all(len(v) >= 5 for v in lexicon.examples.values())
    assert len(lexicon.counter_examples["*"]) >= 10


def test_a_duplicate_example_is_refused_with_file_and_place(tmp_path: Path) -> None:
    rules = _copy_rules(tmp_path)
    path = rules / "P01.yaml"
    path.write_text(
        path.read_text(encoding="utf-8") + "  - 晚上走夜路的时候小心一点\n", encoding="utf-8"
    )
    with pytest.raises(LexiconError, match=r"P01\.yaml examples\[\d+\].*重复"):
        load_lexicon(rules)


def test_examples_must_be_a_list_of_sentences(tmp_path: Path) -> None:
    rules = _copy_rules(tmp_path)
    path = rules / "C03.yaml"
    path.write_text(
        path.read_text(encoding="utf-8") + "\ncounter_examples: 我很好\n", encoding="utf-8"
    )
    with pytest.raises(LexiconError, match="C03.yaml counter_examples"):
        load_lexicon(rules)


# --- similarity rules ---------------------------------------------------------------------


def test_a_paraphrase_is_nearer_its_rule_than_a_harmless_line(lexicon, encoder) -> None:
    index = SimilarityIndex(lexicon.examples, lexicon.counter_examples, encoder)
    vecs = encoder.encode(["晚上回家路上你可得小心点", "请您通过银行官方渠道按时还款"])
    threat, harmless = index.best(vecs, ["P01"])
    assert threat["P01"].margin > harmless["P01"].margin
    assert harmless["P01"].margin < 0  # closer to a harmless counter-example
    assert not index.fires(harmless["P01"])


def test_adding_an_example_catches_a_new_pattern_without_retraining(
    lexicon, classifier, encoder
) -> None:
    # A new off-channel trick from the field: paying in shopping cards.
    line = "你去超市买几张购物卡，把卡号拍给我就行"
    call = _call((A, OPENING), (C, "你说吧。"), (A, line), (A, CLOSING))
    examples = dict(lexicon.examples)
    before = _detector(lexicon, classifier, encoder, examples).detect(call, DEBTOR)
    examples["P10"] = (*examples["P10"], "去超市买几张购物卡，把卡号拍给我")
    after = _detector(lexicon, classifier, encoder, examples).detect(call, DEBTOR)
    new = [f for f in after if f.rule == "P10"]
    assert not [f for f in before if f.rule == "P10"]
    assert new and new[0].evidence["similar_example"] == "去超市买几张购物卡，把卡号拍给我"
    assert "similarity" in new[0].source


# --- the encoder head and fusion -------------------------------------------------------------


def test_the_head_refuses_an_incomplete_directory(tmp_path: Path) -> None:
    with pytest.raises(ModelError):
        EncoderHead.load(tmp_path)
    shutil.copytree(ROOT / "models" / "encoder_head", tmp_path / "h")
    (tmp_path / "h" / "head.json").write_text('{"labels": ["P01"]}', encoding="utf-8")
    with pytest.raises(ModelError):
        EncoderHead.load(tmp_path / "h")


def test_fused_probability_rises_with_each_kind_of_evidence() -> None:
    head = EncoderHead.load(ROOT / "models" / "encoder_head")
    for rule in head.labels:
        f = head.fusion
        base = f.probability(rule, 0.0, 0.1, 0.1, 0.0)
        assert f.probability(rule, 0.9, 0.1, 0.1, 0.0) > base
        assert f.probability(rule, 0.0, 0.9, 0.9, 0.0) > base
        assert f.probability(rule, 0.0, 0.1, 0.1, 1.0) >= base
        assert 0.0 < base < f.threshold[rule]  # no evidence: no finding


def test_head_scores_the_speaker_not_just_the_words(encoder) -> None:
    head = EncoderHead.load(ROOT / "models" / "encoder_head")
    vec = encoder.encode(["你再这样我就报警了"])
    agent, customer = head.predict(np.repeat(vec, 2, axis=0), ["agent", "customer"])
    assert customer["C01"] > 0.5
    assert agent["C01"] < customer["C01"]


def test_reliability_table_counts_bands() -> None:
    rows = reliability_table([(0.96, True), (0.97, False), (0.55, True), (0.99, True)])
    top = rows[-1]
    assert top["findings"] == 3 and top["precision"] == pytest.approx(2 / 3, abs=1e-3)
    assert rows[0]["findings"] == 1


# --- clause scanning in detection ----------------------------------------------------------


def test_a_violation_before_the_sign_off_is_found_and_localised(detector: Detector) -> None:
    long_turn = (
        "您这张卡已经欠了八千多，拖了三个月了，你要是这周还不还钱，我们就派人去你家楼下等你，"
        "好的那今天就先这样，祝您生活愉快，再见。"
    )
    call = _call((A, OPENING), (C, "嗯。"), (A, long_turn))
    findings = [f for f in detector.detect(call, DEBTOR) if f.rule == "P01"]
    assert findings, "the threat inside the long turn was not found"
    f = findings[0]
    assert "派人" in str(f.evidence["clause"]) and "再见" not in str(f.evidence["clause"])
    assert 10.0 < f.start < f.end < 14.0  # inside the turn, not its whole span


def test_compliant_stock_lines_stay_silent(detector: Detector) -> None:
    call = _call(
        (A, OPENING + "请问是张伟本人吗？"),
        (C, "是我，什么事？"),
        (A, "您的信用卡已经逾期六十天，欠款五千元，请您通过银行官方渠道尽快还款。"),
        (A, "如果您有困难，可以向银行申请分期，具体以银行审批为准，我这边不能承诺。"),
        (C, "好的，我下周就还。"),
        (A, "不好意思打扰您了，祝您生活愉快，再见。"),
    )
    assert [f.rule for f in detector.detect(call, DEBTOR) if f.rule[0] in "PC"] == []


# --- weak evidence --------------------------------------------------------------------------


def test_findings_say_why_they_may_be_weak(detector: Detector) -> None:
    threat = "你也不想你孩子放学路上出点什么事吧"
    call = _call((A, OPENING), (C, "嗯。"), (A, threat), (A, CLOSING))
    call[2] = replace(call[2], avg_logprob=-1.4)
    mono = replace(DEBTOR, channels="mono")
    found = [f for f in detector.detect(call, mono) if f.rule == "P01"]
    assert found
    weak = found[0].evidence["weak_evidence"]
    assert "guessed_speaker" in weak and "low_asr_confidence" in weak
    stereo = detector.detect(_call((A, OPENING), (C, "嗯。"), (A, "你就是个老赖！")), DEBTOR)
    assert [f.rule for f in stereo if f.rule == "P02"]
    assert all("guessed_speaker" not in f.evidence["weak_evidence"] for f in stereo)
    # Conduct findings on a mono call rest on the guessed speaker too.
    r03 = [f for f in detector.detect(call[:3], mono) if f.rule == "R03"]
    assert r03 and "guessed_speaker" in r03[0].evidence["weak_evidence"]


def test_the_greeting_is_not_judged_by_the_models_alone(detector: Detector) -> None:
    # A garbled greeting ("我找你有事" heard as "我找你又是") drew an obscenity score.
    call = _call((A, "喂，是养美吗？我找你又是。"), (C, "是我，什么事？"), (A, CLOSING))
    assert [f.rule for f in detector.detect(call, DEBTOR) if f.rule.startswith("P")] == []
    # A threat in the greeting still counts when the lexicon sees it.
    call = _call((A, "喂，是张伟吗？你也不想你孩子放学路上出点什么事吧？"), (C, "你什么意思？"))
    assert "P01" in {f.rule for f in detector.detect(call, DEBTOR)}


def test_an_example_does_not_fire_alone_on_a_denial(lexicon, classifier, encoder) -> None:
    # A sentence vector hardly sees 不会: a promise not to publish sits next to the threat
    # to publish. Where the lexicon finds the rule's words denied, the example only adds
    # evidence to the fusion.
    examples = dict(lexicon.examples)
    examples["P09"] = (*examples["P09"], "我们会在您的朋友圈公开您的欠款信息")
    line = "我们不会在您的朋友圈公开您的欠款信息"
    call = _call((A, OPENING), (C, "你说吧。"), (A, line), (A, CLOSING))
    found = _detector(lexicon, classifier, encoder, examples).detect(call, DEBTOR)
    assert not [f for f in found if f.rule == "P09"]


def test_an_anti_fraud_warning_in_the_words_of_a_violation_stays_silent(
    detector: Detector,
) -> None:
    # The agent relays someone else's improper demand and disowns it at once: the rule's
    # words are there (个人账户, 律师函) but the turn is a compliant warning.
    for line in (
        "如果有人让您把钱转到个人账户，那一定是诈骗，请不要相信。",
        "您说的那个律师函不是我们发的，您可以打银行官方客服核实。",
    ):
        call = _call((A, OPENING), (C, "嗯，你说。"), (A, line), (A, CLOSING))
        found = [f.rule for f in detector.detect(call, DEBTOR) if f.rule.startswith("P")]
        assert found == [], (line, found)
    # The same demand made by the agent is still P10.
    call = _call((A, OPENING), (C, "嗯。"), (A, "你把钱直接转到我的个人账户上，今天就转。"))
    assert "P10" in {f.rule for f in detector.detect(call, DEBTOR)}


def test_a_lexicon_hit_the_fusion_strongly_doubts_does_not_fire_alone(
    lexicon, classifier, encoder
) -> None:
    # 个人收款账户 is P10's wording; the negation scope does not reach it across 也不会给您,
    # but every other kind of evidence says the line is harmless (fused well under 0.5).
    line = "我们不会让您加任何私人微信，也不会给您个人收款账户，请您注意防范诈骗。"
    call = _call((A, OPENING), (C, "嗯。"), (A, line), (A, CLOSING))
    found = {f.rule for f in _detector(lexicon, classifier, encoder).detect(call, DEBTOR)}
    assert "P10" not in found
    # Without the floor, the lexicon hit alone made it P10.
    loose = _detector(lexicon, classifier, encoder)
    loose.params = replace(loose.params, lexicon_alone_floor=0.0)
    assert "P10" in {f.rule for f in loose.detect(call, DEBTOR)}


def test_a_customer_who_takes_the_signal_back_raises_none(detector: Detector) -> None:
    # Hardship that is over, with the money ready, and a complaint aimed elsewhere are
    # explanations, not signals; the same words without the retraction still are.
    for line, rule in (
        ("我上周住院了，手机一直关机，现在出院了，钱也准备好了，今天就还。", "C03"),
        ("我之前投诉的是另一家银行，跟你们没关系，你们态度挺好的。", "C01"),
    ):
        call = _call((A, OPENING), (C, line), (A, CLOSING))
        found = {f.rule for f in detector.detect(call, DEBTOR)}
        assert rule not in found, (line, found)
    for line, rule in (
        ("我上周住院了，花光了积蓄，现在一分钱都拿不出来。", "C03"),
        ("你们天天这样打，我要去银保监会投诉你们。", "C01"),
    ):
        call = _call((A, OPENING), (C, line), (A, CLOSING))
        assert rule in {f.rule for f in detector.detect(call, DEBTOR)}, line


@pytest.mark.parametrize(
    ("text", "withdrawn"),
    [
        ("我妈住院那阵子花了点钱，不过都过去了，这个月能还清。", {"C03"}),
        ("我不投诉也不举报，你们按正常流程来就行。", {"C01"}),
        # "not found a new job" is hardship, not its end.
        ("厂子关门了，我到现在都没找到新工作，家里老小等着吃饭。", set()),
        ("我要投诉你们，你们这是骚扰。", set()),
    ],
)
def test_withdrawn_cues(detector: Detector, text: str, withdrawn: set[str]) -> None:
    assert set(detector._withdrawn(Utterance(C, 0.0, 4.0, text))) == withdrawn
    assert detector._withdrawn(Utterance(A, 0.0, 4.0, text)) == frozenset()


def test_the_encoder_alone_speaks_for_wording_no_rule_was_written_for(
    lexicon, classifier, encoder, detector: Detector
) -> None:
    # No lexicon word, no example: the fusion stays under C01's threshold, the encoder is sure.
    call = _call((A, OPENING), (C, "我会去有关单位把你们的事说清楚。"), (A, CLOSING))
    found = [f for f in detector.detect(call, DEBTOR) if f.rule == "C01"]
    assert len(found) == 1
    finding = found[0]
    assert finding.evidence["fused"] == "encoder"
    assert finding.evidence["encoder_score"] >= FusionParams().encoder_alone
    assert finding.confidence < 0.87  # its confidence stays the fused probability ...
    assert "model_only" in finding.evidence["weak_evidence"]  # ... and it is marked weak
    strict = _detector(
        lexicon, classifier, encoder, params=replace(FusionParams(), encoder_alone=1.01)
    )
    assert "C01" not in {f.rule for f in strict.detect(call, DEBTOR)}
