"""Running an evaluation: analyse a labelled corpus directory and score it.

Kept apart from :mod:`qa_service.evaluation.metrics` (pure scoring) because this module loads
the model and reads the corpus layout (``calls/``, ``labels/``, ``cdr.csv``).
"""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

from qa_service.asr.textnorm import TextNormalizer
from qa_service.domain import (
    CallAnalysis,
    CallMetadata,
    CallStatus,
    DoNotCallEntry,
    Finding,
    Speaker,
    Utterance,
)
from qa_service.errors import InputError, QAServiceError
from qa_service.evaluation.metrics import (
    RULE_FAMILIES,
    CallLabels,
    EvalReport,
    evaluate,
    load_labels,
)
from qa_service.ingest.recordings import load_metadata
from qa_service.rules.catalogue import FAMILY_NAMES_ZH, rule_label
from qa_service.settings import Settings


def run_evaluation(corpus: Path, settings: Settings, *, save: Path | None = None) -> EvalReport:
    """Analyse ``corpus/calls`` (with ``corpus/cdr.csv``) and score against ``labels/``."""
    from tqdm import tqdm

    from qa_service.ingest.dial_log import load_dial_log
    from qa_service.ingest.recordings import discover_recordings
    from qa_service.pipeline import Analyzer, CallContext, refusals_to_remember
    from qa_service.reports.output import analysis_to_json

    calls_dir, labels = _corpus(corpus)
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


# Rules that depend on the audio or the dial log, not on the words: a re-detection keeps
# the saved findings for them.
_NON_TEXT_FAMILIES = ("A", "M")


def redetect_evaluation(
    corpus: Path, settings: Settings, transcripts: Path, *, save: Path | None = None
) -> EvalReport:
    """Score ``corpus`` again from saved analyses, re-running only text detection.

    For lexicon and fusion work: a QA lead who edits a lexicon sees its effect on the
    whole corpus in seconds, without transcribing again. ``transcripts`` is a JSONL file
    written by ``eval --save`` (or ``analyze --json``); acoustic and metadata findings are
    taken from it as they are. CER is scored on the saved text; the figure without domain
    correction needs Whisper's raw text, which the JSONL does not carry.
    """
    from qa_service.asr.model import resolve_cpu_threads
    from qa_service.ingest.recordings import discover_recordings
    from qa_service.pipeline import build_detector, finding_order
    from qa_service.reports.output import analysis_to_json
    from qa_service.scoring.rubric import load_rubric
    from qa_service.scoring.score import score_call

    calls_dir, labels = _corpus(corpus)
    metadata: dict[str, CallMetadata] = {}
    for path in discover_recordings([calls_dir]):
        try:
            meta = load_metadata(path)
        except QAServiceError:
            continue  # the saved analysis reports that call's error
        metadata[meta.call_id] = meta
    detector = build_detector(settings, resolve_cpu_threads(settings.cpu_threads))
    rubric = load_rubric(settings.rubric_path)
    analyses = []
    for saved in load_saved_analyses(transcripts):
        if saved.status is CallStatus.ERROR:
            analyses.append(saved)
            continue
        meta = metadata.get(saved.call_id) or CallMetadata(
            call_id=saved.call_id, recording=saved.recording
        )
        kept = [f for f in saved.findings if f.rule[:1] in _NON_TEXT_FAMILIES]
        findings = sorted(kept + detector.detect(saved.utterances, meta), key=finding_order)
        score = score_call(findings, rubric)
        analyses.append(
            replace(
                saved,
                metadata=meta,
                findings=tuple(findings),
                score=score.score,
                score_detail=score,
            )
        )
    if save:
        with save.open("w", encoding="utf-8") as out:
            for analysis in analyses:
                out.write(json.dumps(analysis_to_json(analysis), ensure_ascii=False) + "\n")
    return evaluate(analyses, labels)


def load_saved_analyses(path: Path) -> list[CallAnalysis]:
    """Analyses from a JSONL file of the output contract (one call per line)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise InputError(f"无法读取分析结果文件 / cannot read analyses: {path}: {exc}") from exc
    out = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            out.append(analysis_from_json(json.loads(line)))
        except (ValueError, KeyError, TypeError) as exc:
            raise InputError(
                f"分析结果第 {number} 行格式错误 / malformed analysis at {path}:{number}: {exc}"
            ) from exc
    return out


def analysis_from_json(raw: dict) -> CallAnalysis:
    """The inverse of :func:`qa_service.reports.output.analysis_to_json`, for detection."""

    def speaker(value: str | None) -> Speaker | None:
        return Speaker(value) if value else None

    status = CallStatus(raw["status"])
    return CallAnalysis(
        call_id=raw["call_id"],
        recording=raw.get("recording", ""),
        status=status,
        duration_s=raw.get("duration_s"),
        channels=raw.get("channels"),
        sha256=raw.get("sha256"),
        utterances=tuple(
            Utterance(
                speaker=Speaker(u["speaker"]),
                start=float(u["start"]),
                end=float(u["end"]),
                text=u["text"],
            )
            for u in raw.get("utterances", ())
        ),
        findings=tuple(
            Finding(
                rule=f["rule"],
                source=f.get("source", ""),
                confidence=float(f.get("confidence", 0.0)),
                speaker=speaker(f.get("speaker")),
                start=f.get("start"),
                end=f.get("end"),
                text=f.get("text"),
                evidence=f.get("evidence") or {},
            )
            for f in raw.get("findings", ())
        ),
        score=raw.get("score"),
        error=raw.get("error"),
        model_name=raw.get("model"),
    )


def _corpus(corpus: Path) -> tuple[Path, dict[str, CallLabels]]:
    """The recordings folder of a labelled corpus and its labels by call id."""
    calls_dir, labels_dir = corpus / "calls", corpus / "labels"
    if not calls_dir.is_dir() or not labels_dir.is_dir():
        raise InputError(
            f"语料目录需包含 calls/ 与 labels/ / corpus needs calls/ and labels/: {corpus}"
        )
    return calls_dir, load_labels(labels_dir)


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
    for fam, loc in report.localisation.items():
        lines.append(
            f"{fam} 定位到标注语句 localised: {loc['rate']:.3f}  "
            f"({loc['localised']}/{loc['utterances']})"
        )
    if report.mono_attribution:
        att = report.mono_attribution
        lines.append(
            f"单声道说话人归属 mono attribution: {att['rate']:.3f} 语句 utterances "
            f"({att['correct']}/{att['utterances']}), {att['time_rate']:.3f} 时长 time"
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
