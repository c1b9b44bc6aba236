"""The password policy, clause by clause, and argon2id hashing."""

from __future__ import annotations

import pytest
from account_helpers import STRONG
from argon2 import PasswordHasher

from qa_service.accounts import passwords
from qa_service.accounts.passwords import (
    check_password_policy,
    hash_password,
    needs_rehash,
    verify_password,
)
from qa_service.errors import PasswordPolicyError


def _refusal(password: str, **kwargs: object) -> PasswordPolicyError:
    kwargs.setdefault("username", "zhangsan")
    with pytest.raises(PasswordPolicyError) as caught:
        check_password_policy(password, **kwargs)  # type: ignore[arg-type]
    return caught.value


def test_a_strong_password_passes() -> None:
    for password in STRONG:
        check_password_policy(password, username="zhangsan")


def test_fewer_than_8_characters_is_refused() -> None:
    error = _refusal("Tq7#mZ2")
    assert error.context["clause"] == "length"
    assert "8" in error.message and "密码长度" in error.message


def test_an_overlong_password_is_refused() -> None:
    assert _refusal("Tq7#mZ2!" * 20).context["clause"] == "length"


@pytest.mark.parametrize("password", ["tq7mz2vlpqwx", "TQ7MZ2VLPQWX", "tqmz#!vlp&wx"])
def test_fewer_than_3_character_classes_is_refused(password: str) -> None:
    error = _refusal(password)
    assert error.context["clause"] == "classes"
    assert "3 类" in error.message


def test_three_classes_are_enough() -> None:
    check_password_policy("tq7#mz2!vlp9", username="zhangsan")  # lower, digits, symbols


def test_the_last_three_passwords_cannot_be_reused() -> None:
    history = [hash_password(p) for p in STRONG[:3]]
    for old in STRONG[:3]:
        error = _refusal(old, previous_hashes=history, history_size=3)
        assert error.context["clause"] == "history"
        assert "最近 3 次" in error.message
    check_password_policy(STRONG[3], username="zhangsan", previous_hashes=history)


@pytest.mark.parametrize(
    "password",
    [
        "Password1234",  # common word + digits
        "Qwer1234!",  # keyboard run
        "Qwerty123!@#",  # keyboard runs
        "Aaaaaaaa1!",  # repeats
        "Abcd1234!",  # sequences
        "P@ssw0rd!",  # l33t common password
        "Summer2024!",  # word + year
    ],
)
def test_common_or_patterned_passwords_are_refused(password: str) -> None:
    error = _refusal(password)
    assert error.context["clause"] == "strength"
    assert "常见或有规律" in error.message


def test_a_password_containing_the_user_name_is_refused() -> None:
    # zxcvbn alone scores this 3: the user name check catches it.
    error = _refusal("Zhangsan2024!A", username="zhangsan")
    assert error.context["clause"] == "username"


def test_messages_are_chinese_with_an_english_gist() -> None:
    message = _refusal("short").message
    zh, _, en = message.partition(" / ")
    assert zh and en and any("\u4e00" <= c <= "\u9fff" for c in zh)


def test_hashes_are_argon2id_salted_and_verify() -> None:
    first, second = hash_password(STRONG[0]), hash_password(STRONG[0])
    assert first.startswith("$argon2id$")
    assert first != second  # salted
    assert verify_password(first, STRONG[0])
    assert not verify_password(first, STRONG[1])
    assert not verify_password("not a hash", STRONG[0])


def test_production_hasher_is_argon2id_with_rfc9106_parameters(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.undo()  # back to the module's own hasher (the fixture swapped in a cheap one)
    hasher = passwords._HASHER
    assert hasher.type.name == "ID" and hasher.memory_cost >= 65536 and hasher.time_cost >= 3
    assert hash_password(STRONG[0]).startswith("$argon2id$v=19$m=65536,t=3")


def test_a_hash_with_other_parameters_needs_rehash(monkeypatch: pytest.MonkeyPatch) -> None:
    old = hash_password(STRONG[0])  # the cheap test parameters
    assert not needs_rehash(old)
    monkeypatch.setattr(passwords, "_HASHER", PasswordHasher(time_cost=2, memory_cost=4096))
    assert needs_rehash(old)
    assert verify_password(old, STRONG[0])  # still verifies: the parameters are in the hash
