"""Queue: call statuses queued/analyzing, attempts, job bookkeeping, stored audio.

Written out in full (see 0001) so the revision does not change when the ORM classes do.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30 00:00:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass  # filled in by the queue work


def downgrade() -> None:
    pass
