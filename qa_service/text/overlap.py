"""Character-bigram overlap: how much of one line's wording another line repeats.

Used offline — to keep near copies of unseen evaluation lines out of training
(``models/train_encoder_head.py``) and to find the transcript line that holds a labelled
turn's words (``bench/bench_review_retrain.py``). Punctuation and spaces do not count.
"""

from __future__ import annotations


def char_bigrams(text: str) -> set[str]:
    """The set of neighbouring letter/digit pairs of ``text`` (CJK characters included)."""
    chars = [c for c in text if c.isalnum()]
    return {a + b for a, b in zip(chars, chars[1:], strict=False)}
