"""Who spoke each utterance of a mono recording: offline, CPU-only, two speakers.

A collection call has exactly two parties. Each utterance is described by its voice
(median fundamental frequency, from a normalised-autocorrelation pitch tracker, and
spectral centroid and tilt of its voiced frames); the utterances are split into two
groups with 2-means, and the group holding the first utterance is the agent, since on
an outbound call the agent speaks first. When the two groups are not clearly apart
(two similar voices), turn alternation decides instead: people take turns.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from qa_service.domain import Speaker, Utterance

_FRAME = 512
_HOP = 160
_FMIN, _FMAX = 70.0, 400.0


@dataclass(frozen=True)
class VoiceFeatures:
    f0_hz: float  # autocorrelation pitch, median over voiced frames; 0 if none voiced
    centroid_hz: float
    voiced_ratio: float
    shs_f0_hz: float = 0.0  # subharmonic-summation pitch (robust to a missing fundamental)


# Telephone audio has no energy below ~300 Hz, where a voice's fundamental lies, so
# pitch is also read from the spacing of the harmonics that remain (subharmonic
# summation, Hermes 1988): the candidate F0 whose harmonics carry most log energy.
_SHS_N = 4096
_SHS_CANDIDATES = np.arange(80.0, 400.0, 2.0)


def _shs_pitch(samples: np.ndarray, sample_rate: int) -> float:
    frame, hop = 1024, 320
    if len(samples) < frame * 2:
        return 0.0
    n = 1 + (len(samples) - frame) // hop
    idx = np.arange(frame)[None, :] + hop * np.arange(n)[:, None]
    frames = samples[idx].astype(np.float64) * np.hanning(frame)
    energy = (frames**2).sum(axis=1)
    frames = frames[energy > energy.max() * 0.05]
    log_spec = np.log(np.abs(np.fft.rfft(frames, n=_SHS_N, axis=1)) + 1e-6)
    bin_hz = sample_rate / _SHS_N
    scores = np.zeros((len(_SHS_CANDIDATES), len(frames)))
    for h in range(1, 12):
        bins = np.round(_SHS_CANDIDATES * h / bin_hz).astype(int)
        in_band = (bins * bin_hz >= 300) & (bins * bin_hz <= 3400)
        scores[in_band] += (0.9**h) * log_spec[:, bins[in_band]].T
    return float(np.median(_SHS_CANDIDATES[scores.argmax(axis=0)]))


def voice_features(samples: np.ndarray, sample_rate: int) -> VoiceFeatures:
    """Pitch and spectral shape of one utterance's audio."""
    if len(samples) < _FRAME * 2:
        return VoiceFeatures(0.0, 0.0, 0.0)
    n = 1 + (len(samples) - _FRAME) // _HOP
    idx = np.arange(_FRAME)[None, :] + _HOP * np.arange(n)[:, None]
    frames = samples[idx].astype(np.float64)
    frames -= frames.mean(axis=1, keepdims=True)
    energy = (frames**2).sum(axis=1)
    loud = energy > max(energy.max() * 1e-3, 1e-9)
    window = np.hanning(_FRAME)
    spec = np.abs(np.fft.rfft(frames * window, n=2 * _FRAME)) ** 2
    acf = np.fft.irfft(spec, axis=1)[:, :_FRAME]
    acf /= np.maximum(acf[:, :1], 1e-12)
    lo, hi = int(sample_rate / _FMAX), int(sample_rate / _FMIN)
    lags = np.argmax(acf[:, lo:hi], axis=1) + lo
    peaks = acf[np.arange(n), lags]
    voiced = loud & (peaks > 0.5)
    if not voiced.any():
        return VoiceFeatures(0.0, 0.0, 0.0)
    f0 = float(np.median(sample_rate / lags[voiced]))
    mag = np.abs(np.fft.rfft(frames[voiced] * window, axis=1))
    freqs = np.fft.rfftfreq(_FRAME, 1.0 / sample_rate)
    centroid = float(np.median((mag * freqs).sum(axis=1) / np.maximum(mag.sum(axis=1), 1e-12)))
    return VoiceFeatures(f0, centroid, float(voiced.mean()), _shs_pitch(samples, sample_rate))


def attribute_speakers(
    utterances: list[Utterance],
    samples: np.ndarray,
    sample_rate: int,
    *,
    first_speaker: Speaker = Speaker.AGENT,
    min_separation: float = 1.0,
) -> list[Utterance]:
    """Label mono utterances agent/customer (see module docstring)."""
    if not utterances:
        return []
    other = Speaker.CUSTOMER if first_speaker is Speaker.AGENT else Speaker.AGENT
    if len(utterances) == 1:
        return [replace(utterances[0], speaker=first_speaker)]
    feats = [
        voice_features(samples[int(u.start * sample_rate) : int(u.end * sample_rate)], sample_rate)
        for u in utterances
    ]
    usable = [i for i, f in enumerate(feats) if f.f0_hz > 0 and f.shs_f0_hz > 0]
    labels = _alternation(len(utterances))
    if len(usable) >= 2:
        x = np.array([[np.log(feats[i].shs_f0_hz), np.log(feats[i].f0_hz)] for i in usable])
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


def _alternation(n: int) -> list[bool]:
    return [i % 2 == 0 for i in range(n)]


def _two_means(x: np.ndarray) -> tuple[list[int], float]:
    """2-means on standardised features; returns groups and a separation score.

    The score is the distance between the centroids in units of the pooled
    within-group standard deviation (Fisher-like): ≥ 1 means two distinct voices.
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
