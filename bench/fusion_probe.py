"""Dump the per-rule evidence the detector fuses, for every line of a labelled set.

Tuning the fusion (thresholds, when the lexicon may fire alone, denials) by re-running
the models for every variant costs minutes per set on 2 cores; the evidence does not
change between variants. This script runs the models once and writes, per line and
allowed rule, exactly the numbers ``Detector._semantic_findings`` decides on, so a
variant can be scored in milliseconds (``--simulate``) — on sets it was not tuned on.

    python bench/fusion_probe.py tests/data/blind/set_d.jsonl --out /tmp/probe_d.jsonl
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from qa_service.domain import CallMetadata, Speaker, Utterance
from qa_service.evaluation.text import _OPENING, _THIRD_PARTY_RULES, load_lines
from qa_service.text.clauses import scan_segments


def probe(detector, line) -> dict:
    third = bool(_THIRD_PARTY_RULES & set(line.labels))
    speaker = Speaker.AGENT if line.speaker == "agent" else Speaker.CUSTOMER
    turns = [
        Utterance(Speaker.AGENT, 0.0, 3.0, _OPENING),
        Utterance(Speaker.CUSTOMER, 3.5, 5.0, "嗯，你说。"),
        Utterance(speaker, 40.0, 48.0, line.text),
        Utterance(Speaker.AGENT, 50.0, 52.0, "好的，感谢您的接听，再见。"),
    ]
    meta = CallMetadata(
        call_id=line.id,
        recording=f"{line.id}.wav",
        contact_role="third_party" if third else "debtor",
    )
    evidence = detector._evidence(turns)
    ev = evidence[2]
    head, sim_index = detector.semantic.head, detector.semantic.similarity
    alone = detector._judged_alone(ev.segments)
    rules = {}
    for rule in detector._allowed(speaker):
        hits = ev.lexicon.get(rule, [])
        lex = max((h.weight for h in hits), default=0.0)
        clf = [s.scores.get(rule, 0.0) for s in ev.segments]
        enc = [s.semantic.probabilities.get(rule, 0.0) if s.semantic else 0.0 for s in ev.segments]
        matches = [s.semantic.similar.get(rule) if s.semantic else None for s in ev.segments]
        sim = max((sim_index.evidence(m) for m in matches if m), default=0.0)
        fires = any(m and sim_index.fires(m) for m in matches)
        neg = ev.denied.get(rule, 0.0)
        rules[rule] = {
            "lex": lex,
            "clf": max(clf),
            "enc": max(enc),
            # on clauses long enough for the encoder to fire alone (the detector's choice)
            "enc_judged": max((enc[i] for i in alone), default=0.0),
            "sim": sim,
            "fires": bool(fires),
            "neg": neg,
            "excused": rule in ev.excused,
            "prob": head.fusion.probability(rule, lex, max(clf), max(enc), sim, neg),
            "thr": head.fusion.threshold[rule],
        }
    # The detector's own decision on the same evidence (the models run once).
    original = detector._evidence
    detector._evidence = lambda _turns: evidence
    try:
        found = sorted(
            {
                f.rule
                for f in detector.detect(turns, meta)
                if f.start is not None and 40 <= f.start < 48
            }
        )
    finally:
        detector._evidence = original
    return {
        "id": line.id,
        "speaker": line.speaker,
        "labels": sorted(line.labels),
        "third": third,
        "chars": sum(1 for c in line.text if "\u4e00" <= c <= "\u9fff"),
        "segments": len(scan_segments(line.text)),
        "found": found,
        "disavowal": detector._disavowal(turns[2]),
        "withdrawn": sorted(detector._withdrawn(turns[2])),
        "rules": rules,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("lines", type=Path)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    from qa_service.asr.model import resolve_cpu_threads
    from qa_service.pipeline import build_detector
    from qa_service.settings import get_settings

    settings = get_settings()
    detector = build_detector(settings, resolve_cpu_threads(settings.cpu_threads))
    rows = load_lines(args.lines)
    with args.out.open("w", encoding="utf-8") as out:
        for n, line in enumerate(rows, 1):
            out.write(json.dumps(probe(detector, line), ensure_ascii=False) + "\n")
            if n % 100 == 0:
                print(f"{n}/{len(rows)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
