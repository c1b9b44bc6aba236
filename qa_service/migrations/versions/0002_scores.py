"""Scores: the call_scores history table; rubric version, team and agency on calls.

Written out in full (see 0001) so the revision does not change when the ORM classes do.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-20 00:00:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_JSON_DOC = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    # Plain ADD COLUMN: both SQLite and PostgreSQL do it in place, no table copy needed.
    op.add_column("calls", sa.Column("rubric_version", sa.String(32), nullable=True))
    op.add_column("calls", sa.Column("team_id", sa.String(64), nullable=True))
    op.add_column("calls", sa.Column("agency_id", sa.String(64), nullable=True))
    op.create_index("ix_calls_team_id", "calls", ["team_id"])
    op.create_index("ix_calls_agency_id", "calls", ["agency_id"])

    op.create_table(
        "call_scores",
        sa.Column("id", _ID, nullable=False),
        sa.Column(
            "call_id",
            _ID,
            sa.ForeignKey("calls.id", name="fk_call_scores_call_id_calls", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("rubric_version", sa.String(32), nullable=False),
        sa.Column("rubric_digest", sa.String(64), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("passed", sa.Boolean(), nullable=False),
        sa.Column("fatal", sa.Boolean(), nullable=False),
        sa.Column("breakdown", _JSON_DOC, nullable=False),
        sa.Column("is_current", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.String(16), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_call_scores"),
        sa.CheckConstraint(
            "reason IN ('analysis', 'rescore', 'review')", name="ck_call_scores_reason"
        ),
    )
    op.create_index("ix_call_scores_call_id", "call_scores", ["call_id"])
    op.create_index("ix_call_scores_rubric_version", "call_scores", ["rubric_version"])
    # At most one current score per call, enforced by the database rather than by hope.
    op.create_index(
        "uq_call_scores_current_call_id",
        "call_scores",
        ["call_id"],
        unique=True,
        sqlite_where=sa.text("is_current"),
        postgresql_where=sa.text("is_current"),
    )


def downgrade() -> None:
    op.drop_index("uq_call_scores_current_call_id", table_name="call_scores")
    op.drop_index("ix_call_scores_rubric_version", table_name="call_scores")
    op.drop_index("ix_call_scores_call_id", table_name="call_scores")
    op.drop_table("call_scores")
    op.drop_index("ix_calls_agency_id", table_name="calls")
    op.drop_index("ix_calls_team_id", table_name="calls")
    with op.batch_alter_table("calls") as batch:
        batch.drop_column("agency_id")
        batch.drop_column("team_id")
        batch.drop_column("rubric_version")
