"""Speech activity per channel with Silero VAD (the model faster-whisper ships).

The same regions drive three things: what Whisper is allowed to decode (no text is
ever produced for audio the VAD calls silence), where utterances split, and the
acoustic rules (dead air, interruptions).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qa_service.domain import SpeechRegion


@dataclass(frozen=True)
class VadParams:
    """Silero VAD settings tuned for 8 kHz telephone speech upsampled to 16 kHz."""

    threshold: float = 0.5
    min_silence_ms: int = 350
    speech_pad_ms: int = 120
    min_speech_ms: int = 200
    # Longer stretches are split (at a short pause if any) so one region always fits a
    # Whisper window.
    max_speech_s: float = 25.0
    # Very quiet channels (line noise only) can still trip the VAD; a region whose
    # RMS is this far below the channel's loudest speech is treated as noise.
    min_relative_db: float = -35.0


def detect_speech(audio: np.ndarray, sample_rate: int, params: VadParams) -> list[SpeechRegion]:
    """Return speech regions (seconds) in one channel, in order, non-overlapping."""
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    if audio.size == 0:
        return []
    stamps = get_speech_timestamps(
        audio,
        VadOptions(
            threshold=params.threshold,
            min_silence_duration_ms=params.min_silence_ms,
            speech_pad_ms=params.speech_pad_ms,
            min_speech_duration_ms=params.min_speech_ms,
            max_speech_duration_s=params.max_speech_s,
        ),
        sampling_rate=sample_rate,
    )
    if not stamps:
        return []
    levels = [_rms_db(audio[s["start"] : s["end"]]) for s in stamps]
    loudest = max(levels)
    regions = [
        SpeechRegion(start=round(s["start"] / sample_rate, 3), end=round(s["end"] / sample_rate, 3))
        for s, level in zip(stamps, levels, strict=True)
        if level - loudest >= params.min_relative_db
    ]
    return regions


def _rms_db(x: np.ndarray) -> float:
    if x.size == 0:
        return -120.0
    rms = float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))
    return 20.0 * np.log10(max(rms, 1e-6))


def group_regions(regions: list[SpeechRegion], max_gap_s: float) -> list[SpeechRegion]:
    """Merge regions separated by less than ``max_gap_s``: one group ≈ one turn."""
    groups: list[SpeechRegion] = []
    for region in regions:
        if groups and region.start - groups[-1].end < max_gap_s:
            groups[-1] = SpeechRegion(groups[-1].start, max(groups[-1].end, region.end))
        else:
            groups.append(region)
    return groups
