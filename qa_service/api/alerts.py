"""Alerts for supervisors: the list, acknowledging one, and the live stream (SSE).

``GET /api/v1/alerts/stream`` is a server-sent-events stream: each new alert the caller
receives is one ``event: alert`` whose ``id`` is the alert id, so a reconnecting
``EventSource`` resumes with ``Last-Event-ID`` and misses nothing; a comment line keeps
idle connections open through proxies. No database connection is held while a stream
waits: the process's :class:`~qa_service.alerts.hub.AlertHub` polls for all streams.
Supervisors receive their teams' alerts, managers all; everyone else is refused (403).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, FastAPI, Header, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from qa_service.accounts.roles import Principal
from qa_service.alerts import store
from qa_service.alerts.hub import AlertHub
from qa_service.alerts.webhook import WebhookSender
from qa_service.api.deps import Caller, State
from qa_service.api.schemas import ErrorResponse
from qa_service.db.tables import utcnow

router = APIRouter(prefix="/api/v1/alerts", tags=["alerts"])

# How often an open stream checks that its session or token still holds.
RECHECK_S = 60.0
RETRY_MS = 3000


class AlertOut(BaseModel):
    id: int
    call_id: str
    kinds: list[str]
    rules: list[str]
    team_id: str | None
    agent_id: str | None
    score: float | None
    created_at: datetime
    acknowledged: bool
    acknowledged_by: str | None
    acknowledged_at: datetime | None

    @classmethod
    def from_alert(cls, alert: store.Alert) -> AlertOut:
        return cls.model_validate(alert.as_json())


class AlertList(BaseModel):
    items: list[AlertOut]
    next_before: int | None


def alert_hub(app: FastAPI, state: State) -> AlertHub:
    """The process's hub, made on first use (threads start with the first stream)."""
    hub: AlertHub | None = getattr(app.state, "alert_hub", None)
    if hub is None:
        hub = AlertHub(state.sessions, state.settings)
        app.state.alert_hub = hub
    return hub


def start_alerts(app: FastAPI) -> None:
    """At app start-up: the webhook sender, when a webhook is configured."""
    service = app.state.service
    if service.settings.alert_webhook_url:
        sender = WebhookSender(service.sessions, service.settings)
        sender.start()
        app.state.alert_webhook_sender = sender


def stop_alerts(app: FastAPI) -> None:
    """At app shutdown: stop the hub's threads and the webhook sender."""
    hub: AlertHub | None = getattr(app.state, "alert_hub", None)
    if hub is not None:
        hub.close()
    sender: WebhookSender | None = getattr(app.state, "alert_webhook_sender", None)
    if sender is not None:
        sender.stop()


@router.get("", response_model=AlertList)
def list_alerts(
    state: State,
    principal: Caller,
    acknowledged: Annotated[bool | None, Query(description="只看已确认 / 未确认")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    before: Annotated[int | None, Query(ge=1, description="翻页：id 小于此值")] = None,
) -> AlertList:
    """The caller's alerts: unacknowledged first, then newest first."""
    store.ensure_receiver(principal)
    with state.sessions() as session:
        alerts = store.list_alerts(
            session,
            scope=store.visible_alerts(principal),
            acknowledged=acknowledged,
            limit=limit,
            before_id=before,
        )
    next_before = alerts[-1].id if len(alerts) == limit and acknowledged is not None else None
    return AlertList(items=[AlertOut.from_alert(a) for a in alerts], next_before=next_before)


@router.post(
    "/{alert_id}/ack",
    response_model=AlertOut,
    responses={404: {"model": ErrorResponse, "description": "no such alert, or not yours"}},
)
def acknowledge_alert(alert_id: int, state: State, principal: Caller) -> AlertOut:
    """Mark an alert of the supervisor's team as handled (the first acknowledgement holds)."""
    with state.sessions.begin() as session:
        alert = store.acknowledge(session, alert_id=alert_id, principal=principal, now=utcnow())
    return AlertOut.from_alert(alert)


def _event(alert: store.Alert) -> str:
    data = json.dumps(alert.as_json(), ensure_ascii=False)
    return f"id: {alert.id}\nevent: alert\ndata: {data}\n\n"


async def _stream(
    hub: AlertHub,
    principal: Principal,
    *,
    resume_after: int | None,
    max_s: float | None,
    keepalive_s: float,
) -> AsyncIterator[str]:
    started = time.monotonic()
    yield f"retry: {RETRY_MS}\n\n"
    if max_s is not None and max_s <= 0:
        if resume_after is not None:
            for alert in await asyncio.to_thread(hub.replay, principal, resume_after):
                yield _event(alert)
        return
    sub = hub.subscribe(asyncio.get_running_loop())
    sent: set[int] = set()
    try:
        await asyncio.to_thread(hub.prime)
        # From here on every new alert reaches this stream: clients may wait for this line.
        yield ": ready\n\n"
        if resume_after is not None:
            for alert in await asyncio.to_thread(hub.replay, principal, resume_after):
                sent.add(alert.id)
                yield _event(alert)
        next_check = time.monotonic() + RECHECK_S
        while True:
            now = time.monotonic()
            wait = min(keepalive_s, max(0.0, next_check - now))
            if max_s is not None:
                wait = min(wait, max(0.0, started + max_s - now))
            try:
                alert = await asyncio.wait_for(sub.queue.get(), timeout=wait)
            except TimeoutError:
                now = time.monotonic()
                if max_s is not None and now >= started + max_s:
                    return
                if now >= next_check:
                    next_check = now + RECHECK_S
                    if not await asyncio.to_thread(hub.credentials_live, principal):
                        message = {"message": "登录已失效，请重新登录", "detail": "session ended"}
                        yield f"event: end\ndata: {json.dumps(message, ensure_ascii=False)}\n\n"
                        return
                yield ": keep-alive\n\n"
                continue
            if alert.id in sent or not store.can_see_alert(principal, alert):
                continue
            sent.add(alert.id)
            if len(sent) > 4096:
                sent = set(sorted(sent)[-1024:])
            yield _event(alert)
    finally:
        hub.unsubscribe(sub)


@router.get(
    "/stream",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "server-sent events"}},
)
def alert_stream(
    request: Request,
    state: State,
    principal: Caller,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
    after: Annotated[
        int | None, Query(ge=0, description="从此告警 id 之后开始（同 Last-Event-ID）")
    ] = None,
    max_s: Annotated[
        float | None, Query(ge=0, le=86400, description="秒数后关闭（客户端会自动重连）")
    ] = None,
) -> StreamingResponse:
    """New alerts for the caller as server-sent events (see the module docstring)."""
    store.ensure_receiver(principal)
    resume_after = after
    if last_event_id and last_event_id.strip().isdigit():
        resume_after = int(last_event_id.strip())
    hub = alert_hub(request.app, state)
    return StreamingResponse(
        _stream(
            hub,
            principal,
            resume_after=resume_after,
            max_s=max_s,
            keepalive_s=state.settings.alert_keepalive_s,
        ),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
