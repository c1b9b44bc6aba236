"""Conversions between ORM rows and domain dataclasses, shared by the data-access modules.

Both :mod:`qa_service.db.repository` (analyses, dial log) and :mod:`qa_service.db.scores`
(scores, reports) read the same rows; the conversions and the error wrapper live here so
neither module imports the other's privates.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import fields, replace
from datetime import datetime
from typing import Any

from sqlalchemy.exc import DataError, SQLAlchemyError

from qa_service.db.session import dumps_json
from qa_service.db.tables import CallRow, DialAttemptRow, FindingRow, UtteranceRow
from qa_service.domain import CallMetadata, DialAttempt, Finding, Speaker, Utterance
from qa_service.errors import InputError, StorageError
from qa_service.privacy.masking import mask_number


@contextmanager
def storage_errors(action: str, **context: object) -> Iterator[None]:
    """Turn driver and SQL errors into a StorageError that says what was being done."""
    try:
        yield
    except DataError as exc:
        # The value, not the database, is at fault (a NUL character, a number past the
        # column's range, text too long): the caller's input error, never a 5xx.
        raise InputError(
            f"数据含有无法保存的字符或超出范围的值（{action}） / the data cannot be stored "
            f"({action}): {_first_line(exc)}",
            **context,
        ) from exc
    except SQLAlchemyError as exc:
        # Only the driver's first line: the rest is the SQL and its parameters, which may
        # hold personal data and belong in the server log (the cause), not in a response.
        raise StorageError(
            f"数据库操作失败（{action}） / database operation failed ({action}): "
            f"{_first_line(exc)}",
            **context,
        ) from exc


def _first_line(exc: Exception) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def aware(value: datetime, what: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise StorageError(
            f"时间缺少时区，无法保存 / {what} has no timezone and cannot be stored: "
            f"{value.isoformat()}",
            field=what,
        )
    return value


def metadata_to_json(meta: CallMetadata) -> dict[str, Any]:
    """The metadata as the ``calls.metadata`` column keeps it: the dialled number masked.

    The number itself lives sealed in ``calls.dialed_number``; :func:`call_metadata` puts
    it back when the row is read.
    """
    out: dict[str, Any] = {f.name: getattr(meta, f.name) for f in fields(meta)}
    if meta.dialed_number is not None:
        out["dialed_number"] = mask_number(meta.dialed_number)
    if meta.started_at is not None:
        # ISO text keeps the call centre's own offset, which the UTC column does not.
        out["started_at"] = aware(meta.started_at, "metadata.started_at").isoformat()
    if meta.channel_map is not None:
        out["channel_map"] = {str(k): v.value for k, v in meta.channel_map.items()}
    return out


def metadata_from_json(data: dict[str, Any]) -> CallMetadata:
    known = {f.name for f in fields(CallMetadata)}
    kwargs = {k: v for k, v in data.items() if k in known}
    if kwargs.get("started_at") is not None:
        kwargs["started_at"] = datetime.fromisoformat(kwargs["started_at"])
    if kwargs.get("channel_map") is not None:
        kwargs["channel_map"] = {int(k): Speaker(v) for k, v in kwargs["channel_map"].items()}
    return CallMetadata(**kwargs)


def call_metadata(row: CallRow) -> CallMetadata | None:
    """A call row's metadata with the real dialled number (sealed in its own column)."""
    if row.sidecar is None:
        return None
    meta = metadata_from_json(row.sidecar)
    if meta.dialed_number is not None:
        meta = replace(meta, dialed_number=row.dialed_number)
    return meta


def _sealed(masked: dict[str, Any], original: dict[str, Any]) -> dict[str, Any] | None:
    """The original values of the fields masking changed, or None when none changed."""
    # Compared as stored JSON: evidence may hold numpy values, whose == is elementwise.
    changed = {k: v for k, v in original.items() if dumps_json(masked.get(k)) != dumps_json(v)}
    return changed or None


def utterance_row(call_pk: int, seq: int, utt: Utterance, masked: Utterance) -> UtteranceRow:
    """The row of ``utt``: ``masked``'s texts in the columns, the originals sealed."""
    return UtteranceRow(
        call_id=call_pk,
        seq=seq,
        speaker=Speaker(utt.speaker).value,
        channel=utt.channel,
        start_s=utt.start,
        end_s=utt.end,
        text=masked.text,
        raw_text=masked.raw_text,
        avg_logprob=utt.avg_logprob,
        pii_sealed=_sealed(
            {"text": masked.text, "raw_text": masked.raw_text},
            {"text": utt.text, "raw_text": utt.raw_text},
        ),
    )


def utterance_from_row(row: UtteranceRow) -> Utterance:
    """The utterance as said (sealed originals restored)."""
    sealed = row.pii_sealed or {}
    return Utterance(
        speaker=Speaker(row.speaker),
        start=row.start_s,
        end=row.end_s,
        text=sealed.get("text", row.text),
        channel=row.channel,
        avg_logprob=row.avg_logprob,
        raw_text=sealed.get("raw_text", row.raw_text),
    )


def finding_row(call_pk: int, finding: Finding, masked: Finding) -> FindingRow:
    """The row of ``finding``: ``masked``'s quote and evidence in the columns, originals sealed."""
    return FindingRow(
        call_id=call_pk,
        rule=finding.rule,
        speaker=Speaker(finding.speaker).value if finding.speaker is not None else None,
        start_s=finding.start,
        end_s=finding.end,
        text=masked.text,
        source=finding.source,
        confidence=finding.confidence,
        evidence=dict(masked.evidence),
        pii_sealed=_sealed(
            {"text": masked.text, "evidence": dict(masked.evidence)},
            {"text": finding.text, "evidence": dict(finding.evidence)},
        ),
    )


def finding_from_row(row: FindingRow) -> Finding:
    """The finding as made (sealed originals restored)."""
    sealed = row.pii_sealed or {}
    return Finding(
        rule=row.rule,
        source=row.source,
        confidence=row.confidence,
        speaker=Speaker(row.speaker) if row.speaker is not None else None,
        start=row.start_s,
        end=row.end_s,
        text=sealed.get("text", row.text),
        evidence=dict(sealed.get("evidence", row.evidence)),
    )


def attempt_from_row(row: DialAttemptRow) -> DialAttempt:
    return DialAttempt(
        agent_id=row.agent_id,
        customer_id=row.customer_id,
        dialed_number=row.dialed_number,
        started_at=row.started_at,
        connected=row.connected,
        duration_s=row.duration_s,
        call_id=row.call_id,
    )
