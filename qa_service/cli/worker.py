"""Command line: ``qa-service worker`` and ``qa-service queue sweep | failed | retry``."""

from __future__ import annotations

from typing import Annotated

import typer

from qa_service.cli.support import fail, open_sessions
from qa_service.errors import QAServiceError, SettingsError
from qa_service.settings import Settings, get_settings

queue_app = typer.Typer(help="分析任务队列 / the analysis job queue", no_args_is_help=True)


def _require_redis(settings: Settings) -> None:
    if not settings.redis_url:
        raise fail(
            SettingsError(
                "未设置 REDIS_URL：独立的分析进程需要 Redis（不设置时由 serve 在进程内分析） / "
                "REDIS_URL is not set: separate workers need Redis (without it, `serve` "
                "analyses in-process)",
                setting="REDIS_URL",
            )
        )


def worker(
    burst: Annotated[
        bool, typer.Option("--burst", help="队列为空时退出 / exit when the queue is empty")
    ] = False,
) -> None:
    """运行分析进程（rq），模型只加载一次 / run an analysis worker (rq); models load once."""
    import logging

    from qa_service.worker.runner import run_worker

    settings = get_settings()
    _require_redis(settings)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    try:
        run_worker(settings, burst=burst)
    except QAServiceError as exc:
        raise fail(exc) from exc


@queue_app.command("sweep")
def queue_sweep() -> None:
    """重新排队未完成且无任务的通话 / re-queue unfinished calls that have no live job."""
    from qa_service.worker.queue import RqJobQueue
    from qa_service.worker.sweep import sweep

    settings = get_settings()
    _require_redis(settings)
    try:
        queue = RqJobQueue.from_settings(settings)
        queue.ping()
        with open_sessions(settings) as factory:
            report = sweep(factory, queue, settings=settings)
    except QAServiceError as exc:
        raise fail(exc) from exc
    typer.echo(
        f"重新排队 {len(report.requeued)} 通，收回中断的分析 {len(report.reclaimed)} 通，"
        f"标记失败 {len(report.failed)} 通 / re-queued {len(report.requeued)}, taken back "
        f"{len(report.reclaimed)}, failed {len(report.failed)}"
    )


@queue_app.command("failed")
def queue_failed(
    limit: Annotated[int, typer.Option(help="最多列出 / at most")] = 100,
) -> None:
    """列出分析失败的通话及原因 / list failed calls with the reason."""
    from qa_service.worker.submit import list_failed

    settings = get_settings()
    try:
        with open_sessions(settings) as factory:
            failed = list_failed(factory, limit=limit)
    except QAServiceError as exc:
        raise fail(exc) from exc
    for call in failed:
        when = call.queued_at.isoformat() if call.queued_at else ""
        typer.echo(
            f"{call.call_id}\t{call.attempts}\t{call.error_code or ''}\t{when}\t"
            f"{call.error_message or ''}"
        )
    typer.echo(f"共 {len(failed)} 通失败 / {len(failed)} failed", err=True)


@queue_app.command("retry")
def queue_retry(call_id: str) -> None:
    """重新分析失败的通话 / re-queue a failed call."""
    from qa_service.worker.queue import RqJobQueue
    from qa_service.worker.submit import requeue_failed

    settings = get_settings()
    _require_redis(settings)
    try:
        queue = RqJobQueue.from_settings(settings)
        queue.ping()
        with open_sessions(settings) as factory:
            requeue_failed(factory, call_id=call_id, queue=queue)
    except QAServiceError as exc:
        raise fail(exc) from exc
    typer.echo(f"通话 {call_id} 已重新排队 / call {call_id} queued again")


def register(app: typer.Typer) -> None:
    """Add ``worker`` and ``queue`` to the main command line."""
    app.command("worker")(worker)
    app.add_typer(queue_app, name="queue")
