"""The committed utterance classifier: the rules it finds, the look-alikes it leaves alone.

Every sentence here is worded for this test (none is in models/data), so a pass means the
model generalises beyond its templates rather than recalling them.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from qa_service.detection.classifier import LABELS, UtteranceClassifier
from qa_service.domain import Speaker
from qa_service.errors import ModelError

MODEL_DIR = Path(__file__).resolve().parents[2] / "models" / "classifier"
A, C = "agent", "customer"


@pytest.fixture(scope="module")
def clf() -> UtteranceClassifier:
    return UtteranceClassifier.load(MODEL_DIR, num_threads=2)


def flags(clf: UtteranceClassifier, speaker: str, text: str) -> list[str]:
    return clf.decide(clf.predict([(speaker, text)])[0])


POSITIVES = [
    ("P01", A, "你要是还拖着，哪天你家里人出门被人堵了可别怪我们。"),
    ("P02", A, "你这种不要脸的老赖，活该一辈子穷。"),
    ("P03", A, "我是公安局经侦的，你的案子已经立案，明天派出所就来抓你。"),
    ("P04", A, "我是律师事务所的律师，律师函已经寄到你们公司了。"),
    ("P05", A, "今天还一千，剩下的利息和本金我私下给你全部免掉。"),
    ("P06", A, "你是他哥哥吧，他欠银行两万多，你替他先还上。"),
    ("P07", A, "你不接我就一直打，打到你接为止，你公司前台我也天天打。"),
    ("P08", A, "不还钱我就把你的照片P成裸照，群发给你的亲戚。"),
    ("P09", A, "我会把你欠钱不还的事发到你的家族群和朋友圈里。"),
    ("P10", A, "别走银行了，钱直接转到我个人支付宝，我帮你处理。"),
    ("C01", C, "你们这样天天打电话骚扰，我要去银保监会投诉你们。"),
    ("C02", C, "我跟他早就不联系了，他的事别再打我电话了。"),
    ("C03", C, "我下岗半年了，家里还有病人，实在还不上。"),
]


@pytest.mark.parametrize(("rule", "speaker", "text"), POSITIVES, ids=[p[0] for p in POSITIVES])
def test_every_rule_is_found_in_a_new_wording(
    clf: UtteranceClassifier, rule: str, speaker: str, text: str
) -> None:
    assert rule in flags(clf, speaker, text)


HOMOPHONE_POSITIVES = [
    ("P04", A, "律师寒已经寄到你单位了，你等着收传票吧。"),  # 函→寒
    ("P05", A, "你今天转五百，剩下的我帮你全部见面。"),  # 减免→见面
    ("P03", A, "我是国安局经侦大队的，马上派人上门抓你。"),  # 公安局→国安局
    ("C01", C, "你们再打我就抱警，还要去银保监会头诉你们。"),  # 报警→抱警, 投诉→头诉
]


@pytest.mark.parametrize(("rule", "speaker", "text"), HOMOPHONE_POSITIVES)
def test_homophone_corrupted_violations_are_still_found(
    clf: UtteranceClassifier, rule: str, speaker: str, text: str
) -> None:
    assert rule in flags(clf, speaker, text)


COMPLIANT_AGENT = [
    "您放心，我们不会上门打扰您，也不会联系您的单位。",
    "请您通过银行官方渠道还款，不要转账给任何个人。",
    "减免需要以银行审批为准，我这边只能帮您提交申请。",
    "如果有困难，您可以向银行申请分期，能否通过以银行审核为准。",
    "逾期记录会上报征信，对您以后贷款有影响，还是尽早还上比较好。",
    "我们是受银行委托的催收机构，不是公安也不是法院。",
    "您欠款的情况我们不会跟任何人说，包括您的家人。",
    "麻烦您转告他回个电话，具体事情我们只和他本人沟通。",
]


@pytest.mark.parametrize("text", COMPLIANT_AGENT)
def test_compliant_agent_sentences_sharing_vocabulary_are_not_violations(
    clf: UtteranceClassifier, text: str
) -> None:
    assert flags(clf, A, text) == []


CUSTOMER_LOOK_ALIKES = [
    ("我要报警", "C01", "P03"),
    ("我去法院告你们。", "C01", "P03"),
    ("你这是在威胁我吗？我要找律师。", "C01", "P01"),
    ("我要把你们的电话发到网上曝光。", "C01", "P09"),
    ("我没钱。", "C03", "P02"),
]


@pytest.mark.parametrize(("text", "signal", "violation"), CUSTOMER_LOOK_ALIKES)
def test_customer_look_alikes_are_signals_not_violations(
    clf: UtteranceClassifier, text: str, signal: str, violation: str
) -> None:
    found = flags(clf, C, text)
    assert signal in found
    assert not any(rule.startswith("P") for rule in found)


ORDINARY = [
    (A, "您好，我是鼎信资产的工作人员，受招商银行委托联系您，通话会录音。"),
    (A, "跟您确认一下，您的信用卡逾期六十天，欠款八千元。"),
    (A, "那您看这周五之前能先还两千元吗？"),
    (A, "好的，感谢您的配合，再见。"),
    (C, "嗯，是我，你说吧。"),
    (C, "我知道了，我周末就去还。"),
    (C, "他不在家，我是他爱人。"),
]


@pytest.mark.parametrize(("speaker", "text"), ORDINARY)
def test_ordinary_collection_talk_raises_nothing(
    clf: UtteranceClassifier, speaker: str, text: str
) -> None:
    assert flags(clf, speaker, text) == []


def test_predict_scores_every_rule_in_order_and_batches_consistently(
    clf: UtteranceClassifier,
) -> None:
    items = [(A if i % 2 else C, text) for i, (_, _, text) in enumerate(POSITIVES)]
    batched = clf.predict(items)
    assert len(batched) == len(items)
    assert all(list(scores) == list(LABELS) for scores in batched)
    assert all(0.0 <= p <= 1.0 for scores in batched for p in scores.values())
    single = clf.predict(items[3:4])[0]
    assert single == pytest.approx(batched[3], abs=1e-4)
    assert clf.predict([]) == []


def test_a_violation_late_in_a_long_utterance_is_found(clf: UtteranceClassifier) -> None:
    preamble = "跟您核实一下您名下信用卡的账单情况，" * 12
    text = preamble + "你再不还钱，我就把你的照片P成裸照发给你同事。"
    assert len(text) > 2 * clf.max_length
    assert "P08" in flags(clf, A, text)


def test_speaker_enum_is_accepted_and_an_unknown_speaker_is_a_bug(
    clf: UtteranceClassifier,
) -> None:
    by_enum = clf.predict([(Speaker.CUSTOMER, "我要报警")])[0]
    assert by_enum == clf.predict([("customer", "我要报警")])[0]
    with pytest.raises(ValueError, match="speaker"):
        clf.predict([("bank", "你好")])


def test_thresholds_cover_every_rule(clf: UtteranceClassifier) -> None:
    assert set(clf.thresholds) == set(LABELS)
    assert all(0.0 < t < 1.0 for t in clf.thresholds.values())


def test_a_missing_model_dir_is_a_model_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="not found"):
        UtteranceClassifier.load(tmp_path / "nowhere")


def test_an_incomplete_model_dir_is_a_model_error(tmp_path: Path) -> None:
    partial = tmp_path / "classifier"
    partial.mkdir()
    shutil.copy(MODEL_DIR / "config.json", partial / "config.json")
    shutil.copy(MODEL_DIR / "labels.json", partial / "labels.json")
    with pytest.raises(ModelError, match=r"model\.safetensors"):
        UtteranceClassifier.load(partial)
    shutil.copy(MODEL_DIR / "model.safetensors", partial / "model.safetensors")
    with pytest.raises(ModelError):  # the character vocabulary is missing
        UtteranceClassifier.load(partial)
