"""Decode a recording into separate float32 channels at the analysis sample rate.

Call-centre recorders put the agent on one channel and the customer on the other; mixing them
down (what faster-whisper's own ``decode_audio`` does) would lose who said what, so we decode
with the same library (PyAV) but keep every channel apart. faster-whisper also skips frames it
cannot decode; here a damaged or truncated file is an error the user sees, because a silently
shortened recording would hide exactly the part of a call a QA reviewer may need.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np

from qa_service.domain import DecodedAudio
from qa_service.errors import AudioDecodeError, EmptyFile, FileNotFound, UnsupportedFormat

# A decoded length shorter than the header declares by more than this is a truncated file.
# The slack absorbs codec priming/padding (AAC, Opus) and rounding in container headers; a RIFF
# data size is exact, so WAV gets only a frame's worth.
_SHORTFALL_MIN_S = 0.5
_SHORTFALL_FRACTION = 0.05
_WAV_SHORTFALL_S = 0.05

# Containers whose declared duration comes from the file itself (an index, a page granule, an
# MP3 Xing/Info header). For AMR and raw ADTS AAC FFmpeg only guesses the duration from the
# bitrate, which DTX silence frames and VBR make wrong; a cut there is caught instead by the
# decoder's error on the incomplete last frame. WAV is checked from its RIFF header, because
# FFmpeg quietly shrinks a PCM data chunk to whatever the file holds.
_INDEXED_FORMATS = frozenset({"ogg", "mov,mp4,m4a,3gp,3g2,mj2", "mp3", "matroska,webm", "flac"})

# Leading bytes of the audio containers we know. If FFmpeg cannot open a file that starts like
# one of these, the file is a damaged recording, not some other kind of file.
_AUDIO_MAGIC = (b"RIFF", b"RF64", b"ID3", b"#!AMR", b"OggS", b"fLaC", b"FORM", b"\x1a\x45\xdf\xa3")


def decode_audio(path: Path, *, sample_rate: int = 16000) -> DecodedAudio:
    """Decode every channel of ``path`` to float32 at ``sample_rate``, channels kept apart.

    A file with several audio streams (rare: some recorders store each party as its own mono
    stream) yields the channels of all of them, in stream order, padded to a common length.
    Raises :class:`FileNotFound`, :class:`EmptyFile`, :class:`UnsupportedFormat` (not audio,
    no audio stream) or :class:`AudioDecodeError` (damaged or truncated).
    """
    path = Path(path)
    check_audio_file(path)
    with _open(path) as container:
        streams = list(container.streams.audio)
        if not streams:
            kinds = ", ".join(sorted({s.type for s in container.streams})) or "none"
            raise UnsupportedFormat(
                f"{path}：文件中没有音频流（只有 {kinds}） / "
                f"{path}: the file has no audio stream (only {kinds})",
                path=path,
                container=container.format.name,
            )
        decoders = {s.index: _StreamDecoder(s, sample_rate) for s in streams}
        try:
            for packet in container.demux(*streams):
                decoder = decoders[packet.stream.index]
                for frame in packet.decode():
                    if isinstance(frame, av.AudioFrame):  # always so for an audio stream
                        decoder.push(frame)
            for decoder in decoders.values():
                decoder.finish()
        except (av.FFmpegError, _LayoutChanged) as exc:
            done = max(d.samples for d in decoders.values()) / sample_rate
            reason = exc.strerror if isinstance(exc, av.FFmpegError) else str(exc)
            raise AudioDecodeError(
                f"{path}：音频已损坏，解码到第 {done:.2f} 秒时出错（{reason}） / "
                f"{path}: the audio is damaged; decoding failed after {done:.2f} s ({reason})",
                path=path,
                decoded_s=round(done, 2),
            ) from exc
        container_name = container.format.name
        # Read while the container is open: the stream objects die with it.
        codecs = dict.fromkeys(d.codec for d in decoders.values())  # ordered, no repeats
        for decoder in decoders.values():
            _check_complete(path, decoder, container_name, container.duration)
    _check_wav_length(path, container_name, decoders)

    length = max(d.samples for d in decoders.values())
    if length == 0:
        raise EmptyFile(
            f"{path}：文件里没有任何音频数据 / {path}: the file holds no audio samples",
            path=path,
        )
    first = next(iter(decoders.values()))
    return DecodedAudio(
        channels=tuple(ch for d in decoders.values() for ch in d.channels(length)),
        sample_rate=sample_rate,
        source_sample_rate=first.source_rate,
        codec="+".join(codecs),
        container=container_name,
    )


def probe_audio(path: Path) -> str:
    """Check that ``path`` is audio by opening it and decoding its first packet; the container.

    Cheap (reads a header and one packet), for refusing a non-audio upload before it is
    stored. Raises like :func:`decode_audio`: :class:`UnsupportedFormat` when the content
    is not audio whatever the file is called, :class:`AudioDecodeError` when it is damaged.
    """
    path = Path(path)
    check_audio_file(path)
    with _open(path) as container:
        streams = list(container.streams.audio)
        if not streams:
            kinds = ", ".join(sorted({s.type for s in container.streams})) or "none"
            raise UnsupportedFormat(
                f"{path}：文件中没有音频流（只有 {kinds}） / "
                f"{path}: the file has no audio stream (only {kinds})",
                path=path,
                container=container.format.name,
            )
        try:
            for packet in container.demux(streams[0]):
                if packet.size and packet.decode() is not None:
                    break
        except av.FFmpegError as exc:
            raise AudioDecodeError(
                f"{path}：音频已损坏，无法解码（{exc.strerror}） / "
                f"{path}: the audio is damaged and cannot be decoded ({exc.strerror})",
                path=path,
            ) from exc
        return str(container.format.name)


def check_audio_file(path: Path) -> None:
    """Raise :class:`FileNotFound` or :class:`EmptyFile` before any work is spent on ``path``."""
    if not path.is_file():
        if path.exists():
            raise UnsupportedFormat(
                f"{path}：不是文件（是目录？） / {path}: not a regular file (a directory?)",
                path=path,
            )
        raise FileNotFound(f"{path}：文件不存在 / {path}: file not found", path=path)
    if path.stat().st_size == 0:
        raise EmptyFile(
            f"{path}：文件是空的（0 字节） / {path}: the file is empty (0 bytes)", path=path
        )


def _open(path: Path) -> av.container.InputContainer:
    try:
        # Chinese MP3 tags are often GBK; with the default strict UTF-8 PyAV would fail to open
        # a perfectly playable file just because of its title tag.
        return av.open(str(path), metadata_errors="ignore")
    except FileNotFoundError as exc:  # removed between the check and the open
        raise FileNotFound(f"{path}：文件不存在 / {path}: file not found", path=path) from exc
    except PermissionError as exc:
        raise AudioDecodeError(
            f"{path}：没有读取权限 / {path}: permission denied", path=path
        ) from exc
    except av.FFmpegError as exc:
        if _looks_like_audio(path):
            raise AudioDecodeError(
                f"{path}：音频文件已损坏或不完整，无法打开（{exc.strerror}） / "
                f"{path}: the audio file is damaged or incomplete and cannot be opened "
                f"({exc.strerror})",
                path=path,
            ) from exc
        raise UnsupportedFormat(
            f"{path}：不是可识别的音频文件 / {path}: not a recognisable audio file",
            path=path,
        ) from exc


def _looks_like_audio(path: Path) -> bool:
    with path.open("rb") as f:
        head = f.read(12)
    if head.startswith(_AUDIO_MAGIC) or head[4:8] == b"ftyp":
        return True
    # MPEG audio frame sync (MP3 without ID3 tag, ADTS AAC): eleven set bits.
    return len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0


class _LayoutChanged(Exception):
    """The channel count changed mid-stream: the channels could no longer be told apart."""


@dataclass
class _StreamDecoder:
    """Resamples one audio stream's frames and collects them per channel."""

    stream: av.AudioStream
    sample_rate: int
    chunks: list[np.ndarray] = field(default_factory=list)
    samples: int = 0
    n_channels: int = 0
    source_rate: int = 0
    _resampler: av.AudioResampler | None = None
    _source_key: tuple[str, str, int] | None = None

    @property
    def codec(self) -> str:
        # canonical_name is the format ("mp3"), not the decoder ("mp3float").
        return str(self.stream.codec_context.codec.canonical_name)

    def push(self, frame: av.AudioFrame) -> None:
        key = (frame.format.name, frame.layout.name, frame.sample_rate)
        if key != self._source_key:
            # A resampler is built for one input format; streams may switch rate mid-file
            # (concatenated MP3s), so flush and rebuild rather than feed it a mismatch.
            channels = frame.layout.nb_channels
            if self.n_channels and channels != self.n_channels:
                raise _LayoutChanged(f"channel count changed from {self.n_channels} to {channels}")
            self._drain(None)
            self._resampler = av.AudioResampler(
                format="fltp", layout=frame.layout, rate=self.sample_rate
            )
            self._source_key = key
            self.n_channels = channels
            self.source_rate = self.source_rate or frame.sample_rate
        self._drain(frame)

    def finish(self) -> None:
        self._drain(None)

    def _drain(self, frame: av.AudioFrame | None) -> None:
        if self._resampler is None:
            return
        for out in self._resampler.resample(frame):
            planes = out.to_ndarray()  # fltp: shape (channels, samples), float32
            self.chunks.append(planes)
            self.samples += planes.shape[1]

    def channels(self, length: int) -> tuple[np.ndarray, ...]:
        if not self.chunks:
            return tuple(np.zeros(length, np.float32) for _ in range(self.n_channels))
        planes = np.concatenate(self.chunks, axis=1)
        if planes.shape[1] < length:
            planes = np.pad(planes, ((0, 0), (0, length - planes.shape[1])))
        return tuple(np.ascontiguousarray(p, dtype=np.float32) for p in planes)


def _check_complete(
    path: Path, decoder: _StreamDecoder, container_name: str, container_duration: int | None
) -> None:
    """Raise if the stream decoded to clearly less than its container declares."""
    if container_name not in _INDEXED_FORMATS:
        return
    stream = decoder.stream
    if stream.duration is not None and stream.time_base is not None:
        declared = float(stream.duration * stream.time_base)
    elif container_duration is not None:
        declared = container_duration / av.time_base
    else:
        return
    slack = max(_SHORTFALL_MIN_S, _SHORTFALL_FRACTION * declared)
    _raise_if_short(path, decoder.samples / decoder.sample_rate, declared, slack)


def _check_wav_length(path: Path, container_name: str, decoders: dict[int, _StreamDecoder]) -> None:
    if container_name != "wav":
        return
    declared = _wav_declared_seconds(path)
    if declared is not None:
        decoded = max(d.samples / d.sample_rate for d in decoders.values())
        _raise_if_short(path, decoded, declared, _WAV_SHORTFALL_S)


def _raise_if_short(path: Path, decoded: float, declared: float, slack: float) -> None:
    if declared - decoded > slack:
        raise AudioDecodeError(
            f"{path}：文件不完整（被截断），只解码出 {decoded:.2f} 秒，"
            f"文件头声明 {declared:.2f} 秒 / "
            f"{path}: the file is truncated: decoded {decoded:.2f} s of the {declared:.2f} s "
            "its header declares",
            path=path,
            decoded_s=round(decoded, 2),
            declared_s=round(declared, 2),
        )


def _wav_declared_seconds(path: Path) -> float | None:
    """Length the RIFF header promises, or None where it promises nothing checkable."""
    with path.open("rb") as f:
        if f.read(12)[8:12] != b"WAVE":  # RF64 keeps its sizes elsewhere: not checked
            return None
        byte_rate = 0
        while True:
            header = f.read(8)
            if len(header) < 8:
                return None
            chunk_id, chunk_size = struct.unpack("<4sI", header)
            if chunk_id == b"fmt " and chunk_size >= 12:
                byte_rate = struct.unpack("<I", f.read(12)[8:12])[0]
                f.seek(chunk_size - 12 + (chunk_size & 1), 1)
            elif chunk_id == b"data":
                # Recorders that stream to disk write 0 or 0xFFFFFFFF until they finish.
                if byte_rate == 0 or chunk_size in (0, 0xFFFFFFFF):
                    return None
                return chunk_size / byte_rate
            else:
                f.seek(chunk_size + (chunk_size & 1), 1)
