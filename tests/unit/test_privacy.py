"""Finding and masking customers' numbers; sealing them with the key ring."""

from __future__ import annotations

import pytest

from qa_service.domain import CallAnalysis, CallMetadata, CallStatus, Finding, Speaker, Utterance
from qa_service.errors import SettingsError
from qa_service.privacy.keys import (
    SealedValueError,
    generate_key,
    key_ring_from_settings,
    ring_of,
)
from qa_service.privacy.masking import (
    mask_analysis,
    mask_number,
    mask_text,
    mask_utterance_texts,
)
from qa_service.privacy.numbers import (
    NumberKind,
    classify,
    find_numbers,
    id_card_valid,
    id_check_char,
    luhn_valid,
)
from qa_service.settings import Settings

CARD = "6222021234567890128"  # 19 digits, Luhn-valid (UnionPay-like)
VISA = "4111111111111111"
ID_X = "11010519491231002X"  # the standard's worked example
MOBILE = "13812345678"


def _kinds(text: str) -> list[tuple[str, str]]:
    return [(m.kind.value, m.digits) for m in find_numbers(text)]


# --- checksums ----------------------------------------------------------------------


def test_luhn() -> None:
    assert luhn_valid(VISA) and luhn_valid(CARD)
    assert not luhn_valid("4111111111111112")
    assert not luhn_valid("41111x1111111111")


def test_id_card_checksum_and_birth_date() -> None:
    assert id_check_char(ID_X[:17]) == "X"
    assert id_card_valid(ID_X) and id_card_valid(ID_X.lower())
    assert not id_card_valid(ID_X[:17] + "3")  # wrong check character
    assert not id_card_valid("110105194913310024")  # month 13


# --- finding ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("我手机是13812345678，你记一下", [("mobile", MOBILE)]),
        ("号码 138-1234-5678", [("mobile", MOBILE)]),
        ("+86 138 1234 5678", [("mobile", "8613812345678")]),
        ("幺三八幺二三四五六七八", [("mobile", MOBILE)]),  # spoken, 幺 for 1
        ("一三八 1234 五六七八", [("mobile", MOBILE)]),  # mixed
        ("卡号是6222 0212 3456 7890 128", [("card", CARD)]),
        ("卡号 4111-1111-1111-1111", [("card", VISA)]),
        (f"身份证号{ID_X}", [("id_card", ID_X)]),
        ("座机010-62345678", [("landline", "01062345678")]),
        ("打0571 8765 4321找我", [("landline", "057187654321")]),
        ("还款账号是 6217 0000 1111 2222 333", [("account", "6217000011112222333")]),
        ("13812345678，13987654321", [("mobile", MOBILE), ("mobile", "13987654321")]),
        ("你说什么13812345678", [("mobile", MOBILE)]),
    ],
)
def test_numbers_are_found(text: str, expected: list[tuple[str, str]]) -> None:
    assert _kinds(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "您本期欠款一万二千三百四十五元",
        "最低还款12345元，逾期90天",
        "一共13812345678元",  # an amount however long: never a number
        "还款金额¥6222021234567890128",
        "2026年11月6日14:32分打的电话",
        "2026-11-06 14:32:18",
        "三个月前还了两千块",
        "尾号5678的卡",
        "第一次第二次第三次",
        "一二三四五六七",  # seven digits, no area code
        "4111111111111112",  # fails Luhn, no account context
        "20261106",
    ],
)
def test_amounts_dates_times_and_counts_are_not_numbers(text: str) -> None:
    assert find_numbers(text) == []
    assert mask_text(text) == text


def test_classify_needs_context_for_accounts() -> None:
    assert classify("1234567890123") is None
    assert classify("1234567890123", account_context=True) is NumberKind.ACCOUNT


# --- masking ------------------------------------------------------------------------


def test_masking_keeps_the_last_four_and_a_mobiles_prefix() -> None:
    assert mask_text(f"手机{MOBILE}") == "手机138****5678"
    assert mask_text("138 1234 5678") == "138 **** 5678"
    assert mask_text(f"卡号{VISA}") == "卡号************1111"
    assert mask_text(f"身份证{ID_X}") == "身份证**************002X"
    assert mask_text("幺三八幺二三四五六七八") == "幺三八****五六七八"
    assert mask_number(MOBILE) == "138****5678"
    assert mask_number("0057123") == "***7123"  # a number field, whatever its shape
    assert mask_number("C123") == "C123"


def test_a_number_split_across_utterances_is_masked_in_both() -> None:
    turns = [
        ("customer", "我的卡号是4111 1111"),
        ("customer", "1111 1111。"),
        ("agent", "好的，手机呢"),
        ("customer", "一三八幺二三四"),
        ("customer", "五六七八"),
    ]
    assert mask_utterance_texts(turns) == [
        "我的卡号是**** ****",
        "**** 1111。",
        "好的，手机呢",
        "一三八****",
        "五六七八",
    ]


def test_another_speaker_in_between_ends_a_number() -> None:
    turns = [("customer", "一三八幺二三四"), ("agent", "五六七八")]
    assert mask_utterance_texts(turns) == ["一三八幺二三四", "五六七八"]


def test_mask_analysis_covers_transcript_findings_and_metadata() -> None:
    utterances = (
        Utterance(Speaker.CUSTOMER, 0.0, 1.0, "卡号4111 1111", raw_text="卡号4111 1111"),
        Utterance(Speaker.CUSTOMER, 1.0, 2.0, "1111 1111"),
    )
    finding = Finding(
        rule="P09",
        source="lexicon",
        confidence=0.9,
        text="1111 1111",  # on its own only half a card number
        evidence={"quote": f"打{MOBILE}", "count": 3},
    )
    analysis = CallAnalysis(
        call_id="c1",
        recording=f"{MOBILE}_20261106.wav",
        status=CallStatus.ANALYZED,
        duration_s=2.0,
        channels="stereo",
        metadata=CallMetadata(call_id="c1", recording="x.wav", dialed_number=MOBILE),
        utterances=utterances,
        findings=(finding,),
    )
    masked = mask_analysis(analysis)
    assert [u.text for u in masked.utterances] == ["卡号**** ****", "**** 1111"]
    assert masked.findings[0].text == "**** 1111"
    assert masked.findings[0].evidence == {"quote": "打138****5678", "count": 3}
    assert masked.metadata is not None and masked.metadata.dialed_number == "138****5678"
    assert masked.recording == "138****5678_20261106.wav"


# --- keys ---------------------------------------------------------------------------


def test_seal_and_open_round_trip_with_purpose_and_tamper_checks() -> None:
    ring = ring_of([generate_key()], generate_key())
    token = ring.seal(MOBILE, purpose="phone")
    assert MOBILE not in token and token.startswith("enc1:" + ring.primary_id)
    assert ring.seal(MOBILE, purpose="phone") != token  # a fresh nonce every time
    assert ring.open(token, purpose="phone") == MOBILE
    with pytest.raises(SealedValueError):
        ring.open(token, purpose="transcript")
    head, body = token.rsplit(":", 1)
    flipped = body[:-2] + ("A" if body[-2] != "A" else "B") + body[-1]
    with pytest.raises(SealedValueError):
        ring.open(f"{head}:{flipped}", purpose="phone")
    with pytest.raises(SealedValueError, match="not a sealed value"):
        ring.open(MOBILE, purpose="phone")


def test_old_keys_still_open_until_rotated() -> None:
    old, new, search = generate_key(), generate_key(), generate_key()
    token = ring_of([old], search).seal(MOBILE, purpose="phone")
    rotated = ring_of([new, old], search)
    assert rotated.needs_rotation(token)
    assert rotated.open(token, purpose="phone") == MOBILE
    assert not rotated.needs_rotation(rotated.seal(MOBILE, purpose="phone"))
    with pytest.raises(SealedValueError, match="no key"):
        ring_of([new], search).open(token, purpose="phone")


def test_digest_is_keyed() -> None:
    a, b = ring_of([generate_key()], generate_key()), ring_of([generate_key()], generate_key())
    assert a.digest(MOBILE) == a.digest(MOBILE) != b.digest(MOBILE)
    assert MOBILE not in a.digest(MOBILE)


def test_production_refuses_to_run_without_keys() -> None:
    settings = Settings(environment="production", secret_key="s" * 40)
    with pytest.raises(SettingsError) as refused:
        settings.check_for_service()
    assert refused.value.context["setting"] == "QA_DATA_KEY"
    with pytest.raises(SettingsError):
        key_ring_from_settings(settings)
    keyed = Settings(
        environment="production",
        secret_key="s" * 40,
        data_key=f"{generate_key()},{generate_key()}",
        search_key=generate_key(),
    )
    keyed.check_for_service()
    ring = key_ring_from_settings(keyed)
    assert len(ring.data_keys) == 2 and not ring.development


def test_development_falls_back_to_a_marked_public_key() -> None:
    ring = key_ring_from_settings(Settings(environment="development"))
    assert ring.development
    with pytest.raises(SettingsError, match="QA_DATA_KEY"):
        key_ring_from_settings(Settings(data_key="not base64!"))
