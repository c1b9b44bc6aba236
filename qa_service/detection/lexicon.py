"""Rule lexicons and the ASR-robust matcher that turns an utterance into lexicon evidence.

Why it exists: an inspector trusts a finding when it points at words a QA lead can read and
argue with. The lexicons (``lexicons/rules/<rule>.yaml``) hold that knowledge as data —
terms, proximity patterns (an authority word near an action word), exceptions and a
rationale per entry. :mod:`qa_service.detection.lexicon_schema` loads and validates them
(re-exported here); this module scans text with them. It gives evidence, not verdicts:
speaker gating, the classifier and call context are fusion's job.

How a text is scanned, once, whatever the number of terms:

* **characters** — one Aho–Corasick automaton over every term and pattern-slot alternative
  (ASCII folded to lower case, full-width to half-width);
* **sound** — one automaton over fuzzy-pinyin keys (``pinyin.fuzzy_syllable``: z/zh, c/ch,
  s/sh, n/l, an/ang …) of every term with two syllables that carry meaning (not 砍你: 看你
  sounds the same). A hit is then graded: the same toneless pinyin as a reading of the term
  (减免 heard as 见面, 律师函 as 律师寒) is ``pinyin``; the same fuzzy pinyin only is
  ``fuzzy`` and must share a character other than a pronoun or particle with the term, as
  in ``textnorm``. A stretch that is itself an everyday word (知道 for 直到) is that word,
  and one with a grammatical word (不, 这, 把, 着 …) in place of a term's syllable is
  that word (批不批 is not 批捕). Terms of four syllables or more,
  and slots or three-syllable terms whose entry says ``near_miss: true`` (公安局 heard as
  国安局), may also have one character off whose syllable keeps its initial, found
  through half-term anchor keys in the same automaton.

The text side uses each character's most common toneless reading (a per-process cache:
whole-sentence pypinyin costs ~170 µs an utterance), the term side its phrase-aware reading
and its characters' common readings (every heteronym only from three syllables on). A
correctly written term is the character automaton's; the sound automaton is for wrong
characters, which Whisper picks by their common sound.

What jieba (one private ``Tokenizer`` with ``lexicons/collection_terms.txt``, HMM off so only
dictionary words form) is for, and only on utterances that already have candidate hits:

1. **word boundaries** of short matches: a one-character term or slot must be a whole word
   (滚 but not 滚动, 他 but not 其他, 还 but not 还是), and a two-character term, a term or
   slot only heard, or any term of an entry marked ``whole_word`` must not straddle a word
   boundary (上门 is not in 马上门口, 公安 not in 办公安排, 曝光你 not in 曝光你们, 不要脸
   not in 不要联系), nor may a three-character term only heard. Longer terms are specific
   enough, and jieba splits them unpredictably (打打/到/你/接/为止);
2. **negation scope**: a cue (不会, 别, 请勿 …) cancels a hit only if it ends a word (不要脸
   and 别人 are not cues) and sits in the same clause within a few characters before it;
   别/不要 followed by 让/逼 is a threat (别逼我们上门), 要不要 a question.

Exceptions (合规话术 such as 以银行审批为准) cancel their rule's hits in the same sentence,
unless a cue right before them negates them (别走银行官方渠道).

Weights: an entry's ``weight`` (how strong the evidence is alone) times the match quality —
1.0 characters, 0.9 toneless pinyin, 0.8 fuzzy pinyin, 0.7 one-syllable near miss (the
weakest slot for a pattern).
"""

from __future__ import annotations

import itertools
import logging
from bisect import bisect_right
from dataclasses import dataclass, replace
from functools import cache
from math import prod
from operator import ne
from typing import Any

import ahocorasick

from qa_service.detection.lexicon_schema import (
    LEXICON_RULES,
    HitKind,
    Lexicon,
    LexiconEntry,
    LexiconHit,
    NegationRules,
    ProximityPattern,
    load_lexicon,
)
from qa_service.text.pinyin import (
    char_readings,
    char_syllable,
    fuzzy_syllable,
    is_han,
    split_syllable,
)

__all__ = [
    "LEXICON_RULES",
    "HitKind",
    "Lexicon",
    "LexiconEntry",
    "LexiconHit",
    "LexiconMatcher",
    "NegationRules",
    "ProximityPattern",
    "load_lexicon",
]

_VIA_FACTOR = {"chars": 1.0, "pinyin": 0.9, "fuzzy": 0.8, "near_miss": 0.7, "across_words": 0.4}
# A sound match cutting across a word (诺照 in 承诺照 for 裸照: Whisper heard "P成裸照" as
# 承诺照) is kept as weak evidence: too weak to fire alone (0.9 × 0.4 = 0.36 is below
# fusion's lexicon_alone), enough to back a classifier that leans the same way.
# Pronouns and particles: written right by the recogniser, they carry no sound evidence.
_FUNCTION_CHARS = frozenset("你您我他她它们的了吗呢吧啊")
# Grammatical words the recogniser writes as such: heard in place of one of a term's
# content syllables, they are that word, not the term misheard (把这 is not 八折, 批不批
# not 批捕, 留着 not 六折). 是 and 在 are left out: 是/事 and 在/再 are Whisper's commonest
# homophone swaps. On the free-written training lines, spelt right so that every sound
# match is a coincidence, a P rule's best sound hit fell on a line of another rule or a
# harmless one 204 times (and on its own rule's 92); with this check, the pronoun-only
# fuzzy check below and heard terms kept off word boundaries: 48 (75).
_GRAMMAR_CHARS = frozenset("不没这那着把被对了的得地都也就还和跟给过")
_NOT_CONTENT = _GRAMMAR_CHARS | _FUNCTION_CHARS
# A sound match whose text is itself an everyday word (jieba frequency at least this: 知道
# for 直到, 基础 for 寄出, 亿元 for 医院) is that word, not a misheard term; 见面 (2,189)
# for 减免 and 预期 (1,656) for 逾期, Whisper's typical errors, stay below.
_COMMON_WORD_FREQ = 3000
# A dictionary word rarer than this (照发: 19) says little about where a garbled
# transcript's words end.
_RARE_WORD_FREQ = 100
_MAX_READINGS = 32  # heteronym combinations per term, beyond which only the two readings
# A slot heard only by its sound is weak evidence; it must sit close to its neighbour slot.
_PHONETIC_MAX_GAP = 4
_SENTENCE_END = frozenset("。！？!?；;\n")
_CLAUSE_END = _SENTENCE_END | frozenset("，,、：:")
# Coverbs that open a phrase between a negation and its verb (不会把…发到, 不会在…公开).
_COVERBS = frozenset("把在给向对跟和往到")
_COVERB_REACH = 12  # extra characters such a phrase may hold
# Full-width ASCII → half-width, upper → lower; length-preserving so offsets stay valid.
_FOLD = {c: chr(c - 0xFEE0) for c in range(0xFF01, 0xFF5F)}
_FOLD.update({ord(c): c.lower() for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ"})
_FOLD.update({c + 0xFEE0: chr(c).lower() for c in range(ord("A"), ord("Z") + 1)})


# --- matching --------------------------------------------------------------------------------


def _term_readings(key: str) -> frozenset[tuple[str, ...]]:
    """The term as said (pypinyin's phrase-aware reading) and as its characters read alone;
    every heteronym combination only from three syllables on (替他还 is ti-ta-huan, which
    pypinyin reads hai). Two-syllable terms with rare readings made ordinary words sound
    like terms (家 read jie: 你接 ~ 你家).
    """
    from pypinyin import lazy_pinyin

    said: list[str] = []
    for han, group in itertools.groupby(key, is_han):
        run = "".join(group)
        syllables = lazy_pinyin(run) if han else []
        said += syllables if len(syllables) == len(run) else [char_syllable(c) for c in run]
    readings = {tuple(said), tuple(char_syllable(c) for c in key)}
    options = [char_readings(c) for c in key]
    if len(key) >= 3 and prod(len(o) for o in options) <= _MAX_READINGS:
        readings.update(itertools.product(*options))
    return frozenset(readings)


@cache
def _char_fuzzy(ch: str) -> str:
    return _fuzzy(char_syllable(ch))


def _fuzzy(token: str) -> str:
    # Fuzzy classes are for Chinese syllables only; "n" as a Latin letter stays "n".
    return token if token.isascii() and len(token) == 1 else fuzzy_syllable(token)


def _sounds_close(a: str, b: str) -> bool:
    """A one-syllable near miss must keep its initial (gong~guo); a shared final alone was too
    loose (bao~dao, zhe~le)."""
    initial = split_syllable(a)[0]
    return bool(initial) and initial == split_syllable(b)[0]


def _key(tokens: tuple[str, ...]) -> str:
    return "|" + "|".join(tokens) + "|"


@dataclass(frozen=True)
class _Form:
    """One term or slot alternative of one entry, ready for both automata."""

    entry: int
    slot: int  # -1: a term entry
    term: str
    key: str  # folded characters
    readings: frozenset[tuple[str, ...]]  # toneless readings
    fuzzy: tuple[tuple[str, ...], ...]  # distinct fuzzy readings


# A sound-automaton value: form id, where the key starts inside the form, the form's folded
# characters and length, and whether the key is a near-miss anchor (half of the form).
_SoundRef = tuple[int, int, str, int, bool]


@dataclass(frozen=True)
class _Occ:
    form: int
    start: int
    end: int
    via: str


class _Text:
    """One text being scanned; jieba runs only if a check asks for word boundaries."""

    def __init__(self, text: str, tokenizer: Any) -> None:
        self.text = text
        self._tokenizer = tokenizer
        self._spans: list[tuple[int, int]] | None = None
        self._sentence_ends = [i for i, c in enumerate(text) if c in _SENTENCE_END]

    def word_at(self, i: int) -> tuple[int, int]:
        if self._spans is None:
            self._spans = [(0, 0)] * len(self.text)
            for _word, start, end in self._tokenizer.tokenize(self.text, HMM=False):
                for j in range(start, end):
                    self._spans[j] = (start, end)
        return self._spans[i]

    def sentence_of(self, i: int) -> int:
        return bisect_right(self._sentence_ends, i - 1)


class LexiconMatcher:
    """Scans texts with a :class:`Lexicon`; build once per process (automata, jieba)."""

    def __init__(self, lexicon: Lexicon) -> None:
        import jieba

        self.lexicon = lexicon
        jieba.setLogLevel(logging.WARNING)  # start-up chatter, not a problem a user must see
        self._tokenizer = jieba.Tokenizer()
        self._tokenizer.initialize()
        for word, freq, tag in lexicon.user_words:
            self._tokenizer.add_word(word, freq, tag)
        self._forms: list[_Form] = []
        self._chars = ahocorasick.Automaton()
        self._sounds = ahocorasick.Automaton()
        char_keys: dict[str, list[int]] = {}
        sound_keys: dict[str, list[_SoundRef]] = {}
        for index, entry in enumerate(lexicon.entries):
            slots = entry.pattern.slots if entry.pattern else (entry.terms,)
            for slot, alternatives in enumerate(slots):
                for term in alternatives:
                    form_id = len(self._forms)
                    form = self._make_form(index, slot if entry.pattern else -1, term)
                    self._forms.append(form)
                    char_keys.setdefault(form.key, []).append(form_id)
                    self._add_sound_keys(entry, form_id, form, sound_keys)
        for key, ids in char_keys.items():
            self._chars.add_word(key, (len(key), tuple(ids)))
        for key, refs in sound_keys.items():
            self._sounds.add_word(key, (key.count("|") - 1, tuple(refs)))
        for automaton in (self._chars, self._sounds):
            if len(automaton):
                automaton.make_automaton()
        neg = lexicon.negation
        self._cues = sorted(((c, False) for c in neg.declarative), key=lambda c: -len(c[0]))
        self._cues += sorted(((c, True) for c in neg.imperative), key=lambda c: -len(c[0]))
        self._cue_chars = frozenset(c[0][0] for c in self._cues)
        self._longest_cue = max((len(c) for c, _ in self._cues), default=0)

    @staticmethod
    def _make_form(entry: int, slot: int, term: str) -> _Form:
        key = term.translate(_FOLD)
        readings = _term_readings(key)
        fuzzy = tuple(dict.fromkeys(tuple(_fuzzy(s) for s in r) for r in sorted(readings)))
        return _Form(entry, slot, term, key, readings, fuzzy)

    def _add_sound_keys(
        self, entry: LexiconEntry, form_id: int, form: _Form, keys: dict[str, list[_SoundRef]]
    ) -> None:
        n = len(form.key)
        # Sound needs two syllables that carry meaning: in 砍你 only 砍 does, and 看你 sounds
        # the same. Pronouns and particles are always written right anyway.
        content = sum(is_han(ch) and ch not in _FUNCTION_CHARS for ch in form.key)
        if not entry.pinyin or content < 2 or any("#" in r for r in form.readings):
            return
        # By default only terms of four syllables or more: slot alternatives are many (groups)
        # and each near-miss anchor is scanned for, so slots opt in (P03's authority names).
        near = entry.near_miss if entry.near_miss is not None else n >= 4 and form.slot < 0
        for fz in form.fuzzy:
            keys.setdefault(_key(fz), []).append((form_id, 0, form.key, n, False))
            if not near or n < 3:
                continue
            # One wrong syllable leaves one half intact; both halves are anchors (for three
            # syllables the two overlapping pairs, so a wrong middle syllable is not caught).
            halves = (
                [(0, fz[:2]), (1, fz[1:])]
                if n == 3
                else [(0, fz[: n // 2]), (n // 2, fz[n // 2 :])]
            )
            for offset, anchor in halves:
                keys.setdefault(_key(anchor), []).append((form_id, offset, form.key, n, True))

    # -- scanning --

    def match(self, text: str) -> list[LexiconHit]:
        """Every lexicon hit in ``text`` (negated ones included, marked), in text order."""
        if not text or not len(self._chars):
            return []
        folded = text.translate(_FOLD)
        found: dict[tuple[int, int, int], str] = {}
        for end, (length, ids) in self._chars.iter(folded):
            for form_id in ids:
                found[(form_id, end + 1 - length, end + 1)] = "chars"
        self._scan_sounds(text, folded, found)
        if not found:
            return []
        by_entry: dict[int, list[_Occ]] = {}
        for (form_id, start, end), via in found.items():
            by_entry.setdefault(self._forms[form_id].entry, []).append(
                _Occ(form_id, start, end, via)
            )
        doc = _Text(text, self._tokenizer)
        hits: list[tuple[LexiconEntry, LexiconHit]] = []
        for index, occs in by_entry.items():
            entry = self.lexicon.entries[index]
            if entry.pattern and {self._forms[o.form].slot for o in occs} != set(
                range(len(entry.pattern.slots))
            ):
                continue  # cheap early exit before any jieba work
            occs = [fit for o in occs if (fit := self._fit(doc, folded, o, entry))]
            if entry.pattern:
                hits.extend((entry, h) for h in self._proximity_hits(doc, entry, occs))
            else:
                hits.extend((entry, self._term_hit(doc, entry, o)) for o in occs)
        return self._finish(doc, hits)

    def _scan_sounds(self, text: str, folded: str, found: dict[tuple[int, int, int], str]) -> None:
        if not len(self._sounds):
            return
        tokens = [char_syllable(ch) for ch in folded]
        fuzzy = [_char_fuzzy(ch) for ch in folded]
        line = _key(tuple(fuzzy))
        # Position of the '|' closing token i → i.
        closing: dict[int, int] = {}
        pos = 0
        for i, tok in enumerate(fuzzy):
            pos += len(tok) + 1
            closing[pos] = i
        tested: set[tuple[int, int]] = set()
        length = len(folded)
        for end, (n_key, refs) in self._sounds.iter(line):
            last = closing.get(end)
            if last is None:
                continue
            first = last - n_key + 1
            for form_id, shift, key, n, anchor in refs:
                start = first - shift
                if start < 0 or start + n > length:
                    continue
                window = folded[start : start + n]
                if window == key:
                    continue  # a term written as such is the character automaton's
                if anchor and sum(map(ne, window, key)) != 1:
                    continue  # a near miss is one character off (cheap test first: most fail)
                if (form_id, start) in tested:
                    continue
                tested.add((form_id, start))
                form = self._forms[form_id]
                via = self._grade(form, window, tokens[start : start + n], fuzzy[start : start + n])
                entry = self.lexicon.entries[form.entry]
                heard = text[start : start + n]
                if via and heard not in entry.ignore and not self._is_common_word(heard):
                    best = found.get((form_id, start, start + n))
                    if best is None or _VIA_FACTOR[via] > _VIA_FACTOR[best]:
                        found[(form_id, start, start + n)] = via

    def _is_rare_word(self, word: str) -> bool:
        return (self._tokenizer.FREQ.get(word) or 0) < _RARE_WORD_FREQ

    def _is_common_word(self, heard: str) -> bool:
        return (self._tokenizer.FREQ.get(heard) or 0) >= _COMMON_WORD_FREQ

    @staticmethod
    def _grade(form: _Form, window: str, tokens: list[str], fuzzy: list[str]) -> str | None:
        if "#" in tokens:
            return None
        pairs = list(zip(window, form.key, strict=True))
        if any(a != b and a in _GRAMMAR_CHARS and b not in _NOT_CONTENT for a, b in pairs):
            return None  # a grammatical word where the term has a content syllable
        if tuple(tokens) in form.readings:
            return "pinyin"
        differing = sum(a != b for a, b in pairs)
        if all(a in _FUNCTION_CHARS for a, b in pairs if a == b):
            # A fuzzy rhyme sharing no character, or only a pronoun (核实你 for 呼死你), is
            # mostly another word.
            return None
        for reading in form.fuzzy:
            diffs = [i for i, (a, b) in enumerate(zip(fuzzy, reading, strict=True)) if a != b]
            if not diffs:
                return "fuzzy"
            # A near miss is one character off and close in sound, every other character as
            # written (国安局 for 公安局); combined with homophones elsewhere it was noise.
            if (
                len(diffs) == 1
                and differing == 1
                and _sounds_close(fuzzy[diffs[0]], reading[diffs[0]])
            ):
                return "near_miss"
        return None

    def _fit(self, doc: _Text, folded: str, occ: _Occ, entry: LexiconEntry) -> _Occ | None:
        """``occ`` if it sits on word boundaries, a weak copy if only heard across words."""
        fits = self._fits_words(doc, folded, occ, entry)
        if fits is None:
            return occ if occ.via == "chars" else replace(occ, via="across_words")
        return occ if fits else None

    def _fits_words(self, doc: _Text, folded: str, occ: _Occ, entry: LexiconEntry) -> bool | None:
        """True if ``occ`` respects word boundaries, None if it only straddles a word."""
        start, end = occ.start, occ.end
        # A Latin/digit term must not be part of a longer Latin/digit run (12345 in a number).
        if (
            start > 0
            and folded[start].isascii()
            and folded[start].isalnum()
            and folded[start - 1].isascii()
            and folded[start - 1].isalnum()
        ):
            return False
        if (
            end < len(folded)
            and folded[end - 1].isascii()
            and folded[end - 1].isalnum()
            and folded[end].isascii()
            and folded[end].isalnum()
        ):
            return False
        if end - start == 1:
            return doc.word_at(start) == (start, end)
        # Two-character pattern slots written as such go unchecked: the other slots already
        # give context, and jieba's odd splits (的/事发/到) cost more recall than they save.
        # A slot only heard (行局 in 执行局 sounds like 刑拘) must sit on word boundaries.
        # A longer term written as such is specific enough, and so is one of four characters
        # or more heard (私下给你半个 for 私下给你办个); three heard must not cut into a word
        # either (不要联 in 不要联系 sounds like 不要脸).
        slot_chars = self._forms[occ.form].slot >= 0 and occ.via == "chars"
        long_enough = end - start > (2 if occ.via == "chars" else 3)
        if (long_enough or slot_chars) and not entry.whole_word:
            return True
        first_start, first_end = doc.word_at(start)
        last_start, last_end = doc.word_at(end - 1)
        starts_clean = first_start >= start
        ends_clean = not (last_end > end and last_start > start)
        if starts_clean and ends_clean:
            return True
        # Written as such, the term is another word's part (公安 in 办公安排). Only heard, it
        # may be syllables the recogniser fused into a wrong word (承诺/照 for 成裸照) — if it
        # still ends or starts on a boundary; cutting into words on both sides (诺照 in
        # 承诺照常) it is those words.
        if occ.via == "chars" or entry.whole_word:
            return False
        # A rare dictionary word (照发, jieba frequency 19) is no evidence of a boundary.
        text = doc.text
        starts_clean = starts_clean or self._is_rare_word(text[first_start:first_end])
        ends_clean = ends_clean or self._is_rare_word(text[last_start:last_end])
        return None if starts_clean or ends_clean else False

    def _negation(self, doc: _Text, start: int, entry: LexiconEntry) -> str:
        """The cue that negates a hit of ``entry`` starting at ``start``, or ''."""
        if not entry.negatable:
            return ""
        # An exception is negated only by a cue right before it (别走银行官方渠道), not by
        # one governing an earlier verb (不要相信任何自称公检法的电话).
        window = self.lexicon.negation.window
        window = min(2, window) if entry.exception else window
        text = doc.text
        lo = max(0, start - window - _COVERB_REACH - self._longest_cue)
        for i in range(start - 1, lo - 1, -1):
            if text[i] in _CLAUSE_END:
                lo = i + 1
                break
        prefix = text[lo:start]
        if not self._cues or not any(c in self._cue_chars for c in prefix):
            return ""
        for cue, imperative in self._cues:
            at = prefix.rfind(cue)
            while at >= 0:
                cue_start, cue_end = lo + at, lo + at + len(cue)
                between = text[cue_end:start]
                # 不会把您的情况发到群里 / 不会在朋友圈公开: a prepositional phrase sits
                # between the negation and the verb it governs.
                reach = window + _COVERB_REACH if between[:1] in _COVERBS else window
                if len(between) <= reach and self._is_cue(
                    doc, cue, cue_start, cue_end, between, imperative
                ):
                    return cue
                at = prefix.rfind(cue, 0, at + len(cue) - 1)
        return ""

    def _is_cue(
        self, doc: _Text, cue: str, cue_start: int, cue_end: int, between: str, imperative: bool
    ) -> bool:
        neg = self.lexicon.negation
        text = doc.text
        if any(b in between for b in neg.breakers):
            return False
        if imperative and any(b in between for b in neg.imperative_breakers):
            return False  # 别逼我们上门: a threat, not a negation
        if cue[0] in "不没" and len(cue) > 1 and cue_start > 0 and text[cue_start - 1] == cue[1]:
            return False  # 会不会 / 要不要 / 有没有: a question
        if cue in neg.rhetorical and _clause_after(text, cue_end).rstrip("？?！!。 ").endswith(
            ("吧", "吗", "么", "是什么")
        ):
            # 你也不想…出点什么事吧 / 这不是骚扰是什么: a rhetorical question
            return False
        word_start, word_end = doc.word_at(cue_end - 1)
        return word_end == cue_end and text[word_start:word_end] not in neg.not_negation

    def _term_hit(self, doc: _Text, entry: LexiconEntry, occ: _Occ) -> LexiconHit:
        cue = self._negation(doc, occ.start, entry)
        return LexiconHit(
            rule=entry.rule,
            entry_id=entry.entry_id,
            kind=HitKind.TERM if occ.via == "chars" else HitKind.PINYIN,
            start=occ.start,
            end=occ.end,
            matched_text=doc.text[occ.start : occ.end],
            term=self._forms[occ.form].term,
            weight=round(entry.weight * _VIA_FACTOR[occ.via], 3),
            why=entry.why,
            negated=bool(cue),
            negated_by=cue,
            via=occ.via,
        )

    def _proximity_hits(
        self, doc: _Text, entry: LexiconEntry, occs: list[_Occ]
    ) -> list[LexiconHit]:
        assert entry.pattern is not None
        pattern = entry.pattern
        by_slot: list[list[_Occ]] = [[] for _ in pattern.slots]
        for occ in occs:
            by_slot[self._forms[occ.form].slot].append(occ)
        if not all(by_slot):
            return []
        orders = (
            [tuple(range(len(by_slot)))]
            if pattern.ordered
            else list(itertools.permutations(range(len(by_slot))))
        )
        combos: list[tuple[_Occ, ...]] = []

        def extend(order: tuple[int, ...], chosen: tuple[_Occ, ...]) -> None:
            if len(combos) >= 64:  # plenty to choose the best non-overlapping few from
                return
            if len(chosen) == len(order):
                combos.append(chosen)
                return
            for occ in by_slot[order[len(chosen)]]:
                if chosen:
                    prev = chosen[-1]
                    gap = occ.start - prev.end
                    phonetic = prev.via != "chars" or occ.via != "chars"
                    limit = min(pattern.within, _PHONETIC_MAX_GAP) if phonetic else pattern.within
                    # Slots in any order may not span a comma either: across clauses they
                    # pair words that have nothing to do with each other.
                    stops = _SENTENCE_END if pattern.ordered else _CLAUSE_END
                    if (
                        gap < 0
                        or gap > limit
                        or any(c in stops for c in doc.text[prev.end : occ.start])
                    ):
                        continue
                extend(order, (*chosen, occ))

        for order in orders:
            extend(order, ())
        scored = []
        for combo in combos:
            cues = [self._negation(doc, o.start, entry) for o in combo]
            cue = next((c for c in cues if c), "")
            span = (combo[0].start, combo[-1].end)
            scored.append((bool(cue), span[1] - span[0], span, cue, combo))
        hits: list[LexiconHit] = []
        taken: list[tuple[int, int]] = []
        for negated, _length, (start, end), cue, combo in sorted(scored, key=lambda s: s[:3]):
            if any(start < t_end and t_start < end for t_start, t_end in taken):
                continue
            taken.append((start, end))
            via = min((o.via for o in combo), key=lambda v: _VIA_FACTOR[v])
            hits.append(
                LexiconHit(
                    rule=entry.rule,
                    entry_id=entry.entry_id,
                    kind=HitKind.PROXIMITY,
                    start=start,
                    end=end,
                    matched_text=doc.text[start:end],
                    term="…".join(self._forms[o.form].term for o in combo),
                    weight=round(entry.weight * _VIA_FACTOR[via], 3),
                    why=entry.why,
                    negated=negated,
                    negated_by=cue,
                    via=via,
                )
            )
        return hits

    @staticmethod
    def _finish(doc: _Text, hits: list[tuple[LexiconEntry, LexiconHit]]) -> list[LexiconHit]:
        # Exceptions that are not themselves negated cancel their rule within the sentence
        # (别走银行官方渠道 does not excuse what follows it).
        excused: dict[tuple[str, int], LexiconHit] = {}  # (rule, sentence) -> exception
        spans: list[tuple[str, int, int]] = []
        stated: list[LexiconHit] = []  # every exception said and not negated
        # An exception only heard (a sound-alike) inside the rule's own unnegatable wording
        # is part of that wording, not an excuse: 不用银行批 is an approval bypassed, whatever
        # 要银行批 sounds like.
        claimed = [
            (h.rule, h.start, h.end)
            for e, h in hits
            if not e.exception and not e.negatable and not h.negated
        ]
        # Longest first, so 官方渠道 inside a negated 银行官方渠道 does not excuse on its own.
        for entry, hit in sorted(hits, key=lambda eh: eh[1].start - eh[1].end):
            if not entry.exception:
                continue
            if any(r == entry.rule and s < hit.end and hit.start < e for r, s, e in spans):
                continue
            if hit.via != "chars" and any(
                r == entry.rule and s <= hit.start and hit.end <= e for r, s, e in claimed
            ):
                continue
            spans.append((entry.rule, hit.start, hit.end))
            if not hit.negated:
                excused.setdefault((entry.rule, doc.sentence_of(hit.start)), hit)
                stated.append(hit)
        kept: list[LexiconHit] = []
        ranked = sorted(
            (h for e, h in hits if not e.exception),
            key=lambda h: (h.negated, -h.weight, h.start - h.end, h.start),
        )
        for hit in ranked:
            if any(
                k.rule == hit.rule
                and k.entry_id == hit.entry_id
                and hit.start < k.end
                and k.start < hit.end
                for k in kept
            ):
                continue  # one hit per stretch of text per entry: the strongest
            excuse = excused.get((hit.rule, doc.sentence_of(hit.start)))
            if excuse and not hit.negated and not _turned_against(doc.text, excuse.end, hit.start):
                hit = replace(hit, negated=True, negated_by=excuse.matched_text)
            kept.append(hit)
        # The compliant wording stated where none of the rule's words are (请通过手机银行
        # 还款, 以银行审批为准) is evidence too: the statistical models read such a line as
        # the thing it rules out. It comes back as a negated hit of kind EXCEPTION, one
        # per rule, unless the agent turns against it later in the turn (官方渠道太慢，
        # 所以…).
        ruled = {h.rule for h in kept}
        for hit in sorted(stated, key=lambda h: h.start):
            if hit.rule in ruled or _turned_against(doc.text, hit.end, len(doc.text)):
                continue
            ruled.add(hit.rule)
            kept.append(
                replace(
                    hit,
                    kind=HitKind.EXCEPTION,
                    weight=EXCEPTION_WEIGHT,
                    negated=True,
                    negated_by=hit.matched_text,
                )
            )
        return sorted(kept, key=lambda h: (h.start, h.end, h.rule, h.entry_id))


# The weight of a stated exception as denial evidence, below a denied term's (which is
# the entry's weight): it says what the agent does right, not what was ruled out.
EXCEPTION_WEIGHT = 0.5

# After the compliant wording, the agent turns against it: 官方渠道比较慢，所以你打到我个人
# 卡上 / 一般要银行审批，不过我这边可以直接给你免 — the exception no longer covers what follows.
_CONTRAST = ("所以", "但是", "不过", "可是", "不如", "干脆")


def _turned_against(text: str, excuse_end: int, hit_start: int) -> bool:
    """A contrast or consequence word between an exception and a later hit."""
    return hit_start > excuse_end and any(c in text[excuse_end:hit_start] for c in _CONTRAST)


def _clause_after(text: str, start: int) -> str:
    """``text`` from ``start`` to the end of its clause."""
    for i in range(start, len(text)):
        if text[i] in _CLAUSE_END and text[i] not in "？?":
            return text[start : i + 1]
    return text[start:]
