"""Alerts: complaint-intent and fatal-finding alerts to supervisors, webhook deliveries.

Written out in full (see 0001) so the revision does not change when the ORM classes do.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30 00:00:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass  # filled in by the alerts work


def downgrade() -> None:
    pass
