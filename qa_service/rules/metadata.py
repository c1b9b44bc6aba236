"""Metadata rules from call metadata and the dial log: M01, M02, M03.

Times are compared in the call centre's local time (the configured UTC offset), since
the service plan's limits (22:00–08:00, attempts per day) are local-time rules.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta, timezone

from qa_service.domain import CallMetadata, DialAttempt, DoNotCallEntry, Finding
from qa_service.settings import Settings


@dataclass(frozen=True)
class MetadataParams:
    forbidden_start_hour: int = 22
    forbidden_end_hour: int = 8
    max_attempts_reached: int = 3
    max_attempts_any: int = 5
    local_tz: timezone = timezone(timedelta(hours=8))

    @classmethod
    def from_settings(cls, settings: Settings) -> MetadataParams:
        return cls(
            forbidden_start_hour=settings.forbidden_start_hour,
            forbidden_end_hour=settings.forbidden_end_hour,
            max_attempts_reached=settings.max_attempts_reached,
            max_attempts_any=settings.max_attempts_any,
            local_tz=settings.local_tz,
        )


def check_forbidden_hours(meta: CallMetadata, params: MetadataParams) -> list[Finding]:
    """M01: the call started at or after 22:00 or before 08:00 local time."""
    if meta.started_at is None:
        return []
    local = meta.started_at.astimezone(params.local_tz)
    if local.hour >= params.forbidden_start_hour or local.hour < params.forbidden_end_hour:
        return [
            Finding(
                rule="M01",
                source="metadata",
                confidence=1.0,
                evidence={"started_at_local": local.isoformat()},
            )
        ]
    return []


def check_call_frequency(
    meta: CallMetadata, attempts: Iterable[DialAttempt], params: MetadataParams
) -> list[Finding]:
    """M02: too many outbound attempts to the same customer on the same local day.

    Counts attempts up to and including this call. The limit is ``max_attempts_reached``
    once the customer was reached (a connected attempt) earlier that day, else
    ``max_attempts_any``.
    """
    if meta.started_at is None or not (meta.customer_id or meta.dialed_number):
        return []
    this_local = meta.started_at.astimezone(params.local_tz)
    day = this_local.date()

    def same_customer(a: DialAttempt) -> bool:
        if meta.customer_id:
            return a.customer_id == meta.customer_id
        return a.dialed_number == meta.dialed_number

    todays = sorted(
        (
            a
            for a in attempts
            if same_customer(a)
            and a.started_at.astimezone(params.local_tz).date() == day
            and a.started_at <= meta.started_at
        ),
        key=lambda a: a.started_at,
    )
    # The recorded call itself is an attempt even when the dial log omits it.
    if not any(a.call_id == meta.call_id or a.started_at == meta.started_at for a in todays):
        count = len(todays) + 1
    else:
        count = len(todays)
    earlier = [a for a in todays if a.started_at < meta.started_at and a.call_id != meta.call_id]
    reached_earlier = any(a.connected for a in earlier)
    limit = params.max_attempts_reached if reached_earlier else params.max_attempts_any
    if count <= limit:
        return []
    return [
        Finding(
            rule="M02",
            source="metadata",
            confidence=1.0,
            evidence={
                "attempts_today": count,
                "limit": limit,
                "reached_earlier": reached_earlier,
                "local_day": day.isoformat(),
            },
        )
    ]


def check_do_not_call(
    meta: CallMetadata, entries: Iterable[DoNotCallEntry], params: MetadataParams
) -> list[Finding]:
    """M03: the dialled number is on the do-not-call list since before this call."""
    if not meta.dialed_number:
        return []
    for entry in entries:
        if entry.dialed_number != meta.dialed_number:
            continue
        if entry.added_at and meta.started_at and entry.added_at > meta.started_at:
            continue  # listed after this call was made: not a breach at the time
        return [
            Finding(
                rule="M03",
                source="metadata",
                confidence=1.0,
                evidence={"listed_by": entry.source, "reason": entry.reason},
            )
        ]
    return []


def scan_metadata(
    meta: CallMetadata,
    attempts: Iterable[DialAttempt],
    do_not_call: Iterable[DoNotCallEntry],
    params: MetadataParams,
) -> list[Finding]:
    """All metadata findings of one call."""
    return [
        *check_forbidden_hours(meta, params),
        *check_call_frequency(meta, list(attempts), params),
        *check_do_not_call(meta, do_not_call, params),
    ]
