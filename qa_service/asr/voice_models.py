"""Frame-level models of a mono call's two voices, and the turn changes inside an utterance.

On one channel a reply that follows within a third of a second is one stretch of speech to
the VAD, so one utterance can hold both parties: the agent's question, the customer's
"对，我是。" and the agent's next sentence. Timbre averaged over one-second windows cannot
place a reply shorter than a window; here every 10-ms frame is scored instead, by the log
likelihood ratio of two Gaussian mixtures (one per voice) over its MFCCs. Ratios add up, so
any part of an utterance is judged by its own voiced frames (a 0.6-s reply has 20–30), and
every way of cutting an utterance at its word boundaries is scored from cumulative sums:
a small dynamic programme finds the best alternation of speakers, where each cut costs a
fixed amount of evidence (less at a pause or a clause end) and each part must lean clearly
to its speaker. One voice throughout never pays for a cut.

The models are learnt from the call itself, and that is the hard part: trained on whole
utterances as :func:`qa_service.asr.diarize.attribute_speakers` labelled them, the agent's
model holds the customer's merged replies and the customer's holds the agent's following
sentences; on calls where every customer turn was merged, the utterance clustering found
some other difference (the quiet closing line). So two starts are tried and each is refined
by self-training (retrain on the frames the models claim with confidence, twice):

- the utterance attribution, as it is;
- an anchor: the opening seconds of the first utterance are the first speaker's (the agent
  on an outbound call greets first); the least agent-like share of the remaining speech
  seeds the other voice.

The start whose refined models explain the call's speech better (mean log-likelihood of
each voiced frame under the voice it is given) is kept. Measured on the mono calls of the
dev and dev-hard corpora and on sped-up dev calls (``bench/bench_mono.py``); see
``bench/RESULTS.md``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qa_service.asr.diarize import CallFrames
from qa_service.domain import Speaker, Utterance


@dataclass(frozen=True)
class VoiceParams:
    """How the two voices are modelled and how an utterance may be cut.

    Defaults measured with ``bench/bench_mono.py``. Ratios are in units of the call's mean
    absolute log-likelihood ratio per voiced frame, so they hold for clean and noisy calls,
    close and distant voices alike.
    """

    components: int = 8  # Gaussians per voice (diagonal covariances)
    restarts: int = 3  # mixtures per voice from different starts, averaged (steadier ratios)
    em_iterations: int = 15
    variance_floor: float = 0.1  # no variance under this share of the call's speech spread
    self_training: int = 2  # rounds of retraining on the frames the models claim
    confidence: float = 0.1  # mean ratio (over ±smooth_s/2) for a frame to be claimed
    smooth_s: float = 0.5
    anchor_s: float = 8.0  # opening seconds of the first utterance: the first speaker's
    anchor_tail_s: float = 2.0  # never the last seconds of that utterance (a reply may follow)
    other_share: float = 0.3  # the least first-speaker-like share of speech seeds the other voice
    voiced_quantile: float = 0.5  # frames louder than this quantile of the speech are scored
    min_frames: int = 40  # voiced frames each voice needs before it is modelled
    cut_penalty: float = 60.0  # summed ratio a layout must gain per cut
    pause_discount: float = 0.5  # a cut at a pause or a clause end costs this share of it
    min_part_s: float = 0.6  # no part of a cut utterance is shorter
    min_lean: float = 0.3  # mean ratio per voiced frame each part needs toward its speaker


@dataclass(frozen=True)
class CutPoint:
    """A time where an utterance may be cut (a word boundary); ``easy`` at a pause or clause end."""

    time: float
    easy: bool = False


class VoiceModels:
    """The two voices of one mono call, as per-frame log-likelihood ratios (customer − agent)."""

    def __init__(
        self, frames: CallFrames, ratio: np.ndarray, voiced: np.ndarray, params: VoiceParams
    ) -> None:
        self.frames = frames
        self.params = params
        self._ratio = np.concatenate([[0.0], np.cumsum(np.where(voiced, ratio, 0.0))])
        self._voiced = np.concatenate([[0], np.cumsum(voiced)])

    @classmethod
    def fit(
        cls,
        frames: CallFrames,
        utterances: list[Utterance],
        *,
        first_speaker: Speaker = Speaker.AGENT,
        params: VoiceParams = VoiceParams(),
    ) -> VoiceModels | None:
        """Models of the call's two voices, or None when they cannot be told apart.

        ``utterances`` carry the speakers :func:`~qa_service.asr.diarize.attribute_speakers` gave
        them; a call it found to hold one voice (every utterance one speaker's) gets None.
        """
        if len({u.speaker for u in utterances} & {Speaker.AGENT, Speaker.CUSTOMER}) < 2:
            return None
        n = len(frames.energy)
        inside = np.zeros(n, dtype=bool)
        for u in utterances:
            inside[frames.span(u.start, u.end)] = True
        if inside.sum() < 2 * params.min_frames:
            return None
        voiced = inside & (
            frames.energy > np.quantile(frames.energy[inside], params.voiced_quantile)
        )
        starts = [_labels_of(frames, utterances, n)]
        anchor = _anchor_start(frames, utterances, inside, voiced, first_speaker, params)
        if anchor is not None:
            starts.append(anchor)
        best: tuple[float, np.ndarray] | None = None
        for labels in starts:
            refined = _self_train(frames.cepstra, labels, inside, voiced, frames.hop_s, params)
            if refined is not None and (best is None or refined[0] > best[0]):
                best = refined
        if best is None:
            return None
        return cls(frames, best[1], voiced, params)

    def evidence(self, start: float, end: float) -> tuple[float, int]:
        """Summed evidence (normalised ratio, > 0: customer) and voiced frames in a stretch."""
        span = self.frames.span(start, end)
        return (
            float(self._ratio[span.stop] - self._ratio[span.start]),
            int(self._voiced[span.stop] - self._voiced[span.start]),
        )

    def turns(
        self, start: float, end: float, cuts: list[CutPoint], current: Speaker
    ) -> list[tuple[float, float, Speaker]]:
        """Who spoke which part of ``[start, end]``, cut only at ``cuts`` (see module docstring).

        One part means no change of speaker; its speaker is the voice the whole stretch
        leans to, or ``current`` when it leans less than ``min_lean``.
        """
        p = self.params
        shortest = p.min_part_s - 1e-6  # times are rounded to the centisecond upstream
        points = (
            [CutPoint(start)]
            + sorted(
                (c for c in cuts if start + shortest <= c.time <= end - shortest),
                key=lambda c: c.time,
            )
            + [CutPoint(end)]
        )
        times = np.array([c.time for c in points])
        idx = [self.frames.span(start, t).stop for t in times]
        ratio = self._ratio[idx]
        voiced = self._voiced[idx].astype(float)
        cost = np.array([p.cut_penalty * (p.pause_discount if c.easy else 1.0) for c in points])
        m = len(points)
        # best[j, s]: score of the best layout of [start, times[j]] whose last part is s's
        # (0 agent, 1 customer); back[j, s]: where that part began.
        best = np.full((m, 2), -np.inf)
        back = np.zeros((m, 2), dtype=int)
        best[0] = 0.0
        sign = np.array([-1.0, 1.0])
        for j in range(1, m - 1):
            i = np.arange(j)
            ok = (times[j] - times[i] >= shortest) & (voiced[j] - voiced[i] >= _MIN_VOICED)
            for s in (0, 1):
                lean = sign[s] * (ratio[j] - ratio[i])
                fits = ok & (lean >= p.min_lean * np.maximum(voiced[j] - voiced[i], 1.0))
                prev = np.where(i == 0, 0.0, best[i, 1 - s] - cost[i])
                total = np.where(fits, prev + lean, -np.inf)
                k = int(np.argmax(total))
                best[j, s], back[j, s] = total[k], k
        whole = ratio[-1] - ratio[0]
        layouts: list[tuple[float, list[tuple[float, float, Speaker]]]] = []
        for s in (0, 1):
            j = m - 1
            i = np.arange(1, j)
            lean = sign[s] * (ratio[j] - ratio[i])
            fits = (
                (times[j] - times[i] >= shortest)
                & (voiced[j] - voiced[i] >= _MIN_VOICED)
                & (lean >= p.min_lean * np.maximum(voiced[j] - voiced[i], 1.0))
            )
            total = np.where(fits, best[i, 1 - s] - cost[i] + lean, -np.inf)
            if len(total) and np.isfinite(total.max()):
                k = int(i[np.argmax(total)])
                layouts.append((float(total.max()), self._trace(times, back, k, j, s)))
        speaker = current
        if abs(whole) >= p.min_lean * max(voiced[-1] - voiced[0], 1.0):
            speaker = Speaker.CUSTOMER if whole > 0 else Speaker.AGENT
        one = [(start, end, speaker)]
        if not layouts:
            return one
        score, parts = max(layouts, key=lambda x: x[0])
        return parts if score > abs(whole) else one

    @staticmethod
    def _trace(
        times: np.ndarray, back: np.ndarray, i: int, j: int, s: int
    ) -> list[tuple[float, float, Speaker]]:
        parts = [(float(times[i]), float(times[j]), _SPEAKERS[s])]
        while i > 0:
            s = 1 - s
            i, j = int(back[i, s]), i
            parts.append((float(times[i]), float(times[j]), _SPEAKERS[s]))
        return parts[::-1]


_SPEAKERS = (Speaker.AGENT, Speaker.CUSTOMER)
_MIN_VOICED = 10  # voiced frames (0.1 s) a part of a cut utterance needs to be judged at all


def _labels_of(frames: CallFrames, utterances: list[Utterance], n: int) -> np.ndarray:
    """Frame labels from utterance speakers: 0 agent, 1 customer, -1 none."""
    labels = np.full(n, -1)
    for u in utterances:
        if u.speaker in _SPEAKERS:
            labels[frames.span(u.start, u.end)] = _SPEAKERS.index(u.speaker)
    return labels


def _anchor_start(
    frames: CallFrames,
    utterances: list[Utterance],
    inside: np.ndarray,
    voiced: np.ndarray,
    first_speaker: Speaker,
    p: VoiceParams,
) -> np.ndarray | None:
    """Frame labels seeded by the first speaker's opening (see module docstring)."""
    first = utterances[0]
    seed_end = min(first.start + p.anchor_s, first.end)
    if first.end - first.start > 2 * p.anchor_tail_s:
        seed_end = min(seed_end, first.end - p.anchor_tail_s)
    seed = np.zeros(len(inside), dtype=bool)
    seed[frames.span(first.start, seed_end)] = True
    rest = inside & ~seed & voiced
    if (seed & voiced).sum() < p.min_frames or rest.sum() < p.min_frames:
        return None
    x = frames.cepstra
    floor = _floor(x, inside & voiced, p)
    likeness = _voice_loglik(x, seed & voiced, floor, p) - _voice_loglik(
        x, inside & voiced, floor, p
    )
    likeness = _smooth(np.where(voiced, likeness, 0.0), voiced, frames.hop_s, p)
    threshold = np.quantile(likeness[rest], p.other_share)
    labels = np.full(len(inside), -1)
    mine = _SPEAKERS.index(first_speaker)
    labels[inside & (likeness > threshold)] = mine
    labels[rest & (likeness <= threshold)] = 1 - mine
    labels[seed] = mine
    return labels


def _self_train(
    x: np.ndarray,
    labels: np.ndarray,
    inside: np.ndarray,
    voiced: np.ndarray,
    hop_s: float,
    p: VoiceParams,
) -> tuple[float, np.ndarray] | None:
    """Refine two voices from starting labels; (fit, per-frame ratio) or None if one vanishes.

    The fit is the mean log-likelihood of each voiced frame under the voice it leans to.
    """
    floor = _floor(x, inside & voiced, p)
    for round_ in range(p.self_training + 1):
        agent, customer = (labels == 0) & voiced, (labels == 1) & voiced
        if agent.sum() < p.min_frames or customer.sum() < p.min_frames:
            return None
        ll_agent = _voice_loglik(x, agent, floor, p)
        ll_customer = _voice_loglik(x, customer, floor, p)
        ratio = _normalised(ll_customer - ll_agent, inside & voiced)
        if ratio is None:
            return None
        lean = _smooth(np.where(voiced, ratio, 0.0), voiced, hop_s, p)
        if round_ == p.self_training:
            scored = inside & voiced
            fit = np.where(lean[scored] > 0, ll_customer[scored], ll_agent[scored]).mean()
            return float(fit), ratio
        labels = np.full(len(labels), -1)
        labels[inside & (lean > p.confidence)] = 1
        labels[inside & (lean < -p.confidence)] = 0
    return None


def _normalised(ratio: np.ndarray, scored: np.ndarray) -> np.ndarray | None:
    """The ratio in units of each voice's mean evidence per frame; None if it never leans
    one way (one voice).

    Units, so that the thresholds hold for clean and noisy calls, close and distant voices
    alike; one per side, because the evidence is lopsided: the voice heard more (the
    agent's) gets the broader model, which also holds some of the other voice from merged
    utterances, so the customer's frames lean to the customer far less than the agent's
    lean away. In one unit for both, a customer's reply would look like no evidence.
    """
    r = ratio[scored]
    if not (r > 0).any() or not (r < 0).any():
        return None
    return np.where(ratio > 0, ratio / float(r[r > 0].mean()), ratio / float(-r[r < 0].mean()))


def _smooth(values: np.ndarray, voiced: np.ndarray, hop_s: float, p: VoiceParams) -> np.ndarray:
    """Mean of ``values`` over the voiced frames within ±smooth_s/2 of each frame."""
    width = max(1, int(round(p.smooth_s / hop_s)))
    kernel = np.ones(width)
    total = np.convolve(values, kernel, mode="same")
    count = np.convolve(voiced.astype(float), kernel, mode="same")
    return total / np.maximum(count, 1.0)


def _floor(x: np.ndarray, scored: np.ndarray, p: VoiceParams) -> np.ndarray:
    return p.variance_floor * x[scored].var(axis=0) + 1e-4


def _voice_loglik(x: np.ndarray, mask: np.ndarray, floor: np.ndarray, p: VoiceParams) -> np.ndarray:
    """Per-frame log-likelihood under a voice learnt from the frames in ``mask``: the mean
    over ``restarts`` mixtures, since one EM run depends on where it starts.

    ``floor`` bounds every variance from below. It is a share of the whole call's spread,
    the same for both voices: a voice heard briefly would otherwise get a mixture so narrow
    that the other voice's frames are far less likely under it than its own are under the
    other's, and its evidence would look negligible beside the other's.
    """
    fits = [_Mixture.fit(x[mask], floor, p, seed) for seed in range(p.restarts)]
    return np.mean([m.loglik(x) for m in fits], axis=0)


@dataclass(frozen=True)
class _Mixture:
    """A diagonal-covariance Gaussian mixture, fitted by EM from a deterministic start."""

    log_weights: np.ndarray
    means: np.ndarray
    variances: np.ndarray

    @classmethod
    def fit(cls, x: np.ndarray, floor: np.ndarray, p: VoiceParams, seed: int) -> _Mixture:
        """EM from ``components`` frames drawn with ``seed`` (the same call, the same model)."""
        k = max(1, min(p.components, len(x) // 20))
        means = x[np.random.default_rng(seed).choice(len(x), k, replace=False)]
        start = cls(np.full(k, -np.log(k)), means, np.tile(x.var(axis=0) + 1e-3, (k, 1)))
        return start._em(x, floor, p.em_iterations)

    def _em(self, x: np.ndarray, floor: np.ndarray, iterations: int) -> _Mixture:
        mixture = self
        for _ in range(iterations):
            post = mixture._posteriors(x)
            nk = post.sum(axis=0) + 1e-6
            means = post.T @ x / nk[:, None]
            variances = np.maximum(post.T @ (x * x) / nk[:, None] - means**2, floor)
            mixture = _Mixture(np.log(nk / len(x)), means, variances)
        return mixture

    def _components(self, x: np.ndarray) -> np.ndarray:
        norm = self.log_weights - 0.5 * np.log(2 * np.pi * self.variances).sum(axis=1)
        inv = 1.0 / self.variances
        # Expanded square: (x-m)^2/v = x^2/v - 2xm/v + m^2/v, as matrix products (fast).
        quad = (x * x) @ inv.T - 2.0 * x @ (self.means * inv).T + (self.means**2 * inv).sum(axis=1)
        return norm - 0.5 * quad

    def _posteriors(self, x: np.ndarray) -> np.ndarray:
        c = self._components(x)
        c = np.exp(c - c.max(axis=1, keepdims=True))
        return c / c.sum(axis=1, keepdims=True)

    def loglik(self, x: np.ndarray) -> np.ndarray:
        c = self._components(x)
        top = c.max(axis=1)
        return top + np.log(np.exp(c - top[:, None]).sum(axis=1))
