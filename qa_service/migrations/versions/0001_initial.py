"""Initial schema: calls, utterances, findings, analysis runs, dial attempts, do-not-call.

Written out in full rather than importing ``qa_service.db.tables``: a migration records the
schema as it was at this revision, and must not change when the ORM classes do later.

Revision ID: 0001
Revises:
Create Date: 2025-01-01 00:00:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_JSON_DOC = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
_TS = sa.DateTime(timezone=True)


def _call_fk(table: str) -> sa.Column[int]:
    return sa.Column(
        "call_id",
        _ID,
        sa.ForeignKey("calls.id", name=f"fk_{table}_call_id_calls", ondelete="CASCADE"),
        nullable=False,
    )


def upgrade() -> None:
    op.create_table(
        "calls",
        sa.Column("id", _ID, nullable=False),
        sa.Column("call_id", sa.String(128), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("recording", sa.String(512), nullable=False),
        sa.Column("source_path", sa.Text(), nullable=True),
        sa.Column("agent_id", sa.String(64), nullable=True),
        sa.Column("customer_id", sa.String(64), nullable=True),
        sa.Column("dialed_number", sa.String(32), nullable=True),
        sa.Column("contact_role", sa.String(32), nullable=True),
        sa.Column("direction", sa.String(16), nullable=True),
        sa.Column("started_at", _TS, nullable=True),
        sa.Column("duration_s", sa.Float(), nullable=True),
        sa.Column("channels", sa.String(8), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("error_code", sa.String(64), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("metadata", _JSON_DOC, nullable=True),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_calls"),
        sa.UniqueConstraint("call_id", name="uq_calls_call_id"),
        sa.UniqueConstraint("sha256", name="uq_calls_sha256"),
        sa.CheckConstraint("status IN ('analyzed', 'error')", name="ck_calls_status"),
        sa.CheckConstraint("channels IN ('stereo', 'mono')", name="ck_calls_channels"),
    )
    for column in ("agent_id", "customer_id", "dialed_number", "started_at"):
        op.create_index(f"ix_calls_{column}", "calls", [column])

    op.create_table(
        "utterances",
        sa.Column("id", _ID, nullable=False),
        _call_fk("utterances"),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("speaker", sa.String(16), nullable=False),
        sa.Column("channel", sa.Integer(), nullable=False),
        sa.Column("start_s", sa.Float(), nullable=False),
        sa.Column("end_s", sa.Float(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("raw_text", sa.Text(), nullable=True),
        sa.Column("avg_logprob", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_utterances"),
        # Also serves lookups by call: call_id is its leading column.
        sa.UniqueConstraint("call_id", "seq", name="uq_utterances_call_id_seq"),
        sa.CheckConstraint(
            "speaker IN ('agent', 'customer', 'unknown')", name="ck_utterances_speaker"
        ),
    )

    op.create_table(
        "findings",
        sa.Column("id", _ID, nullable=False),
        _call_fk("findings"),
        sa.Column("rule", sa.String(8), nullable=False),
        sa.Column("speaker", sa.String(16), nullable=True),
        sa.Column("start_s", sa.Float(), nullable=True),
        sa.Column("end_s", sa.Float(), nullable=True),
        sa.Column("text", sa.Text(), nullable=True),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("evidence", _JSON_DOC, nullable=False),
        sa.Column("review_status", sa.String(16), server_default="pending", nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_findings"),
        sa.CheckConstraint(
            "speaker IN ('agent', 'customer', 'unknown')", name="ck_findings_speaker"
        ),
        sa.CheckConstraint(
            "review_status IN ('pending', 'confirmed', 'dismissed')",
            name="ck_findings_review_status",
        ),
    )
    op.create_index("ix_findings_call_id", "findings", ["call_id"])
    op.create_index("ix_findings_rule", "findings", ["rule"])

    op.create_table(
        "analysis_runs",
        sa.Column("id", _ID, nullable=False),
        _call_fk("analysis_runs"),
        sa.Column("started_at", _TS, nullable=False),
        sa.Column("finished_at", _TS, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("model_name", sa.String(256), nullable=True),
        sa.Column("versions", _JSON_DOC, nullable=False),
        # Plain json, not JSONB: keeps the stage order of the timings.
        sa.Column("timings", sa.JSON(), nullable=False),
        sa.Column("error", _JSON_DOC, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_analysis_runs"),
        sa.CheckConstraint("status IN ('analyzed', 'error')", name="ck_analysis_runs_status"),
    )
    op.create_index("ix_analysis_runs_call_id", "analysis_runs", ["call_id"])

    op.create_table(
        "dial_attempts",
        sa.Column("id", _ID, nullable=False),
        sa.Column("call_id", sa.String(128), nullable=True),
        sa.Column("agent_id", sa.String(64), nullable=False),
        sa.Column("customer_id", sa.String(64), nullable=False),
        sa.Column("dialed_number", sa.String(32), nullable=False),
        sa.Column("started_at", _TS, nullable=False),
        sa.Column("connected", sa.Boolean(), nullable=False),
        sa.Column("duration_s", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_dial_attempts"),
        # The dedup key of a dial-log import; its leading column serves number lookups.
        sa.UniqueConstraint(
            "dialed_number",
            "started_at",
            "agent_id",
            name="uq_dial_attempts_dialed_number_started_at_agent_id",
        ),
    )
    op.create_index(
        "ix_dial_attempts_customer_id_started_at", "dial_attempts", ["customer_id", "started_at"]
    )

    op.create_table(
        "do_not_call",
        sa.Column("id", _ID, nullable=False),
        sa.Column("dialed_number", sa.String(32), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("source_call_id", sa.String(128), nullable=True),
        sa.Column("added_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_do_not_call"),
        sa.UniqueConstraint("dialed_number", name="uq_do_not_call_dialed_number"),
    )


def downgrade() -> None:
    op.drop_table("do_not_call")
    op.drop_index("ix_dial_attempts_customer_id_started_at", table_name="dial_attempts")
    op.drop_table("dial_attempts")
    op.drop_index("ix_analysis_runs_call_id", table_name="analysis_runs")
    op.drop_table("analysis_runs")
    op.drop_index("ix_findings_rule", table_name="findings")
    op.drop_index("ix_findings_call_id", table_name="findings")
    op.drop_table("findings")
    op.drop_table("utterances")
    for column in ("started_at", "dialed_number", "customer_id", "agent_id"):
        op.drop_index(f"ix_calls_{column}", table_name="calls")
    op.drop_table("calls")
