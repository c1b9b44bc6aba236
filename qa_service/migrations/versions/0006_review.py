"""Review loop: review states, claims, per-finding decisions, feedback, appeals, rulings.

Written out in full (see 0001) so the revision does not change when the ORM classes do.
Calls analysed before this revision get their review state here (flagged when they have a
finding or their current score fails; no calibration draw, no weak-evidence marks), so
the queue and the inspectors' view hold the old calls too.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30 00:00:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_TS = sa.DateTime(timezone=True)
_STATES = (
    "state IN ('flagged', 'passed', 'in_review', 'reviewed', 'feedback_sent', "
    "'acknowledged', 'appealed', 'ruled')"
)
_REASONS = (
    "reason_code IN ('asr_error', 'wrong_speaker', 'compliant_in_context', "
    "'rule_not_applicable', 'other')"
)


def _fk(table: str, column: str, target: str, ondelete: str) -> sa.ForeignKey:
    return sa.ForeignKey(f"{target}.id", name=f"fk_{table}_{column}_{target}", ondelete=ondelete)


def upgrade() -> None:
    op.add_column("call_scores", sa.Column("note", sa.Text(), nullable=True))

    op.create_table(
        "call_reviews",
        sa.Column("id", _ID, nullable=False),
        sa.Column(
            "call_id", _ID, _fk("call_reviews", "call_id", "calls", "CASCADE"), nullable=False
        ),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("risk_tier", sa.Integer(), nullable=False),
        sa.Column("calibration", sa.Boolean(), nullable=False),
        sa.Column("weak_evidence", sa.String(128), nullable=False),
        sa.Column(
            "assignee_id",
            _ID,
            _fk("call_reviews", "assignee_id", "users", "SET NULL"),
            nullable=True,
        ),
        sa.Column(
            "assigned_by_id",
            _ID,
            _fk("call_reviews", "assigned_by_id", "users", "SET NULL"),
            nullable=True,
        ),
        sa.Column("lease_expires_at", _TS, nullable=True),
        sa.Column("feedback_summary", sa.Text(), nullable=True),
        sa.Column("feedback_at", _TS, nullable=True),
        sa.Column("appeal_deadline", _TS, nullable=True),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_call_reviews"),
        sa.UniqueConstraint("call_id", name="uq_call_reviews_call_id"),
        sa.CheckConstraint(_STATES, name="ck_call_reviews_state"),
    )
    op.create_index("ix_call_reviews_assignee_id", "call_reviews", ["assignee_id"])
    op.create_index("ix_call_reviews_state_risk_tier", "call_reviews", ["state", "risk_tier"])

    op.create_table(
        "review_events",
        sa.Column("id", _ID, nullable=False),
        sa.Column(
            "call_id", _ID, _fk("review_events", "call_id", "calls", "CASCADE"), nullable=False
        ),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("from_state", sa.String(16), nullable=True),
        sa.Column("to_state", sa.String(16), nullable=False),
        sa.Column(
            "actor_id", _ID, _fk("review_events", "actor_id", "users", "SET NULL"), nullable=True
        ),
        sa.Column("actor", sa.String(64), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_review_events"),
        sa.CheckConstraint(
            _STATES.replace("state IN", "to_state IN"), name="ck_review_events_to_state"
        ),
    )
    op.create_index("ix_review_events_call_id", "review_events", ["call_id"])

    op.create_table(
        "review_decisions",
        sa.Column("id", _ID, nullable=False),
        sa.Column(
            "call_id", _ID, _fk("review_decisions", "call_id", "calls", "CASCADE"), nullable=False
        ),
        sa.Column(
            "finding_id",
            _ID,
            _fk("review_decisions", "finding_id", "findings", "SET NULL"),
            nullable=True,
        ),
        sa.Column("decision", sa.String(16), nullable=False),
        sa.Column("reason_code", sa.String(32), nullable=True),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("rule", sa.String(8), nullable=False),
        sa.Column("speaker", sa.String(16), nullable=True),
        sa.Column("start_s", sa.Float(), nullable=True),
        sa.Column("end_s", sa.Float(), nullable=True),
        sa.Column("text", sa.Text(), nullable=True),
        sa.Column("source", sa.String(32), nullable=True),
        sa.Column("coaching_note", sa.Text(), nullable=True),
        sa.Column("overturned", sa.Boolean(), nullable=False),
        sa.Column(
            "decided_by_id",
            _ID,
            _fk("review_decisions", "decided_by_id", "users", "SET NULL"),
            nullable=True,
        ),
        sa.Column("decided_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_review_decisions"),
        sa.UniqueConstraint("finding_id", name="uq_review_decisions_finding_id"),
        sa.CheckConstraint(
            "decision IN ('confirmed', 'dismissed', 'added')", name="ck_review_decisions_decision"
        ),
        sa.CheckConstraint(
            f"reason_code IS NULL OR {_REASONS}", name="ck_review_decisions_reason_code"
        ),
    )
    op.create_index("ix_review_decisions_call_id", "review_decisions", ["call_id"])
    op.create_index("ix_review_decisions_rule", "review_decisions", ["rule"])

    op.create_table(
        "review_appeals",
        sa.Column("id", _ID, nullable=False),
        sa.Column(
            "call_id", _ID, _fk("review_appeals", "call_id", "calls", "CASCADE"), nullable=False
        ),
        sa.Column(
            "decision_id",
            _ID,
            _fk("review_appeals", "decision_id", "review_decisions", "CASCADE"),
            nullable=False,
        ),
        sa.Column(
            "appellant_id",
            _ID,
            _fk("review_appeals", "appellant_id", "users", "SET NULL"),
            nullable=True,
        ),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("ruling_note", sa.Text(), nullable=True),
        sa.Column(
            "ruled_by_id",
            _ID,
            _fk("review_appeals", "ruled_by_id", "users", "SET NULL"),
            nullable=True,
        ),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("ruled_at", _TS, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_review_appeals"),
        sa.UniqueConstraint("decision_id", name="uq_review_appeals_decision_id"),
        sa.CheckConstraint(
            "status IN ('open', 'upheld', 'overturned')", name="ck_review_appeals_status"
        ),
    )
    op.create_index("ix_review_appeals_call_id", "review_appeals", ["call_id"])
    op.create_index("ix_review_appeals_status", "review_appeals", ["status"])

    _backfill()


def _backfill() -> None:
    """Review states for calls analysed before 0006, each with its history event."""
    has = "EXISTS (SELECT 1 FROM findings f WHERE f.call_id = c.id AND f.rule = '{}')"
    failing = (
        "EXISTS (SELECT 1 FROM call_scores s WHERE s.call_id = c.id AND s.is_current "
        "AND NOT s.passed)"
    )
    fatal = (
        "EXISTS (SELECT 1 FROM call_scores s WHERE s.call_id = c.id AND s.is_current AND s.fatal)"
    )
    flagged = f"(EXISTS (SELECT 1 FROM findings f WHERE f.call_id = c.id) OR {failing})"
    op.execute(
        sa.text(
            "INSERT INTO call_reviews (call_id, state, risk_tier, calibration, weak_evidence, "
            "created_at, updated_at) "
            f"SELECT c.id, CASE WHEN {flagged} THEN 'flagged' ELSE 'passed' END, "
            f"CASE WHEN {has.format('C01')} AND {has.format('R04')} THEN 0 "
            f"WHEN {has.format('C01')} THEN 1 WHEN {fatal} THEN 2 "
            f"WHEN {flagged} THEN 3 ELSE 9 END, "
            ":no, '', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP "
            "FROM calls c WHERE c.status = 'analyzed'"
        ).bindparams(no=False)
    )
    op.execute(
        "INSERT INTO review_events (call_id, action, from_state, to_state, reason, created_at) "
        "SELECT r.call_id, CASE WHEN r.state = 'flagged' THEN 'flag' ELSE 'pass' END, NULL, "
        "r.state, 'migration 0006: analysed before the review loop', CURRENT_TIMESTAMP "
        "FROM call_reviews r"
    )


def downgrade() -> None:
    op.drop_index("ix_review_appeals_status", table_name="review_appeals")
    op.drop_index("ix_review_appeals_call_id", table_name="review_appeals")
    op.drop_table("review_appeals")
    op.drop_index("ix_review_decisions_rule", table_name="review_decisions")
    op.drop_index("ix_review_decisions_call_id", table_name="review_decisions")
    op.drop_table("review_decisions")
    op.drop_index("ix_review_events_call_id", table_name="review_events")
    op.drop_table("review_events")
    op.drop_index("ix_call_reviews_state_risk_tier", table_name="call_reviews")
    op.drop_index("ix_call_reviews_assignee_id", table_name="call_reviews")
    op.drop_table("call_reviews")
    with op.batch_alter_table("call_scores") as batch:
        batch.drop_column("note")
