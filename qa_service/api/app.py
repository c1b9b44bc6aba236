"""The app factory: ``create_app(settings)`` wires routes, error handlers, docs and state.

Nothing heavy happens at import or in the factory: the database engine connects lazily,
and no model is loaded in the web process (workers analyse; without Redis the in-process
worker that ``qa-service serve`` starts loads them in its own thread, once).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from qa_service.api import (
    admin,
    alerts,
    audio,
    audit,
    auth,
    calls,
    health,
    imports,
    jobs,
    recordings,
    review,
    rules,
)
from qa_service.api.complaints import router as complaints_router
from qa_service.api.docs import install_docs
from qa_service.api.errors import install_error_handlers
from qa_service.api.evidence import router as evidence_router
from qa_service.api.reports import router as reports_router
from qa_service.api.state import ServiceState
from qa_service.api.trends import router as trends_router
from qa_service.db.session import make_engine, make_session_factory
from qa_service.ingest.store import AudioStore
from qa_service.privacy.keys import install_key_ring, key_ring_from_settings
from qa_service.settings import Settings
from qa_service.worker.queue import JobQueue, queue_from_settings

API_TITLE = "催收通话质检 API / QA speech analytics"


def build_state(settings: Settings, *, queue: JobQueue | None = None) -> ServiceState:
    """The app's resources for ``settings``; ``queue`` defaults to the configured one
    (rq on ``REDIS_URL``, else an in-process queue)."""
    # The sealed columns read and write through this process's key ring (QA_DATA_KEY).
    install_key_ring(key_ring_from_settings(settings))
    engine = make_engine(settings.resolved_database_url)
    return ServiceState(
        settings=settings,
        engine=engine,
        sessions=make_session_factory(engine),
        store=AudioStore(settings.resolved_audio_store),
        queue=queue if queue is not None else queue_from_settings(settings),
    )


def create_app(settings: Settings, *, state: ServiceState | None = None) -> FastAPI:
    """The API for ``settings`` (the schema must be migrated: ``serve`` does it first)."""
    service = state if state is not None else build_state(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        alerts.start_alerts(app)
        yield
        alerts.stop_alerts(app)
        service.engine.dispose()

    app = FastAPI(
        title=API_TITLE,
        version="1",
        description="接口契约见 shared/spec/api.md；错误统一为 "
        '`{"error": {"code", "message", "detail"}}`。',
        docs_url=None,  # served from local assets by install_docs
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.service = service
    install_error_handlers(app)
    for module in (
        health,
        auth,
        recordings,
        imports,
        calls,
        audio,
        jobs,
        alerts,
        rules,
        review,
        audit,
        admin,
    ):
        app.include_router(module.router)
    app.include_router(evidence_router)  # a call's export, masked per role (issue 13)
    app.include_router(complaints_router)  # complaint register, evidence (issue 11)
    app.include_router(trends_router)  # trends and coaching (issue 11)
    app.include_router(reports_router)  # the agency evaluation report (issue 12's page)
    install_docs(app)
    _install_web_ui(app)
    return app


def _install_web_ui(app: FastAPI) -> None:
    """The reviewers' pages (``reviewer_ui``, issue 12), when that package is installed;
    imported here, not at module level, so the API never depends on it at import time."""
    try:
        from reviewer_ui.web import install_ui
    except ModuleNotFoundError as exc:  # an API-only install: no pages, the API still serves
        if exc.name != "reviewer_ui":
            raise
        return
    install_ui(app)
