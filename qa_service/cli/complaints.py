"""Command line for complaints: ``qa-service complaints import | relink``, ``trends``, ``coaching``.

Thin like the other command modules. The CLI runs with the database's own rights, so it
reads as a manager would (every team, every agency); its actions are audited as the OS user.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Annotated

import typer

from qa_service.cli.reports import (
    Format,
    FormatOpt,
    FromOpt,
    LangOpt,
    OutputOpt,
    ToOpt,
    _emit,
    _parse_date,
)
from qa_service.cli.support import CLI_READER, fail, open_sessions
from qa_service.errors import QAServiceError
from qa_service.reports.exports import Lang
from qa_service.settings import get_settings
from qa_service.trends.figures import Dimension
from qa_service.trends.periods import Granularity

complaints_app = typer.Typer(help="投诉登记 / complaint register", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Add ``complaints``, ``trends`` and ``coaching`` to the main ``qa-service`` app."""
    app.add_typer(complaints_app, name="complaints")
    app.command("trends")(trends)
    app.command("coaching")(coaching)


@complaints_app.command("import")
def complaints_import(path: Path) -> None:
    """导入银行投诉清单（CSV，UTF-8 或 GBK）并关联客户近期通话 / import the complaint list."""
    from qa_service.audit.events import Actor
    from qa_service.complaints.importer import load_complaint_list
    from qa_service.complaints.register import register_complaint

    settings = get_settings()
    try:
        parsed = load_complaint_list(path, tz=settings.local_tz)
        created = known = linked = 0
        with open_sessions(settings) as factory, factory.begin() as session:
            for complaint in parsed.complaints:
                done = register_complaint(
                    session,
                    data=complaint,
                    link_days=settings.complaint_link_days,
                    actor=Actor.cli(),
                )
                created += done.created
                known += not done.created
                linked += done.linked_calls if done.created else 0
    except QAServiceError as exc:
        raise fail(exc) from exc
    for rejected in parsed.rejected:
        typer.secho(f"跳过 / skipped: {rejected.reason}", err=True, fg=typer.colors.YELLOW)
    typer.echo(
        f"新登记投诉 {created} 条，已存在 {known} 条，关联通话 {linked} 通，跳过 "
        f"{len(parsed.rejected)} 行 / {created} new, {known} known, {linked} calls linked, "
        f"{len(parsed.rejected)} rows skipped"
    )
    raise typer.Exit(code=1 if parsed.rejected else 0)


@complaints_app.command("relink")
def complaints_relink(
    everything: Annotated[
        bool,
        typer.Option(
            "--all",
            help="所有投诉（默认只处理未结或近期受理的投诉）/ every complaint, not only open or "
            "recent ones",
        ),
    ] = False,
) -> None:
    """重新关联投诉与客户通话（补录的录音）/ link complaints to calls stored since.

    默认处理未结投诉和近 complaint_link_days 天内受理的投诉；已有的关联保留，不会重复。
    / By default open complaints and those received within complaint_link_days; links
    already there stay, none is added twice.
    """
    from qa_service.audit.events import Actor
    from qa_service.complaints.register import relink_complaints

    settings = get_settings()
    try:
        with open_sessions(settings) as factory, factory.begin() as session:
            done = relink_complaints(
                session,
                link_days=settings.complaint_link_days,
                actor=Actor.cli(),
                everything=everything,
            )
    except QAServiceError as exc:
        raise fail(exc) from exc
    typer.echo(
        f"检查投诉 {done.complaints} 条，其中 {done.changed} 条新关联通话 {done.added_links} 通 "
        f"/ {done.complaints} complaints checked, {done.added_links} calls newly linked to "
        f"{done.changed} of them"
    )


def _range(date_from: str | None, date_to: str | None, default_days: int) -> tuple[date, date]:
    from qa_service.db.tables import utcnow

    settings = get_settings()
    end = _parse_date(date_to, "--to") or utcnow().astimezone(settings.local_tz).date()
    start = _parse_date(date_from, "--from") or end - timedelta(days=default_days)
    return start, end


def trends(
    period: Annotated[
        Granularity, typer.Option("--period", help="按周或按月 / week or month")
    ] = Granularity.MONTH,
    by: Annotated[
        Dimension, typer.Option("--by", help="按组或机构 / team or agency")
    ] = Dimension.TEAM,
    date_from: FromOpt = None,
    date_to: ToOpt = None,
    fmt: FormatOpt = Format.TABLE,
    output: OutputOpt = None,
    lang: LangOpt = Lang.ZH,
) -> None:
    """趋势：违规、投诉倾向与安抚、投诉、预警覆盖率、复核统计（含环比）/ trends."""
    from qa_service.trends.report import trend_report
    from qa_service.trends.tables import trend_tables

    settings = get_settings()
    try:
        start, end = _range(date_from, date_to, 89 if period is Granularity.MONTH else 27)
        with open_sessions(settings) as factory, factory() as session:
            report = trend_report(
                session,
                principal=CLI_READER,
                start=start,
                end=end,
                granularity=period,
                dimension=by,
                tz=settings.local_tz,
            )
        _emit(trend_tables(report), report.as_dict(), fmt=fmt, output=output, lang=lang)
    except QAServiceError as exc:
        raise fail(exc) from exc


def coaching(
    date_from: FromOpt = None,
    date_to: ToOpt = None,
    fmt: FormatOpt = Format.TABLE,
    output: OutputOpt = None,
    lang: LangOpt = Lang.ZH,
) -> None:
    """培训名单（均分低于及格线或同一规则多次确认违规）与培训前后对比 / coaching list."""
    from qa_service.complaints.coaching import (
        CoachingParams,
        coaching_for_period,
        training_effects,
    )
    from qa_service.reports.scorecards import Period
    from qa_service.trends.tables import coaching_tables

    settings = get_settings()
    params = CoachingParams.from_settings(settings)
    try:
        start, end = _range(date_from, date_to, 29)
        since, until = Period(start, end).bounds(settings.local_tz)
        with open_sessions(settings) as factory, factory() as session:
            entries = coaching_for_period(
                session, principal=CLI_READER, start=since, end=until, params=params
            )
            effects = training_effects(session, principal=CLI_READER, params=params)
        data = {
            "items": [e.as_json() for e in entries],
            "trainings": [e.as_json() for e in effects],
        }
        _emit(coaching_tables(entries, effects), data, fmt=fmt, output=output, lang=lang)
    except QAServiceError as exc:
        raise fail(exc) from exc
