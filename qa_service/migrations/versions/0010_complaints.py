"""Complaints: the complaint register, the calls linked to each, coaching trainings.

Written out in full (see 0001) so the revision does not change when the ORM classes do.
``complaints.phone`` holds the number sealed like ``calls.dialed_number`` (0008), looked up
by ``phone_hash``.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30 00:00:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_TS = sa.DateTime(timezone=True)


def _fk(table: str, column: str, target: str, ondelete: str) -> sa.ForeignKey:
    return sa.ForeignKey(f"{target}.id", name=f"fk_{table}_{column}_{target}", ondelete=ondelete)


def upgrade() -> None:
    op.create_table(
        "complaints",
        sa.Column("id", _ID, nullable=False),
        sa.Column("reference", sa.String(64), nullable=True),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("level", sa.String(16), nullable=False),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("customer_id", sa.String(64), nullable=True),
        sa.Column("phone", sa.Text(), nullable=True),
        sa.Column("phone_hash", sa.String(64), nullable=True),
        sa.Column("received_at", _TS, nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("team_id", sa.String(64), nullable=True),
        sa.Column("agency_id", sa.String(64), nullable=True),
        sa.Column("agent_id", sa.String(64), nullable=True),
        sa.Column("outcome", sa.String(16), nullable=True),
        sa.Column("outcome_by_id", _ID, _fk("complaints", "outcome_by_id", "users", "SET NULL")),
        sa.Column("outcome_by", sa.String(128), nullable=True),
        sa.Column("outcome_at", _TS, nullable=True),
        sa.Column("follow_up", sa.Text(), nullable=True),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_complaints"),
        sa.UniqueConstraint("reference", name="uq_complaints_reference"),
        sa.CheckConstraint(
            "source IN ('agency', 'hotline', 'branch', 'bank_forwarded', 'other')",
            name="ck_complaints_source",
        ),
        sa.CheckConstraint("level IN ('general', 'serious', 'major')", name="ck_complaints_level"),
        sa.CheckConstraint(
            "type IN ('abuse', 'improper_method', 'misinformation', 'broken_promise', 'other')",
            name="ck_complaints_type",
        ),
        sa.CheckConstraint(
            "outcome IS NULL OR outcome IN ('at_fault', 'partly_at_fault', 'not_at_fault')",
            name="ck_complaints_outcome",
        ),
        sa.CheckConstraint(
            "customer_id IS NOT NULL OR phone_hash IS NOT NULL", name="ck_complaints_customer"
        ),
    )
    for column in ("customer_id", "phone_hash", "received_at", "team_id", "agency_id"):
        op.create_index(f"ix_complaints_{column}", "complaints", [column])
    op.create_index("ix_complaints_agent_id", "complaints", ["agent_id"])
    op.create_index("ix_complaints_outcome", "complaints", ["outcome"])

    op.create_table(
        "complaint_calls",
        sa.Column("id", _ID, nullable=False),
        sa.Column(
            "complaint_id",
            _ID,
            _fk("complaint_calls", "complaint_id", "complaints", "CASCADE"),
            nullable=False,
        ),
        sa.Column(
            "call_id", _ID, _fk("complaint_calls", "call_id", "calls", "CASCADE"), nullable=False
        ),
        sa.Column("linked_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_complaint_calls"),
        sa.UniqueConstraint(
            "complaint_id", "call_id", name="uq_complaint_calls_complaint_id_call_id"
        ),
    )
    op.create_index("ix_complaint_calls_complaint_id", "complaint_calls", ["complaint_id"])
    op.create_index("ix_complaint_calls_call_id", "complaint_calls", ["call_id"])

    op.create_table(
        "coaching_trainings",
        sa.Column("id", _ID, nullable=False),
        sa.Column("agent_id", sa.String(64), nullable=False),
        sa.Column("rule", sa.String(8), nullable=True),
        sa.Column("trained_at", _TS, nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column(
            "recorded_by_id",
            _ID,
            _fk("coaching_trainings", "recorded_by_id", "users", "SET NULL"),
        ),
        sa.Column("recorded_by", sa.String(128), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_coaching_trainings"),
    )
    op.create_index("ix_coaching_trainings_agent_id", "coaching_trainings", ["agent_id"])
    op.create_index("ix_coaching_trainings_trained_at", "coaching_trainings", ["trained_at"])


def downgrade() -> None:
    op.drop_table("coaching_trainings")
    op.drop_table("complaint_calls")
    op.drop_table("complaints")
