"""Key rotation: re-seal every sealed value under the primary key, re-hash every number.

Run by ``qa-service keys rotate`` after a new key was put first in ``QA_DATA_KEY`` (the old
ones still after it, so everything still opens meanwhile). Values already under the
primary key are left alone, and each batch commits on its own, so an interrupted rotation
is simply run again. The keyed hashes are recomputed from the opened numbers under the
current ``QA_SEARCH_KEY`` too, which is how a new search key is taken into use.

Works on the raw column values (Core, not the ORM), since the ORM would open and seal
them through the process's key ring on its own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy import Engine

from qa_service.db.rows import storage_errors
from qa_service.db.sealed import PHONE, TRANSCRIPT
from qa_service.privacy.keys import KeyRing


@dataclass(frozen=True)
class SealedColumn:
    table: str
    column: str
    purpose: str
    hash_column: str | None = None  # the keyed hash of the plaintext, recomputed too


SEALED_COLUMNS: tuple[SealedColumn, ...] = (
    SealedColumn("calls", "dialed_number", PHONE, "dialed_number_hash"),
    SealedColumn("dial_attempts", "dialed_number", PHONE, "dialed_number_hash"),
    SealedColumn("do_not_call", "dialed_number", PHONE, "dialed_number_hash"),
    SealedColumn("utterances", "pii_sealed", TRANSCRIPT),
    SealedColumn("findings", "pii_sealed", TRANSCRIPT),
)


@dataclass
class RotationReport:
    """Per ``table.column``: values seen, re-sealed under the new key, hashes rewritten."""

    seen: dict[str, int] = field(default_factory=dict)
    resealed: dict[str, int] = field(default_factory=dict)
    rehashed: dict[str, int] = field(default_factory=dict)


def rotate_keys(
    engine: Engine,
    *,
    ring: KeyRing,
    batch_size: int = 500,
    progress: Callable[[str, int], None] | None = None,
) -> RotationReport:
    """Re-seal and re-hash every sealed value with ``ring``; one transaction per batch."""
    report = RotationReport()
    for spec in SEALED_COLUMNS:
        name = f"{spec.table}.{spec.column}"
        columns: list[sa.ColumnClause[object]] = [
            sa.column("id", sa.Integer),
            sa.column(spec.column, sa.Text),
        ]
        if spec.hash_column:
            columns.append(sa.column(spec.hash_column, sa.String))
        table = sa.table(spec.table, *columns)
        seen = resealed = rehashed = 0
        last = -1
        while True:
            with storage_errors("rotate_keys", table=name), engine.begin() as connection:
                rows = connection.execute(
                    sa.select(*table.c)
                    .where(table.c.id > last, table.c[spec.column].is_not(None))
                    .order_by(table.c.id)
                    .limit(batch_size)
                ).all()
                if not rows:
                    break
                last = rows[-1].id
                updates = []
                for row in rows:
                    token = row._mapping[spec.column]
                    seen += 1
                    change: dict[str, object] = {}
                    plain: str | None = None
                    if ring.needs_rotation(token):
                        plain = ring.open(token, purpose=spec.purpose)
                        change[spec.column] = ring.seal(plain, purpose=spec.purpose)
                        resealed += 1
                    if spec.hash_column:
                        plain = (
                            plain if plain is not None else ring.open(token, purpose=spec.purpose)
                        )
                        digest = ring.digest(plain)
                        if digest != row._mapping[spec.hash_column]:
                            change[spec.hash_column] = digest
                            rehashed += 1
                    if change:
                        updates.append({"_id": row.id, **change})
                for update in updates:
                    row_id = update.pop("_id")
                    connection.execute(sa.update(table).where(table.c.id == row_id).values(update))
            if progress is not None:
                progress(name, seen)
        report.seen[name] = seen
        report.resealed[name] = resealed
        report.rehashed[name] = rehashed
    return report
