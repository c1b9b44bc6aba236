"""Running an evaluation: analyse a labelled corpus directory and score it.

Kept apart from :mod:`qa_service.evaluation` (pure scoring) because this module loads
the model and reads the corpus layout (``calls/``, ``labels/``, ``cdr.csv``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from qa_service.domain import CallAnalysis, CallMetadata, DoNotCallEntry
from qa_service.errors import InputError, QAServiceError
from qa_service.evaluation import RULE_FAMILIES, EvalReport, evaluate, load_labels
from qa_service.ingest import load_metadata
from qa_service.rules import FAMILY_NAMES_ZH, rule_label
from qa_service.settings import Settings
from qa_service.textnorm import TextNormalizer


def run_evaluation(corpus: Path, settings: Settings, *, save: Path | None = None) -> EvalReport:
    """Analyse ``corpus/calls`` (with ``corpus/cdr.csv``) and score against ``labels/``."""
    from tqdm import tqdm

    from qa_service.cdr import load_dial_log
    from qa_service.ingest import discover_recordings
    from qa_service.output import analysis_to_json
    from qa_service.pipeline import Analyzer, CallContext, refusals_to_remember

    calls_dir, labels_dir = corpus / "calls", corpus / "labels"
    if not calls_dir.is_dir() or not labels_dir.is_dir():
        raise InputError(
            f"语料目录需包含 calls/ 与 labels/ / corpus needs calls/ and labels/: {corpus}"
        )
    labels = load_labels(labels_dir)
    cdr = corpus / "cdr.csv"
    dial_log = tuple(load_dial_log(cdr, assume_offset=settings.local_tz)) if cdr.is_file() else ()
    analyzer = Analyzer(settings)

    do_not_call: list[DoNotCallEntry] = []

    def context(_meta: CallMetadata) -> CallContext:
        return CallContext(dial_log=dial_log, do_not_call=tuple(do_not_call))

    analyses: list[CallAnalysis] = []
    out = save.open("w", encoding="utf-8") if save else None
    try:
        # In call order, so that a refusal (C02) on one call makes a later call to that
        # number an M03, as it would in production.
        for path in tqdm(
            _chronological(discover_recordings([calls_dir])), unit="call", file=sys.stderr
        ):
            analysis = analyzer.analyze(path, context)
            analyses.append(analysis)
            do_not_call.extend(refusals_to_remember(analysis))
            if out:
                out.write(json.dumps(analysis_to_json(analysis), ensure_ascii=False) + "\n")
    finally:
        if out:
            out.close()
    plain = TextNormalizer()
    return evaluate(analyses, labels, uncorrected=plain.normalize)


def _chronological(paths: list[Path]) -> list[Path]:
    def key(path: Path) -> tuple[int, str, str]:
        try:
            started = load_metadata(path).started_at
        except QAServiceError:
            started = None  # analysed (and reported as an error) after the dated calls
        return (started is None, started.isoformat() if started else "", path.name)

    return sorted(paths, key=key)


def format_report(report: EvalReport) -> str:
    """A readable table (Chinese headers) of an evaluation report."""
    lines = [f"评估通话数 calls: {report.calls}    失败 errors: {len(report.errors)}", ""]
    lines.append(
        f"{'规则 rule':<22}{'TP':>5}{'FP':>5}{'FN':>5}{'精确率P':>9}{'召回率R':>9}{'F1':>8}"
    )
    for rule, s in sorted(report.rules.items()):
        lines.append(
            f"{rule_label(rule):<20}{s.tp:>5}{s.fp:>5}{s.fn:>5}"
            f"{s.precision:>9.3f}{s.recall:>9.3f}{s.f1:>8.3f}"
        )
    lines.append("")
    for fam in RULE_FAMILIES:
        if fam in report.families:
            s = report.families[fam]
            fa = report.false_alarm.get(fam, {})
            lines.append(
                f"{fam} {FAMILY_NAMES_ZH[fam]}: micro-F1 {s.f1:.3f}  "
                f"(P {s.precision:.3f} R {s.recall:.3f})  "
                f"误报率 false-alarm {fa.get('rate', 0):.3f}"
            )
    lines.append("")
    for layout, c in report.cer.items():
        raw = report.cer_without_correction.get(layout)
        without = f"；未做术语纠正 without correction {raw['cer']:.4f}" if raw else ""
        lines.append(
            f"字错误率 CER [{layout}]: {c['cer']:.4f}  ({c['edits']}/{c['chars']}){without}"
        )
    for err in report.errors:
        lines.append(f"错误 error: {err['call_id']}: {err['error']}")
    return "\n".join(lines)
