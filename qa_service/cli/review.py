"""``qa-service export review-labels`` and ``qa-service review-stats``: learning from reviews.

The labels file has the format of ``models/data/written/*.jsonl``; retrain with it:

    python models/train_encoder_head.py --extra review-labels.jsonl --out /tmp/encoder_head

(writes a new head to ``--out``; point ``QA_ENCODER_HEAD_DIR`` at it once its figures are
checked). ``review-stats`` reports, per rule, the share of machine findings reviewers
confirmed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from qa_service.cli.support import fail, open_sessions
from qa_service.errors import QAServiceError
from qa_service.settings import get_settings

export_app = typer.Typer(help="导出 / export", no_args_is_help=True)


@export_app.command("review-labels")
def export_review_labels(
    out: Annotated[Path, typer.Option("-o", "--out", help="输出 JSONL 文件 / output file")],
) -> None:
    """导出复核结论为训练标注 / write review decisions as labelled training lines."""
    from qa_service.review.labels import review_labels

    try:
        with open_sessions(get_settings()) as factory, factory() as session:
            export = review_labels(session)
    except QAServiceError as exc:
        raise fail(exc) from exc
    out.write_text(
        "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in export.lines),
        encoding="utf-8",
    )
    positives = sum(1 for line in export.lines if line["labels"])
    typer.echo(
        f"已写出 {len(export.lines)} 条标注（{positives} 条含违规标签，"
        f"{len(export.lines) - positives} 条为反例）到 {out}"
    )
    for why, n in sorted(export.skipped.items()):
        typer.echo(f"  跳过 {n} 条 / skipped {n}: {why}", err=True)


def review_stats(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """按规则统计复核准确率 / per-rule precision from review decisions."""
    from qa_service.review.labels import review_precision

    try:
        with open_sessions(get_settings()) as factory, factory() as session:
            rows = review_precision(session)
    except QAServiceError as exc:
        raise fail(exc) from exc
    if as_json:
        typer.echo(json.dumps([r.as_dict() for r in rows], ensure_ascii=False))
        return
    typer.echo("规则  确认  驳回  补充  准确率(precision)")
    for r in rows:
        precision = f"{r.precision:.1%}" if r.precision is not None else "—"
        typer.echo(f"{r.rule:<5} {r.confirmed:>4} {r.dismissed:>5} {r.added:>5}  {precision}")


def register(app: typer.Typer) -> None:
    app.add_typer(export_app, name="export")
    app.command("review-stats")(review_stats)
