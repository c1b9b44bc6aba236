"""Alerts in the database: raising one with its analysis, reading them, acknowledging them.

Keyword-only functions taking the caller's ``Session``; they flush but never commit, so
:func:`raise_alert` lands in the job's own transaction (no analysis without its alert, no
alert without its analysis). Who receives which alerts is decided here and only here:
supervisors those of their teams, managers all of them (read-only: they do not
acknowledge); nobody else.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, false, func, or_, select, true, update
from sqlalchemy.orm import Session

from qa_service.accounts.roles import Principal, Role
from qa_service.alerts.triggers import AlertTrigger
from qa_service.db.rows import storage_errors
from qa_service.db.tables import (
    AgentRow,
    AlertDeliveryRow,
    AlertRow,
    ApiTokenRow,
    AuthSessionRow,
    CallRow,
    UserRow,
)
from qa_service.errors import AlertNotFound, PermissionDenied


@dataclass(frozen=True)
class Alert:
    """One alert as its receivers see it."""

    id: int
    call_id: str
    kinds: tuple[str, ...]
    rules: tuple[str, ...]
    team_id: str | None
    agent_id: str | None
    score: float | None
    created_at: datetime
    acknowledged_by: str | None = None
    acknowledged_at: datetime | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "call_id": self.call_id,
            "kinds": list(self.kinds),
            "rules": list(self.rules),
            "team_id": self.team_id,
            "agent_id": self.agent_id,
            "score": self.score,
            "created_at": self.created_at.isoformat(),
            "acknowledged": self.acknowledged_at is not None,
            "acknowledged_by": self.acknowledged_by,
            "acknowledged_at": self.acknowledged_at.isoformat() if self.acknowledged_at else None,
        }


# --- who receives what -----------------------------------------------------------------

RECEIVERS = frozenset({Role.SUPERVISOR, Role.MANAGER})


def receives_alerts(principal: Principal) -> bool:
    return principal.role in RECEIVERS


def ensure_receiver(principal: Principal) -> None:
    """PermissionDenied unless the caller's role receives alerts."""
    if not receives_alerts(principal):
        raise PermissionDenied(
            f"只有组长和管理层接收告警 / the role '{principal.role}' receives no alerts",
            permission="receive_alerts",
        )


def visible_alerts(principal: Principal) -> ColumnElement[bool]:
    """A where-clause on :class:`AlertRow`: the alerts ``principal`` receives."""
    if principal.role is Role.MANAGER:
        return true()
    if principal.role is Role.SUPERVISOR and principal.team_ids:
        return AlertRow.team_id.in_(sorted(principal.team_ids))
    return false()


def can_see_alert(principal: Principal, alert: Alert) -> bool:
    """:func:`visible_alerts` for an alert already loaded (the stream filters with it)."""
    if principal.role is Role.MANAGER:
        return True
    return (
        principal.role is Role.SUPERVISOR
        and alert.team_id is not None
        and alert.team_id in principal.team_ids
    )


# --- raising ---------------------------------------------------------------------------


def _team_of(session: Session, call: CallRow) -> str | None:
    if call.team_id is not None or call.agent_id is None:
        return call.team_id
    # A call saved without a team: the roster may still know the agent's.
    return session.scalars(
        select(AgentRow.team_id).where(AgentRow.agent_id == call.agent_id)
    ).first()


def raise_alert(
    session: Session,
    *,
    call_pk: int,
    trigger: AlertTrigger,
    webhook_url: str = "",
    now: datetime,
) -> int | None:
    """Record the alert of call ``call_pk``; returns its id, or None if the call had one.

    One alert per call: analysing a call again (a retried job) adds no second alert; a
    kind it did not have yet is added to the existing one. With ``webhook_url`` a pending
    delivery is queued with the alert (see :mod:`qa_service.alerts.webhook`).
    """
    with storage_errors("raise_alert", call_pk=call_pk):
        call = session.get(CallRow, call_pk)
        if call is None:
            return None
        existing = session.scalars(select(AlertRow).where(AlertRow.call_id == call_pk)).first()
        kinds = [str(kind) for kind in trigger.kinds]
        if existing is not None:
            existing.kinds = list(dict.fromkeys([*existing.kinds, *kinds]))
            existing.rules = list(dict.fromkeys([*existing.rules, *trigger.rules]))
            session.flush()
            return None
        row = AlertRow(
            call_id=call_pk,
            kinds=kinds,
            rules=list(trigger.rules),
            team_id=_team_of(session, call),
            agent_id=call.agent_id,
            created_at=now,
        )
        session.add(row)
        session.flush()
        if webhook_url:
            session.add(
                AlertDeliveryRow(
                    alert_id=row.id,
                    url=webhook_url,
                    status="pending",
                    attempts=0,
                    next_attempt_at=now,
                    created_at=now,
                )
            )
            session.flush()
        return row.id


# --- reading ---------------------------------------------------------------------------


def _query():  # untyped on purpose: Select's generics differ between SQLAlchemy 2.0 and 2.1
    return (
        select(AlertRow, CallRow.call_id, CallRow.score, UserRow.username)
        .join(CallRow, CallRow.id == AlertRow.call_id)
        .outerjoin(UserRow, UserRow.id == AlertRow.acknowledged_by_id)
    )


def _alert(result: Any) -> Alert:
    """An Alert from one row of :func:`_query` (alert row, call id, score, acknowledger)."""
    row, call_id, score, acknowledger = result
    return Alert(
        id=row.id,
        call_id=call_id,
        kinds=tuple(row.kinds),
        rules=tuple(row.rules),
        team_id=row.team_id,
        agent_id=row.agent_id,
        score=score,
        created_at=row.created_at,
        acknowledged_by=acknowledger,
        acknowledged_at=row.acknowledged_at,
    )


def list_alerts(
    session: Session,
    *,
    scope: ColumnElement[bool],
    acknowledged: bool | None = None,
    limit: int = 50,
    before_id: int | None = None,
) -> list[Alert]:
    """Alerts in ``scope``: unacknowledged first, then newest first."""
    query = _query().where(scope)
    if acknowledged is not None:
        ack = AlertRow.acknowledged_at.is_not(None)
        query = query.where(ack if acknowledged else ~ack)
    if before_id is not None:
        query = query.where(AlertRow.id < before_id)
    query = query.order_by(AlertRow.acknowledged_at.is_not(None), AlertRow.id.desc()).limit(limit)
    with storage_errors("list_alerts"):
        return [_alert(row) for row in session.execute(query).all()]


def alerts_after(
    session: Session, *, after_id: int, scope: ColumnElement[bool], limit: int = 500
) -> list[Alert]:
    """Alerts in ``scope`` with an id above ``after_id``, oldest first (stream replay)."""
    query = _query().where(scope, AlertRow.id > after_id).order_by(AlertRow.id).limit(limit)
    with storage_errors("alerts_after"):
        return [_alert(row) for row in session.execute(query).all()]


def recent_alerts(session: Session, *, after_id: int, since: datetime) -> list[Alert]:
    """Every alert above ``after_id`` or created since ``since``, oldest first.

    The time window catches an alert committed after one with a higher id (two workers
    saving at once on PostgreSQL): polling by id alone would skip it for good.
    """
    query = (
        _query()
        .where(or_(AlertRow.id > after_id, AlertRow.created_at >= since))
        .order_by(AlertRow.id)
        .limit(1000)
    )
    with storage_errors("recent_alerts"):
        return [_alert(row) for row in session.execute(query).all()]


def get_alert(session: Session, *, alert_id: int) -> Alert | None:
    with storage_errors("get_alert", alert_id=alert_id):
        row = session.execute(_query().where(AlertRow.id == alert_id)).first()
    return _alert(row) if row is not None else None


def _not_found(alert_id: int) -> AlertNotFound:
    return AlertNotFound(f"找不到告警 {alert_id} / alert {alert_id} not found", alert_id=alert_id)


def acknowledge(session: Session, *, alert_id: int, principal: Principal, now: datetime) -> Alert:
    """Mark an alert of the supervisor's team handled; acknowledging twice keeps the first.

    An alert the caller does not receive is AlertNotFound (404, never 403); managers
    receive alerts but are read-only, so they are refused (PermissionDenied).
    """
    if principal.role is not Role.SUPERVISOR:
        ensure_receiver(principal)
        raise PermissionDenied(
            "管理层只读，告警由组长确认处理 / managers are read-only: the team's supervisor "
            "acknowledges alerts",
            permission="acknowledge_alerts",
        )
    alert = get_alert(session, alert_id=alert_id)
    if alert is None or not can_see_alert(principal, alert):
        raise _not_found(alert_id)
    if alert.acknowledged_at is None:
        with storage_errors("acknowledge", alert_id=alert_id):
            session.execute(
                update(AlertRow)
                .where(AlertRow.id == alert_id, AlertRow.acknowledged_at.is_(None))
                .values(acknowledged_by_id=principal.user_id, acknowledged_at=now)
            )
            session.flush()
        alert = get_alert(session, alert_id=alert_id) or alert
    return alert


def credentials_live(
    session: Session, *, principal: Principal, now: datetime, idle: timedelta
) -> bool:
    """Whether the session or token behind an open stream still holds, without touching it.

    A stream is not activity: it must not keep an idle session alive, and it ends when
    the session ends, idles out, or the token is revoked or the account disabled.
    """
    with storage_errors("credentials_live", user_id=principal.user_id):
        user = session.get(UserRow, principal.user_id)
        if user is None or user.disabled_at is not None:
            return False
        if principal.session_id is not None:
            row = session.get(AuthSessionRow, principal.session_id)
            return row is not None and row.ended_at is None and now - row.last_seen_at < idle
        if principal.token_id is not None:
            token = session.get(ApiTokenRow, principal.token_id)
            return token is not None and token.revoked_at is None
    return False


def latest_alert_id(session: Session) -> int:
    """The highest alert id (0 when there is none)."""
    with storage_errors("latest_alert_id"):
        return int(session.scalar(select(func.max(AlertRow.id))) or 0)
