"""Speech activity per channel with Silero VAD (the model faster-whisper ships).

The same regions drive three things: what Whisper is allowed to decode (no text is
ever produced for audio the VAD calls silence), where utterances split, and the
acoustic rules (dead air, interruptions).

faster-whisper's ``get_speech_timestamps`` wants the whole channel as one array (and
copies it twice more on the way: padded, then cut into windows with their context). A
2-hour channel is 461 MB of float32 at 16 kHz, so here the model is fed the channel a
batch of windows at a time, read from :class:`~qa_service.domain.Samples`, exactly as
faster-whisper feeds it (same windows, same context samples, same batches, the LSTM state
carried from batch to batch), and its turning of speech probabilities into timestamps is
repeated on the probabilities: the regions are identical, and only the probabilities
(one float per 32 ms) are held.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qa_service.domain import Samples, SpeechRegion, as_samples
from qa_service.errors import ModelError

# Silero VAD at 16 kHz, as faster_whisper.vad (1.2) runs it: windows of 512 samples,
# each preceded by the last 64 samples of the window before, 10,000 windows per call of
# the ONNX session. The batch size matters: the session's output for a window depends on
# the batches it went through (the LSTM state is carried between calls), so a different
# batching would move region edges.
_WINDOW = 512
_CONTEXT = 64
_BATCH = 10_000


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


def detect_speech(
    audio: Samples | np.ndarray, sample_rate: int, params: VadParams
) -> list[SpeechRegion]:
    """Return speech regions (seconds) in one channel, in order, non-overlapping."""
    from faster_whisper.vad import VadOptions

    audio = as_samples(audio)
    if len(audio) == 0:
        return []
    options = VadOptions(
        threshold=params.threshold,
        min_silence_duration_ms=params.min_silence_ms,
        speech_pad_ms=params.speech_pad_ms,
        min_speech_duration_ms=params.min_speech_ms,
        max_speech_duration_s=params.max_speech_s,
    )
    stamps = _timestamps(speech_probabilities(audio), len(audio), options, sample_rate)
    if not stamps:
        return []
    levels = [_rms_db(audio.read(s["start"], s["end"])) for s in stamps]
    loudest = max(levels)
    regions = [
        SpeechRegion(start=round(s["start"] / sample_rate, 3), end=round(s["end"] / sample_rate, 3))
        for s, level in zip(stamps, levels, strict=True)
        if level - loudest >= params.min_relative_db
    ]
    return regions


def speech_probabilities(audio: Samples) -> np.ndarray:
    """Silero's speech probability for each 512-sample window of ``audio`` (16 kHz).

    What ``faster_whisper.vad.SileroVADModel`` computes for the whole channel, computed
    a batch at a time: the channel is padded with 1 to 512 zeros to whole windows, and the
    last 64 samples of the last window are zeroed (faster-whisper's context trick does
    that to the array it windows), so the probabilities are the same to the bit.
    """
    from faster_whisper.vad import get_vad_model

    session = getattr(get_vad_model(), "session", None)
    if session is None or [i.name for i in session.get_inputs()] != ["input", "h", "c"]:
        import faster_whisper

        raise ModelError(
            f"faster-whisper {faster_whisper.__version__} 的 Silero VAD 接口与本服务不符"
            "（需要 1.2 版） / faster-whisper "
            f"{faster_whisper.__version__}'s Silero VAD is not the one this service drives "
            "(needs 1.2)",
            version=faster_whisper.__version__,
        )
    length = len(audio)
    windows = length // _WINDOW + 1
    h = np.zeros((1, 1, 128), dtype=np.float32)
    c = np.zeros((1, 1, 128), dtype=np.float32)
    previous = np.zeros(_CONTEXT, dtype=np.float32)  # the first window's context: silence
    probabilities = []
    for first in range(0, windows, _BATCH):
        count = min(_BATCH, windows - first)
        rows = np.zeros((count, _WINDOW), dtype=np.float32)
        block = audio.read(first * _WINDOW, (first + count) * _WINDOW)
        rows.reshape(-1)[: len(block)] = block
        if first + count == windows:
            rows[-1, -_CONTEXT:] = 0.0
        batch = np.empty((count, _CONTEXT + _WINDOW), dtype=np.float32)
        batch[0, :_CONTEXT] = previous
        batch[1:, :_CONTEXT] = rows[:-1, -_CONTEXT:]
        batch[:, _CONTEXT:] = rows
        previous = rows[-1, -_CONTEXT:].copy()
        output, h, c = session.run(None, {"input": batch, "h": h, "c": c})
        probabilities.append(output)
    return np.concatenate(probabilities, axis=0)


def _timestamps(probs: np.ndarray, length: int, options, sampling_rate: int) -> list[dict]:
    """Speech chunks (samples) from window probabilities.

    The second half of ``faster_whisper.vad.get_speech_timestamps`` (faster-whisper 1.2.1,
    adapted from silero-vad, MIT), unchanged but for taking the probabilities as input;
    ``tests/unit/test_vad.py`` checks that both give the same chunks.
    """
    threshold = options.threshold
    neg_threshold = options.neg_threshold
    window_size_samples = _WINDOW
    speech_pad_samples = sampling_rate * options.speech_pad_ms / 1000
    min_speech_samples = sampling_rate * options.min_speech_duration_ms / 1000
    max_speech_samples = (
        sampling_rate * options.max_speech_duration_s - window_size_samples - 2 * speech_pad_samples
    )
    min_silence_samples = sampling_rate * options.min_silence_duration_ms / 1000
    min_silence_samples_at_max_speech = sampling_rate * 98 / 1000
    audio_length_samples = length

    triggered = False
    speeches: list[dict] = []
    current_speech: dict = {}
    if neg_threshold is None:
        neg_threshold = max(threshold - 0.15, 0.01)
    temp_end = 0  # a possible end of the current chunk (some silence is tolerated)
    prev_end = next_start = 0  # where to cut if the chunk reaches its maximum length

    for i, speech_prob in enumerate(probs):
        if (speech_prob >= threshold) and temp_end:
            temp_end = 0
            if next_start < prev_end:
                next_start = window_size_samples * i

        if (speech_prob >= threshold) and not triggered:
            triggered = True
            current_speech["start"] = window_size_samples * i
            continue

        if triggered and (window_size_samples * i) - current_speech["start"] > max_speech_samples:
            if prev_end:
                current_speech["end"] = prev_end
                speeches.append(current_speech)
                current_speech = {}
                # previously reached silence (< neg_thres) and is still not speech (< thres)
                if next_start < prev_end:
                    triggered = False
                else:
                    current_speech["start"] = next_start
                prev_end = next_start = temp_end = 0
            else:
                current_speech["end"] = window_size_samples * i
                speeches.append(current_speech)
                current_speech = {}
                prev_end = next_start = temp_end = 0
                triggered = False
                continue

        if (speech_prob < neg_threshold) and triggered:
            if not temp_end:
                temp_end = window_size_samples * i
            # condition to avoid cutting in very short silence
            if (window_size_samples * i) - temp_end > min_silence_samples_at_max_speech:
                prev_end = temp_end
            if (window_size_samples * i) - temp_end < min_silence_samples:
                continue
            current_speech["end"] = temp_end
            if (current_speech["end"] - current_speech["start"]) > min_speech_samples:
                speeches.append(current_speech)
            current_speech = {}
            prev_end = next_start = temp_end = 0
            triggered = False
            continue

    if current_speech and (audio_length_samples - current_speech["start"]) > min_speech_samples:
        current_speech["end"] = audio_length_samples
        speeches.append(current_speech)

    for i, speech in enumerate(speeches):
        if i == 0:
            speech["start"] = int(max(0, speech["start"] - speech_pad_samples))
        if i != len(speeches) - 1:
            silence_duration = speeches[i + 1]["start"] - speech["end"]
            if silence_duration < 2 * speech_pad_samples:
                speech["end"] += int(silence_duration // 2)
                speeches[i + 1]["start"] = int(
                    max(0, speeches[i + 1]["start"] - silence_duration // 2)
                )
            else:
                speech["end"] = int(min(audio_length_samples, speech["end"] + speech_pad_samples))
                speeches[i + 1]["start"] = int(
                    max(0, speeches[i + 1]["start"] - speech_pad_samples)
                )
        else:
            speech["end"] = int(min(audio_length_samples, speech["end"] + speech_pad_samples))
    return speeches


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
