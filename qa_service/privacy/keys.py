"""The key ring: encryption of personal data at rest and keyed hashes for finding it again.

Values are sealed with AES-256-GCM (authenticated: a changed byte fails to open rather than
decrypting to garbage) as ``enc1:<key id>:<base64 nonce+ciphertext>``. The key id (a hash
of the key, never the key) says which key of the ring opens a value, so after a new key is
put first in ``QA_DATA_KEY`` old values still open, and ``qa-service keys rotate``
re-seals them under the new key. A *purpose* (``phone``, ``transcript`` …) is bound in as
associated data: a value copied into a column of another purpose does not open.

Equality search (dial log by number, do-not-call list, the call list's number filter) uses
``HMAC-SHA256(search key, number)`` stored beside the sealed value; the search key is a
separate key, so the hash column alone reveals nothing without it. Keys live in settings
(the environment), never in the database.

Outside production an unset ``QA_DATA_KEY``/``QA_SEARCH_KEY`` falls back to a fixed
*development* key derived from a public constant: anyone can derive it, so it protects
nothing, and production refuses to start without real keys.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from qa_service.errors import QAServiceError, SettingsError

if TYPE_CHECKING:
    from qa_service.settings import Settings

PREFIX = "enc1"
_NONCE_BYTES = 12
_KEY_BYTES = 32
_DEV_DATA_SEED = b"qa-service DEVELOPMENT data key - public, protects nothing"
_DEV_SEARCH_SEED = b"qa-service DEVELOPMENT search key - public, protects nothing"


class SealedValueError(QAServiceError):
    """A stored value cannot be opened: unknown key id, tampered bytes or a wrong purpose."""

    code = "sealed_value_unreadable"


def generate_key() -> str:
    """A new random 256-bit key, base64 as ``QA_DATA_KEY``/``QA_SEARCH_KEY`` take it."""
    return base64.b64encode(os.urandom(_KEY_BYTES)).decode("ascii")


def key_id(key: bytes) -> str:
    """A short public name of a key: the first 8 hex digits of a hash of it."""
    return hashlib.sha256(b"qa-service key id:" + key).hexdigest()[:8]


def _decode_key(text: str, setting: str) -> bytes:
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SettingsError(
            f"{setting} 不是 base64 编码的密钥 / {setting} is not a base64 key: {exc}",
            setting=setting,
        ) from exc
    if len(key) != _KEY_BYTES:
        raise SettingsError(
            f"{setting} 的密钥须为 32 字节（base64 编码）/ {setting} keys must be 32 bytes "
            f"(base64), got {len(key)}",
            setting=setting,
        )
    return key


@dataclass(frozen=True)
class KeyRing:
    """Data keys (the first seals, all open) and the search key for keyed hashes."""

    data_keys: tuple[bytes, ...]
    search_key: bytes
    development: bool = False
    _ciphers: dict[str, AESGCM] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.data_keys:
            raise SettingsError(
                "密钥环为空 / the key ring holds no data key", setting="QA_DATA_KEY"
            )
        object.__setattr__(self, "_ciphers", {key_id(k): AESGCM(k) for k in self.data_keys})

    @property
    def primary_id(self) -> str:
        """The id of the key new values are sealed with."""
        return key_id(self.data_keys[0])

    def seal(self, plaintext: str, *, purpose: str) -> str:
        """Encrypt ``plaintext`` under the primary key, bound to ``purpose``."""
        nonce = os.urandom(_NONCE_BYTES)
        kid = self.primary_id
        sealed = self._ciphers[kid].encrypt(nonce, plaintext.encode("utf-8"), _aad(purpose))
        body = base64.urlsafe_b64encode(nonce + sealed).decode("ascii")
        return f"{PREFIX}:{kid}:{body}"

    def open(self, token: str, *, purpose: str) -> str:
        """Decrypt a sealed value; raises SealedValueError if it cannot be (never guesses)."""
        kid, body = _split(token)
        cipher = self._ciphers.get(kid)
        if cipher is None:
            raise SealedValueError(
                f"缺少密钥 {kid}，无法解密（QA_DATA_KEY 中须保留旧密钥直至轮换完成）/ "
                f"no key {kid} in QA_DATA_KEY to open this value (keep old keys until "
                "`qa-service keys rotate` has finished)",
                key_id=kid,
            )
        try:
            raw = base64.urlsafe_b64decode(body)
            plain = cipher.decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], _aad(purpose))
        except (InvalidTag, ValueError, binascii.Error) as exc:
            raise SealedValueError(
                f"加密数据校验失败（被篡改或用途不符）/ sealed value failed authentication "
                f"(tampered, or sealed for another purpose than {purpose!r})",
                key_id=kid,
            ) from exc
        return plain.decode("utf-8")

    def needs_rotation(self, token: str) -> bool:
        """Whether a sealed value is under another key than the primary one."""
        return _split(token)[0] != self.primary_id

    def digest(self, number: str) -> str:
        """The keyed hash a number is looked up by (hex HMAC-SHA256)."""
        return hmac.new(self.search_key, b"number:" + number.encode("utf-8"), "sha256").hexdigest()


def is_sealed(value: str) -> bool:
    return value.startswith(PREFIX + ":")


def _split(token: str) -> tuple[str, str]:
    parts = token.split(":", 2)
    if len(parts) != 3 or parts[0] != PREFIX:
        raise SealedValueError(
            "不是加密数据 / not a sealed value (plaintext where ciphertext belongs?)",
        )
    return parts[1], parts[2]


def _aad(purpose: str) -> bytes:
    return b"qa-service:" + purpose.encode("ascii")


def _dev_key(seed: bytes) -> bytes:
    return hashlib.sha256(seed).digest()


def key_ring_from_settings(settings: Settings) -> KeyRing:
    """The ring ``QA_DATA_KEY`` (comma-separated, newest first) and ``QA_SEARCH_KEY`` make.

    Production refuses to build one without both keys; elsewhere a missing key is the
    development key (marked ``development=True``).
    """
    production = settings.environment == "production"
    data_text = settings.data_key.get_secret_value().strip()
    search_text = settings.search_key.get_secret_value().strip()
    if production and not data_text:
        raise SettingsError(
            "生产环境必须设置 QA_DATA_KEY / QA_DATA_KEY must be set in production "
            "(`qa-service keys generate` prints one)",
            setting="QA_DATA_KEY",
        )
    if production and not search_text:
        raise SettingsError(
            "生产环境必须设置 QA_SEARCH_KEY / QA_SEARCH_KEY must be set in production",
            setting="QA_SEARCH_KEY",
        )
    data_keys = (
        tuple(_decode_key(part, "QA_DATA_KEY") for part in data_text.split(",") if part.strip())
        if data_text
        else (_dev_key(_DEV_DATA_SEED),)
    )
    search_key = (
        _decode_key(search_text, "QA_SEARCH_KEY") if search_text else _dev_key(_DEV_SEARCH_SEED)
    )
    if len(set(data_keys)) != len(data_keys):
        raise SettingsError(
            "QA_DATA_KEY 中有重复密钥 / duplicate key in QA_DATA_KEY", setting="QA_DATA_KEY"
        )
    return KeyRing(
        data_keys=data_keys,
        search_key=search_key,
        development=not data_text or not search_text,
    )


# The ring the database columns use. Set once at start-up by whoever builds the service
# (serve, worker, CLI) from its settings; until then the first use builds it from
# get_settings(), so a process that never calls install_key_ring still gets its keys.
_installed: KeyRing | None = None


def install_key_ring(ring: KeyRing) -> None:
    """Make ``ring`` the key ring of this process (start-up, and tests)."""
    global _installed
    _installed = ring


def active_key_ring() -> KeyRing:
    """The key ring of this process (see :func:`install_key_ring`)."""
    global _installed
    if _installed is None:
        from qa_service.settings import get_settings

        _installed = key_ring_from_settings(get_settings())
    return _installed


@contextmanager
def using_key_ring(ring: KeyRing) -> Iterator[KeyRing]:
    """Use ``ring`` within a block, then restore the previous ring (tests, rotation)."""
    global _installed
    previous = _installed
    _installed = ring
    try:
        yield ring
    finally:
        _installed = previous


def ring_of(keys: Sequence[str], search_key: str) -> KeyRing:
    """A ring from base64 keys (newest first), e.g. for a test or a one-off tool."""
    return KeyRing(
        data_keys=tuple(_decode_key(k, "QA_DATA_KEY") for k in keys),
        search_key=_decode_key(search_key, "QA_SEARCH_KEY"),
    )
