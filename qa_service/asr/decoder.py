"""One Whisper pass per window of stitched speech: encode, decode, align words — batched.

faster-whisper's ``transcribe()`` is built for long files: it seeks through 30-s windows,
and with word timestamps it re-encodes whatever follows the last word, so a window of
stitched speech costs two encoder passes and decodes padding into invented words.
Here every window is at most 30 s by construction, so each gets exactly one encoder
pass, and the windows of both channels of a call go through CTranslate2 in batches of
``MAX_BATCH`` (on a CPU the batched decoder steps cost little more than one; a bounded
batch keeps a long call's memory bounded).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

MAX_WINDOW_S = 30.0
# Windows encoded and decoded together. A call's windows all went in one batch, so the
# encoder's activations grew with the call's length (issue 13's long-call bench: +3.8 GB
# per hour of call); a few at a time keep a 2-hour call in bounded memory, and on a CPU
# a batch of 8 already gets almost all of batching's speed.
MAX_BATCH = 8


@dataclass(frozen=True)
class DecodedWord:
    start: float  # seconds from the window start
    end: float
    text: str
    probability: float


@dataclass(frozen=True)
class DecodedWindow:
    text: str
    words: tuple[DecodedWord, ...]
    avg_logprob: float
    no_speech_prob: float
    compression_ratio: float


class WindowDecoder:
    """Wraps a loaded ``faster_whisper.WhisperModel`` for window-at-a-time decoding."""

    def __init__(
        self,
        model,
        *,
        language: str,
        beam_size: int = 1,
        initial_prompt: str | None = None,
    ) -> None:
        from faster_whisper.tokenizer import Tokenizer
        from faster_whisper.transcribe import get_suppressed_tokens

        self.model = model
        self.beam_size = beam_size
        self.tokenizer = Tokenizer(
            model.hf_tokenizer, model.model.is_multilingual, task="transcribe", language=language
        )
        previous = self.tokenizer.encode(" " + initial_prompt.strip()) if initial_prompt else []
        self.prompt = model.get_prompt(self.tokenizer, previous, without_timestamps=True)
        self.suppress_tokens = list(get_suppressed_tokens(self.tokenizer, [-1]))

    def decode(self, windows: list[np.ndarray]) -> list[DecodedWindow]:
        """Decode windows of 16-kHz audio (each ≤ 30 s), at most ``MAX_BATCH`` at a time."""
        out: list[DecodedWindow] = []
        for start in range(0, len(windows), MAX_BATCH):
            out.extend(self._decode_batch(windows[start : start + MAX_BATCH]))
        return out

    def _decode_batch(self, windows: list[np.ndarray]) -> list[DecodedWindow]:
        if not windows:
            return []
        from faster_whisper.audio import pad_or_trim

        fe = self.model.feature_extractor
        feats, frames = [], []
        for audio in windows:
            if len(audio) > MAX_WINDOW_S * fe.sampling_rate:
                raise ValueError("a decoding window must be at most 30 s")
            f = fe(audio)
            frames.append(min(f.shape[-1], fe.nb_max_frames))
            feats.append(pad_or_trim(f))
        encoder_output = self.model.encode(np.stack(feats))
        results = self._generate(encoder_output, no_repeat_ngram_size=0)
        decoded = [self._score(r) for r in results]

        # A looping hypothesis ("壮壮壮…") is decoded again with repeated n-grams banned.
        loops = [i for i, d in enumerate(decoded) if d[3] > 2.4]
        if loops:
            retry = self._generate(_select(encoder_output, loops), no_repeat_ngram_size=3)
            for i, r in zip(loops, retry, strict=True):
                decoded[i] = self._score(r)

        text_tokens = [[t for t in d[0] if t < self.tokenizer.eot] for d in decoded]
        alignments = self._align(encoder_output, text_tokens, frames)
        out = []
        for (_tokens, avg_logprob, no_speech, ratio, text), words in zip(
            decoded, alignments, strict=True
        ):
            out.append(
                DecodedWindow(
                    text=text,
                    words=tuple(
                        DecodedWord(float(w["start"]), float(w["end"]), w["word"], w["probability"])
                        for w in words
                    ),
                    avg_logprob=avg_logprob,
                    no_speech_prob=no_speech,
                    compression_ratio=ratio,
                )
            )
        return out

    def _generate(self, encoder_output, *, no_repeat_ngram_size: int):
        batch = encoder_output.shape[0]
        return self.model.model.generate(
            encoder_output,
            [self.prompt] * batch,
            beam_size=self.beam_size,
            max_length=self.model.max_length,
            return_scores=True,
            return_no_speech_prob=True,
            suppress_blank=True,
            suppress_tokens=self.suppress_tokens,
            no_repeat_ngram_size=no_repeat_ngram_size,
        )

    def _score(self, result) -> tuple[list[int], float, float, float, str]:
        tokens = result.sequences_ids[0]
        avg_logprob = result.scores[0] * len(tokens) / (len(tokens) + 1)
        text = self.tokenizer.decode(tokens).strip()
        return tokens, avg_logprob, result.no_speech_prob, _compression_ratio(text), text

    def _align(self, encoder_output, text_tokens: list[list[int]], frames: list[int]):
        # CTranslate2 aligns a batch against one frame count; align per distinct length.
        out: list[list[dict]] = [[] for _ in text_tokens]
        for n in sorted(set(frames)):
            idx = [i for i, f in enumerate(frames) if f == n and text_tokens[i]]
            if not idx:
                continue
            aligned = self.model.find_alignment(
                self.tokenizer, [text_tokens[i] for i in idx], _select(encoder_output, idx), n
            )
            for i, words in zip(idx, aligned, strict=True):
                out[i] = words
        return out


def _select(storage, indices: list[int]):
    """Rows of a CTranslate2 StorageView (batch dimension) as a new StorageView."""
    import ctranslate2

    if list(indices) == list(range(storage.shape[0])):
        return storage
    # StorageView has no slicing; go through host memory (a few MB per window) and back.
    on_cuda = storage.device == "cuda"
    host = storage.to_device(ctranslate2.Device.cpu) if on_cuda else storage
    rows = ctranslate2.StorageView.from_array(np.ascontiguousarray(np.array(host)[indices]))
    return rows.to_device(ctranslate2.Device.cuda) if on_cuda else rows


def _compression_ratio(text: str) -> float:
    data = text.encode("utf-8")
    return len(data) / len(zlib.compress(data)) if data else 0.0
