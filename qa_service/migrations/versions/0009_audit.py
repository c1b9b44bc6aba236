"""Audit trail: append-only hash-chained events, audit reviews; retention bookkeeping.

Written out in full (see 0001) so the revision does not change when the ORM classes do.
The triggers make the trail append-only in the database itself: UPDATE is always refused,
DELETE only for rows the retention run has checkpointed (``seq`` up to the chain head's
``purged_through_seq``), TRUNCATE (PostgreSQL) never. Somebody holding the database owner's
rights can still drop them; the hash chain is what catches that (``qa-service audit verify``).

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30 00:00:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_TS = sa.DateTime(timezone=True)
_GENESIS = "0" * 64

_PG_TRIGGERS = (
    """
    CREATE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'DELETE' AND OLD.seq <= (
            SELECT purged_through_seq FROM audit_chain_head WHERE id = 1
        ) THEN
            RETURN OLD;
        END IF;
        RAISE EXCEPTION 'audit_events is append-only: % refused', TG_OP
            USING ERRCODE = 'insufficient_privilege';
    END $$
    """,
    """
    CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_append_only()
    """,
    """
    CREATE FUNCTION audit_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
            USING ERRCODE = 'insufficient_privilege';
    END $$
    """,
    """
    CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change()
    """,
    """
    CREATE TRIGGER audit_reviews_append_only BEFORE UPDATE OR DELETE ON audit_reviews
    FOR EACH ROW EXECUTE FUNCTION audit_refuse_change()
    """,
    """
    CREATE TRIGGER audit_reviews_no_truncate BEFORE TRUNCATE ON audit_reviews
    FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change()
    """,
)

_SQLITE_TRIGGERS = (
    """
    CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
    BEGIN SELECT RAISE(ABORT, 'audit_events is append-only: UPDATE refused'); END
    """,
    """
    CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
    WHEN OLD.seq > (SELECT purged_through_seq FROM audit_chain_head WHERE id = 1)
    BEGIN SELECT RAISE(ABORT, 'audit_events is append-only: DELETE refused'); END
    """,
    """
    CREATE TRIGGER audit_reviews_no_update BEFORE UPDATE ON audit_reviews
    BEGIN SELECT RAISE(ABORT, 'audit_reviews is append-only: UPDATE refused'); END
    """,
    """
    CREATE TRIGGER audit_reviews_no_delete BEFORE DELETE ON audit_reviews
    BEGIN SELECT RAISE(ABORT, 'audit_reviews is append-only: DELETE refused'); END
    """,
)


def upgrade() -> None:
    op.create_table(
        "audit_events",
        sa.Column("seq", _ID, autoincrement=False, nullable=False),
        sa.Column("occurred_at", _TS, nullable=False),
        sa.Column("actor_kind", sa.String(16), nullable=False),
        sa.Column("actor_id", _ID, nullable=True),
        sa.Column("actor_name", sa.String(128), nullable=False),
        sa.Column("client_ip", sa.String(64), nullable=True),
        sa.Column("event", sa.String(64), nullable=False),
        sa.Column("result", sa.String(16), nullable=False),
        sa.Column("target", sa.String(512), nullable=True),
        sa.Column("details", sa.Text(), nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("row_hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_audit_events"),
        sa.CheckConstraint("result IN ('success', 'failure')", name="ck_audit_events_result"),
        sa.CheckConstraint(
            "actor_kind IN ('user', 'cli', 'system')", name="ck_audit_events_actor_kind"
        ),
    )
    for column in ("occurred_at", "actor_id", "actor_name", "event"):
        op.create_index(f"ix_audit_events_{column}", "audit_events", [column])

    op.create_table(
        "audit_chain_head",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("last_seq", _ID, nullable=False),
        sa.Column("last_hash", sa.String(64), nullable=False),
        sa.Column("purged_through_seq", _ID, nullable=False),
        sa.Column("purged_through_hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_chain_head"),
        sa.CheckConstraint("id = 1", name="ck_audit_chain_head_single_row"),
    )
    op.execute(
        "INSERT INTO audit_chain_head (id, last_seq, last_hash, purged_through_seq, "
        f"purged_through_hash) VALUES (1, 0, '{_GENESIS}', 0, '{_GENESIS}')"
    )

    op.create_table(
        "audit_reviews",
        sa.Column("id", _ID, nullable=False),
        sa.Column("reviewed_at", _TS, nullable=False),
        sa.Column("reviewer_kind", sa.String(16), nullable=False),
        sa.Column("reviewer_id", _ID, nullable=True),
        sa.Column("reviewer_name", sa.String(128), nullable=False),
        sa.Column("period_from", _TS, nullable=False),
        sa.Column("period_to", _TS, nullable=False),
        sa.Column("events", sa.Integer(), nullable=False),
        sa.Column("first_seq", _ID, nullable=True),
        sa.Column("last_seq", _ID, nullable=True),
        sa.Column("head_hash", sa.String(64), nullable=False),
        sa.Column("chain_ok", sa.Boolean(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("audit_seq", _ID, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_reviews"),
    )
    op.create_index("ix_audit_reviews_reviewed_at", "audit_reviews", ["reviewed_at"])

    op.create_table(
        "retention_holds",
        sa.Column("id", _ID, nullable=False),
        sa.Column(
            "call_id",
            _ID,
            sa.ForeignKey("calls.id", name="fk_retention_holds_call_id_calls", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("released_at", _TS, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_retention_holds"),
    )
    op.create_index("ix_retention_holds_call_id", "retention_holds", ["call_id"])

    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        for statement in _PG_TRIGGERS:
            op.execute(statement)
    elif dialect == "sqlite":
        for statement in _SQLITE_TRIGGERS:
            op.execute(statement)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_reviews_no_truncate ON audit_reviews")
        op.execute("DROP TRIGGER IF EXISTS audit_reviews_append_only ON audit_reviews")
        op.execute("DROP TRIGGER IF EXISTS audit_events_no_truncate ON audit_events")
        op.execute("DROP TRIGGER IF EXISTS audit_events_append_only ON audit_events")
        op.execute("DROP FUNCTION IF EXISTS audit_refuse_change()")
        op.execute("DROP FUNCTION IF EXISTS audit_events_append_only()")
    # SQLite drops a table's triggers with the table.
    op.drop_index("ix_retention_holds_call_id", table_name="retention_holds")
    op.drop_table("retention_holds")
    op.drop_index("ix_audit_reviews_reviewed_at", table_name="audit_reviews")
    op.drop_table("audit_reviews")
    op.drop_table("audit_chain_head")
    for column in ("event", "actor_name", "actor_id", "occurred_at"):
        op.drop_index(f"ix_audit_events_{column}", table_name="audit_events")
    op.drop_table("audit_events")
