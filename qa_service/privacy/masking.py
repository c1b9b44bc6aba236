"""Masking: what a reader without the ``view_pii`` permission sees of a call.

Masking replaces each hidden digit of a number with ``*`` character for character, so the
masked text is as long as the original (highlight offsets still line up) and separators
stay where they were: ``138 0013 8000`` → ``138 **** 8000``. The last four digits stay
visible (and a mobile's first three); see :func:`qa_service.privacy.numbers.visible_digits`.

The same functions make what the database stores in its searchable columns
(:mod:`qa_service.db.repository`), so the masked text at rest is exactly what a reader
without the permission is shown.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from qa_service.domain import CallAnalysis, CallMetadata, Finding, Utterance
from qa_service.privacy.numbers import (
    DIGIT_VALUES,
    NumberKind,
    UtteranceSpan,
    classify,
    find_in_utterances,
    find_numbers,
    visible_digits,
)

MASK = "*"


def _apply(text: str, hide: set[int]) -> str:
    if not hide:
        return text
    return "".join(MASK if i in hide else ch for i, ch in enumerate(text))


def mask_text(text: str) -> str:
    """``text`` with every personal number in it masked (one text, no neighbours)."""
    hide: set[int] = set()
    for match in find_numbers(text):
        head, tail = visible_digits(match.kind, len(match.digit_positions))
        positions = match.digit_positions
        keep = {positions[i] for i in head} | set(positions[len(positions) - tail :])
        hide.update(p for p in positions if p not in keep)
    return _apply(text, hide)


def mask_number(value: str) -> str:
    """A metadata field that *is* a number (dialled number, customer id) masked whole.

    A recognised number keeps what :func:`mask_text` would; any other value of seven or
    more digits is masked but its last four, since a field named for a number is one even
    when it fails every check (an extension, a foreign number). Other values go through
    :func:`mask_text`.
    """
    positions = [i for i, ch in enumerate(value) if ch in DIGIT_VALUES]
    digits = "".join(DIGIT_VALUES[value[i]] for i in positions)
    if len(digits) < 7:
        return mask_text(value)
    kind = classify(digits) or NumberKind.ACCOUNT
    head, tail = visible_digits(kind, len(digits))
    keep = {positions[i] for i in head} | set(positions[len(positions) - tail :])
    return _apply(value, {p for p in positions if p not in keep})


def mask_spans(text: str, spans: Sequence[UtteranceSpan]) -> str:
    """``text`` with the spans :func:`find_in_utterances` gave for it masked."""
    hide = {p for span in spans for p in span.positions if p not in span.keep}
    return _apply(text, hide)


def mask_utterance_texts(utterances: Sequence[tuple[str, str]]) -> list[str]:
    """Masked texts of a conversation (``(speaker, text)`` in order), split numbers too."""
    spans = find_in_utterances(utterances)
    return [mask_spans(text, s) for (_, text), s in zip(utterances, spans, strict=True)]


def mask_json(value: Any) -> Any:
    """Strings anywhere in a JSON-like value masked (keys too); other values unchanged."""
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, dict):
        return {mask_text(k) if isinstance(k, str) else k: mask_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [mask_json(v) for v in value]
    return value


class _Quotes:
    """Masks a quote from the transcript as its utterance was masked.

    A finding quotes (part of) an utterance; on its own a quote may hold only part of a
    number (the rest said a second later), which :func:`mask_text` cannot recognise. Where
    the quote appears in an utterance, the utterance's masked text at the same offsets is
    the answer; anything else is masked on its own.
    """

    def __init__(self, originals: Sequence[str], masked: Sequence[str]) -> None:
        self._pairs = [(o, m) for o, m in zip(originals, masked, strict=True) if o != m]

    def mask(self, quote: str) -> str:
        if quote:
            for original, masked in self._pairs:
                at = original.find(quote)
                if at >= 0:
                    return mask_text(masked[at : at + len(quote)])
        return mask_text(quote)

    def mask_json(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.mask(value)
        if isinstance(value, dict):
            return {
                self.mask(k) if isinstance(k, str) else k: self.mask_json(v)
                for k, v in value.items()
            }
        if isinstance(value, list | tuple):
            return [self.mask_json(v) for v in value]
        return value


def mask_utterances(utterances: Sequence[Utterance]) -> tuple[Utterance, ...]:
    """Utterances with numbers masked in ``text`` (across utterances) and ``raw_text``."""
    texts = mask_utterance_texts([(u.speaker.value, u.text) for u in utterances])
    return tuple(
        replace(
            u,
            text=text,
            raw_text=mask_text(u.raw_text) if u.raw_text is not None else None,
        )
        for u, text in zip(utterances, texts, strict=True)
    )


def mask_findings(
    findings: Sequence[Finding],
    utterances: Sequence[Utterance],
    masked_utterances: Sequence[Utterance] | None = None,
) -> tuple[Finding, ...]:
    """Findings with their quoted text and evidence masked as the transcript is."""
    masked = masked_utterances if masked_utterances is not None else mask_utterances(utterances)
    quotes = _Quotes([u.text for u in utterances], [u.text for u in masked])
    return tuple(
        replace(
            f,
            text=quotes.mask(f.text) if f.text is not None else None,
            evidence=quotes.mask_json(f.evidence) if f.evidence else f.evidence,
        )
        for f in findings
    )


def mask_metadata(meta: CallMetadata) -> CallMetadata:
    """The dialled number and customer id masked; the rest of the metadata is not personal."""
    return replace(
        meta,
        dialed_number=mask_number(meta.dialed_number) if meta.dialed_number else None,
        customer_id=mask_text(meta.customer_id) if meta.customer_id else meta.customer_id,
        recording=mask_text(meta.recording),
    )


def mask_analysis(analysis: CallAnalysis) -> CallAnalysis:
    """A call as a reader without ``view_pii`` sees it: every personal number masked.

    Covers the transcript (numbers split across utterances included), findings' quotes and
    evidence, the metadata's numbers, the recording's file name and the error message.
    """
    utterances = mask_utterances(analysis.utterances)
    error = analysis.error
    return replace(
        analysis,
        recording=mask_text(analysis.recording),
        utterances=utterances,
        findings=mask_findings(analysis.findings, analysis.utterances, utterances),
        metadata=mask_metadata(analysis.metadata) if analysis.metadata else None,
        error=mask_json(error) if error else error,
    )
