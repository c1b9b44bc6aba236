"""Command line: ``qa-service analyze | eval | demo | cdr | dnc``.

Thin: it parses arguments, opens the database, builds the :class:`Analyzer` once and
hands recordings to it. Everything a call-centre user reads is Chinese first.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from qa_service.cli.support import fail, open_sessions
from qa_service.domain import CallAnalysis, CallMetadata, CallStatus, DialAttempt
from qa_service.errors import QAServiceError
from qa_service.settings import Settings, get_settings

if TYPE_CHECKING:  # SQLAlchemy loads only when a command runs
    from sqlalchemy.orm import Session

app = typer.Typer(
    help="催收外包通话质检 / QA speech analytics for collection calls",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
cdr_app = typer.Typer(help="拨号记录 (CDR) / dial log", no_args_is_help=True)
dnc_app = typer.Typer(help="禁止拨打名单 / do-not-call list", no_args_is_help=True)
app.add_typer(cdr_app, name="cdr")
app.add_typer(dnc_app, name="dnc")


def _day_bounds(meta: CallMetadata, settings: Settings) -> tuple[datetime, datetime] | None:
    if meta.started_at is None:
        return None
    tz = settings.local_tz
    day = meta.started_at.astimezone(tz).date()
    start = datetime.combine(day, time.min, tzinfo=tz)
    return start, start + timedelta(days=1)


def _json_line(analysis: CallAnalysis) -> str:
    from qa_service.reports.output import analysis_to_json

    return json.dumps(analysis_to_json(analysis), ensure_ascii=False, default=str)


def _print_summary(analysis: CallAnalysis) -> None:
    from qa_service.rules.catalogue import rule_label

    if analysis.status is CallStatus.ERROR:
        err = analysis.error or {}
        typer.secho(f"✗ {analysis.recording}: 无法分析 — {err.get('message')}", fg=typer.colors.RED)
        return
    layout = "双声道" if analysis.channels == "stereo" else "单声道"
    typer.secho(
        f"■ 通话 {analysis.call_id}（{analysis.recording}，"
        f"{analysis.duration_s:.1f} 秒，{layout}）",
        bold=True,
    )
    speaker_zh = {"agent": "坐席", "customer": "客户", "unknown": "未区分"}
    for u in analysis.utterances:
        typer.echo(f"  [{u.start:6.1f}–{u.end:6.1f}] {speaker_zh[u.speaker.value]}：{u.text}")
    if not analysis.findings:
        typer.secho("  未发现违规或风险信号。", fg=typer.colors.GREEN)
    for f in analysis.findings:
        where = f"{f.start:.1f}–{f.end:.1f} 秒" if f.start is not None else "整通"
        typer.secho(f"  ⚑ {rule_label(f.rule)}（{where}，置信度 {f.confidence:.2f}）", fg="yellow")
    typer.echo()


def _run_analysis(
    paths: list[Path], settings: Settings, *, as_json: bool, cdr: Path | None, store: bool
) -> int:
    from tqdm import tqdm

    from qa_service.audit.events import Actor
    from qa_service.complaints.register import link_saved_call
    from qa_service.db import repository as repo
    from qa_service.ingest.dial_log import load_dial_log
    from qa_service.ingest.recordings import discover_recordings
    from qa_service.pipeline import Analyzer, CallContext, refusals_to_remember
    from qa_service.review.queue import classify_call

    recordings = discover_recordings(paths)
    if not recordings:
        typer.secho("没有找到录音文件 / no recordings found", err=True, fg=typer.colors.RED)
        return 2
    with open_sessions(settings) as factory:
        if cdr is not None:
            attempts = load_dial_log(cdr, assume_offset=settings.local_tz)
            with factory() as session, session.begin():
                added = repo.save_dial_attempts(session, attempts=attempts)
            typer.echo(f"导入拨号记录 {added} 条（共 {len(attempts)} 条）", err=True)
        analyzer = Analyzer(settings)

        def context(meta: CallMetadata) -> CallContext:
            bounds = _day_bounds(meta, settings)
            with factory() as session:
                dial_log: list[DialAttempt] = []
                if bounds and meta.customer_id:
                    dial_log = repo.dial_attempts_for_customer(
                        session, customer_id=meta.customer_id, start=bounds[0], end=bounds[1]
                    )
                elif bounds and meta.dialed_number:
                    dial_log = repo.dial_attempts_for_number(
                        session, dialed_number=meta.dialed_number, start=bounds[0], end=bounds[1]
                    )
                return CallContext(
                    dial_log=tuple(dial_log), do_not_call=tuple(repo.do_not_call_entries(session))
                )

        failed = 0
        versions = _versions()
        bar = tqdm(recordings, unit="通", desc="分析", file=sys.stderr, disable=len(recordings) < 2)
        for path in bar:
            analysis = analyzer.analyze(path, context)
            if store:
                try:
                    with factory() as session, session.begin():
                        call_pk = repo.save_analysis(
                            session, analysis=analysis, source_path=str(path), versions=versions
                        )
                        if call_pk is not None:
                            classify_call(session, call_pk=call_pk, settings=settings)
                            link_saved_call(
                                session,
                                call_pk=call_pk,
                                link_days=settings.complaint_link_days,
                                actor=Actor.cli(),
                            )
                        refusals = refusals_to_remember(analysis)
                        if refusals:
                            repo.add_do_not_call(
                                session, entries=refusals, source_call_id=analysis.call_id
                            )
                except QAServiceError as exc:
                    analysis = _as_error(analysis, exc)
            failed += analysis.status is CallStatus.ERROR
            if as_json:
                bar.clear()
                sys.stdout.write(_json_line(analysis) + "\n")
                sys.stdout.flush()
            else:
                bar.clear()
                _print_summary(analysis)
        bar.close()
    if not as_json:
        typer.echo(f"完成：{len(recordings) - failed} 通成功，{failed} 通失败。", err=True)
    return 1 if failed else 0


def _as_error(analysis: CallAnalysis, exc: QAServiceError) -> CallAnalysis:
    from dataclasses import replace

    return replace(analysis, status=CallStatus.ERROR, error=exc.as_dict(), findings=())


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("qa-service", "faster-whisper", "ctranslate2", "av", "opencc", "pypinyin"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "unknown"
    return out


@app.command()
def analyze(
    paths: Annotated[list[Path], typer.Argument(help="录音文件或目录 / recordings or directories")],
    cdr: Annotated[Path | None, typer.Option(help="拨号记录 CSV / dial log")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON Lines 输出 / JSON Lines")] = False,
    store: Annotated[bool, typer.Option(help="保存到数据库 / store results")] = True,
) -> None:
    """分析录音 / analyse recordings."""
    settings = get_settings()
    try:
        code = _run_analysis(paths, settings, as_json=as_json, cdr=cdr, store=store)
    except QAServiceError as exc:
        raise fail(exc) from exc
    raise typer.Exit(code=code)


@app.command("eval")
def evaluate_corpus(
    corpus: Annotated[Path, typer.Argument(help="语料目录（calls/、labels/、cdr.csv）")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
    save: Annotated[Path | None, typer.Option(help="保存每通分析结果 JSONL")] = None,
    transcripts: Annotated[
        Path | None,
        typer.Option(
            help="复用已保存的分析结果（--save 的 JSONL），只重跑文本检测，用于调整词库 / "
            "re-run only text detection on saved analyses"
        ),
    ] = None,
) -> None:
    """在标注语料上评估 / evaluate on a labelled corpus."""
    from qa_service.evaluation.corpus import redetect_evaluation, run_evaluation

    try:
        if transcripts is not None:
            report = redetect_evaluation(corpus, get_settings(), transcripts, save=save)
        else:
            report = run_evaluation(corpus, get_settings(), save=save)
    except QAServiceError as exc:
        raise fail(exc) from exc
    if as_json:
        typer.echo(json.dumps(report.as_dict(), ensure_ascii=False))
    else:
        from qa_service.evaluation.corpus import format_report

        typer.echo(format_report(report))
    raise typer.Exit(code=1 if report.errors else 0)


@app.command("eval-text")
def evaluate_text(
    lines: Annotated[Path, typer.Argument(help="标注句子 JSONL（id、speaker、text、labels）")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
    noise: Annotated[
        int | None, typer.Option(help="加入模拟识别错误（随机种子）/ add synthetic ASR noise")
    ] = None,
    errors: Annotated[Path | None, typer.Option(help="把判错的句子写入 JSONL")] = None,
) -> None:
    """逐句评估文本检测（无音频）/ evaluate text detection on labelled lines."""
    from qa_service.asr.model import resolve_cpu_threads
    from qa_service.evaluation.text import evaluate_lines, format_text_report, load_lines
    from qa_service.pipeline import build_detector

    settings = get_settings()
    try:
        rows = load_lines(lines)
        detector = build_detector(settings, resolve_cpu_threads(settings.cpu_threads))
        report = evaluate_lines(detector, rows, noise_seed=noise)
    except QAServiceError as exc:
        raise fail(exc) from exc
    if errors is not None:
        errors.write_text(
            "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in report.errors),
            encoding="utf-8",
        )
    if as_json:
        typer.echo(json.dumps(report.as_dict(), ensure_ascii=False))
    else:
        typer.echo(format_text_report(report))


@cdr_app.command("import")
def cdr_import(path: Path) -> None:
    """导入拨号记录 / import a dial log (CSV, UTF-8 or GBK)."""
    from qa_service.db import repository as repo
    from qa_service.ingest.dial_log import load_dial_log

    settings = get_settings()
    try:
        attempts = load_dial_log(path, assume_offset=settings.local_tz)
        with open_sessions(settings) as factory, factory() as session, session.begin():
            added = repo.save_dial_attempts(session, attempts=attempts)
            _record_import(session, "import.dial_log", path, rows=len(attempts), imported=added)
    except QAServiceError as exc:
        raise fail(exc) from exc
    typer.echo(f"导入拨号记录 {added} 条新记录（文件共 {len(attempts)} 条）")


@dnc_app.command("import")
def dnc_import(path: Path) -> None:
    """导入禁止拨打名单 / import a do-not-call list (CSV or one number per line)."""
    from qa_service.db import repository as repo
    from qa_service.ingest.dial_log import load_do_not_call

    settings = get_settings()
    try:
        entries = load_do_not_call(path)
        with open_sessions(settings) as factory, factory() as session, session.begin():
            added = repo.add_do_not_call(session, entries=entries)
            _record_import(session, "import.do_not_call", path, numbers=len(entries), added=added)
    except QAServiceError as exc:
        raise fail(exc) from exc
    typer.echo(f"禁止拨打名单新增 {added} 个号码（文件共 {len(entries)} 个）")


def _record_import(session: Session, event: str, path: Path, **details: object) -> None:
    from qa_service.audit.events import Actor, record_event

    record_event(
        session, actor=Actor.cli(), event=event, target=f"file:{path.name}", details=details
    )


@dnc_app.command("list")
def dnc_list() -> None:
    """列出禁止拨打名单 / list the do-not-call list."""
    from qa_service.db import repository as repo

    settings = get_settings()
    try:
        with open_sessions(settings) as factory, factory() as session:
            entries = repo.do_not_call_entries(session)
    except QAServiceError as exc:
        raise fail(exc) from exc
    for e in entries:
        added = e.added_at.isoformat() if e.added_at else ""
        typer.echo(f"{e.dialed_number}\t{e.source}\t{added}\t{e.reason}")


# scorecard, report agency, rescore live in their own module (it needs ``app`` to exist).
from qa_service.cli.reports import register as _register_reports  # noqa: E402

_register_reports(app)

# user, token, roster: accounts (qa_service.accounts).
from qa_service.cli.accounts import register as _register_accounts  # noqa: E402

_register_accounts(app)

# serve: the API under uvicorn (qa_service.api).
from qa_service.cli.serve import register as _register_serve  # noqa: E402

_register_serve(app)

# worker, queue sweep | failed | retry: the job queue (qa_service.worker).
from qa_service.cli.worker import register as _register_worker  # noqa: E402

_register_worker(app)

# demo: the embedded default with demo accounts, then serve (qa_service.cli.demo).
from qa_service.cli.demo import register as _register_demo  # noqa: E402

_register_demo(app, run_analysis=_run_analysis)

# keys generate | rotate: personal data at rest (qa_service.privacy.keys).
from qa_service.cli.keys import register as _register_keys  # noqa: E402

_register_keys(app)

# audit verify | list | review, retention run | hold | release (qa_service.audit).
from qa_service.cli.audit import register as _register_audit  # noqa: E402

_register_audit(app)

# export review-labels, review-stats: learning from reviews (qa_service.review).
from qa_service.cli.review import register as _register_review  # noqa: E402

_register_review(app)

# complaints import, trends, coaching (qa_service.complaints, qa_service.trends).
from qa_service.cli.complaints import register as _register_complaints  # noqa: E402

_register_complaints(app)

if __name__ == "__main__":  # pragma: no cover
    app()
