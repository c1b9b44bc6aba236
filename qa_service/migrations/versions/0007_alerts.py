"""Alerts: complaint-intent and fatal-finding alerts to supervisors, webhook deliveries.

Written out in full (see 0001) so the revision does not change when the ORM classes do.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30 00:00:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "alerts",
        sa.Column("id", _ID, nullable=False),
        sa.Column(
            "call_id",
            _ID,
            sa.ForeignKey("calls.id", name="fk_alerts_call_id_calls", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("kinds", sa.JSON(), nullable=False),
        sa.Column("rules", sa.JSON(), nullable=False),
        sa.Column("team_id", sa.String(64), nullable=True),
        sa.Column("agent_id", sa.String(64), nullable=True),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column(
            "acknowledged_by_id",
            _ID,
            sa.ForeignKey(
                "users.id", name="fk_alerts_acknowledged_by_id_users", ondelete="SET NULL"
            ),
            nullable=True,
        ),
        sa.Column("acknowledged_at", _TS, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_alerts"),
        sa.UniqueConstraint("call_id", name="uq_alerts_call_id"),
    )
    op.create_index("ix_alerts_team_id", "alerts", ["team_id"])
    op.create_index("ix_alerts_created_at", "alerts", ["created_at"])

    op.create_table(
        "alert_deliveries",
        sa.Column("id", _ID, nullable=False),
        sa.Column(
            "alert_id",
            _ID,
            sa.ForeignKey(
                "alerts.id", name="fk_alert_deliveries_alert_id_alerts", ondelete="CASCADE"
            ),
            nullable=False,
        ),
        sa.Column("url", sa.String(1024), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", _TS, nullable=False),
        sa.Column("claimed_until", _TS, nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("last_status_code", sa.Integer(), nullable=True),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("delivered_at", _TS, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_alert_deliveries"),
        sa.UniqueConstraint("alert_id", "url", name="uq_alert_deliveries_alert_id_url"),
        sa.CheckConstraint(
            "status IN ('pending', 'delivered', 'failed')", name="ck_alert_deliveries_status"
        ),
    )
    op.create_index(
        "ix_alert_deliveries_status_next_attempt_at",
        "alert_deliveries",
        ["status", "next_attempt_at"],
    )


def downgrade() -> None:
    op.drop_index("ix_alert_deliveries_status_next_attempt_at", table_name="alert_deliveries")
    op.drop_table("alert_deliveries")
    op.drop_index("ix_alerts_created_at", table_name="alerts")
    op.drop_index("ix_alerts_team_id", table_name="alerts")
    op.drop_table("alerts")
