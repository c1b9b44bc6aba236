"""Fusion and context rules of the detection stage, with the real lexicon and classifier."""

from __future__ import annotations

from pathlib import Path

import pytest

from qa_service.detection.classifier import UtteranceClassifier
from qa_service.detection.detect import (
    ConductLexicon,
    Detector,
    FusionParams,
    fuse,
    fusion_decision,
)
from qa_service.detection.lexicon import LexiconMatcher
from qa_service.detection.lexicon_schema import load_lexicon
from qa_service.domain import CallMetadata, Speaker, Utterance
from qa_service.errors import LexiconError

ROOT = Path(__file__).resolve().parents[2]
A, C = Speaker.AGENT, Speaker.CUSTOMER
OPENING = "您好，我是安和资产管理公司的专员，受华信银行信用卡中心委托联系您。"
CLOSING = "好的，感谢您的配合，再见。"


@pytest.fixture(scope="module")
def detector() -> Detector:
    lexicon = load_lexicon(
        ROOT / "lexicons" / "rules", user_dictionary=ROOT / "lexicons" / "collection_terms.txt"
    )
    return Detector(
        LexiconMatcher(lexicon),
        UtteranceClassifier.load(ROOT / "models" / "classifier", num_threads=1),
        ConductLexicon.load(ROOT / "lexicons" / "conduct.yaml"),
        FusionParams(),
    )


def _call(*turns: tuple[Speaker, str]) -> list[Utterance]:
    return [Utterance(s, i * 5.0, i * 5.0 + 4.0, t) for i, (s, t) in enumerate(turns)]


def _rules(findings) -> list[tuple[str, str]]:
    return sorted((f.rule, f.speaker.value) for f in findings)


DEBTOR = CallMetadata(call_id="c", recording="c.wav", contact_role="debtor")
THIRD = CallMetadata(call_id="t", recording="t.wav", contact_role="third_party")


def test_compliant_call_has_no_findings(detector: Detector) -> None:
    call = _call(
        (A, OPENING + "请问是张伟本人吗？"),
        (C, "是我，什么事？"),
        (A, "您的信用卡已经逾期六十天，欠款五千元，请您通过银行官方渠道尽快还款。"),
        (C, "好的，我下周就还。"),
        (A, CLOSING),
    )
    assert detector.detect(call, DEBTOR) == []


def test_a_threat_is_p01_on_the_agent_turn_with_evidence(detector: Detector) -> None:
    call = _call(
        (A, OPENING),
        (C, "我现在没钱。"),
        (A, "不还钱的话，小心你家里人出门的时候出点什么事。"),
        (A, CLOSING),
    )
    findings = detector.detect(call, DEBTOR)
    p01 = [f for f in findings if f.rule == "P01"]
    assert len(p01) == 1 and p01[0].speaker is A and p01[0].start == 10.0
    assert 0 < p01[0].confidence <= 1
    assert "classifier_score" in p01[0].evidence and "matches" in p01[0].evidence


def test_customer_saying_police_words_is_c01_never_p03(detector: Detector) -> None:
    call = _call(
        (A, OPENING),
        (C, "你们再这样骚扰我，我就报警，还要去银保监会投诉你们。"),
        (A, "非常抱歉给您带来困扰，这次先到这里，稍后由我们主管给您回电。"),
    )
    rules = _rules(detector.detect(call, DEBTOR))
    assert ("C01", "customer") in rules
    assert not any(r.startswith("P") for r, _ in rules)
    assert not any(r == "R04" for r, _ in rules)  # the agent handed over


def test_complaint_not_deescalated_is_r04_on_next_agent_turn(detector: Detector) -> None:
    call = _call(
        (A, OPENING),
        (C, "你这是威胁我，我要打12378投诉你。"),
        (A, "你投诉也没用，今天必须把钱还上。"),
        (A, CLOSING),
    )
    r04 = [f for f in detector.detect(call, DEBTOR) if f.rule == "R04"]
    assert len(r04) == 1 and r04[0].start == 10.0


def test_polite_negotiation_after_a_complaint_is_still_r04(detector: Detector) -> None:
    # Promising to pass the hardship on while asking for a partial payment is carrying on
    # the collection, not pausing it or handing it over.
    call = _call(
        (A, OPENING),
        (C, "你们天天打电话，我要去银保监会投诉你们。"),
        (A, "我理解，您的情况我会反馈一下，那您这个月能不能先还一部分？"),
        (A, CLOSING),
    )
    assert [f.start for f in detector.detect(call, DEBTOR) if f.rule == "R04"] == [10.0]


def test_apologising_for_the_disturbance_is_a_courteous_close(detector: Detector) -> None:
    closing = _call((A, OPENING), (C, "好的我知道了。"), (A, "好的，抱歉打扰，您先忙。"))
    assert "R03" not in {f.rule for f in detector.detect(closing, DEBTOR)}
    # "we won't disturb you at home" is no apology, and the turn ends in a threat.
    hostile = _call((A, OPENING), (C, "嗯。"), (A, "我们不会上门打扰你，你自己看着办。"))
    assert "R03" in {f.rule for f in detector.detect(hostile, DEBTOR)}


def test_missing_identity_and_hostile_close_are_r01_and_r03(detector: Detector) -> None:
    call = _call((A, "喂，是张伟吧？"), (C, "是我。"), (A, "行了，你自己看着办。"))
    rules = {f.rule for f in detector.detect(call, DEBTOR)}
    assert {"R01", "R03"} <= rules


def test_identity_counts_only_before_the_agent_gets_down_to_the_debt(detector: Detector) -> None:
    # Company and bank both named within 30 s, but only while talking about the debt and
    # threatening the workplace: that is no identification.
    late = _call(
        (A, "喂，是李娜吗？"),
        (C, "对，我是。"),
        (A, "你在光大银行的信用卡逾期两个月了，欠款八千。"),
        (A, "不还的话我们天天打你公司前台。"),
        (A, CLOSING),
    )
    assert "R01" in {f.rule for f in detector.detect(late, DEBTOR)}
    # A greeting first, then the identification, then the debt: a proper opening.
    proper = _call(
        (A, "喂，请问是李娜女士吗？"),
        (C, "对，我是。"),
        (A, "我是安和资产管理公司的专员，受光大银行信用卡中心委托联系您。"),
        (A, "您的信用卡逾期两个月了，欠款八千，想和您商量一下还款安排。"),
        (A, CLOSING),
    )
    assert "R01" not in {f.rule for f in detector.detect(proper, DEBTOR)}


def test_mild_disclosure_to_third_party_is_p06_but_a_polite_deferral_is_not(
    detector: Detector,
) -> None:
    disclosing = _call(
        (A, OPENING + "请问是张伟本人吗？"),
        (C, "我不是，我是他同事。"),
        (A, "那麻烦您转告他一下，他信用卡欠的钱该还了。"),
        (A, CLOSING),
    )
    assert "P06" in {f.rule for f in detector.detect(disclosing, THIRD)}
    deferring = _call(
        (A, OPENING + "请问是张伟本人吗？"),
        (C, "他不在，我是他妈妈。"),
        (A, "不好意思打扰了，麻烦您让他方便时回电，具体事情我们会和他本人沟通。"),
    )
    assert detector.detect(deferring, THIRD) == []


def test_refusal_is_c02_only_from_a_third_party(detector: Detector) -> None:
    call = _call(
        (A, OPENING + "请问是张伟本人吗？"),
        (C, "我不认识这个人，以后别再给我打电话了。"),
        (A, "不好意思打扰了，再见。"),
    )
    assert "C02" in {f.rule for f in detector.detect(call, THIRD)}
    assert "C02" not in {f.rule for f in detector.detect(call, DEBTOR)}


def test_fusion_rules() -> None:
    params = FusionParams()
    assert fuse(0.9, 0.0, 0.5, params)[0]  # strong lexicon alone
    assert fuse(0.0, 0.98, 0.5, params)[0]  # classifier alone above its threshold and floor
    assert not fuse(0.0, 0.9, 0.3, params)[0]  # ... but not under the floor
    assert fuse(0.5, 0.5, 0.5, params)[0]  # weak lexicon supported by the classifier
    assert not fuse(0.5, 0.4, 0.5, params)[0]
    assert not fuse(0.2, 0.55, 0.5, params)[0]
    assert fuse(0.5, 0.5, 0.5, params)[1] == pytest.approx(0.75)


def test_weak_sound_evidence_needs_the_classifier_to_agree(detector: Detector) -> None:
    # 承诺照 for "P成裸照": the lexicon's across-word sound match is too weak alone; in a
    # threat the classifier leans to P08 and the two together make the finding.
    threat = _call(
        (A, OPENING),
        (A, "你再拖着不还，我就把你的自拍承诺照发到你们公司群里。"),
        (A, CLOSING),
    )
    findings = [f for f in detector.detect(threat, DEBTOR) if f.rule == "P08"]
    assert len(findings) == 1
    assert findings[0].evidence["matches"][0]["via"] == "across_words"
    assert findings[0].source == "lexicon+classifier"
    # The same fused sound in an everyday sentence: the classifier does not agree.
    plain = _call((A, OPENING), (A, "我们承诺照发工资的客户也可以申请分期。"), (A, CLOSING))
    assert not [f for f in detector.detect(plain, DEBTOR) if f.rule == "P08"]


class _FixedClassifier:
    """Scores chosen by the test, so the fusion rule under test is all that decides."""

    thresholds = {rule: 0.5 for rule in ("P01", "P03", "C01")}

    def __init__(self, scores: dict[str, dict[str, float]]) -> None:
        self.scores = scores

    def predict(self, items):
        return [self.scores.get(text, {}) for _, text in items]


def test_the_identification_script_needs_lexicon_evidence_for_a_prohibition(
    detector: Detector,
) -> None:
    garbled = (
        "你好，我是安和资产管理公司的专员小赵，受华兴银行委托林信宁，通话会录音，请问是试教名吗？"
    )
    threat_words = "你等着，明天有人去你家里好好跟你聊聊。"
    fixed = Detector(
        detector.matcher,
        _FixedClassifier({garbled: {"P01": 0.99}, threat_words: {"P01": 0.99}}),
        detector.conduct,
        FusionParams(),
    )
    rules = [f.rule for f in fixed.detect(_call((A, garbled), (C, "是我。"), (A, CLOSING)), DEBTOR)]
    assert "P01" not in rules  # the classifier alone does not judge the scripted opening
    later = _call((A, OPENING), (C, "是我。"), (A, threat_words), (A, CLOSING))
    assert [f.start for f in fixed.detect(later, DEBTOR) if f.rule == "P01"] == [10.0]
    # With lexicon evidence, a prohibition in the opening is still found.
    police = "我是市公安局经侦大队的，受华兴银行委托联系你。"
    found = fixed.detect(_call((A, police), (C, "啊？"), (A, CLOSING)), DEBTOR)
    assert "P03" in {f.rule for f in found}


@pytest.mark.parametrize(
    ("prob", "lex", "example", "denied", "relayed", "expected"),
    [
        (0.80, 0.0, False, False, False, "fusion"),  # reaches the rule's threshold
        (0.60, 0.0, False, False, False, None),
        (0.60, 0.9, False, False, False, "lexicon"),  # strong hit, fusion not doubting
        (0.40, 0.9, False, False, False, None),  # strong hit under the lexicon floor
        (0.60, 0.0, True, False, False, "similarity"),
        (0.60, 0.0, True, True, False, None),  # a denial cancels the example
        (0.90, 0.0, False, True, False, None),  # ... and needs denied_rule from the fusion
        (0.99, 0.0, False, True, False, "fusion"),
        (0.60, 0.9, False, True, True, None),  # relayed-and-disowned words: no lexicon alone
        (0.60, 0.9, False, True, False, "lexicon"),  # a negation the fusion does not doubt
    ],
)
def test_fusion_decision(
    prob: float, lex: float, example: bool, denied: bool, relayed: bool, expected: str | None
) -> None:
    assert _decide(prob, lex=lex, example=example, denied=denied, relayed=relayed) == expected


def _decide(
    prob: float,
    threshold: float = 0.7,
    lex: float = 0.0,
    *,
    example: bool = False,
    denied: bool = False,
    relayed: bool = False,
    excused: bool = False,
    encoder: float = 0.0,
) -> str | None:
    return fusion_decision(
        prob,
        threshold,
        lex,
        example=example,
        denied=denied,
        relayed=relayed,
        params=FusionParams(),
        excused=excused,
        encoder=encoder,
    )


@pytest.mark.parametrize(
    ("prob", "example", "expected"),
    [
        (0.85, False, None),  # the compliant wording stated raises the bar to excused_rule
        (0.92, False, "fusion"),
        (0.60, True, "similarity"),  # ... but an example still fires (no words were denied)
    ],
)
def test_a_stated_exception_raises_the_models_bar_less_than_a_denial(
    prob: float, example: bool, expected: str | None
) -> None:
    assert _decide(prob, example=example, excused=True) == expected
    assert FusionParams().excused_rule < FusionParams().denied_rule


@pytest.mark.parametrize(
    ("encoder", "denied", "excused", "expected"),
    [
        (0.97, False, False, "encoder"),  # the encoder alone is sure of a long enough clause
        (0.90, False, False, None),  # ... and only then
        (0.99, True, False, None),  # a denial or a disowned quote is never the encoder's alone
        (0.99, False, True, None),  # nor is the compliant wording stated
    ],
)
def test_the_encoder_alone_fires_only_when_sure_and_not_denied(
    encoder: float, denied: bool, excused: bool, expected: str | None
) -> None:
    # The fusion (0.65) stays under the rule's threshold (0.87).
    assert _decide(0.65, 0.87, denied=denied, excused=excused, encoder=encoder) == expected
    assert _decide(0.9, 0.87, encoder=0.99) == "fusion"  # stronger evidence keeps its name


@pytest.mark.parametrize(
    ("text", "relayed"),
    [
        # The customer's own words or fears quoted back and disowned.
        ("您刚才说律师函已经寄到单位了？我们这边没有发过任何律师函。", True),
        ("您担心我们发到您的微信群？不会的，我们也没有那些群。", True),
        ("凡是叫您转到个人支付宝的，都不是正规渠道，请您千万别转。", True),
        ("您问会不会有法警上门，我们没有这个权力，冻结只能由法院依法裁定。", True),
        # Violations that quote the customer: their promise is not a denial.
        ("您说每月只能还一千，没问题，剩下的利息我这边直接给您免掉，以后不会再有利息。", False),
        ("您说您不会用手机银行是吧？没关系，您直接在微信上转给我就行。", False),
        ("你再不还，我们的人就去你单位门口等着你。", False),
    ],
)
def test_a_quoted_and_disowned_violation_is_a_disavowal(
    detector: Detector, text: str, relayed: bool
) -> None:
    assert detector._disavowal(Utterance(A, 0.0, 4.0, text)) is relayed


@pytest.mark.parametrize(
    ("section", "entry"),
    [
        ("withdrawn:\n  C03: 钱准备好了\n", r"withdrawn\.C03"),  # a string, not a list
        ("withdrawn:\n  P05: [以银行审批为准]\n", r"withdrawn\.P05"),  # an agent rule
        ("withdrawn: [钱准备好了]\n", r"withdrawn"),
    ],
)
def test_a_malformed_withdrawn_section_names_its_entry(
    tmp_path: Path, section: str, entry: str
) -> None:
    path = tmp_path / "conduct.yaml"
    text = (ROOT / "lexicons" / "conduct.yaml").read_text(encoding="utf-8")
    path.write_text(text.split("\nwithdrawn:")[0] + "\n" + section, encoding="utf-8")
    with pytest.raises(LexiconError, match=rf"conduct\.yaml {entry}"):
        ConductLexicon.load(path)
