"""Decode a recording into separate float32 channels at the analysis sample rate.

Call-centre recorders put the agent on one channel and the customer on the other; mixing them
down (what faster-whisper's own ``decode_audio`` does) would lose who said what, so we decode
with the same library (PyAV) but keep every channel apart. faster-whisper also skips frames it
cannot decode; here a damaged or truncated file is an error the user sees, because a silently
shortened recording would hide exactly the part of a call a QA reviewer may need.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import av
import numpy as np

from qa_service.domain import DecodedAudio
from qa_service.errors import (
    AudioDecodeError,
    EmptyFile,
    FileNotFound,
    ImplausibleAudio,
    UnsupportedFormat,
)
from qa_service.ingest.spool import AudioSpool

# A decoded length shorter than the header declares by more than this is a truncated file.
# The slack absorbs codec priming/padding (AAC, Opus) and rounding in container headers; a RIFF
# data size is exact, so WAV gets only a frame's worth.
_SHORTFALL_MIN_S = 0.5
_SHORTFALL_FRACTION = 0.05
_WAV_SHORTFALL_S = 0.05

# What a call recording can plausibly be; a header claiming more is refused before decoding
# (an "audio bomb" would make the decoder allocate for channels or hours that are not there).
MAX_CHANNELS = 8
MIN_SAMPLE_RATE = 4000
MAX_SAMPLE_RATE = 384_000

# Containers whose declared duration comes from the file itself (an index, a page granule, an
# MP3 Xing/Info header). For AMR and raw ADTS AAC FFmpeg only guesses the duration from the
# bitrate, which DTX silence frames and VBR make wrong; a cut there is caught instead by the
# decoder's error on the incomplete last frame. WAV is checked from its RIFF header, because
# FFmpeg quietly shrinks a PCM data chunk to whatever the file holds.
_INDEXED_FORMATS = frozenset({"ogg", "mov,mp4,m4a,3gp,3g2,mj2", "mp3", "matroska,webm", "flac"})

# Leading bytes of the audio containers we know. If FFmpeg cannot open a file that starts like
# one of these, the file is a damaged recording, not some other kind of file.
_AUDIO_MAGIC = (b"RIFF", b"RF64", b"ID3", b"#!AMR", b"OggS", b"fLaC", b"FORM", b"\x1a\x45\xdf\xa3")


BlockSink = Callable[[int, np.ndarray], None]
"""Receives decoded audio as it comes: the stream's position among the file's audio streams
and a float32 array of shape (channels, samples) at the requested sample rate (copy what
you keep: the array may be a view of the decoder's frame)."""


@dataclass(frozen=True)
class StreamedAudio:
    """What :func:`stream_audio` learnt about a recording while handing its blocks on."""

    stream_channels: tuple[int, ...]  # channels of each audio stream, in stream order
    samples: int  # the longest stream's length at ``sample_rate``
    sample_rate: int
    codec: str
    container: str

    @property
    def duration_s(self) -> float:
        return self.samples / self.sample_rate


def decode_audio(
    path: Path,
    *,
    sample_rate: int = 16000,
    max_duration_s: float | None = None,
    spool_dir: Path | None = None,
) -> DecodedAudio:
    """Decode every channel of ``path`` to float32 at ``sample_rate``, channels kept apart.

    A file with several audio streams (rare: some recorders store each party as its own mono
    stream) yields the channels of all of them, in stream order, padded to a common length.
    The samples go, block by block as they are decoded, to temporary files in ``spool_dir``
    (default: the system's, ``TMPDIR``) and are read back on demand
    (:mod:`qa_service.ingest.spool`): memory does not grow with the recording's length.
    Close the result when done; on an error nothing is left behind.

    Raises :class:`FileNotFound`, :class:`EmptyFile`, :class:`UnsupportedFormat` (not audio,
    no audio stream), :class:`AudioDecodeError` (damaged or truncated),
    :class:`ImplausibleAudio` (decodes to more than ``max_duration_s``) or
    :class:`ScratchSpaceError` (the temporary directory is full or unusable).
    """
    path = Path(path)
    spool = AudioSpool(spool_dir)
    limit_s = max_duration_s if max_duration_s is not None else float("inf")

    def keep(stream: int, planes: np.ndarray) -> None:
        spool.write(stream, planes)
        if spool.longest > limit_s * sample_rate:
            # Headers can lie or say nothing (AMR, ADTS, a streamed WAV): stop an "audio
            # bomb" at the limit rather than fill the disk with it.
            raise _implausible(
                path,
                f"解码出的音频超过时长上限 {limit_s / 3600:g} 小时",
                f"the audio decodes to more than the {limit_s / 3600:g} h limit",
                max_duration_s=limit_s,
            )

    try:
        decoders, info = _decode(path, sample_rate, keep)
        channels = spool.finish(info.stream_channels, info.samples)
    except BaseException:
        spool.close()
        raise
    return DecodedAudio(
        channels=channels,
        sample_rate=sample_rate,
        source_sample_rate=decoders[0].source_rate,
        codec=info.codec,
        container=info.container,
    )


def stream_audio(path: Path, sink: BlockSink, *, sample_rate: int = 16000) -> StreamedAudio:
    """Decode ``path`` like :func:`decode_audio`, but hand each block to ``sink`` as it is
    decoded instead of keeping it: memory stays flat however long the recording.

    The same checks and errors as :func:`decode_audio`; a file found damaged or truncated
    raises after ``sink`` has seen the part before the damage.
    """
    return _decode(Path(path), sample_rate, sink)[1]


def _decode(
    path: Path, sample_rate: int, sink: BlockSink
) -> tuple[list[_StreamDecoder], StreamedAudio]:
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
        decoders = {
            s.index: _StreamDecoder(s, sample_rate, sink=partial(sink, i))
            for i, s in enumerate(streams)
        }
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
    ordered = list(decoders.values())
    info = StreamedAudio(
        stream_channels=tuple(d.n_channels for d in ordered),
        samples=length,
        sample_rate=sample_rate,
        codec="+".join(codecs),
        container=container_name,
    )
    return ordered, info


def probe_audio(path: Path, *, max_duration_s: float | None = None) -> str:
    """Check that ``path`` is audio by opening it and decoding its first packet; the container.

    Cheap (reads a header and one packet), for refusing a non-audio upload before it is
    stored. Raises like :func:`decode_audio`: :class:`UnsupportedFormat` when the content
    is not audio whatever the file is called, :class:`AudioDecodeError` when it is damaged,
    and :class:`ImplausibleAudio` when a header claims what no call recording has (an
    "audio bomb": thousands of channels, an absurd sample rate, a duration past
    ``max_duration_s``, a WAV data size far beyond the bytes the file holds).
    """
    path = Path(path)
    check_audio_file(path)
    _check_wav_header(path, max_duration_s)
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
        for stream in streams:
            _check_stream_header(path, stream, max_duration_s)
        if max_duration_s is not None and container.duration is not None:
            _check_duration(path, container.duration / av.time_base, max_duration_s)
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


def _implausible(path: Path, zh: str, en: str, **context: object) -> ImplausibleAudio:
    return ImplausibleAudio(f"{path}：{zh} / {path}: {en}", path=path, **context)


def _check_duration(path: Path, seconds: float, max_duration_s: float) -> None:
    if seconds > max_duration_s:
        raise _implausible(
            path,
            f"文件头声明的时长 {seconds / 3600:.1f} 小时超过上限 {max_duration_s / 3600:g} 小时",
            f"the header declares {seconds / 3600:.1f} h, over the "
            f"{max_duration_s / 3600:g} h limit",
            declared_s=round(seconds),
        )


def _check_stream_header(path: Path, stream: av.AudioStream, max_duration_s: float | None) -> None:
    channels = stream.codec_context.channels
    if not 1 <= channels <= MAX_CHANNELS:
        raise _implausible(
            path,
            f"声道数异常（{channels}，最多 {MAX_CHANNELS}）",
            f"implausible channel count {channels} (at most {MAX_CHANNELS})",
            channels=channels,
        )
    rate = stream.codec_context.sample_rate
    if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        raise _implausible(
            path,
            f"采样率异常（{rate} Hz，应在 {MIN_SAMPLE_RATE}–{MAX_SAMPLE_RATE} Hz）",
            f"implausible sample rate {rate} Hz ({MIN_SAMPLE_RATE}-{MAX_SAMPLE_RATE} Hz)",
            sample_rate=rate,
        )
    if max_duration_s is not None and stream.duration is not None and stream.time_base:
        _check_duration(path, float(stream.duration * stream.time_base), max_duration_s)


def _check_wav_header(path: Path, max_duration_s: float | None) -> None:
    """Refuse a RIFF header whose channel count or data size no recording has.

    FFmpeg cannot be asked: it trusts the file size over a PCM data chunk's size, and a
    header of 65,535 channels fails inside the decoder with a message nobody can act on.
    """
    header = _wav_header(path)
    if header is None:
        return
    if not 1 <= header.channels <= MAX_CHANNELS:
        raise _implausible(
            path,
            f"声道数异常（{header.channels}，最多 {MAX_CHANNELS}）",
            f"implausible channel count {header.channels} (at most {MAX_CHANNELS})",
            channels=header.channels,
        )
    if header.byte_rate == 0 or header.data_size in (0, 0xFFFFFFFF):
        return  # recorders that stream to disk write these until they finish
    held = path.stat().st_size - header.data_offset
    if max_duration_s is not None:
        _check_duration(path, header.data_size / header.byte_rate, max_duration_s)
    if header.data_size - held > header.byte_rate * _WAV_SHORTFALL_S:
        raise _implausible(
            path,
            f"文件头声明音频数据 {header.data_size} 字节，文件只有 {max(held, 0)} 字节"
            "（文件不完整或头部伪造）",
            f"the header declares {header.data_size} bytes of audio but the file holds "
            f"{max(held, 0)} (truncated or forged header)",
            declared_bytes=header.data_size,
            held_bytes=max(held, 0),
        )


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
    """Resamples one audio stream's frames and hands them on; keeps nothing."""

    stream: av.AudioStream
    sample_rate: int
    sink: Callable[[np.ndarray], None]  # receives (channels, samples) float32 blocks
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
            self._append(planes)

    def _append(self, planes: np.ndarray) -> None:
        self.sink(planes)
        self.samples += planes.shape[1]


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
    header = _wav_header(path)
    # Recorders that stream to disk write 0 or 0xFFFFFFFF until they finish.
    if header is None or header.byte_rate == 0 or header.data_size in (0, 0xFFFFFFFF):
        return None
    return header.data_size / header.byte_rate


@dataclass(frozen=True)
class _WavHeader:
    channels: int
    byte_rate: int
    data_size: int
    data_offset: int  # where the data chunk's bytes start


def _wav_header(path: Path) -> _WavHeader | None:
    """The RIFF header's format and data chunk, or None for RF64 and anything not WAVE."""
    with path.open("rb") as f:
        if f.read(12)[8:12] != b"WAVE":  # RF64 keeps its sizes elsewhere: not checked
            return None
        channels = byte_rate = 0
        while True:
            header = f.read(8)
            if len(header) < 8:
                return None
            chunk_id, chunk_size = struct.unpack("<4sI", header)
            if chunk_id == b"fmt " and chunk_size >= 12:
                fmt = f.read(12)
                if len(fmt) < 12:
                    return None
                channels = struct.unpack("<H", fmt[2:4])[0]
                byte_rate = struct.unpack("<I", fmt[8:12])[0]
                f.seek(chunk_size - 12 + (chunk_size & 1), 1)
            elif chunk_id == b"data":
                return _WavHeader(channels, byte_rate, chunk_size, f.tell())
            else:
                f.seek(chunk_size + (chunk_size & 1), 1)
