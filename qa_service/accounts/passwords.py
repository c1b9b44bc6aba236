"""The password policy of the bank's service plan, and argon2id hashing.

Policy clauses, each refused with its own Chinese message: at least 8 characters; at least
three of upper case, lower case, digits and symbols; none of the last few passwords
(``Settings.password_history``); nothing common or patterned. The last is judged by
Dropbox's zxcvbn strength estimator (dictionaries, keyboard runs, repeats, sequences,
dates, l33t) rather than a hand-made list, plus a check that the user name is not in it.

Pure functions: no database here. Hashing uses argon2-cffi's defaults (argon2id, RFC 9106
low-memory profile); :func:`needs_rehash` tells the login path when they have changed.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from zxcvbn import zxcvbn

from qa_service.errors import PasswordPolicyError

MIN_LENGTH = 8
# argon2 takes any length, but zxcvbn's matching grows quickly with it; 128 is plenty.
MAX_LENGTH = 128
MIN_CLASSES = 3
# zxcvbn scores 0-4; 3 is "safely unguessable: moderate protection from offline attacks".
MIN_STRENGTH = 3
# Words an attacker of this service would try first; zxcvbn's dictionaries are English.
_SITE_WORDS = (
    "qa",
    "qaservice",
    "admin",
    "bank",
    "yinhang",
    "xinyongka",
    "cuishou",
    "zhijian",
    "mima",
    "woaini",
)

# argon2-cffi's defaults are argon2id with the RFC 9106 low-memory parameters. Module-level
# on purpose: building it reads nothing from the environment and costs nothing.
_HASHER = PasswordHasher()


def check_password_policy(
    password: str,
    *,
    username: str,
    previous_hashes: Iterable[str] = (),
    display_name: str | None = None,
    history_size: int | None = None,
) -> None:
    """Raise :class:`PasswordPolicyError` naming the first clause ``password`` breaks.

    ``previous_hashes`` are the hashes of the last passwords of this account (the current
    one included), newest first; the caller decides how many (``Settings.password_history``,
    passed as ``history_size`` for the message).
    """
    password = unicodedata.normalize("NFC", password)
    if not MIN_LENGTH <= len(password) <= MAX_LENGTH:
        raise PasswordPolicyError(
            f"密码长度须为 {MIN_LENGTH} 到 {MAX_LENGTH} 个字符 / "
            f"the password must be {MIN_LENGTH} to {MAX_LENGTH} characters long",
            clause="length",
        )
    classes = _character_classes(password)
    if classes < MIN_CLASSES:
        raise PasswordPolicyError(
            f"密码须至少包含大写字母、小写字母、数字、符号中的 {MIN_CLASSES} 类"
            f"（当前 {classes} 类） / the password needs at least {MIN_CLASSES} of upper "
            f"case, lower case, digits and symbols (it has {classes})",
            clause="classes",
        )
    hashes = list(previous_hashes)
    if any(verify_password(stored, password) for stored in hashes):
        count = history_size or len(hashes)
        raise PasswordPolicyError(
            f"不能重复使用最近 {count} 次用过的密码 / the password is one of the last {count} used",
            clause="history",
        )
    name = unicodedata.normalize("NFKC", username).strip().lower()
    if len(name) >= 3 and name in unicodedata.normalize("NFKC", password).lower():
        raise PasswordPolicyError(
            "密码不能包含用户名 / the password must not contain the user name",
            clause="username",
        )
    inputs = [name, *_SITE_WORDS]
    if display_name:
        inputs.append(display_name)
    result = zxcvbn(password, user_inputs=inputs)
    if result["score"] < MIN_STRENGTH:
        warning = result["feedback"].get("warning") or "easy to guess"
        raise PasswordPolicyError(
            "密码过于常见或有规律（常用密码、单词加数字、键盘连续键、重复或顺序字符、年份、"
            f"用户名等），容易被猜中，请换一个 / the password is common or patterned: {warning}",
            clause="strength",
            score=result["score"],
        )


def _character_classes(password: str) -> int:
    upper = any(c.isascii() and c.isupper() for c in password)
    lower = any(c.isascii() and c.islower() for c in password)
    digit = any(c.isascii() and c.isdigit() for c in password)
    # Anything else counts as a symbol: punctuation, spaces, full-width or Chinese characters.
    symbol = any(not (c.isascii() and c.isalnum()) for c in password)
    return upper + lower + digit + symbol


def hash_password(password: str) -> str:
    """The argon2id hash of ``password`` (salted; parameters are inside the hash)."""
    return _HASHER.hash(unicodedata.normalize("NFC", password))


def verify_password(stored_hash: str, password: str) -> bool:
    """Whether ``password`` matches ``stored_hash``; a malformed hash is simply no match."""
    try:
        return _HASHER.verify(stored_hash, unicodedata.normalize("NFC", password))
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(stored_hash: str) -> bool:
    """Whether ``stored_hash`` was made with other parameters than today's (rehash at login)."""
    try:
        return _HASHER.check_needs_rehash(stored_hash)
    except (InvalidHashError, ValueError):
        return True


_dummy_hashes: dict[int, str] = {}


def dummy_verify(password: str) -> None:
    """Spend the time of one verification, for unknown user names.

    Without it a login for a name that does not exist answers faster than one for a real
    name, and the timing tells which user names exist.
    """
    key = id(_HASHER)
    if key not in _dummy_hashes:
        _dummy_hashes[key] = _HASHER.hash("not-a-real-password")
    verify_password(_dummy_hashes[key], password)
