"""Command line for the audit trail and retention: ``qa-service audit | retention``.

Thin like :mod:`qa_service.cli.main`: parse options, open the database, call
:mod:`qa_service.audit`. The operator recorded for these commands is the OS user running
them (``user@host``). :func:`register` adds them to the main app.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer

from qa_service.cli.serve import load_settings
from qa_service.cli.support import fail, open_sessions
from qa_service.errors import CallNotFound, InputError, QAServiceError
from qa_service.settings import Settings

if TYPE_CHECKING:  # SQLAlchemy loads only when a command runs: keeps `qa-service --help` fast
    from qa_service.audit.chain import ChainReport

audit_app = typer.Typer(help="审计日志 / audit trail", no_args_is_help=True)
retention_app = typer.Typer(help="保存期限 / retention", no_args_is_help=True)

FromOpt = Annotated[
    str | None,
    typer.Option("--from", help="开始：YYYY-MM-DD 或 ISO 时间（含）/ start, inclusive"),
]
ToOpt = Annotated[
    str | None,
    typer.Option("--to", help="结束：YYYY-MM-DD（含当日）或 ISO 时间 / end (a day: inclusive)"),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="JSON 输出 / JSON output")]


def _settings() -> Settings:
    """The settings, or exit 2 naming the setting that is wrong (e.g. a retention period)."""
    try:
        return load_settings()
    except QAServiceError as exc:
        raise fail(exc) from exc


def register(app: typer.Typer) -> None:
    """Add ``audit`` and ``retention`` to the main ``qa-service`` app."""
    app.add_typer(audit_app, name="audit")
    app.add_typer(retention_app, name="retention")


@audit_app.command("verify")
def audit_verify(as_json: JsonOpt = False) -> None:
    """校验审计哈希链，指出第一条被修改、删除或插入的记录 / verify the hash chain.

    Exit status 1 when the chain is broken (the first bad event is named).
    """
    from qa_service.audit.chain import verify_chain
    from qa_service.audit.events import Actor, AuditEvent, Outcome, record_event_committed

    try:
        with open_sessions(_settings()) as factory:
            with factory() as session:
                report = verify_chain(session)
            _print_report(report, as_json=as_json)
            try:
                record_event_committed(
                    factory,
                    actor=Actor.cli(),
                    event=AuditEvent.AUDIT_VERIFY,
                    result=Outcome.SUCCESS if report.ok else Outcome.FAILURE,
                    target="audit",
                    details=report.as_dict(),
                )
            except QAServiceError as exc:  # a damaged chain may refuse appends too
                typer.secho(
                    f"无法记录本次校验 / could not record this verification: {exc.message}",
                    err=True,
                    fg=typer.colors.YELLOW,
                )
    except QAServiceError as exc:
        raise fail(exc) from exc
    raise typer.Exit(code=0 if report.ok else 1)


def _print_report(report: ChainReport, *, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(report.as_dict(), ensure_ascii=False))
    elif report.problem is None:
        span = f"{report.first_seq}–{report.last_seq}" if report.checked else "无"
        typer.secho(
            f"审计链完整：{report.checked} 条记录（序号 {span}），链头哈希 {report.head_hash} / "
            "the audit chain verifies",
            fg=typer.colors.GREEN,
        )
    else:
        typer.secho(
            f"审计链已损坏 / the audit chain is broken: [{report.problem.kind}] "
            f"seq {report.problem.seq}: {report.problem.message}",
            err=True,
            fg=typer.colors.RED,
        )


@audit_app.command("list")
def audit_list(
    date_from: FromOpt = None,
    date_to: ToOpt = None,
    user: Annotated[
        str | None, typer.Option("--user", help="操作人（用户名）/ operator name")
    ] = None,
    event: Annotated[
        str | None, typer.Option("--event", help="事件类型，如 auth.login；以 . 结尾为前缀")
    ] = None,
    result: Annotated[
        str | None, typer.Option("--result", help="success 或 failure / result")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="最多条数 / at most")] = 10_000,
    as_json: JsonOpt = False,
) -> None:
    """列出审计记录（按时间先后）/ list audit events, oldest first."""
    from qa_service.audit.events import (
        Actor,
        AuditEvent,
        EventFilter,
        Outcome,
        list_events,
        record_event,
    )
    from qa_service.audit.reviews import parse_bound

    settings = _settings()
    tz = settings.local_tz
    try:
        if result is not None and result not in ("success", "failure"):
            raise InputError("--result 只能是 success 或 failure / --result: success or failure")
        filters = EventFilter(
            start=parse_bound(date_from, option="--from", tz=tz, end=False) if date_from else None,
            end=parse_bound(date_to, option="--to", tz=tz, end=True) if date_to else None,
            user=user,
            event=event,
            result=Outcome(result) if result else None,
        )
        with open_sessions(settings) as factory:
            with factory() as session:
                records = list_events(session, filters=filters, limit=limit)
            with factory.begin() as session:
                record_event(
                    session,
                    actor=Actor.cli(),
                    event=AuditEvent.AUDIT_VIEW,
                    target="audit",
                    details={
                        "from": date_from,
                        "to": date_to,
                        "user": user,
                        "event": event,
                        "result": result,
                        "returned": len(records),
                    },
                )
    except QAServiceError as exc:
        raise fail(exc) from exc
    if not as_json:
        typer.echo("序号\t时间\t操作人\tIP\t事件\t结果\t对象\t详情")
    for r in records:
        if as_json:
            line = {
                "seq": r.seq,
                "occurred_at": r.occurred_at.isoformat(),
                "actor_kind": r.actor.kind,
                "actor_id": r.actor.user_id,
                "actor_name": r.actor.name,
                "client_ip": r.actor.client_ip,
                "event": r.event,
                "result": r.result.value,
                "target": r.target,
                "details": r.details,
                "prev_hash": r.prev_hash,
                "row_hash": r.row_hash,
            }
            typer.echo(json.dumps(line, ensure_ascii=False))
        else:
            when = r.occurred_at.astimezone(tz).isoformat(timespec="seconds")
            details = json.dumps(r.details, ensure_ascii=False)
            typer.echo(
                f"{r.seq}\t{when}\t{r.actor.name}\t{r.actor.client_ip or ''}\t{r.event}\t"
                f"{r.result.value}\t{r.target or ''}\t{details}"
            )


@audit_app.command("review")
def audit_review(
    date_from: Annotated[str, typer.Option("--from", help="审阅范围开始 / period start")],
    date_to: Annotated[str, typer.Option("--to", help="审阅范围结束（含当日）/ period end")],
    note: Annotated[str, typer.Option("--note", help="审阅说明 / what was reviewed, found")],
) -> None:
    """记录一次审计日志审阅（谁、何时、审阅了哪段时间）/ record a review of the audit trail."""
    from qa_service.audit.events import Actor
    from qa_service.audit.reviews import parse_bound, record_review

    settings = _settings()
    tz = settings.local_tz
    try:
        start = parse_bound(date_from, option="--from", tz=tz, end=False)
        end = parse_bound(date_to, option="--to", tz=tz, end=True)
        with open_sessions(settings) as factory, factory.begin() as session:
            review = record_review(
                session, actor=Actor.cli(), period_from=start, period_to=end, note=note
            )
    except QAServiceError as exc:
        raise fail(exc) from exc
    state = "完整" if review.chain_ok else "已损坏（请执行 audit verify）"
    typer.echo(
        f"已记录审阅 #{review.review_id}：{review.reviewer.name} 审阅 "
        f"{review.period_from.astimezone(tz):%Y-%m-%d %H:%M} 至 "
        f"{review.period_to.astimezone(tz):%Y-%m-%d %H:%M}，{review.events} 条记录；"
        f"审计链{state} / review recorded (audit event {review.audit_seq})"
    )


@retention_app.command("run")
def retention_run(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="只列出将清理的内容，不删除 / list, delete nothing")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """清理超过保存期限的通话、录音和审计记录（保全中的通话除外）/ purge what is past its period.

    Exit status 1 when some audio could not be deleted or the audit purge was refused.
    """
    from qa_service.audit.events import Actor
    from qa_service.audit.retention import run_retention
    from qa_service.ingest.store import AudioStore

    settings = _settings()
    try:
        with open_sessions(settings) as factory:
            report = run_retention(
                factory,
                store=AudioStore(settings.resolved_audio_store),
                settings=settings,
                actor=Actor.cli(),
                dry_run=dry_run,
            )
    except QAServiceError as exc:
        raise fail(exc) from exc
    audit = report.audit
    if as_json:
        out = {
            "dry_run": report.dry_run,
            "calls_before": report.calls_before.isoformat(),
            "logs_before": report.logs_before.isoformat(),
            "calls": [
                {"call_id": c.call_id, "sha256": c.sha256, "audio": c.audio} for c in report.calls
            ],
            "held": [{"call_id": c, "holds": list(h)} for c, h in report.held],
            "audit_rows": audit.rows if audit else 0,
            "audit_through_seq": audit.through_seq if audit else None,
            "audit_refused": report.audit_refused.as_dict() if report.audit_refused else None,
        }
        typer.echo(json.dumps(out, ensure_ascii=False))
    else:
        verb = "将清理" if dry_run else "已清理"
        typer.echo(
            f"{verb}通话 {len(report.calls)} 通（{report.calls_before:%Y-%m-%d} 之前），"
            f"审计记录 {audit.rows if audit else 0} 条（{report.logs_before:%Y-%m-%d} 之前）；"
            f"因保全保留 {len(report.held)} 通"
        )
        for call in report.calls:
            typer.echo(f"  {call.call_id}\t{call.audio}")
        for call_id, holds in report.held:
            typer.echo(f"  保留 {call_id}：{', '.join(holds)}")
        if report.audit_refused is not None:
            typer.secho(
                f"审计链已损坏，未清理审计记录 / the audit chain is broken, audit events kept: "
                f"{report.audit_refused.message}",
                err=True,
                fg=typer.colors.RED,
            )
    raise typer.Exit(code=0 if report.ok else 1)


@retention_app.command("hold")
def retention_hold(
    call_id: Annotated[str, typer.Argument(help="通话编号 / call id")],
    reason: Annotated[str, typer.Option("--reason", help="保全原因 / why it is kept")],
) -> None:
    """保全一通通话，保存期满也不清理 / keep a call past its retention period."""
    from sqlalchemy import select

    from qa_service.audit.events import Actor, record_event
    from qa_service.db.tables import CallRow, RetentionHoldRow

    actor = Actor.cli()
    try:
        if not reason.strip():
            raise InputError("请说明保全原因 / give a reason")
        with open_sessions(_settings()) as factory, factory.begin() as session:
            pk = session.scalar(select(CallRow.id).where(CallRow.call_id == call_id))
            if pk is None:
                raise CallNotFound(f"找不到通话 {call_id} / call {call_id} not found")
            session.add(RetentionHoldRow(call_id=pk, reason=reason.strip(), created_by=actor.name))
            record_event(
                session,
                actor=actor,
                event="retention.hold",
                target=f"call:{call_id}",
                details={"reason": reason.strip()},
            )
    except QAServiceError as exc:
        raise fail(exc) from exc
    typer.echo(f"已保全通话 {call_id} / hold placed")


@retention_app.command("release")
def retention_release(call_id: Annotated[str, typer.Argument(help="通话编号 / call id")]) -> None:
    """解除通话的保全 / release a call's holds."""
    from sqlalchemy import select

    from qa_service.audit.events import Actor, record_event
    from qa_service.db.tables import CallRow, RetentionHoldRow, utcnow

    try:
        with open_sessions(_settings()) as factory, factory.begin() as session:
            pk = session.scalar(select(CallRow.id).where(CallRow.call_id == call_id))
            if pk is None:
                raise CallNotFound(f"找不到通话 {call_id} / call {call_id} not found")
            held = session.scalars(
                select(RetentionHoldRow).where(
                    RetentionHoldRow.call_id == pk, RetentionHoldRow.released_at.is_(None)
                )
            ).all()
            for row in held:
                row.released_at = utcnow()
            released = len(held)
            record_event(
                session,
                actor=Actor.cli(),
                event="retention.release",
                target=f"call:{call_id}",
                details={"holds_released": released},
            )
    except QAServiceError as exc:
        raise fail(exc) from exc
    typer.echo(f"已解除通话 {call_id} 的 {released} 个保全 / released")
