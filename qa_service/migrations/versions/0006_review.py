"""Review loop: review states, claims, per-finding decisions, feedback, appeals, rulings.

Written out in full (see 0001) so the revision does not change when the ORM classes do.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30 00:00:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass  # filled in by the review work


def downgrade() -> None:
    pass
