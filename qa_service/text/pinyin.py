"""Toneless pinyin of single characters: the one reading table of the service.

Transcript correction (:mod:`qa_service.asr.textnorm`), the lexicon matcher's sound
automaton (:mod:`qa_service.detection.lexicon`) and the classifier's ASR-noise augmentation
(:mod:`qa_service.text.asr_noise`) all hear a character the same way: its readings from
pypinyin's character table, tone marks dropped, ü written v, the most common first;
and the same fuzzy-pinyin classes (z/zh, c/ch, s/sh, n/l, an/ang, en/eng, in/ing …),
the mergers of southern Mandarin and of a recogniser on 8 kHz audio.
"""

from __future__ import annotations

from functools import cache

_FUZZY_INITIALS = (("zh", "z"), ("ch", "c"), ("sh", "s"), ("n", "l"))
_FUZZY_FINALS = (("iang", "ian"), ("uang", "uan"), ("ang", "an"), ("eng", "en"), ("ing", "in"))
_INITIALS = ("zh", "ch", "sh", *"bpmfdtnlgkhjqxrzcsyw")  # two-letter initials first


def is_han(ch: str) -> bool:
    """A CJK ideograph (unified, extension A or compatibility)."""
    return "\u3400" <= ch <= "\u9fff" or "\uf900" <= ch <= "\ufaff"


@cache
def char_readings(ch: str) -> tuple[str, ...]:
    """Toneless readings of one character, the most common first; ASCII letters and digits
    stand for themselves, anything else is '#'."""
    if ch.isascii():
        return (ch if ch.isalnum() else "#",)
    if not is_han(ch):
        return ("#",)
    # pypinyin's character table directly: lazy_pinyin(ch) returns this same first reading,
    # and pinyin(ch, heteronym=True) these readings, ten times slower.
    from pypinyin.contrib.tone_convert import to_normal
    from pypinyin.pinyin_dict import pinyin_dict

    toned = pinyin_dict.get(ord(ch))
    return tuple(dict.fromkeys(to_normal(r) for r in toned.split(","))) if toned else (ch,)


def char_syllable(ch: str) -> str:
    """The most common toneless reading of one character (see :func:`char_readings`)."""
    return char_readings(ch)[0]


def fuzzy_syllable(syllable: str) -> str:
    """Collapse a toneless pinyin syllable onto its fuzzy-pinyin class."""
    for a, b in _FUZZY_INITIALS:
        if syllable.startswith(a):
            syllable = b + syllable[len(a) :]
            break
    for a, b in _FUZZY_FINALS:
        if syllable.endswith(a):
            return syllable[: -len(a)] + b
    return syllable


@cache
def split_syllable(syllable: str) -> tuple[str, str]:
    """(initial, final) of a toneless syllable; the initial is '' for 安, 二, 欧 …"""
    for initial in _INITIALS:
        if syllable.startswith(initial) and len(syllable) > len(initial):
            return initial, syllable[len(initial) :]
    return "", syllable
