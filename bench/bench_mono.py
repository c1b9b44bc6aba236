"""Benchmark mono speaker attribution: who said each utterance of a one-channel call.

For each labelled corpus given, its mono calls are transcribed and scored as
``qa-service eval`` scores them (``mono_attribution``: utterances, and seconds of speech,
carrying the speaker of the labelled turn they overlap most), plus the short-reply figure:
how many labelled customer turns shorter than ``--short`` seconds have, as the utterance
overlapping them most, one attributed to the customer (a reply merged into the agent's
utterance does not). The time spent attributing speakers is reported per audio second.

    python bench/bench_mono.py ../shared/corpus/dev ../shared/corpus/dev-hard /work/fastmono \\
        --cache /work/fastmono-cache --out /tmp/mono.json

Whisper's output for a decoding window is cached under ``--cache`` (keyed by the window's
audio and the decoder settings), so a second run, or a run of another revision of the
attribution code, re-decodes nothing: ``PYTHONPATH=<checkout of the old revision>`` scores
the old code on the very same words.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import pickle
import sys
import time
from pathlib import Path


class CachedDecoder:
    """Wraps a WindowDecoder: windows already decoded come from disk, the rest in one batch."""

    def __init__(self, decoder, cache: Path, salt: str) -> None:
        self.decoder = decoder
        self.cache = cache
        self.salt = salt.encode()
        self.decoded = self.reused = 0
        cache.mkdir(parents=True, exist_ok=True)

    def decode(self, windows):
        keys = [hashlib.sha1(self.salt + w.tobytes()).hexdigest() for w in windows]
        found = {}
        for i, key in enumerate(keys):
            path = self.cache / f"{key}.pkl"
            if path.is_file():
                found[i] = pickle.loads(path.read_bytes())
        todo = [i for i in range(len(windows)) if i not in found]
        for i, result in zip(todo, self.decoder.decode([windows[i] for i in todo]), strict=True):
            (self.cache / f"{keys[i]}.pkl").write_bytes(pickle.dumps(result))
            found[i] = result
        self.decoded += len(todo)
        self.reused += len(windows) - len(todo)
        return [found[i] for i in range(len(windows))]


class StageClock:
    """Seconds spent in the transcribe module's speaker-attribution functions."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.depth = 0

    def wrap(self, owner, name: str) -> None:
        fn = getattr(owner, name, None) if owner is not None else None
        if fn is None:
            return

        def timed(*args, **kwargs):
            self.depth += 1
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.depth -= 1
                if not self.depth:
                    self.seconds += time.perf_counter() - t0

        setattr(owner, name, timed)


def short_replies(utterances, turns, max_s: float) -> tuple[int, int, int]:
    """(short customer turns, kept as the customer's, heard by nobody) for one call."""
    total = kept = unheard = 0
    for turn in turns:
        if turn["speaker"] != "customer" or turn["end"] - turn["start"] >= max_s:
            continue
        total += 1
        overlaps = [
            (min(u.end, turn["end"]) - max(u.start, turn["start"]), u.speaker.value)
            for u in utterances
        ]
        best = max(overlaps, default=(0.0, ""))
        if best[0] <= 0:
            unheard += 1
        elif best[1] == "customer":
            kept += 1
    return total, kept, unheard


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpora", type=Path, nargs="+", help="labelled corpus folders")
    parser.add_argument("--cache", type=Path, required=True, help="decoded-window cache")
    parser.add_argument("--short", type=float, default=1.5, help="a short reply, seconds")
    parser.add_argument("--out", type=Path, help="write the figures as JSON")
    parser.add_argument("--save", type=Path, help="write every call's utterances as JSONL")
    args = parser.parse_args(argv)

    import qa_service.asr.transcribe as transcribe
    from qa_service.domain import CallAnalysis, CallStatus
    from qa_service.evaluation.metrics import evaluate, load_labels
    from qa_service.ingest.recordings import discover_recordings, ingest_recording
    from qa_service.pipeline import build_transcriber
    from qa_service.settings import get_settings

    settings = get_settings()
    transcriber = build_transcriber(settings)  # without loading the text detectors
    salt = f"{transcriber.model_name}|beam={settings.beam_size}|{transcriber.decoder.prompt}"
    cached = CachedDecoder(transcriber.decoder, args.cache, salt)
    transcriber.decoder = cached
    clock = StageClock()
    # This revision attributes in one method; earlier ones in these four.
    clock.wrap(transcribe.Transcriber, "_attribute_mono")
    for name in ("voice_points", "attribute_speakers"):
        clock.wrap(transcribe, name)
    clock.wrap(getattr(transcribe, "SpeakerVoices", None), "fit")
    clock.wrap(transcribe.Transcriber, "_split_turns")

    results: dict[str, dict] = {}
    saved = args.save.open("w", encoding="utf-8") if args.save else None
    for corpus in args.corpora:
        labels = {k: v for k, v in load_labels(corpus / "labels").items() if v.channels == "mono"}
        analyses, audio_s, short = [], 0.0, [0, 0, 0]
        clock.seconds = 0.0
        for path in discover_recordings([corpus / "calls"]):
            call = ingest_recording(path, min_duration_s=settings.min_duration_s)
            lab = labels.get(call.metadata.call_id)
            if lab is None or call.layout != "mono":
                continue
            transcript = transcriber.transcribe(call)
            audio_s += call.audio.duration_s
            analyses.append(
                CallAnalysis(
                    call_id=lab.call_id,
                    recording=path.name,
                    status=CallStatus.ANALYZED,
                    channels="mono",
                    utterances=transcript.utterances,
                )
            )
            for k, v in enumerate(short_replies(transcript.utterances, lab.turns, args.short)):
                short[k] += v
            if saved:
                rows = [[u.speaker.value, u.start, u.end, u.text] for u in transcript.utterances]
                saved.write(
                    json.dumps({"call_id": lab.call_id, "utterances": rows}, ensure_ascii=False)
                    + "\n"
                )
        att = evaluate(analyses, labels).mono_attribution
        results[corpus.name] = {
            "calls": len(analyses),
            "audio_s": round(audio_s, 1),
            **att,
            "short_customer_turns": short[0],
            "short_kept_customer": short[1],
            "short_unheard": short[2],
            "attribution_s_per_audio_s": round(clock.seconds / max(audio_s, 1e-9), 5),
        }
        r = results[corpus.name]
        print(
            f"{corpus.name:>10}: {r['calls']} calls, utterances {r['correct']}/{r['utterances']}"
            f" = {r['rate']:.3f}, time {r['time_rate']:.3f}, short customer turns kept "
            f"{short[1]}/{short[0]} (unheard {short[2]}), attribution "
            f"{r['attribution_s_per_audio_s'] * 1000:.2f} ms per audio s",
            file=sys.stderr,
        )
    if saved:
        saved.close()
    print(f"windows decoded {cached.decoded}, from cache {cached.reused}", file=sys.stderr)
    if args.out:
        args.out.write_text(json.dumps(results, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
