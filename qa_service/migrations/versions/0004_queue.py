"""Queue: call statuses queued/analyzing/failed, attempts, job bookkeeping, stored audio.

Written out in full (see 0001) so the revision does not change when the ORM classes do.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30 00:00:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TS = sa.DateTime(timezone=True)
_OLD_STATUSES = "status IN ('analyzed', 'error')"
_NEW_STATUSES = "status IN ('queued', 'analyzing', 'analyzed', 'failed', 'error')"


def upgrade() -> None:
    # SQLite cannot alter a CHECK constraint: batch mode copies the table (on PostgreSQL it
    # issues plain ALTERs). qa_service.db.session.migrate switches SQLite's foreign keys off
    # around migrations, so dropping the old table does not cascade into utterances.
    with op.batch_alter_table("calls") as batch:
        batch.add_column(sa.Column("attempts", sa.Integer(), server_default="0", nullable=False))
        batch.add_column(sa.Column("last_error", sa.Text(), nullable=True))
        batch.add_column(sa.Column("job_id", sa.String(128), nullable=True))
        batch.add_column(sa.Column("queued_at", _TS, nullable=True))
        batch.add_column(sa.Column("analysis_started_at", _TS, nullable=True))
        batch.add_column(sa.Column("heartbeat_at", _TS, nullable=True))
        batch.add_column(sa.Column("audio_ext", sa.String(16), nullable=True))
        batch.add_column(sa.Column("uploaded_by", sa.String(128), nullable=True))
        batch.drop_constraint("ck_calls_status", type_="check")
        batch.create_check_constraint("ck_calls_status", sa.text(_NEW_STATUSES))
        # The sweep looks calls up by status.
        batch.create_index("ix_calls_status", ["status"])


def downgrade() -> None:
    # Calls still in the queue or failed have no place in the old schema: they go back to
    # `error` so that nothing is lost silently.
    op.execute(
        "UPDATE calls SET status = 'error' WHERE status IN ('queued', 'analyzing', 'failed')"
    )
    with op.batch_alter_table("calls") as batch:
        batch.drop_index("ix_calls_status")
        batch.drop_constraint("ck_calls_status", type_="check")
        batch.create_check_constraint("ck_calls_status", sa.text(_OLD_STATUSES))
        for column in (
            "uploaded_by",
            "audio_ext",
            "heartbeat_at",
            "analysis_started_at",
            "queued_at",
            "job_id",
            "last_error",
            "attempts",
        ):
            batch.drop_column(column)
