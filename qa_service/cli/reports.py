"""Command line for scores: ``qa-service scorecard | report agency | rescore``.

Thin like :mod:`qa_service.cli.main`: parse options, open the database the analyses were
stored in, hand records to the pure :mod:`scorecards` / :mod:`reports` / :mod:`rescoring`
code, and write the tables. :func:`register` adds the commands to the main app.
"""

from __future__ import annotations

import json
import sys
from datetime import date, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from qa_service.cli.support import CLI_READER, fail, open_sessions
from qa_service.errors import InputError, QAServiceError, RubricError
from qa_service.reports.exports import (
    Lang,
    Table,
    csv_text,
    render_text,
    write_csv,
    write_text_file,
    write_xlsx,
)
from qa_service.reports.scorecards import Period
from qa_service.reports.tables import agency_tables, rescore_table, scorecard_tables
from qa_service.settings import Settings, get_settings

if TYPE_CHECKING:  # SQLAlchemy loads only when a command runs: keeps `qa-service --help` fast
    from sqlalchemy.orm import Session


class Format(StrEnum):
    TABLE = "table"
    CSV = "csv"
    XLSX = "xlsx"
    JSON = "json"


class By(StrEnum):
    AGENT = "agent"
    TEAM = "team"
    AGENCY = "agency"


FromOpt = Annotated[
    str | None, typer.Option("--from", help="开始日期 YYYY-MM-DD（含）/ first day, inclusive")
]
ToOpt = Annotated[
    str | None, typer.Option("--to", help="结束日期 YYYY-MM-DD（含）/ last day, inclusive")
]
FormatOpt = Annotated[Format, typer.Option("--format", help="输出格式 / output format")]
OutputOpt = Annotated[
    Path | None, typer.Option("--output", "-o", help="输出文件（xlsx 必填）/ output file")
]
LangOpt = Annotated[Lang, typer.Option("--lang", help="表头语言：zh、en 或 both / header language")]

report_app = typer.Typer(help="考核报表 / evaluation reports", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Add ``scorecard``, ``report agency`` and ``rescore`` to the main ``qa-service`` app."""
    app.command("scorecard")(scorecard)
    app.command("rescore")(rescore)
    app.add_typer(report_app, name="report")


def _parse_date(value: str | None, option: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value.strip())
    except ValueError as exc:
        raise InputError(
            f"{option} 的日期 {value!r} 无效，应为 YYYY-MM-DD / "
            f"{option}: invalid date {value!r}, expected YYYY-MM-DD",
            option=option,
        ) from exc


def _period(
    session: Session, settings: Settings, date_from: str | None, date_to: str | None
) -> Period | None:
    """The period asked for; open ends closed by the stored calls' first and last day."""
    from qa_service.db.scores import call_date_span

    start = _parse_date(date_from, "--from")
    end = _parse_date(date_to, "--to")
    if start is not None and end is not None:
        return Period(start, end)
    span = call_date_span(session)
    first: date
    last: date
    if span is None:
        given = start or end
        if given is None:
            return None
        first = last = given
    else:
        first, last = (moment.astimezone(settings.local_tz).date() for moment in span)
    if start is None:
        start = first if end is None else min(first, end)
    if end is None:
        end = max(last, start)
    return Period(start, end)


def _emit(
    tables: list[Table],
    data: dict[str, Any],
    *,
    fmt: Format,
    output: Path | None,
    lang: Lang,
) -> None:
    """Write ``tables`` (or ``data`` as JSON) to ``output`` or stdout."""
    if fmt is Format.JSON:
        text = json.dumps(data, ensure_ascii=False, indent=2, default=str) + "\n"
        if output is None:
            sys.stdout.write(text)
        else:
            write_text_file(output, text)
    elif fmt is Format.XLSX:
        if output is None:
            raise InputError("xlsx 格式需要 --output 文件 / --format xlsx needs --output FILE")
        write_xlsx(tables, output, lang)
    elif fmt is Format.CSV:
        if output is None:
            # A pipe takes one table; --output writes every table, one file each.
            sys.stdout.write(csv_text(tables[0], lang))
        else:
            for path in write_csv(tables, output, lang):
                typer.echo(f"已写入 / written: {path}", err=True)
            return
    else:
        text = render_text(tables, lang)
        if output is None:
            sys.stdout.write(text)
        else:
            write_text_file(output, text)
    if output is not None:
        typer.echo(f"已写入 / written: {output}", err=True)


def _note_undated(count: int) -> None:
    if count:
        typer.secho(
            f"注意：{count} 通通话没有开始时间，未计入报表 / "
            f"{count} call(s) without a start time are not in the report",
            err=True,
            fg=typer.colors.YELLOW,
        )


def scorecard(
    agent: Annotated[str | None, typer.Option("--agent", help="只看该坐席 / one agent")] = None,
    team: Annotated[str | None, typer.Option("--team", help="只看该组 / one team")] = None,
    agency: Annotated[str | None, typer.Option("--agency", help="只看该机构 / one agency")] = None,
    by: Annotated[By, typer.Option("--by", help="按坐席、组或机构汇总 / group by")] = By.AGENT,
    date_from: FromOpt = None,
    date_to: ToOpt = None,
    rubric_version: Annotated[
        str | None,
        typer.Option("--rubric-version", help="用该版本评分表的评分 / scores of this version"),
    ] = None,
    fmt: FormatOpt = Format.TABLE,
    output: OutputOpt = None,
    lang: LangOpt = Lang.ZH,
) -> None:
    """质检评分卡：坐席/组/机构的平均分、及格率、一票否决率、趋势 / QA scorecards."""
    from qa_service.db.scores import agent_organisations, scored_calls
    from qa_service.reports.scorecards import GroupBy, ScorecardFilter, build_scorecards

    settings = get_settings()
    tz = settings.local_tz
    try:
        with open_sessions(settings) as factory, factory() as session:
            period = _period(session, settings, date_from, date_to)
            if period is None:
                typer.echo("数据库中没有已分析的通话 / no analysed calls stored", err=True)
                raise typer.Exit(code=0)
            start, end = period.previous().bounds(tz)[0], period.bounds(tz)[1]
            calls = scored_calls(session, start=start, end=end, rubric_version=rubric_version)
            organisations = agent_organisations(session)
        report = build_scorecards(
            calls,
            period=period,
            group_by=GroupBy(by.value),
            tz=tz,
            filters=ScorecardFilter(agent_id=agent, team_id=team, agency_id=agency),
            organisations=organisations,
        )
        _warn_versions(report.total.stats.rubric_versions)
        _emit(scorecard_tables(report), report.as_dict(), fmt=fmt, output=output, lang=lang)
        _record_export(
            settings,
            "scorecard",
            fmt=fmt,
            output=output,
            period=period,
            by=by.value,
            agent=agent,
            team=team,
            agency=agency,
            rubric_version=rubric_version,
        )
    except QAServiceError as exc:
        raise fail(exc) from exc


def _record_export(
    settings: Settings, report: str, *, fmt: Format, output: Path | None, **details: Any
) -> None:
    """An export is an audit event (operator: the OS user running the command)."""
    from qa_service.audit.events import Actor, AuditEvent, record_event_committed

    with open_sessions(settings) as factory:
        record_event_committed(
            factory,
            actor=Actor.cli(),
            event=AuditEvent.EXPORT,
            target=f"file:{output.resolve()}" if output is not None else "stdout",
            details={"report": report, "format": fmt.value, **details},
        )


def _record_rescore(
    session: Session,
    version: str,
    start: datetime | None,
    end: datetime | None,
    results: list[Any],
) -> None:
    from qa_service.audit.events import Actor, AuditEvent, record_event

    changed = [r.call_id for r in results if r.changed and r.recorded]
    record_event(
        session,
        actor=Actor.cli(),
        event=AuditEvent.RESCORE,
        target=f"rubric:{version}",
        details={"start": start, "end": end, "calls": len(results), "changed": changed},
    )


def _warn_versions(versions: tuple[str, ...]) -> None:
    if len(versions) > 1:
        typer.secho(
            f"注意：报表混合了多个评分表版本的评分（{'、'.join(versions)}），可用 --rubric-version "
            f"指定 / scores from several rubric versions are mixed; pick one with --rubric-version",
            err=True,
            fg=typer.colors.YELLOW,
        )


@report_app.command("agency")
def report_agency(
    agency: Annotated[str | None, typer.Option("--agency", help="只看该机构 / one agency")] = None,
    date_from: FromOpt = None,
    date_to: ToOpt = None,
    fmt: FormatOpt = Format.TABLE,
    output: OutputOpt = None,
    lang: LangOpt = Lang.ZH,
) -> None:
    """外包机构考核报表（按月）：合规率、违规构成、一票否决、投诉信号与投诉、拨号违规 / agency.

    合规通话：没有未驳回的 P（十禁）或 M（拨号违规）发现的通话；拨号违规同时按拨号记录
    （含未录音的拨打）统计；投诉按受理月份计入投诉登记簿中的投诉（按等级、按责任认定），
    每千通投诉 = 投诉数 / 该机构当月已分析通话数 × 1000。/ A compliant call has no standing
    P or M finding; dialling breaches are also counted over the whole dial log, unrecorded
    attempts included; complaints are the register's, by month received, level and outcome,
    and per 1,000 analysed calls of the agency-month.
    """
    from qa_service.db.repository import do_not_call_entries
    from qa_service.db.scores import agent_organisations, dial_attempts_between, scored_calls
    from qa_service.reports.agency import build_agency_report
    from qa_service.rules.metadata import MetadataParams
    from qa_service.trends.records import load_complaints

    settings = get_settings()
    params = MetadataParams.from_settings(settings)
    try:
        with open_sessions(settings) as factory, factory() as session:
            period = _period(session, settings, date_from, date_to)
            if period is None:
                typer.echo("数据库中没有已分析的通话 / no analysed calls stored", err=True)
                raise typer.Exit(code=0)
            start, end = period.bounds(settings.local_tz)
            calls = scored_calls(session, start=start, end=end)
            attempts = dial_attempts_between(session, start=start, end=end)
            organisations = agent_organisations(session)
            do_not_call = do_not_call_entries(session)
            complaints = load_complaints(session, principal=CLI_READER, start=start, end=end)
        report = build_agency_report(
            calls,
            attempts,
            do_not_call,
            period=period,
            params=params,
            organisations=organisations,
            agency=agency,
            complaints=complaints,
        )
        _warn_versions(tuple(sorted({v for row in report.rows for v in row.stats.rubric_versions})))
        _emit(agency_tables(report), report.as_dict(), fmt=fmt, output=output, lang=lang)
        _record_export(settings, "agency", fmt=fmt, output=output, period=period, agency=agency)
    except QAServiceError as exc:
        raise fail(exc) from exc


def _find_rubric(settings: Settings, path: Path | None, version: str | None):
    """The rubric given by path, or the one in the rubric folder with that version."""
    from qa_service.scoring.rubric import load_rubric

    if path is not None:
        rubric = load_rubric(path)
        if version is not None and rubric.version != version:
            raise RubricError(
                f"{path} 的版本是 {rubric.version}，不是 {version} / "
                f"{path} holds version {rubric.version}, not {version}",
                path=path,
            )
        return rubric
    if version is None:
        raise InputError("请指定 --rubric 或 --rubric-version / give --rubric or --rubric-version")
    folder = settings.rubric_path.parent
    found, broken = [], []
    for candidate in sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")]):
        try:
            rubric = load_rubric(candidate)
        except RubricError as exc:
            broken.append(f"{candidate.name}（{exc.message.partition(' / ')[0]}）")
            continue
        if rubric.version == version:
            found.append(rubric)
    if len(found) != 1:
        what = "没有" if not found else "有多个"
        what_en = "no" if not found else "more than one"
        extra = f"；无法读取：{'; '.join(broken)}" if broken else ""
        raise RubricError(
            f"{folder} 中{what}版本为 {version} 的评分表{extra} / {what_en} rubric file with "
            f"version {version} in {folder}",
            folder=folder,
            version=version,
        )
    return found[0]


def rescore(
    rubric_path: Annotated[
        Path | None, typer.Option("--rubric", help="评分表文件 / rubric YAML file")
    ] = None,
    rubric_version: Annotated[
        str | None,
        typer.Option("--rubric-version", help="评分表版本（在评分表目录中查找）/ rubric version"),
    ] = None,
    date_from: FromOpt = None,
    date_to: ToOpt = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="只计算不保存 / compute, store nothing")
    ] = False,
    fmt: FormatOpt = Format.TABLE,
    output: OutputOpt = None,
    lang: LangOpt = Lang.ZH,
) -> None:
    """按指定评分表重新评分（保留历史评分）/ re-score stored calls with a rubric, keeping history.

    每通通话的新评分追加为当前评分，旧评分保留；与当前评分相同的通话不重复记录。
    / Each new score is appended and becomes current; old scores stay; unchanged calls
    are not recorded again.
    """
    from qa_service.db.rescoring import rescore_period

    settings = get_settings()
    tz = settings.local_tz
    try:
        rubric = _find_rubric(settings, rubric_path, rubric_version)
        start_day = _parse_date(date_from, "--from")
        end_day = _parse_date(date_to, "--to")
        start = end = None
        if start_day is not None:
            start = datetime.combine(start_day, datetime.min.time(), tzinfo=tz)
        if end_day is not None:
            end = Period(end_day, end_day).bounds(tz)[1]
        with open_sessions(settings) as factory, factory.begin() as session:
            results = rescore_period(session, rubric=rubric, start=start, end=end, dry_run=dry_run)
            if not dry_run:
                _record_rescore(session, rubric.version, start, end, results)
        data = {
            "rubric_version": rubric.version,
            "rubric": str(rubric.source),
            "dry_run": dry_run,
            "calls": [
                {
                    "call_id": r.call_id,
                    "old_score": r.old.score if r.old else None,
                    "old_rubric_version": r.old.rubric_version if r.old else None,
                    "new_score": r.new.score,
                    "new_rubric_version": r.new.rubric_version,
                    "delta": r.delta,
                    "recorded": r.recorded,
                }
                for r in results
            ],
        }
        _emit([rescore_table(results)], data, fmt=fmt, output=output, lang=lang)
    except QAServiceError as exc:
        raise fail(exc) from exc
    changed = sum(r.changed for r in results)
    stored = "试算，未保存 / dry run, nothing stored" if dry_run else "已保存 / stored"
    typer.echo(
        f"重新评分 {len(results)} 通，评分变化 {changed} 通（{stored}） / re-scored "
        f"{len(results)} call(s) with rubric {rubric.version}, {changed} changed",
        err=True,
    )
