"""``qa-service serve``: the API under uvicorn, with the queue's background work around it.

Start-up, in order: settings (a missing or malformed one stops here, named), the
production secret check, database migrations, the job queue (rq on ``REDIS_URL``, else an
in-process worker thread, so the embedded SQLite default needs nothing else), one sweep
(calls left queued or analysing by a previous run get their jobs back), then the periodic
sweep and the web server. Models load only in the worker (thread or process), never here.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Annotated

import typer
from pydantic import ValidationError

from qa_service.cli.support import fail
from qa_service.errors import QAServiceError, SettingsError
from qa_service.settings import Settings, get_settings

if TYPE_CHECKING:
    from qa_service.api.state import ServiceState

logger = logging.getLogger(__name__)


def _env_name(field: str) -> str:
    info = Settings.model_fields.get(field)
    alias = info.validation_alias if info is not None else None
    if isinstance(alias, str):
        return alias
    return f"QA_{field.upper()}"


def load_settings() -> Settings:
    """The settings, or a SettingsError naming the environment variable that is wrong."""
    try:
        return get_settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else "?"
        name = _env_name(field)
        problem = "缺少必填设置" if first["type"] == "missing" else "设置值无效"
        raise SettingsError(
            f"{problem} {name}：{first['msg']} / setting {name} is "
            f"{'missing' if first['type'] == 'missing' else 'invalid'}: {first['msg']}",
            setting=name,
        ) from exc


def run_server(settings: Settings, *, host: str, port: int) -> None:
    """Migrate, start the queue side and serve until interrupted (see module docstring)."""
    import uvicorn

    from qa_service.api.app import build_state, create_app
    from qa_service.api.uploads import remove_orphaned_spools
    from qa_service.db.session import migrate
    from qa_service.worker.queue import InProcessJobQueue, queue_from_settings
    from qa_service.worker.sweep import Sweeper, sweep

    settings.check_for_service()
    queue = queue_from_settings(settings)
    state = build_state(settings, queue=queue)
    migrate(state.engine)
    _record_settings(state)
    # Partial bodies of uploads that a killed server was receiving: never finished, never
    # stored (the store only takes complete, checked files), so only disk to give back.
    orphans = remove_orphaned_spools(state.upload_tmp_dir.parent)
    if orphans:
        logger.warning("removed %d partial upload(s) left by a stopped server", orphans)
    in_process = queue if isinstance(queue, InProcessJobQueue) else None
    if in_process is not None:
        in_process.start()
    else:
        queue.ping()  # a dead Redis is an error at start, not a silent backlog
    sweeper = Sweeper(state.sessions, queue, settings=settings)
    try:
        report = sweep(state.sessions, queue, settings=settings)
        if report.changed:
            typer.secho(f"启动时重新排队 {report.changed} 个未完成的通话", err=True)
        sweeper.start()
        where = "进程内分析线程（未设置 REDIS_URL）" if in_process else "Redis 任务队列"
        typer.secho(f"服务地址 http://{host}:{port}/ ；分析：{where}", err=True)
        uvicorn.run(
            create_app(settings, state=state),
            host=host,
            port=port,
            log_level="info",
            # Open alert streams would otherwise hold Ctrl-C until every client hangs up.
            timeout_graceful_shutdown=5,
        )
    finally:
        sweeper.stop()
        if in_process is not None:
            in_process.stop()
        state.engine.dispose()


def _record_settings(state: ServiceState) -> None:
    """A start with changed settings is a settings change: on the audit trail it goes."""
    from qa_service.audit.config import record_settings_change
    from qa_service.audit.events import Actor

    with state.sessions.begin() as session:
        record_settings_change(session, settings=state.settings, actor=Actor.cli())


def register(app: typer.Typer) -> None:
    """Add ``serve`` to the ``qa-service`` command group."""

    @app.command()
    def serve(
        host: Annotated[str, typer.Option(help="监听地址 / address to bind")] = "127.0.0.1",
        port: Annotated[int, typer.Option(help="端口 / port")] = 8000,
    ) -> None:
        """运行 API 和网页界面 / run the API and the web UI (uvicorn)."""
        try:
            run_server(load_settings(), host=host, port=port)
        except QAServiceError as exc:
            raise fail(exc) from exc
