"""Personal data: encrypted card and phone numbers at rest, keyed-hash search columns.

- ``calls.dialed_number``, ``dial_attempts.dialed_number`` and ``do_not_call.dialed_number``
  hold the number sealed (AES-GCM, ``enc1:<key id>:…``, see qa_service.privacy.keys) as
  TEXT; a ``dialed_number_hash`` (HMAC-SHA256 under the search key) beside each is what
  lookups and the unique constraints use. ``calls.metadata`` keeps the number masked.
- ``utterances.text``/``raw_text`` and ``findings.text``/``evidence`` hold the text with
  personal numbers masked (what the search index sees); ``pii_sealed`` the originals of
  the fields masking changed, sealed, else NULL. ``do_not_call.reason`` is masked.

The upgrade seals and masks the rows already stored, with the process's key ring
(``QA_DATA_KEY``/``QA_SEARCH_KEY``; a config attribute ``key_ring`` wins). On SQLite the
updates of ``utterances.text`` go through 0005's triggers, so the search index forgets the
plaintext too. The downgrade opens everything again (the keys are needed for that too).

Written out in full (see 0001) so the revision does not change when the ORM classes do;
the masking itself comes from qa_service.privacy, whose output the ORM also stores.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30 00:00:00+00:00
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

import sqlalchemy as sa
from alembic import context, op
from sqlalchemy.dialects.postgresql import JSONB

from qa_service.domain import Finding, Speaker, Utterance
from qa_service.privacy.keys import KeyRing, active_key_ring
from qa_service.privacy.masking import mask_findings, mask_number, mask_text, mask_utterances

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BATCH = 1000
_PHONE = "phone"
_TRANSCRIPT = "transcript"
_JSON = sa.JSON().with_variant(JSONB(), "postgresql")
_OLD_UQ_ATTEMPTS = "uq_dial_attempts_dialed_number_started_at_agent_id"
_NEW_UQ_ATTEMPTS = "uq_dial_attempts_dialed_number_hash_started_at_agent_id"

_calls = sa.table(
    "calls",
    sa.column("id", sa.Integer),
    sa.column("dialed_number", sa.Text),
    sa.column("dialed_number_hash", sa.String),
    sa.column("metadata", _JSON),
)
_attempts = sa.table(
    "dial_attempts",
    sa.column("id", sa.Integer),
    sa.column("dialed_number", sa.Text),
    sa.column("dialed_number_hash", sa.String),
)
_dnc = sa.table(
    "do_not_call",
    sa.column("id", sa.Integer),
    sa.column("dialed_number", sa.Text),
    sa.column("dialed_number_hash", sa.String),
    sa.column("reason", sa.Text),
)
_utterances = sa.table(
    "utterances",
    sa.column("id", sa.Integer),
    sa.column("call_id", sa.Integer),
    sa.column("seq", sa.Integer),
    sa.column("speaker", sa.String),
    sa.column("start_s", sa.Float),
    sa.column("end_s", sa.Float),
    sa.column("text", sa.Text),
    sa.column("raw_text", sa.Text),
    sa.column("pii_sealed", sa.Text),
)
_findings = sa.table(
    "findings",
    sa.column("id", sa.Integer),
    sa.column("call_id", sa.Integer),
    sa.column("rule", sa.String),
    sa.column("source", sa.String),
    sa.column("confidence", sa.Float),
    sa.column("text", sa.Text),
    sa.column("evidence", _JSON),
    sa.column("pii_sealed", sa.Text),
)


def _ring() -> KeyRing:
    ring = context.config.attributes.get("key_ring")
    return ring if isinstance(ring, KeyRing) else active_key_ring()


def _rows(table: sa.TableClause, *columns: str, where: Any = None) -> Iterator[list[Any]]:
    """Rows in id order, a batch at a time (dial logs run to hundreds of thousands)."""
    bind = op.get_bind()
    last = -1
    while True:
        query = (
            sa.select(*(table.c[c] for c in ("id", *columns)))
            .where(table.c.id > last)
            .order_by(table.c.id)
            .limit(_BATCH)
        )
        if where is not None:
            query = query.where(where)
        batch = bind.execute(query).all()
        if not batch:
            return
        yield list(batch)
        last = batch[-1].id


def _update(table: sa.TableClause, values: list[dict[str, Any]]) -> None:
    if not values:
        return
    keys = [k for k in values[0] if k != "_id"]
    statement = (
        sa.update(table)
        .where(table.c.id == sa.bindparam("_id"))
        .values({k: sa.bindparam(k) for k in keys})
    )
    op.get_bind().execute(statement, values)


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


# --- upgrade -------------------------------------------------------------------------


def _seal_numbers(ring: KeyRing, table: sa.TableClause, *, metadata: bool, reason: bool) -> None:
    extra = (*(("metadata",) if metadata else ()), *(("reason",) if reason else ()))
    where = table.c.dialed_number.is_not(None)
    for batch in _rows(table, "dialed_number", *extra, where=where):
        values = []
        for row in batch:
            number = row.dialed_number
            if number.startswith("enc1:"):
                continue  # already sealed (a re-run after a partial failure)
            value: dict[str, Any] = {
                "_id": row.id,
                "dialed_number": ring.seal(number, purpose=_PHONE),
                "dialed_number_hash": ring.digest(number),
            }
            if metadata and isinstance(row.metadata, dict) and row.metadata.get("dialed_number"):
                value["metadata"] = {**row.metadata, "dialed_number": mask_number(number)}
            elif metadata:
                value["metadata"] = row.metadata
            if reason:
                value["reason"] = mask_text(row.reason or "")
            values.append(value)
        _update(table, values)


def _mask_call_texts(ring: KeyRing) -> None:
    bind = op.get_bind()
    call_ids = [
        r[0]
        for r in bind.execute(
            sa.select(_utterances.c.call_id).distinct().order_by(_utterances.c.call_id)
        )
    ]
    finding_calls = {r[0] for r in bind.execute(sa.select(_findings.c.call_id).distinct())}
    for call_id in sorted(set(call_ids) | finding_calls):
        rows = bind.execute(
            sa.select(_utterances)
            .where(_utterances.c.call_id == call_id)
            .order_by(_utterances.c.seq)
        ).all()
        said = [
            Utterance(Speaker(r.speaker), r.start_s, r.end_s, r.text, raw_text=r.raw_text)
            for r in rows
        ]
        masked = mask_utterances(said)
        values = []
        for row, utt, m in zip(rows, said, masked, strict=True):
            if row.pii_sealed is not None:
                continue
            changed = {
                k: v
                for k, v, mv in (("text", utt.text, m.text), ("raw_text", utt.raw_text, m.raw_text))
                if v != mv
            }
            if changed:
                values.append(
                    {
                        "_id": row.id,
                        "text": m.text,
                        "raw_text": m.raw_text,
                        "pii_sealed": ring.seal(_dumps(changed), purpose=_TRANSCRIPT),
                    }
                )
        _update(_utterances, values)

        frows = bind.execute(
            sa.select(_findings).where(_findings.c.call_id == call_id).order_by(_findings.c.id)
        ).all()
        made = [
            Finding(r.rule, r.source, r.confidence, text=r.text, evidence=dict(r.evidence or {}))
            for r in frows
        ]
        fmasked = mask_findings(made, said, masked)
        fvalues = []
        for row, found, fm in zip(frows, made, fmasked, strict=True):
            if row.pii_sealed is not None:
                continue
            pairs: tuple[tuple[str, Any, Any], ...] = (
                ("text", found.text, fm.text),
                ("evidence", found.evidence, fm.evidence),
            )
            changed = {k: v for k, v, mv in pairs if _dumps(v) != _dumps(mv)}
            if changed:
                fvalues.append(
                    {
                        "_id": row.id,
                        "text": fm.text,
                        "evidence": fm.evidence,
                        "pii_sealed": ring.seal(_dumps(changed), purpose=_TRANSCRIPT),
                    }
                )
        _update(_findings, fvalues)


def upgrade() -> None:
    ring = _ring()
    op.add_column("utterances", sa.Column("pii_sealed", sa.Text(), nullable=True))
    op.add_column("findings", sa.Column("pii_sealed", sa.Text(), nullable=True))
    with op.batch_alter_table("calls") as batch:
        batch.drop_index("ix_calls_dialed_number")
        batch.alter_column(
            "dialed_number", type_=sa.Text(), existing_type=sa.String(32), existing_nullable=True
        )
        batch.add_column(sa.Column("dialed_number_hash", sa.String(64), nullable=True))
        batch.create_index("ix_calls_dialed_number_hash", ["dialed_number_hash"])
    with op.batch_alter_table("dial_attempts") as batch:
        batch.drop_constraint(_OLD_UQ_ATTEMPTS, type_="unique")
        batch.alter_column(
            "dialed_number", type_=sa.Text(), existing_type=sa.String(32), existing_nullable=False
        )
        batch.add_column(sa.Column("dialed_number_hash", sa.String(64), nullable=True))
    with op.batch_alter_table("do_not_call") as batch:
        batch.drop_constraint("uq_do_not_call_dialed_number", type_="unique")
        batch.alter_column(
            "dialed_number", type_=sa.Text(), existing_type=sa.String(32), existing_nullable=False
        )
        batch.add_column(sa.Column("dialed_number_hash", sa.String(64), nullable=True))

    _seal_numbers(ring, _calls, metadata=True, reason=False)
    _seal_numbers(ring, _attempts, metadata=False, reason=False)
    _seal_numbers(ring, _dnc, metadata=False, reason=True)
    _mask_call_texts(ring)

    with op.batch_alter_table("dial_attempts") as batch:
        batch.alter_column("dialed_number_hash", existing_type=sa.String(64), nullable=False)
        batch.create_unique_constraint(
            _NEW_UQ_ATTEMPTS, ["dialed_number_hash", "started_at", "agent_id"]
        )
    with op.batch_alter_table("do_not_call") as batch:
        batch.alter_column("dialed_number_hash", existing_type=sa.String(64), nullable=False)
        batch.create_unique_constraint("uq_do_not_call_dialed_number_hash", ["dialed_number_hash"])


# --- downgrade -----------------------------------------------------------------------


def _open_numbers(ring: KeyRing, table: sa.TableClause, *, metadata: bool) -> None:
    extra = ("metadata",) if metadata else ()
    for batch in _rows(table, "dialed_number", *extra, where=table.c.dialed_number.is_not(None)):
        values = []
        for row in batch:
            if not row.dialed_number.startswith("enc1:"):
                continue
            number = ring.open(row.dialed_number, purpose=_PHONE)
            value: dict[str, Any] = {"_id": row.id, "dialed_number": number}
            if metadata:
                meta = row.metadata
                if isinstance(meta, dict) and meta.get("dialed_number"):
                    meta = {**meta, "dialed_number": number}
                value["metadata"] = meta
            values.append(value)
        _update(table, values)


def _open_texts(ring: KeyRing, table: sa.TableClause, fields: tuple[str, ...]) -> None:
    for batch in _rows(table, "pii_sealed", *fields, where=table.c.pii_sealed.is_not(None)):
        values = []
        for row in batch:
            original = json.loads(ring.open(row.pii_sealed, purpose=_TRANSCRIPT))
            values.append({"_id": row.id, **{f: original.get(f, getattr(row, f)) for f in fields}})
        _update(table, values)


def downgrade() -> None:
    ring = _ring()
    _open_texts(ring, _utterances, ("text", "raw_text"))
    _open_texts(ring, _findings, ("text", "evidence"))
    _open_numbers(ring, _calls, metadata=True)
    _open_numbers(ring, _attempts, metadata=False)
    _open_numbers(ring, _dnc, metadata=False)
    with op.batch_alter_table("do_not_call") as batch:
        batch.drop_constraint("uq_do_not_call_dialed_number_hash", type_="unique")
        batch.drop_column("dialed_number_hash")
        batch.alter_column(
            "dialed_number", type_=sa.String(32), existing_type=sa.Text(), existing_nullable=False
        )
        batch.create_unique_constraint("uq_do_not_call_dialed_number", ["dialed_number"])
    with op.batch_alter_table("dial_attempts") as batch:
        batch.drop_constraint(_NEW_UQ_ATTEMPTS, type_="unique")
        batch.drop_column("dialed_number_hash")
        batch.alter_column(
            "dialed_number", type_=sa.String(32), existing_type=sa.Text(), existing_nullable=False
        )
        batch.create_unique_constraint(
            _OLD_UQ_ATTEMPTS, ["dialed_number", "started_at", "agent_id"]
        )
    with op.batch_alter_table("calls") as batch:
        batch.drop_index("ix_calls_dialed_number_hash")
        batch.drop_column("dialed_number_hash")
        batch.alter_column(
            "dialed_number", type_=sa.String(32), existing_type=sa.Text(), existing_nullable=True
        )
        batch.create_index("ix_calls_dialed_number", ["dialed_number"])
    op.drop_column("findings", "pii_sealed")
    op.drop_column("utterances", "pii_sealed")
