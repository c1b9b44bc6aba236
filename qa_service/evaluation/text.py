"""Text-only evaluation of the detection stage on labelled lines (no audio, no ASR).

The blind sets under ``tests/data/blind/`` were written by people who had read only the
rule catalogue — not the corpus, the lexicons or the training templates — so scores on
them estimate how detection generalises to wording nobody tuned for. Each line is
scanned as one agent or customer turn in the middle of a call: lines labelled P06 or
C02 on a call answered by a third party (those rules are defined by that context),
every other line on the debtor's own call. Only the P and C families are scored; R
rules need a whole call.

``noise`` applies the synthetic ASR errors of :mod:`qa_service.text.asr_noise` (seeded), to
see how much a transcript's errors cost.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qa_service.domain import CallMetadata, Finding, Speaker, Utterance
from qa_service.errors import InputError
from qa_service.evaluation.metrics import RuleScore

TEXT_RULES = (*(f"P{i:02d}" for i in range(1, 11)), "C01", "C02", "C03")
_THIRD_PARTY_RULES = {"P06", "C02"}
# The turn sits after an opening and before a closing, as in a call, so the
# opening-script and closing logic does not see it as either.
_OPENING = "您好，我是催收专员，请问是本人吗？"


@dataclass(frozen=True)
class LabelledLine:
    id: str
    speaker: str
    text: str
    labels: tuple[str, ...]
    style: str = ""


@dataclass
class TextEvalReport:
    lines: int = 0
    rules: dict[str, dict[str, float | int]] = field(default_factory=dict)
    families: dict[str, dict[str, float | int]] = field(default_factory=dict)
    false_alarms: dict[str, dict[str, float | int]] = field(default_factory=dict)
    by_style: dict[str, dict[str, float | int]] = field(default_factory=dict)
    errors: list[dict[str, Any]] = field(default_factory=list)
    reliability: list[dict[str, float | int]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "lines": self.lines,
            "families": self.families,
            "rules": self.rules,
            "false_alarms": self.false_alarms,
            "by_style": self.by_style,
            "reliability": self.reliability,
        }


def load_lines(path: Path) -> list[LabelledLine]:
    """Read a JSON Lines file of ``{id, speaker, text, labels}``; a bad line names itself."""
    out = []
    for n, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not raw.strip():
            continue
        try:
            row = json.loads(raw)
            labels = tuple(row["labels"])
            unknown = [r for r in labels if r not in TEXT_RULES]
            if unknown or row["speaker"] not in ("agent", "customer"):
                raise ValueError(f"unknown rule ids {unknown} or speaker {row['speaker']!r}")
            out.append(
                LabelledLine(
                    str(row["id"]),
                    row["speaker"],
                    str(row["text"]),
                    labels,
                    str(row.get("style", "")),
                )
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise InputError(
                f"{path}:{n}: 无法读取该行 / unreadable line: {exc}", file=str(path), line=n
            ) from exc
    return out


def detect_line(detector: Any, line: LabelledLine, text: str | None = None) -> list[Finding]:
    """Findings of the P/C rules for one line scanned as a turn inside a call."""
    third = bool(_THIRD_PARTY_RULES & set(line.labels))
    meta = CallMetadata(
        call_id=line.id,
        recording=f"{line.id}.wav",
        contact_role="third_party" if third else "debtor",
    )
    speaker = Speaker.AGENT if line.speaker == "agent" else Speaker.CUSTOMER
    turns = [
        Utterance(Speaker.AGENT, 0.0, 3.0, _OPENING),
        Utterance(Speaker.CUSTOMER, 3.5, 5.0, "嗯，你说。"),
        Utterance(speaker, 40.0, 48.0, text if text is not None else line.text),
        Utterance(Speaker.AGENT, 50.0, 52.0, "好的，感谢您的接听，再见。"),
    ]
    return [
        f
        for f in detector.detect(turns, meta)
        if f.rule in TEXT_RULES and f.start is not None and 40.0 <= f.start < 48.0
    ]


def evaluate_lines(
    detector: Any,
    lines: Sequence[LabelledLine],
    *,
    noise_seed: int | None = None,
) -> TextEvalReport:
    """Per-rule precision/recall, family micro-F1, and false alarms on harmless lines."""
    texts = [line.text for line in lines]
    if noise_seed is not None:
        from qa_service.text.asr_noise import add_asr_noise

        texts = [add_asr_noise(t, noise_seed * 100_003 + i) for i, t in enumerate(texts)]
    tp: Counter[str] = Counter()
    fp: Counter[str] = Counter()
    fn: Counter[str] = Counter()
    harmless: Counter[str] = Counter()
    harmless_hit: Counter[str] = Counter()
    style_n: Counter[str] = Counter()
    style_hit: Counter[str] = Counter()
    confidences: list[tuple[float, bool]] = []
    report = TextEvalReport(lines=len(lines))
    for line, text in zip(lines, texts, strict=True):
        findings = detect_line(detector, line, text)
        found = {f.rule for f in findings}
        truth = set(line.labels)
        for f in findings:
            confidences.append((f.confidence, f.rule in truth))
        for rule in found & truth:
            tp[rule] += 1
        for rule in found - truth:
            fp[rule] += 1
        for rule in truth - found:
            fn[rule] += 1
        if not truth:
            harmless[line.speaker] += 1
            if found:
                harmless_hit[line.speaker] += 1
        else:
            style_n[line.style or "-"] += 1
            if truth <= found:
                style_hit[line.style or "-"] += 1
        if found != truth:
            report.errors.append(
                {
                    "id": line.id,
                    "speaker": line.speaker,
                    "text": text,
                    "labels": sorted(truth),
                    "found": sorted(found),
                    "findings": [_brief(f) for f in findings],
                }
            )
    for rule in TEXT_RULES:
        report.rules[rule] = RuleScore(tp[rule], fp[rule], fn[rule]).as_dict()
    for family in ("P", "C"):
        rules = [r for r in TEXT_RULES if r[0] == family]
        report.families[family] = RuleScore(
            sum(tp[r] for r in rules), sum(fp[r] for r in rules), sum(fn[r] for r in rules)
        ).as_dict()
    for speaker in ("agent", "customer"):
        n = harmless[speaker]
        report.false_alarms[speaker] = {
            "lines": n,
            "flagged": harmless_hit[speaker],
            "rate": round(harmless_hit[speaker] / n, 4) if n else 0.0,
        }
    for style in sorted(style_n):
        report.by_style[style] = {
            "lines": style_n[style],
            "recall": round(style_hit[style] / style_n[style], 4),
        }
    report.reliability = reliability_table(confidences)
    return report


def reliability_table(
    pairs: Iterable[tuple[float, bool]], edges: Sequence[float] = (0.0, 0.5, 0.7, 0.8, 0.9, 0.95)
) -> list[dict[str, float | int]]:
    """Per confidence band: how many findings, and the share that were right."""
    bands = list(edges) + [1.0001]
    rows = []
    pairs = list(pairs)
    for lo, hi in zip(bands, bands[1:], strict=False):
        inside = [(c, ok) for c, ok in pairs if lo <= c < hi]
        if not inside:
            continue
        rows.append(
            {
                "from": lo,
                "to": min(hi, 1.0),
                "findings": len(inside),
                "mean_confidence": round(sum(c for c, _ in inside) / len(inside), 3),
                "precision": round(sum(ok for _, ok in inside) / len(inside), 3),
            }
        )
    return rows


def _brief(f: Finding) -> dict[str, Any]:
    ev = f.evidence
    return {
        "rule": f.rule,
        "source": f.source,
        "confidence": f.confidence,
        "clause": ev.get("clause"),
        "classifier": ev.get("classifier_score"),
        "encoder": ev.get("encoder_score"),
        "lexicon": ev.get("lexicon_weight"),
        "similar_to": ev.get("similar_example"),
    }


def format_text_report(report: TextEvalReport) -> str:
    lines = [f"逐句评估 / text-only evaluation: {report.lines} lines"]
    for fam, s in report.families.items():
        lines.append(
            f"  {fam}: micro-F1 {s['f1']:.3f} (P {s['precision']:.3f} / R {s['recall']:.3f})"
        )
    for speaker, s in report.false_alarms.items():
        lines.append(
            f"  false alarms on harmless {speaker} lines: {s['flagged']}/{s['lines']}"
            f" = {s['rate']:.1%}"
        )
    lines.append("  rule   P      R      F1     (tp/fp/fn)")
    for rule, s in report.rules.items():
        lines.append(
            f"  {rule}  {s['precision']:.3f}  {s['recall']:.3f}  {s['f1']:.3f}"
            f"  ({s['tp']}/{s['fp']}/{s['fn']})"
        )
    return "\n".join(lines)
