"""Column types that seal personal data at rest (see :mod:`qa_service.privacy.keys`).

A sealed column holds ``enc1:<key id>:<ciphertext>`` text; reading it gives the plaintext
back through the process's key ring. Ciphertext is randomised (a fresh nonce each time),
so comparing a sealed column with a value can never match: the comparison operators raise
instead of silently finding nothing. Look numbers up by their keyed-hash column
(``dialed_number_hash``, :func:`number_digest`).
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Dialect, Text, TypeDecorator
from sqlalchemy.sql import operators

from qa_service.db.session import dumps_json
from qa_service.privacy.keys import active_key_ring

# Purposes bound into the ciphertext: a phone number's value does not open as a transcript.
PHONE = "phone"
TRANSCRIPT = "transcript"

_REFUSED = {
    operators.eq,
    operators.ne,
    operators.in_op,
    operators.not_in_op,
    operators.like_op,
    operators.ilike_op,
    operators.contains_op,
    operators.startswith_op,
    operators.endswith_op,
    operators.lt,
    operators.le,
    operators.gt,
    operators.ge,
}


class _NoCompare(TypeDecorator.Comparator[Any]):  # type: ignore[type-arg]
    def operate(self, op: Any, *other: Any, **kwargs: Any) -> Any:
        if op in _REFUSED:
            raise TypeError(
                "sealed columns cannot be compared (the ciphertext is randomised); "
                "compare the *_hash column with number_digest(value) instead"
            )
        return super().operate(op, *other, **kwargs)


class SealedText(TypeDecorator[str]):
    """Text encrypted under the process's key ring, bound to ``purpose``."""

    impl = Text
    cache_ok = True
    comparator_factory = _NoCompare

    def __init__(self, purpose: str) -> None:
        super().__init__()
        self.purpose = purpose

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        if value is None:
            return None
        return active_key_ring().seal(value, purpose=self.purpose)

    def process_result_value(self, value: str | None, dialect: Dialect) -> str | None:
        if value is None:
            return None
        return active_key_ring().open(value, purpose=self.purpose)


class SealedJSON(TypeDecorator[dict[str, Any]]):
    """A JSON object encrypted as one sealed text (the originals of masked fields)."""

    impl = Text
    cache_ok = True
    comparator_factory = _NoCompare

    def __init__(self, purpose: str) -> None:
        super().__init__()
        self.purpose = purpose

    def process_bind_param(self, value: dict[str, Any] | None, dialect: Dialect) -> str | None:
        if value is None:
            return None
        text = dumps_json(value)
        return active_key_ring().seal(text, purpose=self.purpose)

    def process_result_value(self, value: str | None, dialect: Dialect) -> dict[str, Any] | None:
        if value is None:
            return None
        loaded = json.loads(active_key_ring().open(value, purpose=self.purpose))
        return loaded if isinstance(loaded, dict) else None


def number_digest(number: str | None) -> str | None:
    """The keyed hash a (normalised) number is stored and looked up by."""
    return active_key_ring().digest(number) if number is not None else None
