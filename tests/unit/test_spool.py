"""Decoded audio spooled to temporary files: read back exactly, never left behind."""

from __future__ import annotations

import errno
import io
import os
import tempfile
import wave
from pathlib import Path

import av
import numpy as np
import pytest
from audio_factory import STEREO_WAV

from qa_service.domain import DecodedAudio
from qa_service.errors import AudioDecodeError, AudioTooShort, ImplausibleAudio, ScratchSpaceError
from qa_service.ingest.audio import decode_audio, stream_audio
from qa_service.ingest.recordings import ingest_recording


def _in_memory(path: Path, sample_rate: int = 16000) -> np.ndarray:
    """The recording as the in-memory decoder held it: every block kept, channels stacked."""
    blocks: dict[int, list[np.ndarray]] = {}
    info = stream_audio(
        path, lambda s, b: blocks.setdefault(s, []).append(b.copy()), sample_rate=sample_rate
    )
    out = np.zeros((sum(info.stream_channels), info.samples), np.float32)
    row = 0
    for stream, count in enumerate(info.stream_channels):
        joined = np.concatenate(blocks[stream], axis=1)
        out[row : row + count, : joined.shape[1]] = joined
        row += count
    return out


def _open_in(directory: Path) -> list[str]:
    """This process's open files inside ``directory`` (deleted or not)."""
    fds = Path("/proc/self/fd")
    links = []
    for fd in fds.iterdir():
        try:
            links.append(os.readlink(fd))
        except OSError:  # closed while listing (the listing's own descriptor)
            continue
    return [link for link in links if link.startswith(str(directory) + os.sep)]


needs_proc = pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs Linux /proc")


def test_every_slice_reads_what_the_in_memory_decoder_held(tmp_path: Path) -> None:
    expected = _in_memory(STEREO_WAV)
    with decode_audio(STEREO_WAV, spool_dir=tmp_path) as audio:
        assert audio.n_channels == 2 and len(audio.channels[0]) == expected.shape[1]
        length = expected.shape[1]
        rng = np.random.default_rng(3)
        edges = [(0, None), (0, length), (length - 5, length + 100), (length + 10, None)]
        edges += [(int(a), int(a + b)) for a, b in rng.integers(0, length, (20, 2))]
        edges += [(-50, 30), (400, 100)]  # clipped like a slice: nothing before 0, empty
        for channel, reference in zip(audio.channels, expected, strict=True):
            assert np.array_equal(channel.read(), reference)
            for start, stop in edges:
                got = channel.read(start, stop)
                assert got.dtype == np.float32
                want = reference[max(start, 0) : stop if stop is None else max(stop, 0)]
                assert np.array_equal(got, want), (start, stop)


def test_streams_of_different_lengths_read_as_padded_with_silence(tmp_path: Path) -> None:
    path = tmp_path / "two_streams.mka"
    tone = (np.sin(2 * np.pi * 440 * np.arange(8000) / 8000) * 8000).astype("<i2")
    with av.open(str(path), "w", format="matroska") as out:
        streams = [out.add_stream("pcm_s16le", rate=8000, layout="mono") for _ in range(2)]
        for stream, signal in zip(streams, (tone, tone[:4000]), strict=True):
            frame = av.AudioFrame.from_ndarray(signal.reshape(1, -1), format="s16", layout="mono")
            frame.sample_rate, frame.pts = 8000, 0
            out.mux(stream.encode(frame))
            out.mux(stream.encode(None))
    expected = _in_memory(path)
    with decode_audio(path, spool_dir=tmp_path) as audio:
        long, short = (channel.read() for channel in audio.channels)
    assert np.array_equal(np.stack([long, short]), expected)
    assert len(short) == len(long) == 16000 and not short[8100:].any()


@needs_proc
def test_temporary_files_have_no_name_and_are_gone_once_closed(tmp_path: Path) -> None:
    audio = decode_audio(STEREO_WAV, spool_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []  # nothing a crash could leave behind
    assert len(_open_in(tmp_path)) == 2  # one file a channel, open while in use
    duration = audio.duration_s
    audio.close()
    assert _open_in(tmp_path) == []
    assert audio.duration_s == duration  # still known after closing
    with pytest.raises(ValueError):
        audio.channels[0].read(0, 10)


@needs_proc
def test_a_file_found_damaged_leaves_no_temporary_file(tmp_path: Path) -> None:
    data = STEREO_WAV.read_bytes()
    path = tmp_path / "cut.wav"
    path.write_bytes(data[: len(data) // 2])  # decodes 2 s, then fails the length check
    spool = tmp_path / "spool"
    spool.mkdir()
    with pytest.raises(AudioDecodeError):
        decode_audio(path, spool_dir=spool)
    assert _open_in(spool) == [] and list(spool.iterdir()) == []


@needs_proc
def test_a_recording_refused_after_decoding_leaves_no_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # decode_audio's default
    with pytest.raises(AudioTooShort):
        ingest_recording(STEREO_WAV, min_duration_s=10.0)
    assert _open_in(tmp_path) == []
    call = ingest_recording(STEREO_WAV)
    assert len(_open_in(tmp_path)) == 2
    call.audio.close()
    assert _open_in(tmp_path) == []


@needs_proc
def test_decoding_stops_at_the_duration_limit(tmp_path: Path) -> None:
    # A WAV written while recording (sizes 0xFFFFFFFF) declares no length, nor do AMR and
    # ADTS files: the limit applies to what is decoded, not only to what headers declare.
    path = tmp_path / "long.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(np.zeros(8000 * 30, "<i2").tobytes())
    data = bytearray(path.read_bytes())
    assert data[36:40] == b"data"
    data[4:8] = data[40:44] = b"\xff\xff\xff\xff"
    path.write_bytes(bytes(data))
    spool = tmp_path / "spool"
    spool.mkdir()
    with pytest.raises(ImplausibleAudio, match="limit"):
        decode_audio(path, max_duration_s=10.0, spool_dir=spool)
    assert _open_in(spool) == []
    with decode_audio(path, max_duration_s=30.0, spool_dir=spool) as audio:
        assert audio.duration_s == pytest.approx(30.0)


class _FullDisk(io.BufferedRandom):
    def write(self, data: object) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@needs_proc
def test_a_full_temporary_directory_is_a_clear_storage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = tempfile.TemporaryFile

    def full(*args: object, **kwargs: object) -> io.BufferedRandom:
        return _FullDisk(real(dir=tmp_path, buffering=0))  # type: ignore[arg-type]

    monkeypatch.setattr(tempfile, "TemporaryFile", full)
    with pytest.raises(ScratchSpaceError) as info:
        decode_audio(STEREO_WAV, spool_dir=tmp_path)
    assert info.value.code == "scratch_space_error"
    assert str(tmp_path) in info.value.message and "TMPDIR" in info.value.message
    assert "空间不足" in info.value.message and "is full" in info.value.message
    assert _open_in(tmp_path) == []


def test_a_missing_temporary_directory_is_a_storage_error(tmp_path: Path) -> None:
    missing = tmp_path / "missing"
    with pytest.raises(ScratchSpaceError, match="cannot keep the decoded audio") as info:
        decode_audio(STEREO_WAV, spool_dir=missing)
    assert str(missing) in info.value.message


def test_decoded_audio_closes_as_a_context_manager(tmp_path: Path) -> None:
    with decode_audio(STEREO_WAV, spool_dir=tmp_path) as audio:
        assert isinstance(audio, DecodedAudio)
        first = audio.channels[0].read(0, 100)
    assert first.shape == (100,)
    assert all(channel.closed for channel in audio.channels)  # type: ignore[attr-defined]
