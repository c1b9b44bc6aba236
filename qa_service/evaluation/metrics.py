"""Evaluation against a labelled corpus: per-rule detection scores and ASR character error.

Labels are call-level truth (``expected_rules``) plus utterance-level turns. Detection is
scored per call and rule (a rule flagged on a call that expects it is a true positive);
CER compares each speaker's transcript with the scripted turns after the same text
normalisation on both sides (Simplified script, numbers spelled in Chinese, no
punctuation), as is usual for Mandarin ASR scoring.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from qa_service.domain import CallAnalysis, CallStatus, Speaker, Utterance

RULE_FAMILIES = ("P", "C", "R", "A", "M")
_DIGITS = "零一二三四五六七八九"
_NON_WORD = re.compile(r"[\W_]+", re.UNICODE)


@dataclass(frozen=True)
class CallLabels:
    call_id: str
    channels: str
    expected_rules: frozenset[str]
    turns: tuple[dict[str, Any], ...]

    @classmethod
    def load(cls, path: Path) -> CallLabels:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return cls(
            call_id=raw["call_id"],
            channels=raw.get("channels", "stereo"),
            expected_rules=frozenset(raw.get("expected_rules", [])),
            turns=tuple(raw.get("turns", [])),
        )


@dataclass
class RuleScore:
    tp: int = 0
    fp: int = 0
    fn: int = 0

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    def as_dict(self) -> dict[str, float | int]:
        return {
            "tp": self.tp,
            "fp": self.fp,
            "fn": self.fn,
            "precision": round(self.precision, 4),
            "recall": round(self.recall, 4),
            "f1": round(self.f1, 4),
        }


@dataclass
class EvalReport:
    calls: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)
    rules: dict[str, RuleScore] = field(default_factory=dict)
    families: dict[str, RuleScore] = field(default_factory=dict)
    false_alarm: dict[str, dict[str, float | int]] = field(default_factory=dict)
    cer: dict[str, dict[str, float | int]] = field(default_factory=dict)
    cer_without_correction: dict[str, dict[str, float | int]] = field(default_factory=dict)
    # Per family (P, C): labelled utterances whose rule was flagged on that utterance.
    localisation: dict[str, dict[str, float | int]] = field(default_factory=dict)
    # Mono calls: utterances (and seconds of speech) given the labelled speaker.
    mono_attribution: dict[str, float | int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "errors": self.errors,
            "rules": {r: s.as_dict() for r, s in sorted(self.rules.items())},
            "families": {f: s.as_dict() for f, s in self.families.items()},
            "false_alarm_rate": self.false_alarm,
            "cer": self.cer,
            "cer_without_correction": self.cer_without_correction,
            "localisation": self.localisation,
            "mono_attribution": self.mono_attribution,
        }


def normalize_for_cer(text: str) -> str:
    """Text as scored for CER: Simplified, numbers in Chinese characters, no punctuation."""
    import cn2an

    text = re.sub(r"(?<=\d)[,，](?=\d{3})", "", text)
    # Phone numbers, hotlines and account numbers are read digit by digit.
    text = re.sub(r"\d{5,}", lambda m: "".join(_DIGITS[int(d)] for d in m.group()), text)
    try:
        text = cn2an.transform(text, "an2cn")
    except (ValueError, KeyError):  # cn2an rejects a few odd digit mixes; score them as is
        pass
    return _NON_WORD.sub("", text)


def character_errors(reference: str, hypothesis: str) -> tuple[int, int]:
    """(edit distance, reference length) after CER normalisation."""
    from rapidfuzz.distance import Levenshtein

    ref, hyp = normalize_for_cer(reference), normalize_for_cer(hypothesis)
    return Levenshtein.distance(ref, hyp), len(ref)


def _speaker_texts(
    analysis: CallAnalysis, labels: CallLabels, text_of: Callable[[Utterance], str]
) -> list[tuple[str, str]]:
    """(reference, hypothesis) pairs: per speaker on stereo, whole call on mono."""
    if labels.channels == "mono" or analysis.channels == "mono":
        ref = "".join(t["text"] for t in sorted(labels.turns, key=lambda t: t["start"]))
        hyp = "".join(text_of(u) for u in analysis.utterances)
        return [(ref, hyp)]
    pairs = []
    for speaker in (Speaker.AGENT, Speaker.CUSTOMER):
        ref = "".join(t["text"] for t in labels.turns if t["speaker"] == speaker.value)
        hyp = "".join(text_of(u) for u in analysis.utterances if u.speaker == speaker)
        pairs.append((ref, hyp))
    return pairs


# A finding is on a labelled utterance when their spans overlap, allowing for the few
# hundred milliseconds by which ASR and label timestamps differ.
_LOCALISATION_SLACK_S = 0.5
_LOCALISED_FAMILIES = ("P", "C")


def _add_localisation(
    acc: dict[str, list[int]], analysis: CallAnalysis, labels: CallLabels, *, check_speaker: bool
) -> None:
    """Count labelled P/C utterances and those a finding of their rule points at.

    On stereo calls the finding must also name the labelled speaker; on mono calls the
    speaker is an estimate, scored separately (attribution accuracy).
    """
    for turn in labels.turns:
        for rule in turn.get("labels", ()):
            if rule[:1] not in _LOCALISED_FAMILIES:
                continue
            slot = acc.setdefault(rule[:1], [0, 0])
            slot[0] += 1
            if any(
                f.rule == rule
                and f.start is not None
                and f.end is not None
                and f.start < turn["end"] + _LOCALISATION_SLACK_S
                and f.end > turn["start"] - _LOCALISATION_SLACK_S
                and (not check_speaker or (f.speaker and f.speaker.value == turn["speaker"]))
                for f in analysis.findings
            ):
                slot[1] += 1


def _add_attribution(acc: list, analysis: CallAnalysis, labels: CallLabels) -> None:
    """Mono speaker attribution: each utterance against the labelled turns it overlaps.

    An utterance is right when the labelled speaker it overlaps most is the one it was
    given; time accuracy counts the overlap with turns of the speaker it was given, so an
    utterance that merges two parties' turns is right only for its own part.
    """
    for u in analysis.utterances:
        overlap: Counter[str] = Counter()
        for turn in labels.turns:
            seconds = min(u.end, turn["end"]) - max(u.start, turn["start"])
            if seconds > 0:
                overlap[turn["speaker"]] += seconds
        if not overlap:
            continue  # speech the labels do not cover (a hallucination, noise)
        acc[0] += 1
        acc[1] += overlap.most_common(1)[0][0] == u.speaker.value
        acc[2] += sum(overlap.values())
        acc[3] += overlap.get(u.speaker.value, 0.0)


def _cer_table(errors_by_layout: dict[str, list[int]]) -> dict[str, dict[str, float | int]]:
    table: dict[str, dict[str, float | int]] = {}
    total = [0, 0]
    for layout, (edits, length) in sorted(errors_by_layout.items()):
        if not length:  # labels without turns: nothing to score the transcript against
            continue
        table[layout] = {"edits": edits, "chars": length, "cer": round(edits / length, 4)}
        total[0] += edits
        total[1] += length
    if total[1]:
        table["all"] = {"edits": total[0], "chars": total[1], "cer": round(total[0] / total[1], 4)}
    return table


def _raw_text(to_plain: Callable[[str], str], u: Utterance) -> str:
    return to_plain(u.raw_text or u.text)


def _add_cer(acc: dict[str, list[int]], layout: str, pairs: list[tuple[str, str]]) -> None:
    for ref, hyp in pairs:
        edits, length = character_errors(ref, hyp)
        slot = acc.setdefault(layout, [0, 0])
        slot[0] += edits
        slot[1] += length


def evaluate(
    analyses: Iterable[CallAnalysis],
    labels: dict[str, CallLabels],
    *,
    uncorrected: Callable[[str], str] | None = None,
) -> EvalReport:
    """Score analyses against labels (see module docstring).

    ``uncorrected`` maps an utterance's raw Whisper text to what it would read without
    domain-term correction; when given, the report also carries that CER, so the
    correction's effect is measured on the very same decoding run.
    """
    report = EvalReport()
    per_rule: dict[str, RuleScore] = {}
    family_calls_without: Counter[str] = Counter()
    family_false_alarms: Counter[str] = Counter()
    errors_by_layout: dict[str, list[int]] = {}
    raw_errors_by_layout: dict[str, list[int]] = {}
    located: dict[str, list[int]] = {}  # family -> [labelled utterances, localised]
    attributed = [0, 0, 0.0, 0.0]  # utterances scored, right; seconds scored, right

    for analysis in analyses:
        report.calls += 1
        lab = labels.get(analysis.call_id)
        if analysis.status is CallStatus.ERROR or lab is None:
            report.errors.append(
                {"call_id": analysis.call_id, "error": analysis.error or "no labels for this call"}
            )
            continue
        predicted = {f.rule for f in analysis.findings}
        for rule in predicted | lab.expected_rules:
            score = per_rule.setdefault(rule, RuleScore())
            if rule in predicted and rule in lab.expected_rules:
                score.tp += 1
            elif rule in predicted:
                score.fp += 1
            else:
                score.fn += 1
        for fam in RULE_FAMILIES:
            if not any(r.startswith(fam) for r in lab.expected_rules):
                family_calls_without[fam] += 1
                if any(r.startswith(fam) for r in predicted):
                    family_false_alarms[fam] += 1
        layout = "mono" if lab.channels == "mono" else "stereo"
        _add_localisation(located, analysis, lab, check_speaker=layout == "stereo")
        if layout == "mono":
            _add_attribution(attributed, analysis, lab)
        _add_cer(errors_by_layout, layout, _speaker_texts(analysis, lab, lambda u: u.text))
        if uncorrected is not None:
            pairs = _speaker_texts(analysis, lab, partial(_raw_text, uncorrected))
            _add_cer(raw_errors_by_layout, layout, pairs)

    report.rules = per_rule
    for fam in RULE_FAMILIES:
        agg = RuleScore()
        for rule, s in per_rule.items():
            if rule.startswith(fam):
                agg.tp += s.tp
                agg.fp += s.fp
                agg.fn += s.fn
        if agg.tp + agg.fp + agg.fn:
            report.families[fam] = agg
        if family_calls_without[fam]:
            report.false_alarm[fam] = {
                "calls_without_label": family_calls_without[fam],
                "calls_flagged": family_false_alarms[fam],
                "rate": round(family_false_alarms[fam] / family_calls_without[fam], 4),
            }
    report.localisation = {
        fam: {"utterances": n, "localised": k, "rate": round(k / n, 4)}
        for fam, (n, k) in sorted(located.items())
        if n
    }
    if attributed[0]:
        report.mono_attribution = {
            "utterances": attributed[0],
            "correct": attributed[1],
            "rate": round(attributed[1] / attributed[0], 4),
            "speech_s": round(attributed[2], 1),
            "time_rate": round(attributed[3] / attributed[2], 4) if attributed[2] else 0.0,
        }
    report.cer = _cer_table(errors_by_layout)
    report.cer_without_correction = _cer_table(raw_errors_by_layout)
    return report


def load_labels(labels_dir: Path) -> dict[str, CallLabels]:
    out = {}
    for path in sorted(labels_dir.glob("*.json")):
        lab = CallLabels.load(path)
        out[lab.call_id] = lab
    return out
