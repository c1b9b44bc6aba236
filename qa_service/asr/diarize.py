"""Who spoke each utterance of a mono recording: offline, CPU-only, two speakers.

A collection call has exactly two parties. Each utterance is described by its voice's
timbre (mean and spread of its MFCCs over the telephone band); the utterances are split
into two groups with 2-means, and the group holding the first utterance is the agent,
since on an outbound call the agent speaks first. When the two groups are not apart
(one voice), turn alternation decides instead: people take turns.

On one channel, a reply that follows within a third of a second is one stretch of
speech to the VAD, so one utterance can hold both parties; :mod:`qa_service.asr.voice_models`
learns the two voices frame by frame and finds such changes. Both read the call's MFCC
frames (:class:`CallFrames`), computed once.

Timbre, not pitch: on the dev corpus's mono calls, 1.5-s pieces of labelled turns go to
the nearer of the two speakers' mean voices 95 % of the time by MFCC statistics and
72 % by pitch (harmonic summation and autocorrelation F0); utterance attribution in
the pipeline rose from 83 % to 88 %.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cache

import numpy as np

from qa_service.domain import Samples, Speaker, Utterance, as_samples


def voice_points(utterances: list[Utterance], frames: CallFrames) -> list[np.ndarray | None]:
    """Each utterance's timbre (None where too short or silent), from the call's frames."""
    return [frames.timbre(u.start, u.end) for u in utterances]


def attribute_speakers(
    utterances: list[Utterance],
    samples: Samples | np.ndarray,
    sample_rate: int,
    *,
    first_speaker: Speaker = Speaker.AGENT,
    min_separation: float = 1.0,
    points: list[np.ndarray | None] | None = None,
) -> list[Utterance]:
    """Label mono utterances agent/customer (see module docstring).

    ``points`` are the utterances' :func:`voice_points`, if the caller already has them.
    """
    if not utterances:
        return []
    other = _other(first_speaker)
    if len(utterances) == 1:
        return [replace(utterances[0], speaker=first_speaker)]
    if points is None:
        points = voice_points(utterances, CallFrames.compute(samples, sample_rate))
    usable = [i for i, p in enumerate(points) if p is not None]
    labels = _alternation(len(utterances))
    if len(usable) >= 2:
        x = np.array([points[i] for i in usable])
        groups, separation = _two_means(x)
        if separation >= min_separation:
            by_index = dict(zip(usable, groups, strict=True))
            anchor = by_index[usable[0]]  # the first voice heard is the first speaker
            for i in range(len(utterances)):
                if i in by_index:
                    labels[i] = by_index[i] == anchor
                else:  # no voiced frame (a cough, a click): assume turn-taking
                    labels[i] = not labels[i - 1] if i > 0 else True
    return [
        replace(u, speaker=first_speaker if is_first else other)
        for u, is_first in zip(utterances, labels, strict=True)
    ]


def two_voices(points: list[np.ndarray | None], *, min_separation: float = 1.0) -> bool:
    """Whether the utterances' voice points fall into two groups apart (two speakers heard).

    The same test :func:`attribute_speakers` applies before it trusts the voices; a call
    that fails it was labelled by turn-taking, and nothing should be cut by voice.
    """
    usable = [p for p in points if p is not None]
    return len(usable) >= 2 and _two_means(np.array(usable))[1] >= min_separation


def _alternation(n: int) -> list[bool]:
    return [i % 2 == 0 for i in range(n)]


def _two_means(x: np.ndarray) -> tuple[list[int], float]:
    """2-means on standardised features; returns groups and a separation score.

    The score is the distance between the centroids in units of the pooled
    within-group standard deviation (Fisher-like); below 1 the groups are noise.
    """
    scale = x.std(axis=0)
    scale[scale == 0] = 1.0
    z = (x - x.mean(axis=0)) / scale
    far = int(np.argmax(((z - z[0]) ** 2).sum(axis=1)))
    centres = np.stack([z[0], z[far]])
    groups = np.zeros(len(z), dtype=int)
    for _ in range(20):
        dist = ((z[:, None, :] - centres[None, :, :]) ** 2).sum(axis=2)
        new = dist.argmin(axis=1)
        if (new == groups).all() and _ > 0:
            break
        groups = new
        for g in (0, 1):
            if (groups == g).any():
                centres[g] = z[groups == g].mean(axis=0)
    if len(set(groups.tolist())) < 2:
        return groups.tolist(), 0.0
    within = np.sqrt(
        np.mean([((z[groups == g] - centres[g]) ** 2).sum(axis=1).mean() for g in (0, 1)])
    )
    separation = float(np.linalg.norm(centres[0] - centres[1]) / max(within, 1e-6))
    return groups.tolist(), separation


def _other(speaker: Speaker) -> Speaker:
    return Speaker.CUSTOMER if speaker is Speaker.AGENT else Speaker.AGENT


_MFCC_FRAME, _MFCC_HOP, _N_MELS, _N_CEPS = 400, 160, 24, 13


@cache
def _mel_dct(sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """Mel filterbank over the telephone band (250–3600 Hz) and the DCT-II basis."""
    n_fft = 512

    def to_mel(hz):
        return 2595.0 * np.log10(1.0 + np.asarray(hz) / 700.0)

    def to_hz(mel):
        return 700.0 * (10.0 ** (np.asarray(mel) / 2595.0) - 1.0)

    edges = to_hz(np.linspace(to_mel(250.0), to_mel(min(3600.0, sample_rate / 2)), _N_MELS + 2))
    bins = np.floor((n_fft + 1) * edges / sample_rate).astype(int)
    bank = np.zeros((_N_MELS, n_fft // 2 + 1))
    for i in range(_N_MELS):
        lo, mid, hi = bins[i], bins[i + 1], bins[i + 2]
        bank[i, lo:mid] = (np.arange(lo, mid) - lo) / max(mid - lo, 1)
        bank[i, mid:hi] = (hi - np.arange(mid, hi)) / max(hi - mid, 1)
    k = np.arange(_N_CEPS + 1)[:, None]
    n = np.arange(_N_MELS)[None, :]
    basis = np.cos(np.pi * k * (2 * n + 1) / (2 * _N_MELS)) * np.sqrt(2.0 / _N_MELS)
    return bank, basis[1:]  # c0 (loudness) says nothing about who speaks


def timbre(samples: Samples | np.ndarray, sample_rate: int) -> np.ndarray | None:
    """Mean and spread of the MFCCs of a stretch's louder frames; None if too short."""
    return CallFrames.compute(samples, sample_rate).timbre(0.0, len(samples) / sample_rate)


@dataclass(frozen=True)
class CallFrames:
    """MFCCs of every 10-ms frame of a mono channel, computed once per call.

    Both the utterances' timbre (for :func:`attribute_speakers`) and the frame-level voice
    models (:mod:`qa_service.asr.voice_models`) read them, so no stretch of audio is analysed
    twice, however many parts of it are scored.
    """

    cepstra: np.ndarray  # (frames, _N_CEPS), c1…c13 over the telephone band
    energy: np.ndarray  # (frames,) power of each frame
    sample_rate: int

    @classmethod
    def compute(cls, samples: Samples | np.ndarray, sample_rate: int) -> CallFrames:
        samples = as_samples(samples)
        n = 1 + (len(samples) - _MFCC_FRAME) // _MFCC_HOP if len(samples) >= _MFCC_FRAME else 0
        bank, basis = _mel_dct(sample_rate)
        window = np.hamming(_MFCC_FRAME)
        cepstra, energy = [], []
        # In chunks, each reading only its own samples: a whole call's frames would be GBs,
        # and a long call's samples are not in memory (qa_service.ingest.spool).
        for first in range(0, n, _CHUNK):
            count = min(_CHUNK, n - first)
            lo = _MFCC_HOP * first
            chunk = samples.read(lo, lo + _MFCC_HOP * (count - 1) + _MFCC_FRAME)
            idx = np.arange(_MFCC_FRAME)[None, :] + _MFCC_HOP * np.arange(count)[:, None]
            power = np.abs(np.fft.rfft(chunk[idx].astype(np.float64) * window, n=512)) ** 2
            energy.append(power.sum(axis=1))
            cepstra.append(np.log(power @ bank.T + 1e-10) @ basis.T)
        if not n:
            return cls(np.zeros((0, _N_CEPS)), np.zeros(0), sample_rate)
        return cls(np.concatenate(cepstra), np.concatenate(energy), sample_rate)

    @property
    def hop_s(self) -> float:
        return _MFCC_HOP / self.sample_rate

    def index(self, t: float) -> int:
        """The first frame starting at or after time ``t`` (clipped to the call)."""
        return int(min(max(np.ceil(t * self.sample_rate / _MFCC_HOP - 1e-6), 0), len(self.energy)))

    def span(self, start: float, end: float) -> slice:
        """The frames lying wholly inside ``[start, end]``."""
        last = int(np.floor((end * self.sample_rate - _MFCC_FRAME) / _MFCC_HOP + 1e-6)) + 1
        return slice(self.index(start), max(self.index(start), min(last, len(self.energy))))

    def timbre(self, start: float, end: float) -> np.ndarray | None:
        """Mean and spread of the MFCCs of the stretch's louder frames; None if too short."""
        span = self.span(start, end)
        energy = self.energy[span]
        if len(energy) < 4:
            return None
        loud = energy > max(energy.max() * 1e-3, 1e-10)
        if loud.sum() < 10:
            return None
        ceps = self.cepstra[span][loud]
        return np.concatenate([ceps.mean(axis=0), ceps.std(axis=0)])


_CHUNK = 4096
