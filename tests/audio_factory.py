"""Make test recordings in every format the ingest stage accepts, from the committed WAVs.

Only two short PCM WAVs are committed; μ-law, A-law, MP3, AMR-NB, AAC, M4A and Opus versions
are encoded with PyAV at test time, so the repository stays small and the fixtures cannot
drift from one another. Imported as ``audio_factory`` (``tests/`` is on ``sys.path`` because
pytest puts the root ``conftest.py``'s folder there).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import av

FIXTURES = Path(__file__).parent / "fixtures"
STEREO_WAV = FIXTURES / "stereo_8k.wav"  # dev-001 11–15 s: agent ~0–0.9 s, customer ~1.5–3.8 s
MONO_WAV = FIXTURES / "mono_8k.wav"  # dev-045 12–16 s, both parties mixed


@dataclass(frozen=True)
class Encoding:
    suffix: str
    container: str
    codec: str
    sample_format: str
    rate: int | None = None  # None: keep the source rate
    mono: bool = False  # AMR-NB is mono only


# AAC runs at 16 kHz so that its 1024-sample priming and padding stay well inside the
# ±0.1 s the tests allow; Opus only encodes at 48 kHz (or its fractions).
ENCODINGS: dict[str, Encoding] = {
    "mulaw": Encoding(".wav", "wav", "pcm_mulaw", "s16"),
    "alaw": Encoding(".wav", "wav", "pcm_alaw", "s16"),
    "mp3": Encoding(".mp3", "mp3", "libmp3lame", "s16p"),
    "amr": Encoding(".amr", "amr", "libopencore_amrnb", "s16", rate=8000, mono=True),
    "aac": Encoding(".aac", "adts", "aac", "fltp", rate=16000),
    "m4a": Encoding(".m4a", "ipod", "aac", "fltp", rate=16000),
    "ogg": Encoding(".ogg", "ogg", "libopus", "flt", rate=48000),
    "opus": Encoding(".opus", "opus", "libopus", "flt", rate=48000),
}


def encode(source: Path, kind: str, out_dir: Path) -> Path:
    """Encode ``source`` as ``kind`` (a key of :data:`ENCODINGS`) into ``out_dir``."""
    spec = ENCODINGS[kind]
    target = out_dir / f"{source.stem}_{kind}{spec.suffix}"
    with av.open(str(source)) as src, av.open(str(target), "w", format=spec.container) as dst:
        in_stream = src.streams.audio[0]
        layout = "mono" if spec.mono or in_stream.channels == 1 else "stereo"
        out_stream = dst.add_stream(
            spec.codec, rate=spec.rate or in_stream.rate, layout=layout, format=spec.sample_format
        )
        if spec.codec == "libopencore_amrnb":
            out_stream.bit_rate = 12200  # AMR-NB's highest mode, as telephony recorders use
        # The encoder resamples and re-frames by itself (PyAV buffers to its frame size).
        for frame in src.decode(in_stream):
            dst.mux(out_stream.encode(frame))
        dst.mux(out_stream.encode(None))
    return target
