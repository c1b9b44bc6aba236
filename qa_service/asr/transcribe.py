"""Transcription stage: per-channel Whisper decoding of VAD speech, split into utterances.

Why the audio is stitched by hand instead of ``vad_filter=True``: the same speech
regions must drive utterance boundaries and the acoustic rules, so they are computed
once here. Each channel's speech regions are packed into windows of at most ~28 s
with a second of silence between regions, the call's windows are decoded in batches
(:mod:`qa_service.asr.decoder`), and every word is mapped back to the region, and
therefore the turn, it was spoken in. Whisper never sees audio the VAD calls silence,
so it cannot invent text there. A window's samples are read from the call's audio only
when its batch is decoded: a long call's windows, held all at once, would hold most of
its speech again.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from qa_service.asr.decoder import MAX_BATCH, DecodedWindow, WindowDecoder
from qa_service.asr.diarize import CallFrames, attribute_speakers, two_voices, voice_points
from qa_service.asr.model import DeviceChoice
from qa_service.asr.textnorm import TextNormalizer
from qa_service.asr.vad import VadParams, detect_speech, group_regions
from qa_service.asr.voice_models import CutPoint, VoiceModels, VoiceParams
from qa_service.domain import (
    ChannelActivity,
    IngestedCall,
    Samples,
    Speaker,
    SpeechRegion,
    Transcript,
    Utterance,
)

SAMPLE_RATE = 16000
# Where Whisper ends a clause, a reply may begin (a mono cut candidate).
_CLAUSE_PUNCTUATION = frozenset("。？！，,.?!")
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
    # A window Whisper itself judges not to be speech is dropped (silence hallucinations).
    no_speech_threshold: float = 0.6
    log_prob_threshold: float = -1.0
    # Stitched speech per decoding window; Whisper's receptive field is 30 s.
    window_s: float = 28.0
    retry_window_s: float = 10.0
    # Audio context added around each region for decoding only (not for turn boundaries
    # or acoustic rules): word onsets and codas the VAD trims cost Whisper characters.
    decode_pad_s: float = 0.3
    # Pauses shorter than this are decoded in place rather than cut out. Measured on the
    # dev corpus: on stereo, cutting every pause reads best (stereo CER 0.127 vs 0.153 when
    # joining across pauses < 1 s); on mono, where turns alternate quickly in one
    # channel, joining reads best (mono CER 0.146 vs 0.216).
    decode_merge_s: float = 0.0
    mono_decode_merge_s: float = 1.0
    # Mono: tell agent from customer by voice (qa_service.asr.diarize); off leaves "unknown".
    attribute_mono: bool = True
    # Mono: split an utterance where the voice changes (a reply within a third of a
    # second is one stretch of speech to the VAD). Cut points are the boundaries between
    # words; one at a pause of at least mono_cut_pause_s (or a clause end) costs less.
    split_mono_turns: bool = True
    mono_cut_pause_s: float = 0.1
    voices: VoiceParams = VoiceParams()
    max_span_s: float = 25.0


@dataclass(frozen=True)
class _Word:
    start: float  # original recording time
    end: float
    text: str
    region: int  # index of the VAD region (in its channel) the word was spoken in
    span: int  # index of the decoding span within its window
    logprob: float


@dataclass(frozen=True)
class _Window:
    channel: int
    spans: tuple[int, ...]  # indices into the channel's decoding spans
    cuts: tuple[tuple[int, int], ...]  # the spans' samples [start, end) in the channel
    stitch: _StitchMap

    def audio(self, samples: Samples) -> np.ndarray:
        """The window's stitched audio: its cuts of ``samples`` with silence between."""
        silence = np.zeros(int(_GAP_S * SAMPLE_RATE), dtype=np.float32)
        pieces: list[np.ndarray] = []
        for start, end in self.cuts:
            pieces.extend((samples.read(start, end), silence))
        return np.concatenate(pieces[:-1])


class _StitchMap:
    """Maps times in the stitched audio back to the original recording."""

    def __init__(self, spans: list[tuple[int, int]]) -> None:
        self.stitched_starts: list[float] = []
        self.orig_starts: list[float] = []
        self.lengths: list[float] = []
        pos = 0.0
        for start, end in spans:
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

        model = WhisperModel(
            str(model_dir),
            device=device.device,
            compute_type=device.compute_type,
            cpu_threads=device.cpu_threads,
            local_files_only=True,
        )
        self.decoder = WindowDecoder(
            model,
            language=options.language,
            beam_size=options.beam_size,
            initial_prompt=options.initial_prompt,
        )
        self.device = device
        self.options = options
        self.normalizer = normalizer
        self.model_name = model_name or model_dir.name

    def transcribe(self, call: IngestedCall) -> Transcript:
        """Transcribe every channel; returns utterances in time order with activity."""
        audio = call.audio
        opts = self.options
        channels = audio.channels[:2]
        activity = [
            ChannelActivity(
                channel=i,
                speaker=call.speaker_of_channel(i),
                regions=tuple(detect_speech(samples, audio.sample_rate, opts.vad)),
            )
            for i, samples in enumerate(channels)
        ]
        merge_s = opts.mono_decode_merge_s if call.layout == "mono" else opts.decode_merge_s
        spans = [
            _decode_spans(ch.regions, opts, len(channels[ch.channel]) / SAMPLE_RATE, merge_s)
            for ch in activity
        ]
        words: dict[int, list[_Word]] = {i: [] for i in range(len(channels))}
        windows = [
            _stitch(channels[ch], ch, spans[ch], idx)
            for ch in range(len(channels))
            for idx in _pack(spans[ch], range(len(spans[ch])), opts.window_s)
        ]
        decoded = self._decode(windows, channels)
        for window, result in zip(windows, decoded, strict=True):
            words[window.channel].extend(
                self._words(window, result, activity[window.channel].regions)
            )
        # Whisper sometimes ends a window early (an end-of-text after the first sentence)
        # or jumps over a stretch: speech regions that got no word are decoded once more,
        # in shorter windows.
        retries: list[_Window] = []
        for ch in activity:
            covered = {w.region for w in words[ch.channel]}
            missed = tuple(
                r for i, r in enumerate(ch.regions) if i not in covered and r.duration >= 0.4
            )
            retry_spans = _decode_spans(
                missed, opts, len(channels[ch.channel]) / SAMPLE_RATE, merge_s
            )
            retries.extend(
                _stitch(channels[ch.channel], ch.channel, retry_spans, idx)
                for idx in _pack(retry_spans, range(len(retry_spans)), opts.retry_window_s)
            )
        decoded = self._decode(retries, channels)
        for window, result in zip(retries, decoded, strict=True):
            words[window.channel].extend(
                self._words(window, result, activity[window.channel].regions)
            )

        gap = opts.mono_utterance_gap_s if call.layout == "mono" else opts.utterance_gap_s
        turns = [
            (u, members)
            for ch in activity
            for members in self._word_groups(ch, sorted(words[ch.channel], key=_word_time), gap)
            if (u := self._utterance(ch, members)) is not None
        ]
        turns.sort(key=lambda t: (t[0].start, t[0].channel))
        utterances = [u for u, _ in turns]
        if call.layout == "mono" and opts.attribute_mono:
            utterances = self._attribute_mono(call, activity[0], channels[0], turns)
        return Transcript(
            utterances=tuple(utterances),
            activity=tuple(activity),
            model_name=self.model_name,
            language=opts.language,
        )

    def _decode(self, windows: list[_Window], channels: tuple[Samples, ...]) -> list[DecodedWindow]:
        """Decode ``windows``, reading the samples of one batch at a time."""
        out: list[DecodedWindow] = []
        for first in range(0, len(windows), MAX_BATCH):
            batch = windows[first : first + MAX_BATCH]
            out.extend(self.decoder.decode([w.audio(channels[w.channel]) for w in batch]))
        return out

    def _words(
        self, window: _Window, decoded: DecodedWindow, regions: tuple[SpeechRegion, ...]
    ) -> list[_Word]:
        opts = self.options
        if (
            decoded.no_speech_prob > opts.no_speech_threshold
            and decoded.avg_logprob < opts.log_prob_threshold
        ):
            return []  # Whisper's own verdict: this is not speech
        out = []
        for w in decoded.words:
            if _HALLUCINATION_PATTERNS.search(w.text):
                continue
            # Whisper's alignment stretches the first word after a pause back across the
            # silence (it starts in the previous span and ends just inside its own), so
            # the word's end, not its midpoint, says where it was spoken.
            k = window.stitch.region_of(w.end)
            start = window.stitch.to_original(w.start, k)
            end = max(start, window.stitch.to_original(w.end, k))
            region = _nearest_region(regions, (start + end) / 2)
            out.append(_Word(start, end, w.text, region, k, decoded.avg_logprob))
        return out

    def _word_groups(
        self, channel: ChannelActivity, words: list[_Word], gap_s: float
    ) -> list[list[_Word]]:
        """Words grouped by turn: VAD regions joined across pauses shorter than ``gap_s``."""
        groups = group_regions(list(channel.regions), gap_s)
        starts = [g.start for g in groups]
        by_group: dict[int, list[_Word]] = {}
        for w in words:
            region = channel.regions[w.region]
            g = max(0, bisect.bisect_right(starts, region.start + 1e-6) - 1)
            by_group.setdefault(g, []).append(w)
        return [by_group[g] for g in sorted(by_group)]

    def _utterance(self, channel: ChannelActivity, members: list[_Word]) -> Utterance | None:
        raw = "".join(w.text for w in members).strip()
        text = self.normalizer.normalize(raw)
        if not text:
            return None
        return Utterance(
            speaker=channel.speaker if channel.speaker else Speaker.UNKNOWN,
            start=round(members[0].start, 2),
            end=round(max(w.end for w in members), 2),
            text=text,
            channel=channel.channel,
            avg_logprob=round(float(np.mean([w.logprob for w in members])), 3),
            raw_text=raw,
        )

    def _attribute_mono(
        self,
        call: IngestedCall,
        channel: ChannelActivity,
        samples: Samples,
        turns: list[tuple[Utterance, list[_Word]]],
    ) -> list[Utterance]:
        """Mono: agent or customer for each utterance, cut where the speaker changes."""
        inbound = (call.metadata.direction or "outbound") == "inbound"
        first = Speaker.CUSTOMER if inbound else Speaker.AGENT
        frames = CallFrames.compute(samples, call.audio.sample_rate)
        plain = [u for u, _ in turns]
        points = voice_points(plain, frames)
        utterances = attribute_speakers(
            plain, samples, call.audio.sample_rate, first_speaker=first, points=points
        )
        if not self.options.split_mono_turns or not two_voices(points):
            return utterances
        voices = VoiceModels.fit(
            frames, utterances, first_speaker=first, params=self.options.voices
        )
        if voices is None:
            return utterances
        return self._split_turns(channel, utterances, [m for _, m in turns], voices)

    def _split_turns(
        self,
        channel: ChannelActivity,
        utterances: list[Utterance],
        groups: list[list[_Word]],
        voices: VoiceModels,
    ) -> list[Utterance]:
        """Mono: cut attributed utterances where the voice changes between two words.

        Every word boundary is a candidate (fast speech leaves no pause before a reply);
        one at a pause or after clause punctuation is an easier cut.
        """
        out: list[Utterance] = []
        for u, members in zip(utterances, groups, strict=True):
            cuts = [
                CutPoint(
                    (a.end + b.start) / 2,
                    easy=b.start - a.end >= self.options.mono_cut_pause_s
                    or a.text.rstrip()[-1:] in _CLAUSE_PUNCTUATION,
                )
                for a, b in zip(members, members[1:], strict=False)
            ]
            parts = voices.turns(u.start, u.end, cuts, u.speaker)
            if len(parts) == 1:
                out.append(replace(u, speaker=parts[0][2]))
                continue
            # Words go to the part holding their midpoint; runs of one speaker's words
            # (a part may hold none) make the new utterances.
            runs: list[tuple[Speaker, list[_Word]]] = []
            for w in members:
                mid = (w.start + w.end) / 2
                speaker = next((s for _, b, s in parts if mid < b), parts[-1][2])
                if runs and runs[-1][0] is speaker:
                    runs[-1][1].append(w)
                else:
                    runs.append((speaker, [w]))
            for speaker, words in runs:
                piece = self._utterance(channel, words)
                if piece is not None:
                    out.append(replace(piece, speaker=speaker))
        return out


def _word_time(w: _Word) -> tuple[float, float]:
    return (w.start, w.end)


def _decode_spans(
    regions: tuple[SpeechRegion, ...], opts: TranscribeOptions, duration: float, merge_s: float
) -> list[tuple[float, float]]:
    """Stretches of original audio to decode: regions joined across short pauses, padded.

    Pauses inside a turn stay as they are (Whisper reads a sentence best whole); each
    span gets ``decode_pad_s`` of context, never past halfway to the next span.
    """
    merged: list[list[float]] = []
    for r in regions:
        if (
            merged
            and r.start - merged[-1][1] < merge_s
            and r.end - merged[-1][0] <= opts.max_span_s
        ):
            merged[-1][1] = r.end
        else:
            merged.append([r.start, r.end])
    spans = []
    for i, (start, end) in enumerate(merged):
        lo = start - opts.decode_pad_s
        hi = end + opts.decode_pad_s
        if i > 0:
            lo = max(lo, (merged[i - 1][1] + start) / 2)
        if i + 1 < len(merged):
            hi = min(hi, (end + merged[i + 1][0]) / 2)
        spans.append((max(0.0, lo), min(duration, hi)))
    return spans


def _nearest_region(regions: tuple[SpeechRegion, ...], t: float) -> int:
    starts = [r.start for r in regions]
    i = max(0, bisect.bisect_right(starts, t) - 1)
    if i + 1 < len(regions) and t - regions[i].end > regions[i + 1].start - t:
        return i + 1
    return i


def _stitch(
    samples: Samples, channel: int, spans: list[tuple[float, float]], indices: list[int]
) -> _Window:
    cuts = [
        (int(spans[i][0] * SAMPLE_RATE), min(len(samples), int(spans[i][1] * SAMPLE_RATE)))
        for i in indices
    ]
    return _Window(channel, tuple(indices), tuple(cuts), _StitchMap(cuts))


def _pack(spans: list[tuple[float, float]], indices, max_s: float) -> list[list[int]]:
    """Group span indices into windows of at most ``max_s`` stitched seconds."""
    windows: list[list[int]] = []
    length = 0.0
    for i in indices:
        duration = spans[i][1] - spans[i][0]
        if windows and length + _GAP_S + duration <= max_s:
            windows[-1].append(i)
            length += _GAP_S + duration
        else:
            windows.append([i])
            length = duration
    return windows


# Phrases Whisper is known to invent on silence or noise in Chinese (learned from
# subtitle data).
_HALLUCINATION_PATTERNS = re.compile(
    r"(字幕|订阅|訂閱|点赞|點贊|打赏|打賞|明镜|明鏡|栏目|欄目|请不吝|請不吝|感谢观看|謝謝觀看)"
)
