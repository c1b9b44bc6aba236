"""Search: full-text index over transcripts (SQLite FTS5 trigram, PostgreSQL pg_trgm).

Chinese has no spaces to split words on, so both backends index character trigrams, which
find any substring of three characters or more (``qa_service.db.search`` falls back to a
plain LIKE scan below that):

- SQLite: an FTS5 table with the ``trigram`` tokenizer whose content is ``utterances``
  (external content: the text is not stored twice), kept in step by triggers, so every
  writer (the CLI, a worker, a test) indexes what it saves without knowing about it.
  A later migration that rebuilds ``utterances`` in SQLite batch mode drops the triggers and
  must create them again (``_create_sqlite`` here).
- PostgreSQL: the ``pg_trgm`` extension and a GIN trigram index on ``utterances.text``,
  used by ``ILIKE '%…%'``. The extension is installed once per database (in ``public``
  when there is one, so a throw-away schema dropped later does not take it with it).

Written out in full (see 0001) so the revision does not change when the ORM classes do.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 00:00:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_FTS = "utterances_fts"
_TRGM_INDEX = "ix_utterances_text_trgm"

_SQLITE_UP = (
    f"CREATE VIRTUAL TABLE {_FTS} USING fts5("
    "text, content='utterances', content_rowid='id', tokenize='trigram')",
    f"INSERT INTO {_FTS}({_FTS}) VALUES ('rebuild')",
    f"CREATE TRIGGER {_FTS}_after_insert AFTER INSERT ON utterances BEGIN "
    f"INSERT INTO {_FTS}(rowid, text) VALUES (new.id, new.text); END",
    f"CREATE TRIGGER {_FTS}_after_delete AFTER DELETE ON utterances BEGIN "
    f"INSERT INTO {_FTS}({_FTS}, rowid, text) VALUES ('delete', old.id, old.text); END",
    f"CREATE TRIGGER {_FTS}_after_update AFTER UPDATE OF text ON utterances BEGIN "
    f"INSERT INTO {_FTS}({_FTS}, rowid, text) VALUES ('delete', old.id, old.text); "
    f"INSERT INTO {_FTS}(rowid, text) VALUES (new.id, new.text); END",
)


def _trgm_schema(connection: sa.Connection) -> str | None:
    return connection.scalar(
        sa.text(
            "SELECT n.nspname FROM pg_extension e "
            "JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'pg_trgm'"
        )
    )


def _create_postgresql() -> None:
    connection = op.get_bind()
    schema = _trgm_schema(connection)
    if schema is None:
        has_public = connection.scalar(
            sa.text("SELECT count(*) FROM pg_namespace WHERE nspname = 'public'")
        )
        where = " SCHEMA public" if has_public else ""
        op.execute(f"CREATE EXTENSION IF NOT EXISTS pg_trgm{where}")
        schema = _trgm_schema(connection)
    # The operator class is qualified: the extension's schema need not be on search_path.
    op.execute(f'CREATE INDEX {_TRGM_INDEX} ON utterances USING gin (text "{schema}".gin_trgm_ops)')


def _create_sqlite() -> None:
    for statement in _SQLITE_UP:
        op.execute(statement)


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        _create_sqlite()
    elif dialect == "postgresql":
        _create_postgresql()


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for suffix in ("after_update", "after_delete", "after_insert"):
            op.execute(f"DROP TRIGGER IF EXISTS {_FTS}_{suffix}")
        op.execute(f"DROP TABLE IF EXISTS {_FTS}")
    elif dialect == "postgresql":
        op.execute(f"DROP INDEX IF EXISTS {_TRGM_INDEX}")
