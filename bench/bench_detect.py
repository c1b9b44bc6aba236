"""Benchmark the detection stage alone, on saved analyses (no ASR).

Re-runs text detection on every call of a ``qa-service eval --save`` / ``analyze --json``
file, ``--runs`` times, and compares its wall time with the rest of that call's pipeline
as recorded in the file (``timings_s``: ingest, transcribe, scan, score). Reports medians
over calls: detection seconds per audio second, and detection's share of the whole
pipeline (detection / (recorded other stages + detection)).

    python bench/bench_detect.py /work/runs/dev.jsonl --runs 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("analyses", type=Path, help="JSON Lines of saved analyses")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", type=Path, help="write the results as JSON")
    args = parser.parse_args(argv)

    from qa_service.asr.model import resolve_cpu_threads
    from qa_service.domain import CallMetadata
    from qa_service.evaluation.corpus import load_saved_analyses
    from qa_service.pipeline import build_detector
    from qa_service.settings import get_settings

    settings = get_settings()
    t0 = time.perf_counter()
    detector = build_detector(settings, resolve_cpu_threads(settings.cpu_threads))
    load_s = time.perf_counter() - t0
    raw = {
        json.loads(line)["call_id"]: json.loads(line)
        for line in args.analyses.read_text(encoding="utf-8").splitlines()
        if line.strip()
    }
    calls = [a for a in load_saved_analyses(args.analyses) if a.utterances]
    meta = {
        a.call_id: CallMetadata(call_id=a.call_id, recording=a.recording, channels=a.channels)
        for a in calls
    }
    detector.detect(list(calls[0].utterances), meta[calls[0].call_id])  # warm-up

    per_call = []
    for analysis in calls:
        times = []
        for _ in range(args.runs):
            if detector.semantic is not None:
                detector.semantic.encoder.clear_cache()  # every run encodes its texts anew
            t = time.perf_counter()
            detector.detect(list(analysis.utterances), meta[analysis.call_id])
            times.append(time.perf_counter() - t)
        detect_s = statistics.median(times)
        recorded = raw[analysis.call_id].get("timings_s") or {}
        others = sum(v for k, v in recorded.items() if k != "detect")
        per_call.append(
            {
                "call_id": analysis.call_id,
                "duration_s": analysis.duration_s,
                "utterances": len(analysis.utterances),
                "detect_s": round(detect_s, 4),
                "other_stages_s": round(others, 3),
                "share": round(detect_s / (others + detect_s), 4) if others else None,
            }
        )
    shares = [c["share"] for c in per_call if c["share"] is not None]
    summary = {
        "calls": len(per_call),
        "runs": args.runs,
        "detector_load_s": round(load_s, 2),
        "median_detect_s_per_call": round(statistics.median(c["detect_s"] for c in per_call), 4),
        "median_detect_s_per_audio_s": round(
            statistics.median(c["detect_s"] / c["duration_s"] for c in per_call if c["duration_s"]),
            5,
        ),
        "median_share_of_pipeline": round(statistics.median(shares), 4) if shares else None,
        "max_share_of_pipeline": round(max(shares), 4) if shares else None,
    }
    print(json.dumps(summary, indent=2))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(
            json.dumps({"summary": summary, "calls": per_call}, indent=2), encoding="utf-8"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
