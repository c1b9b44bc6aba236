"""Transcription stage: per-channel Whisper decoding of VAD speech, split into utterances.

Why the audio is stitched by hand instead of ``vad_filter=True``: the same speech
regions must drive utterance boundaries and the acoustic rules, so they are computed
once here; the speech is concatenated with a short silence between regions (a cue for
Whisper to end a segment), decoded with word timestamps, and every word is mapped back
to the region, and therefore the turn, it came from.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from qa_service.domain import (
    ChannelActivity,
    IngestedCall,
    SpeechRegion,
    Transcript,
    Utterance,
)
from qa_service.textnorm import TextNormalizer
from qa_service.vad import VadParams, detect_speech, group_regions
from qa_service.whisper_model import DeviceChoice

SAMPLE_RATE = 16000
# Silence inserted between stitched regions. Whisper's word timestamps drift by a few
# hundred ms at pauses; a gap this wide keeps a drifting word nearer its own region.
_GAP_S = 1.0


@dataclass(frozen=True)
class TranscribeOptions:
    """Decoder and segmentation options (see Settings for the user-facing names)."""

    language: str = "zh"
    beam_size: int = 1
    initial_prompt: str | None = None
    vad: VadParams = VadParams()
    utterance_gap_s: float = 0.8  # stereo: pauses shorter than this stay inside a turn
    mono_utterance_gap_s: float = 0.3  # mono: both parties on one channel, split tighter
    # Segments Whisper itself marks as probably-not-speech are dropped (silence
    # hallucinations such as subtitle credits).
    no_speech_threshold: float = 0.6
    log_prob_threshold: float = -1.0
    # Stitched speech per decoding window; Whisper's receptive field is 30 s.
    window_s: float = 28.0
    retry_window_s: float = 10.0


@dataclass(frozen=True)
class _Word:
    start: float  # original recording time
    end: float
    text: str
    region: int  # index of the VAD region the word was spoken in
    logprob: float


class _StitchMap:
    """Maps times in the stitched audio back to the original recording."""

    def __init__(self, regions: list[tuple[int, int]]) -> None:
        self.stitched_starts: list[float] = []
        self.orig_starts: list[float] = []
        self.lengths: list[float] = []
        pos = 0.0
        for start, end in regions:
            self.stitched_starts.append(pos)
            self.orig_starts.append(start / SAMPLE_RATE)
            length = (end - start) / SAMPLE_RATE
            self.lengths.append(length)
            pos += length + _GAP_S

    def region_of(self, t: float) -> int:
        """The region a stitched time belongs to; a time inside a gap goes to the nearer side."""
        i = max(0, bisect.bisect_right(self.stitched_starts, t) - 1)
        past_end = t - (self.stitched_starts[i] + self.lengths[i])
        if past_end > _GAP_S / 2 and i + 1 < len(self.lengths):
            return i + 1
        return i

    def inside(self, t: float, region: int, slack: float = 0.25) -> bool:
        start = self.stitched_starts[region]
        return start - slack <= t <= start + self.lengths[region] + slack

    def to_original(self, t: float, region: int) -> float:
        offset = min(max(t - self.stitched_starts[region], 0.0), self.lengths[region])
        return self.orig_starts[region] + offset


class Transcriber:
    """Holds one loaded Whisper model; load it once per process and reuse it."""

    def __init__(
        self,
        model_dir: Path,
        device: DeviceChoice,
        options: TranscribeOptions,
        normalizer: TextNormalizer,
        model_name: str | None = None,
    ) -> None:
        from faster_whisper import WhisperModel

        self.model = WhisperModel(
            str(model_dir),
            device=device.device,
            compute_type=device.compute_type,
            cpu_threads=device.cpu_threads,
            local_files_only=True,
        )
        self.options = options
        self.normalizer = normalizer
        self.model_name = model_name or model_dir.name

    def transcribe(self, call: IngestedCall) -> Transcript:
        """Transcribe every channel; returns utterances in time order with activity."""
        audio = call.audio
        utterances: list[Utterance] = []
        activity: list[ChannelActivity] = []
        mono = call.layout == "mono"
        for index, samples in enumerate(audio.channels[:2]):
            speaker = call.speaker_of_channel(index)
            regions = detect_speech(samples, audio.sample_rate, self.options.vad)
            activity.append(ChannelActivity(channel=index, speaker=speaker, regions=tuple(regions)))
            gap = self.options.mono_utterance_gap_s if mono else self.options.utterance_gap_s
            utterances.extend(self._transcribe_channel(samples, index, speaker, regions, gap))
        utterances.sort(key=lambda u: (u.start, u.channel))
        return Transcript(
            utterances=tuple(utterances),
            activity=tuple(activity),
            model_name=self.model_name,
            language=self.options.language,
        )

    def _transcribe_channel(self, samples, channel, speaker, regions, gap_s) -> list[Utterance]:
        if not regions:
            return []
        groups = group_regions(regions, gap_s)
        region_group = [
            next(g for g, grp in enumerate(groups) if grp.start <= r.start < grp.end + 1e-6)
            for r in regions
        ]
        opts = self.options
        words: list[_Word] = []
        skipped: list[int] = []
        for window in _pack(regions, range(len(regions)), opts.window_s):
            found = self._decode_window(samples, regions, window)
            words.extend(found)
            covered = {w.region for w in found}
            skipped.extend(i for i in window if i not in covered and regions[i].duration >= 0.4)
        # Whisper sometimes ends a window early (an end-of-text after the first sentence)
        # or jumps over a stretch; such regions get one more, shorter, decoding pass.
        for window in _pack(regions, skipped, opts.retry_window_s):
            words.extend(self._decode_window(samples, regions, window))
        words.sort(key=lambda w: (w.start, w.end))

        by_group: dict[int, list[_Word]] = {}
        for w in words:
            by_group.setdefault(region_group[w.region], []).append(w)
        utterances: list[Utterance] = []
        for group in sorted(by_group):
            members = by_group[group]
            raw = "".join(w.text for w in members).strip()
            text = self.normalizer.normalize(raw)
            if not text:
                continue
            utterances.append(
                Utterance(
                    speaker=speaker,
                    start=round(members[0].start, 2),
                    end=round(max(w.end for w in members), 2),
                    text=text,
                    channel=channel,
                    avg_logprob=round(float(np.mean([w.logprob for w in members])), 3),
                    raw_text=raw,
                )
            )
        return utterances

    def _decode_window(
        self, samples: np.ndarray, regions: list[SpeechRegion], window: list[int]
    ) -> list[_Word]:
        """Decode the given regions stitched together; words carry original times."""
        spans = [
            (
                int(regions[i].start * SAMPLE_RATE),
                min(len(samples), int(regions[i].end * SAMPLE_RATE)),
            )
            for i in window
        ]
        silence = np.zeros(int(_GAP_S * SAMPLE_RATE), dtype=np.float32)
        pieces: list[np.ndarray] = []
        for start, end in spans:
            pieces.extend((samples[start:end], silence))
        stitched = np.concatenate(pieces[:-1])
        stitch = _StitchMap(spans)
        opts = self.options
        segments, _info = self.model.transcribe(
            stitched,
            language=opts.language,
            beam_size=opts.beam_size,
            best_of=max(1, opts.beam_size),
            condition_on_previous_text=False,
            initial_prompt=opts.initial_prompt,
            word_timestamps=True,
            without_timestamps=True,
            vad_filter=False,
            no_speech_threshold=opts.no_speech_threshold,
            log_prob_threshold=opts.log_prob_threshold,
        )
        words: list[_Word] = []
        for seg in segments:
            if _is_hallucination(seg):
                continue
            for w in seg.words or ():
                mid = (w.start + w.end) / 2
                k = stitch.region_of(mid)
                if not stitch.inside(mid, k):
                    continue  # "heard" in the inserted silence: invented, not spoken
                start = stitch.to_original(w.start, k)
                end = stitch.to_original(w.end, k)
                words.append(
                    _Word(
                        start=start,
                        end=max(end, start),
                        text=w.word,
                        region=window[k],
                        logprob=seg.avg_logprob,
                    )
                )
        return words


def _pack(regions: list[SpeechRegion], indices, max_s: float) -> list[list[int]]:
    """Group consecutive region indices into windows of at most ``max_s`` stitched seconds."""
    windows: list[list[int]] = []
    length = 0.0
    for i in indices:
        need = regions[i].duration + (_GAP_S if windows and windows[-1] else 0.0)
        if windows and windows[-1] and length + need <= max_s:
            windows[-1].append(i)
            length += need
        else:
            windows.append([i])
            length = regions[i].duration
    return windows


# Phrases Whisper is known to invent on silence or noise in Chinese (learned from
# subtitle data). Matched on the Simplified-converted, punctuation-free text.
_HALLUCINATION_PATTERNS = re.compile(
    r"(字幕|订阅|点赞|转发|打赏|明镜|栏目|请不吝|感谢观看|谢谢观看|下集|本期视频)"
)


def _is_hallucination(seg) -> bool:
    if seg.no_speech_prob > 0.6 and seg.avg_logprob < -1.0:
        return True
    if seg.compression_ratio > 2.4:  # looping output ("的的的的…")
        return True
    if seg.avg_logprob < -2.0:  # near-random tokens, typically at a window's padded end
        return True
    return bool(_HALLUCINATION_PATTERNS.search(seg.text))
