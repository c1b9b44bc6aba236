"""Decoding: every accepted format, channels kept apart, and every way a file can be bad."""

from __future__ import annotations

import random
import re
import wave
from pathlib import Path

import av
import numpy as np
import pytest
from audio_factory import ENCODINGS, MONO_WAV, STEREO_WAV, encode

from qa_service.domain import DecodedAudio
from qa_service.errors import AudioDecodeError, EmptyFile, FileNotFound, UnsupportedFormat
from qa_service.ingest.audio import decode_audio

CJK = re.compile(r"[\u4e00-\u9fff]")


@pytest.fixture(scope="module")
def stereo_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("stereo")
    files = {kind: encode(STEREO_WAV, kind, out) for kind in ENCODINGS}
    files["pcm16"] = STEREO_WAV
    return files


@pytest.fixture(scope="module")
def mono_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("mono")
    files = {kind: encode(MONO_WAV, kind, out) for kind in ENCODINGS}
    files["pcm16"] = MONO_WAV
    return files


def _arrays(audio: DecodedAudio) -> list[np.ndarray]:
    return [channel.read() for channel in audio.channels]


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


def _assert_bilingual(message: str, path: Path) -> None:
    """Chinese first, then " / " and the English gist, both naming the file."""
    zh, sep, en = message.partition(" / ")
    assert sep and CJK.search(zh) and not CJK.search(en.replace(str(path), ""))
    assert str(path) in zh and str(path) in en


KINDS = ["pcm16", *ENCODINGS]


@pytest.mark.parametrize("kind", KINDS)
def test_stereo_formats_decode_to_two_channels_of_the_right_length(
    kind: str, stereo_files: dict[str, Path]
) -> None:
    audio = decode_audio(stereo_files[kind])
    assert audio.n_channels == (1 if kind == "amr" else 2)  # AMR-NB cannot carry stereo
    assert audio.sample_rate == 16000
    assert audio.duration_s == pytest.approx(4.0, abs=0.1)
    arrays = _arrays(audio)
    assert all(ch.dtype == np.float32 and ch.ndim == 1 for ch in arrays)
    assert len({len(ch) for ch in arrays}) == 1
    assert max(float(np.abs(ch).max()) for ch in arrays) > 0.05  # not silence


@pytest.mark.parametrize("kind", KINDS)
def test_mono_formats_decode_to_one_channel(kind: str, mono_files: dict[str, Path]) -> None:
    audio = decode_audio(mono_files[kind])
    assert audio.n_channels == 1
    assert audio.duration_s == pytest.approx(4.0, abs=0.1)
    assert _rms(audio.channels[0].read()) > 0.01


@pytest.mark.parametrize("kind", [k for k in KINDS if k != "amr"])
def test_agent_and_customer_channels_are_not_mixed(
    kind: str, stereo_files: dict[str, Path]
) -> None:
    # In the fixture the agent speaks first (channel 0), then the customer (channel 1).
    audio = decode_audio(stereo_files[kind])
    agent, customer = _arrays(audio)
    sr = audio.sample_rate
    agent_turn, customer_turn = slice(0, int(0.9 * sr)), slice(int(1.6 * sr), int(3.7 * sr))
    assert _rms(agent[agent_turn]) > 10 * _rms(customer[agent_turn])
    assert _rms(customer[customer_turn]) > 10 * _rms(agent[customer_turn])


def test_pcm_samples_come_through_unchanged_at_the_source_rate() -> None:
    with wave.open(str(STEREO_WAV)) as w:
        pcm = np.frombuffer(w.readframes(w.getnframes()), "<i2").reshape(-1, 2)
    audio = decode_audio(STEREO_WAV, sample_rate=8000)
    agent, customer = _arrays(audio)
    np.testing.assert_allclose(agent, pcm[:, 0] / 32768.0, atol=1e-6)
    np.testing.assert_allclose(customer, pcm[:, 1] / 32768.0, atol=1e-6)


def test_reports_source_rate_codec_and_container(stereo_files: dict[str, Path]) -> None:
    wav = decode_audio(STEREO_WAV)
    assert (wav.source_sample_rate, wav.codec, wav.container) == (8000, "pcm_s16le", "wav")
    mp3 = decode_audio(stereo_files["mp3"])
    assert (mp3.codec, mp3.container) == ("mp3", "mp3")  # the format, not the decoder's name
    assert decode_audio(stereo_files["mulaw"]).codec == "pcm_mulaw"


def test_more_than_two_channels_are_all_kept(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    samples = np.zeros((8000, 3), "<i2")
    samples[:, 1] = rng.integers(-8000, 8000, 8000)
    path = tmp_path / "three.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(3)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(samples.tobytes())
    audio = decode_audio(path)
    assert audio.n_channels == 3
    assert [_rms(ch) > 0.01 for ch in _arrays(audio)] == [False, True, False]


def test_parties_in_separate_streams_become_separate_channels(tmp_path: Path) -> None:
    # Some recorders store agent and customer as two mono streams instead of one stereo one.
    path = tmp_path / "two_streams.mka"
    tone = (np.sin(2 * np.pi * 440 * np.arange(8000) / 8000) * 8000).astype("<i2")
    with av.open(str(path), "w", format="matroska") as out:
        # All streams must exist before the first packet: muxing writes the header.
        streams = [out.add_stream("pcm_s16le", rate=8000, layout="mono") for _ in range(2)]
        for stream, signal in zip(streams, (tone, np.zeros_like(tone)), strict=True):
            frame = av.AudioFrame.from_ndarray(signal.reshape(1, -1), format="s16", layout="mono")
            frame.sample_rate, frame.pts = 8000, 0
            out.mux(stream.encode(frame))
            out.mux(stream.encode(None))
    audio = decode_audio(path)
    assert audio.n_channels == 2 and audio.duration_s == pytest.approx(1.0, abs=0.01)
    tone_channel, silent_channel = _arrays(audio)
    assert _rms(tone_channel) > 0.1 and _rms(silent_channel) == 0.0


def test_empty_file_is_reported_as_empty(tmp_path: Path) -> None:
    path = tmp_path / "empty.wav"
    path.touch()
    with pytest.raises(EmptyFile) as info:
        decode_audio(path)
    assert "0 bytes" in info.value.message
    _assert_bilingual(info.value.message, path)


def test_header_without_samples_is_reported_as_empty(tmp_path: Path) -> None:
    path = tmp_path / "header_only.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(8000)
    with pytest.raises(EmptyFile, match="no audio samples"):
        decode_audio(path)


def test_text_file_renamed_wav_is_not_audio(tmp_path: Path) -> None:
    path = tmp_path / "notes.wav"
    path.write_text("call_id,agent_id\ndev-001,A765\n催收记录\n", encoding="utf-8")
    with pytest.raises(UnsupportedFormat) as info:
        decode_audio(path)
    assert "not a recognisable audio file" in info.value.message
    assert info.value.code == "unsupported_format"
    _assert_bilingual(info.value.message, path)


def test_file_without_audio_stream_is_unsupported(tmp_path: Path) -> None:
    path = tmp_path / "subtitles.wav"  # FFmpeg recognises SRT by content
    path.write_text("1\n00:00:01,000 --> 00:00:02,000\n您好\n\n2\n00:00:03,000 --> 00:00:04,000\n")
    with pytest.raises(UnsupportedFormat, match="no audio stream"):
        decode_audio(path)


def test_missing_file_is_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFound):
        decode_audio(tmp_path / "nowhere.wav")


@pytest.mark.parametrize("kind", ["pcm16", "mulaw", "mp3", "aac", "amr"])
def test_truncated_file_raises_instead_of_returning_part_of_the_call(
    kind: str, stereo_files: dict[str, Path], tmp_path: Path
) -> None:
    data = stereo_files[kind].read_bytes()
    path = tmp_path / f"cut_{stereo_files[kind].name}"
    path.write_bytes(data[: int(len(data) * 0.6)])
    with pytest.raises(AudioDecodeError) as info:
        decode_audio(path)
    _assert_bilingual(info.value.message, path)
    # How far it got is part of the message, so the user knows how much was lost.
    decoded = float(str(info.value.context["decoded_s"]))
    assert 1.5 < decoded < 3.0
    assert f"{decoded:.2f} s" in info.value.message


def test_truncated_wav_names_the_declared_length(tmp_path: Path) -> None:
    data = STEREO_WAV.read_bytes()
    path = tmp_path / "cut.wav"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(AudioDecodeError, match=r"truncated: decoded 2\.00 s of the 4\.00 s"):
        decode_audio(path)


@pytest.mark.parametrize("kind", ["mp3", "m4a"])
def test_garbled_audio_raises_decode_error(
    kind: str, stereo_files: dict[str, Path], tmp_path: Path
) -> None:
    data = bytearray(stereo_files[kind].read_bytes())
    rng = random.Random(7)
    for i in range(len(data) // 3, len(data) // 3 + 600):  # well after the header
        data[i] = rng.randrange(256)
    path = tmp_path / f"garbled_{stereo_files[kind].name}"
    path.write_bytes(bytes(data))
    with pytest.raises(AudioDecodeError, match="damaged") as info:
        decode_audio(path)
    _assert_bilingual(info.value.message, path)


def test_audio_file_that_cannot_be_opened_is_damaged_not_unsupported(
    stereo_files: dict[str, Path], tmp_path: Path
) -> None:
    # An M4A cut short loses its index (written last): it is still recognisably audio.
    data = stereo_files["m4a"].read_bytes()
    path = tmp_path / "cut.m4a"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(AudioDecodeError, match="damaged or incomplete"):
        decode_audio(path)
