"""Benchmark the analysis pipeline: per-stage wall time and real-time factor per call.

Real-time factor (RTF here) = recording seconds / wall seconds of the whole pipeline
(ingest + both channels' transcription + scan), so "8x" means an hour of calls in
7.5 minutes. Each call is analysed ``--runs`` times; per call we keep the median and
the min–max over runs, and report the median over the corpus. Timings on a shared
2-core machine are noisy: read medians and ratios, not single numbers.

    python bench/bench_pipeline.py ../shared/corpus/dev/calls --runs 3 --out bench/results/dev.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("calls", type=Path, help="directory of recordings (with sidecars)")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--limit", type=int, default=0, help="only the first N calls")
    parser.add_argument("--out", type=Path, help="write the full results as JSON")
    args = parser.parse_args(argv)

    from qa_service.ingest.recordings import discover_recordings
    from qa_service.pipeline import Analyzer
    from qa_service.settings import get_settings

    settings = get_settings()
    t0 = time.perf_counter()
    analyzer = Analyzer(settings)
    load_s = time.perf_counter() - t0
    paths = discover_recordings([args.calls])
    if args.limit:
        paths = paths[: args.limit]
    analyzer.analyze(paths[0])  # warm-up: first-call allocations are not steady state

    per_call: dict[str, dict[str, object]] = {}
    for run in range(args.runs):
        for path in paths:
            t = time.perf_counter()
            analysis = analyzer.analyze(path)
            wall = time.perf_counter() - t
            if analysis.status.value != "analyzed":
                print(f"error: {path.name}: {analysis.error}", file=sys.stderr)
                continue
            rec = per_call.setdefault(
                analysis.call_id, {"duration_s": analysis.duration_s, "runs": []}
            )
            stages = {s.stage: s.seconds for s in analysis.timings}
            rec["runs"].append({"wall_s": round(wall, 3), **stages})  # type: ignore[union-attr]
        print(f"run {run + 1}/{args.runs} done", file=sys.stderr)

    rtf_medians = []
    stage_totals: dict[str, list[float]] = {}
    for _call_id, rec in per_call.items():
        runs = rec["runs"]
        rtfs = [rec["duration_s"] / r["wall_s"] for r in runs]  # type: ignore[index,operator]
        rec["rtf_median"] = round(statistics.median(rtfs), 2)
        rec["rtf_min"], rec["rtf_max"] = round(min(rtfs), 2), round(max(rtfs), 2)
        rtf_medians.append(rec["rtf_median"])
        for r in runs:  # type: ignore[union-attr]
            for stage, secs in r.items():
                stage_totals.setdefault(stage, []).append(secs / rec["duration_s"])

    summary = {
        "machine": f"{platform.machine()} {platform.processor()} cores={_cores()}",
        "model": analyzer.model_name,
        "device": f"{analyzer.device.device}/{analyzer.device.compute_type}"
        f"/threads={analyzer.device.cpu_threads}",
        "beam_size": settings.beam_size,
        "domain_vocabulary": settings.domain_vocabulary,
        "calls": len(per_call),
        "runs": args.runs,
        "model_load_s": round(load_s, 2),
        "rtf_median_over_calls": round(statistics.median(rtf_medians), 2),
        "rtf_min_over_calls": round(min(rtf_medians), 2),
        "rtf_max_over_calls": round(max(rtf_medians), 2),
        "stage_seconds_per_audio_second_median": {
            stage: round(statistics.median(v), 4) for stage, v in stage_totals.items()
        },
    }
    print(json.dumps(summary, indent=2, ensure_ascii=False))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(
            json.dumps({"summary": summary, "calls": per_call}, indent=1, ensure_ascii=False)
        )
    return 0


def _cores() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


if __name__ == "__main__":
    raise SystemExit(main())
