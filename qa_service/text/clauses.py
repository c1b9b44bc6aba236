"""Clauses of an utterance: the unit a violation is judged on inside a long turn.

Agents often run a violation and the sign-off together in one breath ("你这个月不还，
我们就去你单位找你领导。好的，那就先这样，再见"). Scored as one text, the harmless
part dilutes the violating clause: the classifiers see an average of both. Scanning
clause by clause — and each pair of neighbouring clauses, since a threat is often a
condition plus a consequence ("你要是再拖，后果自负") — keeps the violating clause
visible and tells the reviewer *which* words it was.

Whisper writes punctuation most of the time; where it does not, a long stretch is cut
into pieces of about :data:`_TARGET_CHARS` characters at jieba word boundaries, so a
piece never splits a word.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Clause boundaries: sentence and clause punctuation, full and half width, and spaces
# (Whisper separates some phrases with a space instead of a comma).
_BOUNDARY = re.compile(r"[，。！？；：、,.!?;:…\s]+")
_MIN_CHARS = 4  # a shorter piece ("好的，") is joined to the clause after it
_TARGET_CHARS = 16  # an unpunctuated stretch longer than twice this is cut
_MAX_WHOLE = 80  # utterances up to this length are also scored whole
_STANDALONE_CHARS = 12  # a clause this long is also scored on its own
_SHORT_TURN = 30  # a turn this short is scored whole only: too short to dilute


@dataclass(frozen=True)
class Segment:
    """A piece of an utterance's text: ``text == utterance.text[start:end]``."""

    start: int
    end: int
    text: str

    @property
    def length(self) -> int:
        return self.end - self.start


def split_clauses(text: str) -> list[Segment]:
    """The utterance's clauses, in order, each at least a few characters long."""
    pieces: list[tuple[int, int]] = []
    pos = 0
    for m in _BOUNDARY.finditer(text):
        if m.start() > pos:
            pieces.append((pos, m.start()))
        pos = m.end()
    if pos < len(text):
        pieces.append((pos, len(text)))
    # Join fragments too short to mean anything to their neighbour (the next clause,
    # or the previous one at the end of the text).
    merged: list[list[int]] = []
    carry: int | None = None
    for start, end in pieces:
        if carry is not None:
            start, carry = carry, None
        if end - start < _MIN_CHARS:
            carry = start
            continue
        merged.append([start, end])
    if carry is not None:
        if merged:
            merged[-1][1] = pieces[-1][1]
        else:
            merged.append([carry, pieces[-1][1]])
    out: list[Segment] = []
    for start, end in merged:
        out.extend(_cut_long(text, start, end))
    return out


def scan_segments(text: str) -> list[Segment]:
    """What to score for one utterance: the whole text when it is not long, each pair of
    neighbouring clauses, and the clauses long enough to stand on their own.

    A short clause alone loses its context — "我们公司也不会给您寄什么律师函" cut to
    "寄什么律师函" reads like a fake-document threat — so it is only ever scored with
    a neighbour.
    """
    if not text.strip():
        return []
    clauses = split_clauses(text) if len(text) > _SHORT_TURN else []
    if len(clauses) <= 1:
        return [Segment(0, len(text), text)]
    whole = len(text) <= _MAX_WHOLE
    segments: list[Segment] = [Segment(0, len(text), text)] if whole else []
    # Two clauses of a turn scored whole are that whole: pairs only add something beyond.
    if len(clauses) > 2 or not whole:
        segments.extend(
            Segment(a.start, b.end, text[a.start : b.end])
            for a, b in zip(clauses, clauses[1:], strict=False)
        )
    segments.extend(c for c in clauses if c.length >= _STANDALONE_CHARS)
    return segments


def _cut_long(text: str, start: int, end: int) -> list[Segment]:
    if end - start <= 2 * _TARGET_CHARS:
        return [Segment(start, end, text[start:end])]
    import jieba

    bounds = [start]
    pos = start
    for word in jieba.cut(text[start:end], HMM=False):
        pos += len(word)
        if pos - bounds[-1] >= _TARGET_CHARS and end - pos >= _MIN_CHARS:
            bounds.append(pos)
    bounds.append(end)
    return [Segment(a, b, text[a:b]) for a, b in zip(bounds, bounds[1:], strict=False) if b > a]
