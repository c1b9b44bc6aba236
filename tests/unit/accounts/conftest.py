"""Fixtures for the accounts tests: a migrated database per backend, and cheap hashing.

argon2id at its production cost takes about 0.3 s per hash; the policy and lockout tests
hash dozens of times, so they use argon2-cffi's cheapest parameters (same algorithm).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from argon2 import PasswordHasher
from argon2.profiles import CHEAPEST
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from qa_service.accounts import passwords
from qa_service.db.session import make_engine, make_session_factory, migrate
from qa_service.settings import Settings


@pytest.fixture(autouse=True)
def cheap_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(passwords, "_HASHER", PasswordHasher.from_parameters(CHEAPEST))


@pytest.fixture
def settings() -> Settings:
    # The plan's values, spelt out so an environment variable cannot change what is tested.
    return Settings(
        secret_key="test-secret-key-0123456789",
        session_idle_minutes=15,
        password_max_age_days=30,
        password_history=3,
        lockout_attempts=5,
        lockout_minutes=15,
    )


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = make_engine(db_url)
    migrate(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    return make_session_factory(engine)
