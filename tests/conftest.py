"""Fixtures shared across the test suite.

``db_url`` gives each test an empty database on every backend the service supports: a
SQLite file, and a throw-away schema on the PostgreSQL server CI starts (integration).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import create_engine, make_url, text
from sqlalchemy.exc import SQLAlchemyError

# Trust auth on the local server; override to point the suite at another one.
POSTGRES_URL = os.environ.get(
    "QA_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def _postgres_schema_url(schema: str) -> str:
    # search_path makes every unqualified name, alembic_version included, land in the
    # test's own schema, so tests neither see nor disturb each other's tables.
    url = make_url(POSTGRES_URL).update_query_dict({"options": f"-csearch_path={schema}"})
    return url.render_as_string(hide_password=False)


@pytest.fixture(
    params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)],
)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty, unmigrated database URL; PostgreSQL being down fails the test, never skips."""
    if request.param == "sqlite":
        # A folder that does not exist yet: make_engine must create it.
        yield f"sqlite:///{tmp_path / 'var' / 'qa-service.sqlite3'}"
        return

    with _fresh_postgres_schema() as url:
        yield url


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """An empty throw-away schema on the PostgreSQL server (for PostgreSQL-only tests)."""
    with _fresh_postgres_schema() as url:
        yield url


@contextmanager
def _fresh_postgres_schema() -> Iterator[str]:
    schema = f"qa_test_{uuid.uuid4().hex[:16]}"
    admin = create_engine(POSTGRES_URL)
    try:
        with admin.begin() as connection:
            connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    except SQLAlchemyError as exc:
        admin.dispose()
        pytest.fail(f"PostgreSQL is required for integration tests ({POSTGRES_URL}): {exc}")
    try:
        yield _postgres_schema_url(schema)
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
