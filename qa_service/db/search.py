"""Free-text search in transcripts: a where-clause on calls, backed by a trigram index.

Migration 0005 builds the index (SQLite: FTS5 ``trigram`` table over ``utterances``;
PostgreSQL: ``pg_trgm`` GIN index on ``utterances.text``). Trigrams find any substring of
three characters or more, which suits Chinese (no spaces between words); a shorter query
cannot use them and falls back to a LIKE scan, still correct, only slower.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, column, literal_column, select, table

from qa_service.db.tables import CallRow, UtteranceRow

MIN_INDEXED_CHARS = 3

# The index objects migration 0005 creates outside the ORM tables. Schema comparisons
# (Alembic autogenerate, the migration/ORM test) must leave them alone.
FTS_TABLE = "utterances_fts"
TRGM_INDEX = "ix_utterances_text_trgm"
_FTS_SHADOW_SUFFIXES = ("", "_data", "_idx", "_docsize", "_config", "_content")

_fts = table(FTS_TABLE, column("rowid"))


def include_object(
    obj: object, name: str | None, type_: str, reflected: bool, compare_to: object
) -> bool:
    """Alembic ``include_object`` hook: hide the search index from schema comparisons."""
    if type_ == "table" and name in {FTS_TABLE + s for s in _FTS_SHADOW_SUFFIXES}:
        return False
    return not (type_ == "index" and name == TRGM_INDEX)


def _like_pattern(query: str) -> str:
    escaped = query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _fts_phrase(query: str) -> str:
    # One FTS5 phrase: the query's own quotes doubled, so it is matched as written.
    return '"' + query.replace('"', '""') + '"'


def transcript_contains(*, dialect: str, query: str) -> ColumnElement[bool]:
    """Calls with an utterance containing ``query`` (case-insensitive), as a where-clause."""
    query = query.strip()
    if dialect == "sqlite" and len(query) >= MIN_INDEXED_CHARS:
        matches = select(_fts.c.rowid).where(
            literal_column(FTS_TABLE).op("MATCH")(_fts_phrase(query))
        )
        utterance_ids = UtteranceRow.id.in_(matches)
    else:
        # PostgreSQL's trigram GIN index serves ILIKE; SQLite's LIKE is case-insensitive.
        utterance_ids = UtteranceRow.text.ilike(_like_pattern(query), escape="\\")
    return CallRow.id.in_(select(UtteranceRow.call_id).where(utterance_ids))
