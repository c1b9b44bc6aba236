"""Waveform peaks (qa_service.ingest.waveform): what the call page draws instead of decoding
the whole recording in the browser — right values, bounded size, the agent's lane first,
cached beside the recording and deleted with it."""

from __future__ import annotations

import json
import wave
from pathlib import Path

import numpy as np
import pytest

from qa_service.domain import Speaker
from qa_service.errors import AudioDecodeError
from qa_service.ingest import waveform as waveform_module
from qa_service.ingest.audio import decode_audio, stream_audio
from qa_service.ingest.store import AudioStore
from qa_service.ingest.waveform import (
    CACHE_SUFFIX,
    Waveform,
    cached_waveform,
    compute_waveform,
    lanes,
    waveform_from_json,
    waveform_to_json,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
STEREO = FIXTURES / "stereo_8k.wav"
MONO = FIXTURES / "mono_8k.wav"


def _write_wav(path: Path, samples: np.ndarray, rate: int = 8000) -> Path:
    """``samples``: float (frames, channels) in [-1, 1]."""
    pcm = (np.clip(samples, -1, 1) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(pcm.shape[1])
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())
    return path


def test_peaks_are_each_bins_loudest_sample_relative_to_the_channel() -> None:
    got = compute_waveform(STEREO)
    audio = decode_audio(STEREO, sample_rate=8000)
    assert got.duration_s == pytest.approx(audio.duration_s, abs=1e-3)
    assert got.peaks_per_second == 100
    assert [len(p) for p in got.peaks] == [400, 400]  # 4 s at 100 a second
    channels = [ch.read() for ch in audio.channels]
    for peaks, scale, channel in zip(got.peaks, got.scales, channels, strict=True):
        bins = np.abs(channel[: len(channel) // 80 * 80]).reshape(-1, 80).max(axis=1)
        assert scale == pytest.approx(bins.max(), abs=1e-4)
        expected = np.round(bins.astype(np.float64) / bins.max(), 2)
        assert np.array(peaks) == pytest.approx(expected, abs=0.0051)
        assert max(peaks) == 1.0 and min(peaks) >= 0.0


def test_streaming_hands_on_every_sample_once() -> None:
    blocks: dict[int, list[np.ndarray]] = {}
    info = stream_audio(
        STEREO, lambda s, b: blocks.setdefault(s, []).append(b.copy()), sample_rate=8000
    )
    whole = decode_audio(STEREO, sample_rate=8000)
    joined = np.concatenate(blocks[0], axis=1)
    assert info.stream_channels == (2,) and info.samples == joined.shape[1]
    assert np.array_equal(joined, np.stack([ch.read() for ch in whole.channels]))


def test_a_long_call_keeps_a_bounded_count_and_its_loud_moments(tmp_path: Path) -> None:
    rate = 8000
    quiet = np.full((90 * rate, 1), 0.01)
    quiet[int(61.5 * rate)] = 0.9  # one click at 61.5 s
    got = compute_waveform(_write_wav(tmp_path / "long.wav", quiet), max_peaks=900)
    assert got.duration_s == 90.0
    assert got.peaks_per_second == 10  # 9,000 base bins folded 10 at a time
    assert len(got.peaks[0]) == 900
    assert int(np.argmax(got.peaks[0])) == 615
    assert got.peaks[0][0] == pytest.approx(0.01 / 0.9, abs=0.01)


def test_a_damaged_recording_is_an_error(tmp_path: Path) -> None:
    cut = tmp_path / "cut.wav"
    cut.write_bytes(STEREO.read_bytes()[:20_000])  # header promises 4 s
    with pytest.raises(AudioDecodeError):
        compute_waveform(cut)


def test_lanes_put_the_agent_first_and_mono_in_one_lane() -> None:
    stereo = compute_waveform(STEREO)
    default = lanes(stereo, None)
    assert [(lane.channel, lane.speaker) for lane in default] == [
        (0, Speaker.AGENT),
        (1, Speaker.CUSTOMER),
    ]
    swapped = lanes(stereo, {0: Speaker.CUSTOMER, 1: Speaker.AGENT})
    assert [(lane.channel, lane.speaker) for lane in swapped] == [
        (1, Speaker.AGENT),
        (0, Speaker.CUSTOMER),
    ]
    assert swapped[0].peaks == stereo.peaks[1]
    mono = lanes(compute_waveform(MONO), None)
    assert [(lane.channel, lane.speaker) for lane in mono] == [(0, None)]


def test_json_round_trip_and_refusal_of_other_formats() -> None:
    got = compute_waveform(MONO)
    assert waveform_from_json(json.loads(json.dumps(waveform_to_json(got)))) == got
    for bad in ({}, {**waveform_to_json(got), "format": 0}, {"format": 1, "channels": []}):
        with pytest.raises(ValueError):
            waveform_from_json(bad)


def test_cached_beside_the_recording_computed_once_and_deleted_with_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = AudioStore(tmp_path / "audio")
    stored = store.put_file(STEREO, ext=".wav")
    first = cached_waveform(store, stored.sha256, stored.path)
    cache = store.derived_path(stored.sha256, CACHE_SUFFIX)
    assert cache.parent == stored.path.parent and cache.is_file()
    assert cache.stat().st_size < 10_000
    assert store.find(stored.sha256) == stored  # the cache is not taken for the recording

    def no_decoding(_path: Path, **_kw: object) -> Waveform:
        raise AssertionError("decoded again")

    monkeypatch.setattr(waveform_module, "compute_waveform", no_decoding)
    assert cached_waveform(store, stored.sha256, stored.path) == first

    monkeypatch.undo()
    cache.write_text("{damaged")  # e.g. a crash mid-write: computed again and rewritten
    assert cached_waveform(store, stored.sha256, stored.path) == first
    assert waveform_from_json(json.loads(cache.read_text())) == first

    assert store.delete(stored.sha256) is True
    assert not cache.exists()


def test_a_store_that_cannot_be_written_still_gives_the_waveform(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from qa_service.errors import StorageError

    store = AudioStore(tmp_path / "audio")
    stored = store.put_file(MONO, ext=".wav")

    def full(*_args: object) -> Path:
        raise StorageError("录音存储空间已满 / the audio store is full")

    monkeypatch.setattr(store, "put_derived", full)
    assert cached_waveform(store, stored.sha256, stored.path).peaks
    assert not store.derived_path(stored.sha256, CACHE_SUFFIX).exists()
