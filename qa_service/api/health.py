"""Liveness and readiness probes for load balancers and deployment scripts (no auth)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from qa_service.api.deps import State
from qa_service.api.errors import error_body
from qa_service.api.schemas import ErrorResponse, Health, Readiness
from qa_service.errors import QAServiceError

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health)
def healthz() -> Health:
    """200 while the process is up."""
    return Health(status="ok")


def _database_ok(state: State) -> bool:
    try:
        with state.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except SQLAlchemyError:
        return False
    return True


def _queue_ok(state: State) -> bool:
    try:
        state.queue.ping()
    except (QAServiceError, OSError):
        return False
    return True


@router.get(
    "/readyz",
    response_model=Readiness,
    responses={503: {"model": ErrorResponse, "description": "database or queue unreachable"}},
)
def readyz(state: State) -> Readiness | JSONResponse:
    """200 when the database and the job queue answer; 503 naming the one that does not."""
    database, queue = _database_ok(state), _queue_ok(state)
    if database and queue:
        return Readiness(status="ready", database="ok", queue="ok")
    down = [name for name, ok in (("database", database), ("queue", queue)) if not ok]
    zh = {"database": "数据库", "queue": "任务队列"}
    body = error_body(
        "not_ready",
        "服务未就绪：" + "、".join(zh[name] for name in down) + " 无法连接",
        "not ready: " + ", ".join(down) + " unreachable",
    )
    body["database"] = "ok" if database else "unreachable"
    body["queue"] = "ok" if queue else "unreachable"
    return JSONResponse(body, status_code=503)
