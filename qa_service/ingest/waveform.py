"""Waveform peaks: what the call page draws, without the browser downloading the recording.

The call page used to fetch the whole recording (19 MB for 10 minutes of 8 kHz stereo) and
decode it with the browser's ``decodeAudioData`` before wavesurfer could draw a lane, which
was most of the page's time to interactive. Here the recording is decoded once with the
ingest decoder, block by block (:func:`~qa_service.ingest.audio.stream_audio`: a 2-hour call
holds its peaks, never its audio), reduced to the loudest absolute sample of each bin, and
cached beside the recording in the audio store. The store is content-addressed, so a cached
file stays right as long as the recording exists, and it is deleted with the recording.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from qa_service.domain import Speaker
from qa_service.errors import StorageError
from qa_service.ingest.audio import stream_audio
from qa_service.ingest.store import AudioStore

logger = logging.getLogger(__name__)

DECODE_RATE = 8000
"""Peaks are taken at 8 kHz: the telephone band, and the rate wavesurfer decodes at by
default (its ``sampleRate`` option), so the lanes look as they did when the browser
decoded the recording itself."""
BASE_PEAKS_PER_SECOND = 100
MAX_PEAKS = 4000
"""Peaks per channel at most: more than a lane's width in device pixels on the screens the
page is used on (a 10-minute call gets 6.7 a second, ~40 KB of JSON for two lanes)."""
CACHE_SUFFIX = ".peaks.json"
_FORMAT = 1  # bump when the computation changes: files cached by older code are recomputed
_DECIMALS = 2  # values are relative to the channel's loudest sample: 1 % steps
_FLUSH_EVERY = 256  # frames' bins gathered before they are joined (few small arrays kept)


@dataclass(frozen=True)
class Waveform:
    """A recording's peaks, per channel in file order.

    Each value is the loudest absolute sample of its bin divided by the channel's loudest
    sample (``scales``, full scale 1.0), so every value lies in [0, 1] and two decimals
    keep the shape of a quiet channel as well as a loud one.
    """

    duration_s: float
    peaks_per_second: float
    peaks: tuple[tuple[float, ...], ...]
    scales: tuple[float, ...]


@dataclass(frozen=True)
class Lane:
    """One lane of the call page's player: a channel of the recording and who speaks on it
    (``None`` on a mono recording, where everybody does)."""

    channel: int
    speaker: Speaker | None
    scale: float
    peaks: tuple[float, ...]


class _Bins:
    """The running peaks of one audio stream: the loudest absolute sample per ``size``."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.rest: np.ndarray | None = None  # samples of a bin not yet complete
        self.parts: list[np.ndarray] = []
        self.joined: list[np.ndarray] = []

    def push(self, planes: np.ndarray) -> None:
        if self.rest is not None:
            planes = np.concatenate((self.rest, planes), axis=1)
        whole = planes.shape[1] // self.size * self.size
        if whole:
            bins = np.abs(planes[:, :whole]).reshape(planes.shape[0], -1, self.size).max(axis=2)
            self.parts.append(bins)
            if len(self.parts) >= _FLUSH_EVERY:
                self.joined.append(np.concatenate(self.parts, axis=1))
                self.parts = []
        self.rest = planes[:, whole:].copy()

    def finish(self, n_bins: int) -> np.ndarray:
        """The peaks, shape (channels, n_bins): a last partial bin counts, and a stream
        shorter than the longest is padded with silence."""
        parts = self.joined + self.parts
        if self.rest is not None and self.rest.shape[1]:
            parts.append(np.abs(self.rest).max(axis=1, keepdims=True))
        bins = np.concatenate(parts, axis=1)[:, :n_bins]
        out = np.zeros((bins.shape[0], n_bins), np.float32)
        out[:, : bins.shape[1]] = bins
        return out


def compute_waveform(path: Path, *, max_peaks: int = MAX_PEAKS) -> Waveform:
    """Decode ``path`` block by block and reduce it to at most ``max_peaks`` peaks per channel.

    Raises like :func:`~qa_service.ingest.audio.decode_audio` (FileNotFound, EmptyFile,
    UnsupportedFormat, AudioDecodeError).
    """
    if max_peaks < 1:
        raise ValueError(f"max_peaks must be positive, not {max_peaks}")
    size = DECODE_RATE // BASE_PEAKS_PER_SECOND
    streams: dict[int, _Bins] = {}

    def collect(stream: int, planes: np.ndarray) -> None:
        streams.setdefault(stream, _Bins(size)).push(planes)

    info = stream_audio(Path(path), collect, sample_rate=DECODE_RATE)
    n_bins = math.ceil(info.samples / size)
    fine = np.concatenate([streams[i].finish(n_bins) for i in sorted(streams)], axis=0)
    # Bins of whole base bins, so the rate stays exact (100, 50, 33.3 ... a second).
    factor = max(1, math.ceil(n_bins / max_peaks))
    padded = np.zeros((fine.shape[0], math.ceil(n_bins / factor) * factor), np.float32)
    padded[:, :n_bins] = fine
    coarse = padded.reshape(fine.shape[0], -1, factor).max(axis=2).astype(np.float64)
    scales = coarse.max(axis=1)
    relative = np.divide(
        coarse, scales[:, None], out=np.zeros_like(coarse), where=scales[:, None] > 0
    )
    return Waveform(
        duration_s=round(info.duration_s, 3),
        peaks_per_second=round(BASE_PEAKS_PER_SECOND / factor, 6),
        peaks=tuple(tuple(row) for row in np.round(relative, _DECIMALS).tolist()),
        scales=tuple(round(float(s), 4) for s in scales),
    )


def lanes(waveform: Waveform, channel_map: Mapping[int, Speaker] | None) -> tuple[Lane, ...]:
    """The player's lanes: on a recording of several channels the agent's, then the
    customer's (the sidecar's channel map, else channel 0 agent and 1 customer, as ingest
    assumes); on a mono recording its one channel. A map naming fewer than both parties
    gives every channel in file order."""

    def lane(channel: int, speaker: Speaker | None) -> Lane:
        return Lane(channel, speaker, waveform.scales[channel], waveform.peaks[channel])

    n = len(waveform.peaks)
    if n == 1:
        return (lane(0, None),)
    cmap = dict(channel_map or {0: Speaker.AGENT, 1: Speaker.CUSTOMER})
    chosen = [
        next((c for c in sorted(cmap) if cmap[c] is party and c < n), None)
        for party in (Speaker.AGENT, Speaker.CUSTOMER)
    ]
    if None in chosen:
        return tuple(lane(c, cmap.get(c)) for c in range(n))
    return tuple(lane(c, cmap[c]) for c in chosen if c is not None)


def waveform_to_json(waveform: Waveform) -> dict[str, Any]:
    """The cached form (also what :func:`waveform_from_json` reads back)."""
    return {
        "format": _FORMAT,
        "duration_s": waveform.duration_s,
        "peaks_per_second": waveform.peaks_per_second,
        "channels": [
            {"scale": scale, "peaks": list(peaks)}
            for scale, peaks in zip(waveform.scales, waveform.peaks, strict=True)
        ],
    }


def waveform_from_json(data: Any) -> Waveform:
    """Read a cached waveform; ValueError if it is not one this code wrote."""
    if not isinstance(data, dict) or data.get("format") != _FORMAT:
        raise ValueError("not a waveform of the current format")
    try:
        channels = data["channels"]
        waveform = Waveform(
            duration_s=float(data["duration_s"]),
            peaks_per_second=float(data["peaks_per_second"]),
            peaks=tuple(tuple(float(v) for v in ch["peaks"]) for ch in channels),
            scales=tuple(float(ch["scale"]) for ch in channels),
        )
    except (KeyError, TypeError) as exc:
        raise ValueError(f"damaged waveform: {exc!r}") from exc
    if not waveform.peaks or len({len(p) for p in waveform.peaks}) != 1:
        raise ValueError("damaged waveform: channels missing or of different lengths")
    return waveform


def cached_waveform(store: AudioStore, sha256: str, recording: Path) -> Waveform:
    """The waveform of ``recording`` (whose bytes hash to ``sha256``): read from the audio
    store's cache, or computed and cached there.

    A cache that cannot be read is computed again; one that cannot be written is logged and
    the computed waveform returned all the same (the page still works, only slower).
    """
    cache = store.derived_path(sha256, CACHE_SUFFIX)
    try:
        return waveform_from_json(json.loads(cache.read_bytes()))
    except FileNotFoundError:
        pass
    except (OSError, ValueError) as exc:  # JSONDecodeError is a ValueError
        logger.warning("waveform cache %s unreadable (%s); computing it again", cache, exc)
    waveform = compute_waveform(recording)
    data = json.dumps(waveform_to_json(waveform), separators=(",", ":")).encode()
    try:
        store.put_derived(sha256, CACHE_SUFFIX, data)
    except StorageError as exc:
        logger.warning("waveform of %s not cached: %s", sha256, exc.message)
    return waveform
