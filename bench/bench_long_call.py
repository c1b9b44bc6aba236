"""Benchmark one long call: peak memory (RSS) and time of the real pipeline by length.

Issue 13 asks that a 2-hour recording be analysed in bounded memory. Analysing two hours
on a 2-core machine takes too long for the test suite, so this script synthesises calls
of the lengths asked (8 kHz 16-bit stereo WAV, agent and customer on their own channel,
like the recorders): the committed 4-s fixture's speech every ``--speech-every`` seconds
on alternating channels, quiet noise in between. Each length runs in a fresh child process
(its own peak RSS from ``getrusage``), twice: decoding alone (``decode_audio``, where the
whole recording becomes float32 at 16 kHz, 2 h × 16,000 × 4 B ≈ 461 MB per channel,
spooled to temporary files and read back a stretch at a time) and the whole
``Analyzer.analyze``. A straight line through the figures shows how RSS grows per hour
and what two hours would take.

    nice -n 10 python bench/bench_long_call.py --minutes 10 20
    python bench/bench_long_call.py --minutes 120 --decode-only   # the 2-h decode alone
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "mono_8k.wav"
RATE = 8000


def synthesise(path: Path, minutes: float, speech_every_s: float, seed: int = 7) -> None:
    """Write a stereo 8 kHz call of ``minutes`` to ``path``, one second at a time."""
    with wave.open(str(FIXTURE), "rb") as src:
        assert src.getframerate() == RATE and src.getnchannels() == 1
        speech = np.frombuffer(src.readframes(src.getnframes()), dtype="<i2")
    rng = np.random.default_rng(seed)
    total = int(minutes * 60 * RATE)
    every = int(speech_every_s * RATE)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(2)
        out.setsampwidth(2)
        out.setframerate(RATE)
        for start in range(0, total, every):
            n = min(every, total - start)
            block = rng.normal(0, 30, size=(n, 2)).astype("<i2")
            k = min(len(speech), n)
            side = (start // every) % 2  # agent, then customer, then agent ...
            block[:k, side] = speech[:k]
            out.writeframes(block.tobytes())


def _child(path: Path, decode_only: bool) -> dict[str, float]:
    """Runs in a fresh process: one measurement."""

    def rss_mb() -> float:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux

    result: dict[str, float] = {"rss_start_mb": rss_mb()}
    if decode_only:
        from qa_service.ingest.audio import decode_audio

        t = time.perf_counter()
        with decode_audio(path) as audio:
            result["wall_s"] = time.perf_counter() - t
            result["spooled_mb"] = sum(len(ch) for ch in audio.channels) * 4 / 2**20
    else:
        from qa_service.pipeline import Analyzer
        from qa_service.settings import get_settings

        analyzer = Analyzer(get_settings())
        result["rss_models_mb"] = rss_mb()
        t = time.perf_counter()
        analysis = analyzer.analyze(path)
        result["wall_s"] = time.perf_counter() - t
        if analysis.status.value != "analyzed":
            raise SystemExit(f"analysis failed: {analysis.error}")
        result["utterances"] = len(analysis.utterances)
        result.update({f"stage_{s.stage}_s": s.seconds for s in analysis.timings})
    result["peak_rss_mb"] = rss_mb()
    return result


def _measure(path: Path, decode_only: bool) -> dict[str, float]:
    args = [sys.executable, __file__, "--child", str(path)]
    if decode_only:
        args.append("--decode-only")
    done = subprocess.run(args, capture_output=True, text=True, cwd=ROOT, check=False)
    if done.returncode != 0:
        raise SystemExit(done.stderr[-3000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, nargs="+", default=[10.0, 20.0])
    parser.add_argument("--speech-every", type=float, default=30.0, help="seconds")
    parser.add_argument("--decode-only", action="store_true", help="skip the full pipeline")
    parser.add_argument("--out", type=Path, help="write the figures as JSON")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        print(json.dumps(_child(args.child, args.decode_only)))
        return 0

    rows = []
    with tempfile.TemporaryDirectory(prefix="qa-long-call-") as tmp:
        for minutes in args.minutes:
            path = Path(tmp) / f"call-{minutes:g}min.wav"
            synthesise(path, minutes, args.speech_every)
            row: dict[str, object] = {"minutes": minutes, "file_mb": path.stat().st_size / 2**20}
            row["decode"] = _measure(path, decode_only=True)
            if not args.decode_only:
                row["pipeline"] = _measure(path, decode_only=False)
            rows.append(row)
            path.unlink()
            _print_row(row)
    if len(rows) >= 2:
        _print_fit(rows, "decode")
        if not args.decode_only:
            _print_fit(rows, "pipeline")
    if args.out:
        args.out.write_text(json.dumps(rows, indent=2))
    return 0


def _print_row(row: dict[str, object]) -> None:
    decode = row["decode"]
    assert isinstance(decode, dict)
    line = (
        f"{row['minutes']:>6g} min ({row['file_mb']:.0f} MB WAV): decode peak RSS "
        f"{decode['peak_rss_mb']:.0f} MB (samples spooled {decode['spooled_mb']:.0f} MB, "
        f"{decode['wall_s']:.1f} s)"
    )
    pipeline = row.get("pipeline")
    if isinstance(pipeline, dict):
        line += (
            f"; pipeline peak RSS {pipeline['peak_rss_mb']:.0f} MB (models loaded "
            f"{pipeline['rss_models_mb']:.0f} MB), {pipeline['wall_s']:.0f} s, "
            f"{int(pipeline['utterances'])} utterances"
        )
    print(line, flush=True)


def _print_fit(rows: list[dict[str, object]], kind: str) -> None:
    xs = [float(r["minutes"]) / 60 for r in rows]  # type: ignore[arg-type]
    ys = [float(r[kind]["peak_rss_mb"]) for r in rows]  # type: ignore[index]
    slope, intercept = np.polyfit(xs, ys, 1)
    print(
        f"{kind}: peak RSS ≈ {intercept:.0f} MB + {slope:.0f} MB per hour of call "
        f"→ 2 h ≈ {intercept + 2 * slope:.0f} MB"
    )


if __name__ == "__main__":
    raise SystemExit(main())
