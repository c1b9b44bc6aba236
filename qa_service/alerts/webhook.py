"""Webhook deliveries: every alert POSTed as JSON to ``QA_ALERT_WEBHOOK_URL``, retried.

A delivery is a row (``alert_deliveries``) queued in the job's transaction with its alert;
the job never waits for the webhook. A sender thread in the web process (or anyone calling
:func:`deliver_due`) claims due rows with a compare-and-set, so several web processes never
POST the same attempt twice, sends them, and records the outcome: delivered, or the error
and the next attempt after ``alert_webhook_backoff_s``, or ``failed`` after
``alert_webhook_max_attempts``. Receivers get ``X-QA-Alert-Id`` to drop a duplicate.
"""

from __future__ import annotations

import json
import logging
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from qa_service.alerts import store
from qa_service.db.rows import storage_errors
from qa_service.db.tables import AlertDeliveryRow, utcnow
from qa_service.settings import Settings

logger = logging.getLogger(__name__)

# Poster: (url, JSON body, headers, timeout) -> HTTP status; raises on a transport error.
Poster = Callable[[str, bytes, dict[str, str], float], int]


@dataclass(frozen=True)
class DeliveryReport:
    """What one :func:`deliver_due` pass did, by delivery id."""

    delivered: tuple[int, ...] = ()
    retrying: tuple[int, ...] = ()
    failed: tuple[int, ...] = ()
    errors: dict[int, str] = field(default_factory=dict)


def post_json(url: str, body: bytes, headers: dict[str, str], timeout: float) -> int:
    """POST ``body``; the HTTP status (a 4xx/5xx is returned, not raised)."""
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def payload(alert: store.Alert) -> dict[str, Any]:
    """The JSON the webhook receives."""
    return {"event": "alert", "alert": alert.as_json()}


def _backoff(settings: Settings, attempts: int) -> timedelta:
    steps = settings.alert_webhook_backoff_s or [60]
    return timedelta(seconds=steps[min(attempts - 1, len(steps) - 1)])


def _claim(session: Session, *, now: datetime, hold: timedelta, limit: int) -> list[int]:
    due = session.scalars(
        select(AlertDeliveryRow.id)
        .where(
            AlertDeliveryRow.status == "pending",
            AlertDeliveryRow.next_attempt_at <= now,
            or_(AlertDeliveryRow.claimed_until.is_(None), AlertDeliveryRow.claimed_until < now),
        )
        .order_by(AlertDeliveryRow.next_attempt_at)
        .limit(limit)
    ).all()
    claimed = []
    for delivery_id in due:
        result = session.execute(
            update(AlertDeliveryRow)
            .where(
                AlertDeliveryRow.id == delivery_id,
                AlertDeliveryRow.status == "pending",
                or_(
                    AlertDeliveryRow.claimed_until.is_(None),
                    AlertDeliveryRow.claimed_until < now,
                ),
            )
            .values(claimed_until=now + hold, attempts=AlertDeliveryRow.attempts + 1)
        )
        if cast("CursorResult[Any]", result).rowcount == 1:
            claimed.append(delivery_id)
    return claimed


def deliver_due(
    sessions: sessionmaker[Session],
    settings: Settings,
    *,
    now: datetime | None = None,
    post: Poster = post_json,
    limit: int = 20,
) -> DeliveryReport:
    """Send every due delivery once (see the module docstring)."""
    now = now or utcnow()
    hold = timedelta(seconds=settings.alert_webhook_timeout_s * 2 + 5)
    with sessions.begin() as session, storage_errors("claim webhook deliveries"):
        claimed = _claim(session, now=now, hold=hold, limit=limit)
    delivered: list[int] = []
    retrying: list[int] = []
    failed: list[int] = []
    errors: dict[int, str] = {}
    for delivery_id in claimed:
        with sessions() as session:
            row = session.get(AlertDeliveryRow, delivery_id)
            alert = store.get_alert(session, alert_id=row.alert_id) if row else None
            url, attempts = (row.url, row.attempts) if row else ("", 0)
        if row is None or alert is None:
            continue
        body = json.dumps(payload(alert), ensure_ascii=False).encode("utf-8")
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "X-QA-Alert-Id": str(alert.id),
            "X-QA-Delivery-Attempt": str(attempts),
            "User-Agent": "qa-service-alerts/1",
        }
        status: int | None = None
        try:
            status = post(url, body, headers, settings.alert_webhook_timeout_s)
            error = None if 200 <= status < 300 else f"HTTP {status}"
        except Exception as exc:  # transport errors are retried like a 5xx
            error = f"{type(exc).__name__}: {exc}"
        done_at = utcnow()
        values: dict[str, Any] = {"claimed_until": None, "last_status_code": status}
        if error is None:
            values.update(status="delivered", delivered_at=done_at, last_error=None)
            delivered.append(delivery_id)
        elif attempts >= settings.alert_webhook_max_attempts:
            values.update(status="failed", last_error=error)
            failed.append(delivery_id)
            logger.error(
                "alert %s: webhook gave up after %d attempts: %s", alert.id, attempts, error
            )
        else:
            values.update(last_error=error, next_attempt_at=done_at + _backoff(settings, attempts))
            retrying.append(delivery_id)
            logger.warning("alert %s: webhook attempt %d failed: %s", alert.id, attempts, error)
        if error is not None:
            errors[delivery_id] = error
        with sessions.begin() as session, storage_errors("record webhook delivery"):
            session.execute(
                update(AlertDeliveryRow).where(AlertDeliveryRow.id == delivery_id).values(**values)
            )
    return DeliveryReport(tuple(delivered), tuple(retrying), tuple(failed), errors)


# How often the sender looks for due deliveries (one indexed query when none is due).
SEND_EVERY_S = 1.0


class WebhookSender:
    """A daemon thread running :func:`deliver_due` every :data:`SEND_EVERY_S` seconds."""

    def __init__(self, sessions: sessionmaker[Session], settings: Settings) -> None:
        self.sessions = sessions
        self.settings = settings
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="qa-alert-webhook", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.wait(SEND_EVERY_S):
            try:
                deliver_due(self.sessions, self.settings)
            except Exception:  # the database may be down for a moment: the next pass retries
                logger.warning("webhook deliveries failed", exc_info=True)
