"""Audit trail: append-only hash-chained events, audit reviews; retention bookkeeping.

Written out in full (see 0001) so the revision does not change when the ORM classes do.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30 00:00:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass  # filled in by the audit work


def downgrade() -> None:
    pass
