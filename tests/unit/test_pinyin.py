"""The shared character-reading table: one way to hear a character across the service."""

from __future__ import annotations

from pypinyin import Style, lazy_pinyin, pinyin

from qa_service.text.pinyin import (
    char_readings,
    char_syllable,
    fuzzy_syllable,
    is_han,
    split_syllable,
)


def test_readings_are_pypinyins_most_common_first_toneless() -> None:
    assert char_readings("还")[:2] == ("hai", "huan")
    assert char_syllable("绿") == "lv"  # ü written v, as lazy_pinyin does
    assert char_readings("A") == ("A",) and char_readings("7") == ("7",)
    assert char_readings("，") == ("#",) and char_readings("!") == ("#",)


def test_the_fast_table_reads_like_pypinyins_own_calls() -> None:
    # The matcher and the corrector read the table directly, ten times faster than
    # pypinyin's per-call API; over a sample of the unified block they must agree.
    for cp in range(0x4E00, 0x9FA6, 37):
        ch = chr(cp)
        assert char_syllable(ch) == lazy_pinyin(ch)[0], ch
        assert char_readings(ch) == tuple(pinyin(ch, style=Style.NORMAL, heteronym=True)[0]), ch


def test_fuzzy_classes_merge_what_telephone_asr_confuses() -> None:
    pairs = [("zhi", "zi"), ("chang", "can"), ("shen", "sen"), ("nuo", "luo"), ("xing", "xin")]
    for a, b in pairs:
        assert fuzzy_syllable(a) == fuzzy_syllable(b), (a, b)
    assert fuzzy_syllable("ba") != fuzzy_syllable("pa")


def test_syllables_split_into_initial_and_final() -> None:
    assert split_syllable("zhuang") == ("zh", "uang")
    assert split_syllable("an") == ("", "an")
    assert is_han("催") and is_han("\u3400") and not is_han("a")
