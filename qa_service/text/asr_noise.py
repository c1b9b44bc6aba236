"""Synthetic ASR noise for Chinese text: the errors Whisper makes on telephone audio.

The utterance classifier is trained on clean, hand-written sentences but runs on Whisper
transcripts of 8 kHz calls, which write homophones (减免→见面, 逾期→预期), confuse the
"fuzzy pinyin" pairs of southern speech (是→四, 能→棱), drop short syllables and stutter
the odd character. Training on text corrupted the same way, and measuring on it, keeps
the classifier honest about that gap. Every substitution keeps the sound of the original
character, so a corrupted sentence still reads aloud like the clean one.

Randomness comes only from the ``random.Random`` (or seed) the caller passes, so a
training run or an evaluation set is reproducible.
"""

from __future__ import annotations

import random
import unicodedata
from collections import defaultdict
from dataclasses import dataclass
from functools import lru_cache

from qa_service.text.pinyin import char_readings, char_syllable, fuzzy_syllable

# GB2312 level 1 (常用字, rows 0xB0–0xD7): the 3,755 most common characters. Whisper's
# vocabulary of Chinese output is essentially this set, so substitutes are drawn from it
# rather than from the 20k+ rare characters pypinyin also knows.
_GB2312_LEVEL1_ROWS = range(0xB0, 0xD8)
_GB2312_CELLS = range(0xA1, 0xFF)


@dataclass(frozen=True)
class NoiseConfig:
    """Per-character probabilities of each kind of error.

    The defaults give roughly one error per ten Chinese characters, the character error
    rate Whisper *base* shows on the project's 8 kHz dev calls.
    """

    homophone: float = 0.07  # same toneless pinyin, other character
    fuzzy: float = 0.02  # same fuzzy-pinyin class (zh/z, ing/in …), other syllable
    drop: float = 0.02  # character missing
    duplicate: float = 0.01  # character written twice
    drop_punctuation: float = 0.3  # Whisper often leaves out commas and full stops


def is_hanzi(char: str) -> bool:
    """True for a CJK unified ideograph (the characters pinyin applies to)."""
    return "\u4e00" <= char <= "\u9fff"


@lru_cache(maxsize=1)
def common_characters() -> tuple[str, ...]:
    """The common-character table (GB2312 level 1), in GB2312 (pinyin) order."""
    chars = []
    for hi in _GB2312_LEVEL1_ROWS:
        for lo in _GB2312_CELLS:
            try:
                chars.append(bytes((hi, lo)).decode("gb2312"))
            except UnicodeDecodeError:  # the unused cells at the end of row 0xD7
                continue
    return tuple(chars)


@lru_cache(maxsize=1)
def _tables() -> tuple[dict[str, tuple[str, ...]], dict[str, tuple[str, ...]]]:
    """Common characters grouped by toneless pinyin and by fuzzy-pinyin class."""
    from pypinyin import lazy_pinyin

    by_syllable: dict[str, list[str]] = defaultdict(list)
    by_fuzzy: dict[str, list[str]] = defaultdict(list)
    chars = common_characters()
    # One call for the whole table: pypinyin is slow per call, not per character.
    for char, syllable in zip(chars, lazy_pinyin("".join(chars)), strict=True):
        by_syllable[syllable].append(char)
        by_fuzzy[fuzzy_syllable(syllable)].append(char)
    return (
        {k: tuple(v) for k, v in by_syllable.items()},
        {k: tuple(v) for k, v in by_fuzzy.items()},
    )


@lru_cache(maxsize=8192)
def readings(char: str) -> tuple[str, ...]:
    """Every toneless reading of a character (还 → hai, huan), default reading first."""
    return char_readings(char) if is_hanzi(char) else ()


def default_reading(char: str) -> str | None:
    """The reading a character has on its own (the key of the substitution tables)."""
    return char_syllable(char) if is_hanzi(char) else None


@lru_cache(maxsize=8192)
def homophones(char: str) -> tuple[str, ...]:
    """Common characters that sound exactly like ``char`` (any of its readings), toneless."""
    by_syllable, _ = _tables()
    out = [c for r in readings(char) for c in by_syllable.get(r, ()) if c != char]
    return tuple(dict.fromkeys(out))


@lru_cache(maxsize=8192)
def fuzzy_neighbours(char: str) -> tuple[str, ...]:
    """Common characters in the same fuzzy-pinyin class but with another exact syllable."""
    by_syllable, by_fuzzy = _tables()
    own = readings(char)  # a tuple: iterating a set here would follow the hash seed
    same_sound = {c for r in own for c in by_syllable.get(r, ())}
    out = [
        c
        for r in own
        for c in by_fuzzy.get(fuzzy_syllable(r), ())
        if c != char and c not in same_sound
    ]
    return tuple(dict.fromkeys(out))


def _is_punctuation(char: str) -> bool:
    return unicodedata.category(char).startswith("P")


def add_asr_noise(
    text: str,
    rng: random.Random | int,
    config: NoiseConfig | None = None,
) -> str:
    """``text`` with ASR-like errors drawn from ``rng`` (a ``random.Random`` or a seed).

    Only Chinese characters are substituted, dropped or duplicated; digits and Latin
    letters are left alone (Whisper rarely garbles them). Each character suffers at most
    one error, so the rates in ``config`` are the expected share of each kind.
    """
    config = config or NoiseConfig()
    rng = rng if isinstance(rng, random.Random) else random.Random(rng)
    out: list[str] = []
    for char in text:
        if _is_punctuation(char):
            if rng.random() >= config.drop_punctuation:
                out.append(char)
            continue
        if not is_hanzi(char):
            out.append(char)
            continue
        roll = rng.random()
        if roll < config.homophone:
            out.append(_pick(rng, homophones(char), char))
            continue
        roll -= config.homophone
        if roll < config.fuzzy:
            out.append(_pick(rng, fuzzy_neighbours(char), char))
            continue
        roll -= config.fuzzy
        if roll < config.drop:
            continue
        roll -= config.drop
        out.append(char * 2 if roll < config.duplicate else char)
    return "".join(out)


def _pick(rng: random.Random, candidates: tuple[str, ...], fallback: str) -> str:
    # A character with no homophone among the common ones (e.g. 嗯) is kept: inventing a
    # rare character would teach the model errors Whisper does not make.
    return rng.choice(candidates) if candidates else fallback
