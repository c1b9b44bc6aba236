"""Search: full-text index over transcripts (SQLite FTS5 trigram, PostgreSQL pg_trgm).

Written out in full (see 0001) so the revision does not change when the ORM classes do.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 00:00:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass  # filled in by the search work


def downgrade() -> None:
    pass
