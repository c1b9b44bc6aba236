"""Trends and coaching over HTTP, as JSON and as XLSX exports with Chinese headers.

Managers see everything, supervisors their teams (``view_aggregates``; everybody else 403).
Supervisors record trainings (``coach_agents``) for their teams' agents.
"""

from __future__ import annotations

import tempfile
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, Field

from qa_service.accounts.roles import Permission, Principal
from qa_service.api.audit import actor_of, record_success
from qa_service.api.deps import State, require
from qa_service.complaints.coaching import (
    CoachingParams,
    coaching_for_period,
    record_training,
    training_effects,
)
from qa_service.db.tables import utcnow
from qa_service.reports.exports import Table, write_xlsx
from qa_service.reports.scorecards import Period
from qa_service.trends.figures import Dimension, TrendReport
from qa_service.trends.periods import Granularity
from qa_service.trends.report import trend_report
from qa_service.trends.tables import coaching_tables, trend_tables

router = APIRouter(prefix="/api/v1", tags=["trends"])

Viewer = Annotated[Principal, Depends(require(Permission.VIEW_AGGREGATES))]
Coach = Annotated[Principal, Depends(require(Permission.COACH_AGENTS))]
FromQ = Annotated[date | None, Query(alias="from", description="开始日期（含），默认约 3 个月前")]
ToQ = Annotated[date | None, Query(alias="to", description="结束日期（含），默认今天")]
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _days(state: State, start: date | None, end: date | None, default_days: int) -> Period:
    end = end or utcnow().astimezone(state.settings.local_tz).date()
    return Period(start or end - timedelta(days=default_days), end)


def _trends(
    state: State,
    principal: Principal,
    period: Granularity,
    by: Dimension,
    start: date | None,
    end: date | None,
) -> TrendReport:
    days = _days(state, start, end, 89 if period is Granularity.MONTH else 27)
    with state.sessions() as session:
        return trend_report(
            session,
            principal=principal,
            start=days.start,
            end=days.end,
            granularity=period,
            dimension=by,
            tz=state.settings.local_tz,
        )


@router.get("/trends")
def get_trends(
    state: State,
    principal: Viewer,
    period: Granularity = Granularity.MONTH,
    by: Dimension = Dimension.TEAM,
    date_from: FromQ = None,
    date_to: ToQ = None,
) -> dict[str, Any]:
    """Every trend table (violations, C01 and de-escalation, complaints, early warning,
    review statistics) by week or month, per team or agency, with the change."""
    return _trends(state, principal, period, by, date_from, date_to).as_dict()


def _xlsx(tables: list[Table], filename: str) -> Response:
    with tempfile.TemporaryDirectory() as tmp:
        data = write_xlsx(tables, Path(tmp) / "export.xlsx").read_bytes()
    return Response(
        data,
        media_type=XLSX,
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "Cache-Control": "private, no-store",
        },
    )


_XLSX_DOC: dict[int | str, dict[str, Any]] = {200: {"content": {XLSX: {}}}}


@router.get("/trends/export", response_class=Response, responses=_XLSX_DOC)
def export_trends(
    request: Request,
    state: State,
    principal: Viewer,
    period: Granularity = Granularity.MONTH,
    by: Dimension = Dimension.TEAM,
    date_from: FromQ = None,
    date_to: ToQ = None,
) -> Response:
    """The trend tables as one XLSX workbook (one sheet each, Chinese headers)."""
    report = _trends(state, principal, period, by, date_from, date_to)
    record_success(state, actor_of(request, principal), "report.export", "trends")
    return _xlsx(trend_tables(report), f"trends-{period.value}-{by.value}.xlsx")


def _coaching(
    state: State, principal: Principal, start: date | None, end: date | None
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[Table]]:
    days = _days(state, start, end, 29)
    since, until = days.bounds(state.settings.local_tz)
    params = CoachingParams.from_settings(state.settings)
    with state.sessions() as session:
        entries = coaching_for_period(
            session, principal=principal, start=since, end=until, params=params
        )
        effects = training_effects(session, principal=principal, params=params)
    tables = coaching_tables(entries, effects)
    return [e.as_json() for e in entries], [e.as_json() for e in effects], tables


@router.get("/coaching")
def get_coaching(
    state: State, principal: Viewer, date_from: FromQ = None, date_to: ToQ = None
) -> dict[str, Any]:
    """Agents to re-train over the period (score under the pass mark, or a repeated
    confirmed violation of one rule), and every training with its before/after figures."""
    entries, effects, _ = _coaching(state, principal, date_from, date_to)
    params = CoachingParams.from_settings(state.settings)
    return {
        "pass_mark": params.pass_mark,
        "repeat_calls": params.repeat_calls,
        "window_days": params.window_days,
        "items": entries,
        "trainings": effects,
    }


@router.get("/coaching/export", response_class=Response, responses=_XLSX_DOC)
def export_coaching(
    request: Request, state: State, principal: Viewer, date_from: FromQ = None, date_to: ToQ = None
) -> Response:
    """The coaching list and training effects as XLSX (Chinese headers)."""
    _, _, tables = _coaching(state, principal, date_from, date_to)
    record_success(state, actor_of(request, principal), "report.export", "coaching")
    return _xlsx(tables, "coaching.xlsx")


@router.get("/coaching/trainings")
def get_trainings(state: State, principal: Viewer, agent_id: str | None = None) -> dict[str, Any]:
    """Trainings in scope with the agent's rate for the rule before and after."""
    params = CoachingParams.from_settings(state.settings)
    with state.sessions() as session:
        effects = training_effects(session, principal=principal, params=params, agent_id=agent_id)
    return {"items": [e.as_json() for e in effects]}


class TrainingIn(BaseModel):
    agent_id: str = Field(min_length=1, max_length=64)
    rule: str | None = Field(default=None, max_length=8, description="规则编号；空表示综合培训")
    trained_at: datetime = Field(description="培训时间（须带时区）")
    note: str = Field(default="", max_length=5000)


@router.post("/coaching/trainings", status_code=201)
def post_training(
    body: TrainingIn, request: Request, state: State, principal: Coach
) -> dict[str, Any]:
    """Record a re-training of one of the supervisor's agents."""
    with state.sessions.begin() as session:
        training = record_training(
            session,
            agent_id=body.agent_id,
            rule=body.rule,
            trained_at=body.trained_at,
            note=body.note,
            principal=principal,
            actor=actor_of(request, principal),
        )
    return training.as_json()
