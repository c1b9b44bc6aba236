"""Conversions between ORM rows and domain dataclasses, shared by the data-access modules.

Both :mod:`qa_service.db.repository` (analyses, dial log) and :mod:`qa_service.db.scores`
(scores, reports) read the same rows; the conversions and the error wrapper live here so
neither module imports the other's privates.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import fields
from datetime import datetime
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from qa_service.db.tables import DialAttemptRow, FindingRow, UtteranceRow
from qa_service.domain import CallMetadata, DialAttempt, Finding, Speaker, Utterance
from qa_service.errors import StorageError


@contextmanager
def storage_errors(action: str, **context: object) -> Iterator[None]:
    """Turn driver and SQL errors into a StorageError that says what was being done."""
    try:
        yield
    except SQLAlchemyError as exc:
        raise StorageError(
            f"数据库操作失败（{action}）/ database operation failed ({action}): {exc}",
            **context,
        ) from exc


def aware(value: datetime, what: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise StorageError(
            f"时间缺少时区，无法保存 / {what} has no timezone and cannot be stored: "
            f"{value.isoformat()}",
            field=what,
        )
    return value


def metadata_to_json(meta: CallMetadata) -> dict[str, Any]:
    out: dict[str, Any] = {f.name: getattr(meta, f.name) for f in fields(meta)}
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


def utterance_row(call_pk: int, seq: int, utt: Utterance) -> UtteranceRow:
    return UtteranceRow(
        call_id=call_pk,
        seq=seq,
        speaker=Speaker(utt.speaker).value,
        channel=utt.channel,
        start_s=utt.start,
        end_s=utt.end,
        text=utt.text,
        raw_text=utt.raw_text,
        avg_logprob=utt.avg_logprob,
    )


def utterance_from_row(row: UtteranceRow) -> Utterance:
    return Utterance(
        speaker=Speaker(row.speaker),
        start=row.start_s,
        end=row.end_s,
        text=row.text,
        channel=row.channel,
        avg_logprob=row.avg_logprob,
        raw_text=row.raw_text,
    )


def finding_row(call_pk: int, finding: Finding) -> FindingRow:
    return FindingRow(
        call_id=call_pk,
        rule=finding.rule,
        speaker=Speaker(finding.speaker).value if finding.speaker is not None else None,
        start_s=finding.start,
        end_s=finding.end,
        text=finding.text,
        source=finding.source,
        confidence=finding.confidence,
        evidence=dict(finding.evidence),
    )


def finding_from_row(row: FindingRow) -> Finding:
    return Finding(
        rule=row.rule,
        source=row.source,
        confidence=row.confidence,
        speaker=Speaker(row.speaker) if row.speaker is not None else None,
        start=row.start_s,
        end=row.end_s,
        text=row.text,
        evidence=dict(row.evidence),
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
