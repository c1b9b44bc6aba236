"""Text normalisation of ASR output: Simplified Chinese, tidy punctuation, domain terms.

Whisper often writes Traditional characters for Mandarin; OpenCC converts them. The
optional domain correction replaces a stretch whose toneless pinyin equals a
collection term (逾期, 催收, 减免 …) but whose characters differ — Whisper's typical
homophone errors on telephone audio — unless the stretch is a listed real word in
that context.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from qa_service.text.pinyin import char_readings, char_syllable, fuzzy_syllable

# Whisper separates Chinese clauses with spaces; Chinese text has none, but keep the
# spaces between two Latin words or numbers ("VIP 客户" stays, "请问 您" does not).
_SPACE_NEAR_NON_ASCII = re.compile(r"(?<=[^\x00-\x7f])\s+|\s+(?=[^\x00-\x7f])")
_PUNCT_MAP = str.maketrans({",": "，", "?": "？", "!": "！", ":": "：", ";": "；"})


@dataclass(frozen=True)
class DomainVocabulary:
    """Collection terms for the decoder prompt and for pinyin-based correction."""

    prompt_terms: tuple[str, ...] = ()
    correction_terms: tuple[str, ...] = ()
    # Known mishearings whose pinyin differs from the term (欠款 heard as 线款).
    confusions: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # Homophones that are legitimate words and must be left alone.
    keep: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def load(cls, path: Path) -> DomainVocabulary:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        return cls(
            prompt_terms=tuple(raw.get("prompt_terms", [])),
            correction_terms=tuple(raw.get("correction_terms", [])),
            confusions={
                str(term): tuple(str(v) for v in variants)
                for term, variants in (raw.get("confusions") or {}).items()
            },
            keep=frozenset(raw.get("keep", [])),
        )

    def with_terms(self, terms: tuple[str, ...]) -> DomainVocabulary:
        """The same vocabulary with extra correction terms (e.g. the agency's own name)."""
        return DomainVocabulary(
            prompt_terms=self.prompt_terms,
            correction_terms=(*self.correction_terms, *terms),
            confusions=self.confusions,
            keep=self.keep,
        )

    def prompt(self, extra_terms: tuple[str, ...] = ()) -> str | None:
        terms = [*extra_terms, *self.prompt_terms]
        if not terms:
            return None
        return "信用卡催收电话录音：" + "，".join(terms) + "。"


class TextNormalizer:
    """Traditional→Simplified, punctuation and (optionally) domain-term correction."""

    def __init__(self, vocabulary: DomainVocabulary | None = None, correct: bool = False) -> None:
        import opencc

        self._t2s = opencc.OpenCC("t2s")
        self._corrector = _PinyinCorrector(vocabulary) if (vocabulary and correct) else None

    def normalize(self, text: str) -> str:
        text = self._t2s.convert(text.strip())
        text = _SPACE_NEAR_NON_ASCII.sub("", text.translate(_PUNCT_MAP))
        text = re.sub(r"\s+", " ", text).strip().lstrip("，。？！、；：,.?!;: ")
        if self._corrector is not None:
            text = self._corrector.correct(text)
        return text


# "Fuzzy pinyin" (模糊音) as Chinese input methods define it: sound pairs that southern
# speakers, telephone bandwidth and Whisper all confuse.
class _PinyinCorrector:
    """Rewrites stretches that sound like a domain term.

    An exact toneless-pinyin match is rewritten; a fuzzy-pinyin match only when it
    already shares a character with the term, which keeps unrelated words that merely
    rhyme with a term untouched.
    """

    def __init__(self, vocabulary: DomainVocabulary) -> None:
        self._keep = vocabulary.keep
        # Longest variants first, so 线款金额 is replaced before a shorter variant inside it.
        self._confusions = sorted(
            ((variant, term) for term, vs in vocabulary.confusions.items() for variant in vs),
            key=lambda kv: -len(kv[0]),
        )
        # Every reading of a polyphonic term counts (还款 is huan-kuan, not hai-kuan).
        # Longest terms first so 最低还款 wins over 还款.
        self._terms = sorted(
            (
                (term, reading)
                for term in set(vocabulary.correction_terms)
                for reading in itertools.product(*(char_readings(c) for c in term))
            ),
            key=lambda kv: -len(kv[0]),
        )

    def _syllables(self, text: str) -> list[str]:
        # One entry per character; non-Chinese characters get a placeholder.
        return [char_syllable(c) if "\u4e00" <= c <= "\u9fff" else "?" for c in text]

    def correct(self, text: str) -> str:
        for variant, term in self._confusions:
            text = text.replace(variant, term)
        chars = list(text)
        pys = self._syllables(text)
        fuzzy = [fuzzy_syllable(p) for p in pys]
        for term, term_py in self._terms:
            n = len(term)
            term_fuzzy = tuple(fuzzy_syllable(p) for p in term_py)
            i = 0
            while i + n <= len(chars):
                window = "".join(chars[i : i + n])
                if (
                    window != term
                    and window not in self._keep
                    and (
                        tuple(pys[i : i + n]) == term_py
                        or (
                            tuple(fuzzy[i : i + n]) == term_fuzzy
                            and any(a == b for a, b in zip(window, term, strict=True))
                        )
                    )
                ):
                    chars[i : i + n] = list(term)
                    pys[i : i + n] = list(term_py)
                    fuzzy[i : i + n] = list(term_fuzzy)
                    i += n
                else:
                    i += 1
        return "".join(chars)
