"""Make fast-speech mono test calls from a labelled corpus (for mono attribution work).

Mono calls with fast speech and quick turn-taking are what loses short customer replies
into the agent's utterance; the dev corpus has only ten mono calls at ordinary pace. This
script speeds labelled calls up with FFmpeg's ``atempo`` filter (through PyAV: tempo up,
pitch and timbre kept, so the voices stay the speakers'), mixes stereo calls down to one
channel, and writes them with their labels, every time divided by the tempo, in the
corpus layout (``calls/<id>.wav`` + sidecar, ``labels/<id>.json``):

    python bench/make_fast_mono.py ../shared/corpus/dev /work/fastmono --stereo 20

The output must lie outside the repository (corpus audio is never committed). Calls are
``<call_id>-f``; the tempo of each call is drawn (seeded) from ``--tempo`` and recorded
in its labels as ``tempo``.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import wave
from pathlib import Path

import av
import numpy as np

SAMPLE_RATE = 8000  # the corpus's telephone rate; written as PCM16 WAV


def speed_up(samples: np.ndarray, sample_rate: int, tempo: float) -> np.ndarray:
    """``samples`` (float32 mono) played ``tempo`` times faster at the same pitch."""
    graph = av.filter.Graph()
    src = graph.add_abuffer(
        format="flt", sample_rate=sample_rate, layout="mono", time_base=f"1/{sample_rate}"
    )
    stretch = graph.add("atempo", f"{tempo:.4f}")
    sink = graph.add("abuffersink")
    src.link_to(stretch)
    stretch.link_to(sink)
    graph.configure()
    out: list[np.ndarray] = []
    step = 4096
    for i in range(0, len(samples), step):
        chunk = np.ascontiguousarray(samples[i : i + step], dtype=np.float32)[None, :]
        frame = av.AudioFrame.from_ndarray(chunk, format="flt", layout="mono")
        frame.sample_rate = sample_rate
        frame.pts = i
        graph.push(frame)
        out.extend(_pull(graph))
    graph.push(None)
    out.extend(_pull(graph))
    return np.concatenate(out) if out else np.zeros(0, dtype=np.float32)


def _pull(graph: av.filter.Graph) -> list[np.ndarray]:
    frames = []
    while True:
        try:
            frame = graph.pull()
        except (av.BlockingIOError, av.EOFError):
            return frames
        frames.append(frame.to_ndarray().reshape(-1).astype(np.float32))


def mix_down(channels: tuple[np.ndarray, ...]) -> np.ndarray:
    """One channel holding every party, as a mono recorder would (peak kept below 1)."""
    mixed = np.sum(channels, axis=0)
    peak = float(np.abs(mixed).max()) if len(mixed) else 0.0
    return mixed / peak * 0.95 if peak > 0.95 else mixed


def _write_wav(path: Path, samples: np.ndarray, sample_rate: int) -> None:
    pcm = (np.clip(samples, -1.0, 1.0) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(sample_rate)
        out.writeframes(pcm.tobytes())


def _scaled_turns(turns: list[dict], tempo: float) -> list[dict]:
    return [
        {**t, "start": round(t["start"] / tempo, 3), "end": round(t["end"] / tempo, 3)}
        for t in turns
    ]


def make_call(recording: Path, labels: dict, out: Path, tempo: float) -> str:
    """Write one fast mono call (recording, sidecar, labels); returns its call id."""
    from qa_service.ingest.audio import decode_audio

    with decode_audio(recording, sample_rate=SAMPLE_RATE) as audio:
        channels = tuple(ch.read() for ch in audio.channels)
    fast = speed_up(mix_down(channels), SAMPLE_RATE, tempo)
    call_id = f"{labels['call_id']}-f"
    _write_wav(out / "calls" / f"{call_id}.wav", fast, SAMPLE_RATE)
    sidecar_path = recording.with_suffix(".json")
    sidecar = json.loads(sidecar_path.read_text(encoding="utf-8")) if sidecar_path.is_file() else {}
    sidecar.update(
        call_id=call_id,
        recording=f"{call_id}.wav",
        channels="mono",
        duration_s=round(len(fast) / SAMPLE_RATE, 2),
    )
    sidecar.pop("channel_map", None)
    (out / "calls" / f"{call_id}.json").write_text(
        json.dumps(sidecar, ensure_ascii=False, indent=1), encoding="utf-8"
    )
    fast_labels = {
        **labels,
        "call_id": call_id,
        "channels": "mono",
        "format": "wav16",
        "source_channels": labels.get("channels", "stereo"),
        "tempo": round(tempo, 4),
        "turns": _scaled_turns(labels.get("turns", []), tempo),
    }
    (out / "labels" / f"{call_id}.json").write_text(
        json.dumps(fast_labels, ensure_ascii=False, indent=1), encoding="utf-8"
    )
    return call_id


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus", type=Path, help="labelled corpus (calls/, labels/)")
    parser.add_argument("out", type=Path, help="output folder, outside the repository")
    parser.add_argument("--stereo", type=int, default=20, help="stereo calls to mix down")
    parser.add_argument("--tempo", type=float, nargs=2, default=(1.25, 1.3))
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)

    repo = Path(__file__).resolve().parents[1]
    if args.out.resolve().is_relative_to(repo):
        parser.error("the output must lie outside the repository (no corpus audio in git)")
    (args.out / "calls").mkdir(parents=True, exist_ok=True)
    (args.out / "labels").mkdir(parents=True, exist_ok=True)
    recordings = {
        p.stem: p
        for p in (args.corpus / "calls").iterdir()
        if p.suffix.lower() in {".wav", ".mp3", ".m4a", ".ogg", ".opus", ".amr", ".aac"}
    }
    mono, stereo = [], []
    for path in sorted((args.corpus / "labels").glob("*.json")):
        labels = json.loads(path.read_text(encoding="utf-8"))
        if labels["call_id"] in recordings and labels.get("turns"):
            (mono if labels.get("channels") == "mono" else stereo).append(labels)
    rng = random.Random(args.seed)
    chosen = mono + sorted(rng.sample(stereo, min(args.stereo, len(stereo))), key=_id)
    for labels in chosen:
        tempo = rng.uniform(*args.tempo)
        call_id = make_call(recordings[labels["call_id"]], labels, args.out, tempo)
        print(f"{call_id}\t{labels.get('channels')}\ttempo {tempo:.3f}", file=sys.stderr)
    print(f"{len(chosen)} calls written to {args.out}", file=sys.stderr)
    return 0


def _id(labels: dict) -> str:
    return labels["call_id"]


if __name__ == "__main__":
    raise SystemExit(main())
