"""Accounts: users, roles, teams, roster, sessions, API tokens, password history.

Written out in full (see 0001) so the revision does not change when the ORM classes do.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30 00:00:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass  # filled in by the accounts work


def downgrade() -> None:
    pass
