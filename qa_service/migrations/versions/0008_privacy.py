"""Personal data: encrypted card and phone numbers at rest, keyed-hash search columns.

Written out in full (see 0001) so the revision does not change when the ORM classes do.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30 00:00:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass  # filled in by the privacy work


def downgrade() -> None:
    pass
