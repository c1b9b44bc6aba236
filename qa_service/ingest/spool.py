"""Decoded audio kept in temporary files and read back a stretch at a time.

At 16 kHz float32 a call's samples take 230 MB per channel-hour. Held in memory for the
whole analysis they made a 2-hour stereo call peak ~1 GB above a 10-minute one (issue 13,
``bench/bench_long_call.py``). Here each channel is written, as it is decoded, to a
temporary file without a name (``O_TMPFILE``, or unlinked as soon as it is created), so it
disappears when it is closed or when the process dies, whatever happens in between; the
stages then read the stretches they need into fresh arrays. A memory map would be simpler
to index, but every page it touches counts in the process's RSS until it is unmapped;
data read with ``read`` sits in the page cache, which is the kernel's to reclaim.

The samples are stored exactly as the decoder produced them (float32, not int16), so what a
stage reads is bit for bit what it read from the in-memory arrays before: the analysis of
a call does not depend on where its samples were kept.
"""

from __future__ import annotations

import errno
import io
import tempfile
from pathlib import Path
from typing import cast

import numpy as np

from qa_service.errors import ScratchSpaceError

_ITEM = np.dtype(np.float32).itemsize
# Decoded frames are a few KB; a large buffer turns them into few writes.
_WRITE_BUFFER = 1 << 20


class SpooledSamples:
    """One channel of decoded audio in a temporary file: :class:`~qa_service.domain.Samples`.

    Written once with :meth:`append` and :meth:`finish`, then read any number of times.
    """

    def __init__(self, directory: Path | None = None) -> None:
        self._directory = directory
        self._file = _temporary_file(directory)
        self._stored = 0  # samples written
        self._length = 0  # samples it reads as: the stored ones, then silence

    @property
    def closed(self) -> bool:
        return self._file.closed

    def __len__(self) -> int:
        return self._length

    def append(self, samples: np.ndarray) -> None:
        """Add ``samples`` (one channel, float32) at the end."""
        data = np.ascontiguousarray(samples, dtype=np.float32)
        try:
            self._file.write(data.data.cast("B"))
        except OSError as exc:
            raise _scratch_error(exc, self._directory) from exc
        self._stored += len(data)
        self._length = self._stored

    def finish(self, length: int) -> None:
        """End writing; the channel reads as ``length`` samples, silence past those written.

        The channels of a file's streams may differ in length by a frame or two; they are
        padded to the longest, as the in-memory decoder did.
        """
        try:
            self._file.flush()
        except OSError as exc:
            raise _scratch_error(exc, self._directory) from exc
        self._length = max(length, self._stored)

    def read(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Samples ``[start, stop)``, clipped to the channel, as a new float32 array."""
        start = min(max(start, 0), self._length)
        stop = self._length if stop is None else min(max(stop, start), self._length)
        out = np.zeros(stop - start, dtype=np.float32)
        stored = min(stop, self._stored) - start
        if stored > 0:
            want = stored * _ITEM
            try:
                self._file.seek(start * _ITEM)
                got = self._file.readinto(out.data.cast("B")[:want])
            except OSError as exc:
                raise _scratch_error(exc, self._directory) from exc
            if got != want:
                raise _scratch_error(OSError(errno.EIO, "short read"), self._directory)
        return out

    def close(self) -> None:
        """Delete the samples (the file has no name: closing it frees its space)."""
        self._file.close()


class AudioSpool:
    """Collects a decoder's blocks, channel by channel, into :class:`SpooledSamples`."""

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory
        self._channels: dict[tuple[int, int], SpooledSamples] = {}
        self.longest = 0  # samples in the longest channel so far

    def write(self, stream: int, planes: np.ndarray) -> None:
        """Append a block of shape (channels, samples) from the ``stream``-th audio stream."""
        for channel, samples in enumerate(planes):
            spooled = self._channel(stream, channel)
            spooled.append(samples)
            self.longest = max(self.longest, len(spooled))

    def finish(self, stream_channels: tuple[int, ...], length: int) -> tuple[SpooledSamples, ...]:
        """The channels of every stream, in stream order, each reading as ``length`` samples."""
        out = tuple(
            self._channel(stream, channel)
            for stream, count in enumerate(stream_channels)
            for channel in range(count)
        )
        for spooled in out:
            spooled.finish(length)
        return out

    def close(self) -> None:
        """Delete every channel written so far."""
        for spooled in self._channels.values():
            spooled.close()

    def _channel(self, stream: int, channel: int) -> SpooledSamples:
        key = (stream, channel)
        if key not in self._channels:
            self._channels[key] = SpooledSamples(self.directory)
        return self._channels[key]


def _temporary_file(directory: Path | None) -> io.BufferedRandom:
    try:
        # Binary "w+b" with a buffer size is a BufferedRandom (typeshed says only IO[bytes]).
        file = tempfile.TemporaryFile(  # noqa: SIM115 - lives as long as the SpooledSamples
            prefix="qa-audio-", suffix=".f32", dir=directory, buffering=_WRITE_BUFFER
        )
        return cast(io.BufferedRandom, file)
    except OSError as exc:
        raise _scratch_error(exc, directory) from exc


def _scratch_error(exc: OSError, directory: Path | None) -> ScratchSpaceError:
    where = str(directory) if directory is not None else tempfile.gettempdir()
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return ScratchSpaceError(
            f"临时目录 {where} 空间不足，无法存放解码后的音频（双声道每小时录音约需 0.9 GB，"
            "可用环境变量 TMPDIR 指定其他目录） / the temporary directory "
            f"{where} is full: no room for the decoded audio (about 0.9 GB per hour of stereo "
            "recording; set TMPDIR to use another directory)",
            directory=where,
            reason=exc.strerror or str(exc),
        )
    return ScratchSpaceError(
        f"无法在临时目录 {where} 存放解码后的音频（{exc.strerror or exc}） / cannot keep the "
        f"decoded audio in the temporary directory {where} ({exc.strerror or exc})",
        directory=where,
        reason=exc.strerror or str(exc),
    )
