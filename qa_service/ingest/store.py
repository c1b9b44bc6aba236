"""The audio store: recordings kept by the SHA-256 of their bytes, in one directory tree.

Uploads and workers share it (a local disk, or a mount every worker machine sees), so a
file must never be visible under its final name half written: every write goes to a
temporary name in the destination directory, is fsynced, then renamed with ``os.replace``
(atomic on POSIX within one file system). The same bytes always land on the same path, so
storing a recording twice costs nothing and leaves one file.

Layout: ``<root>/ab/cd/<sha256><ext>`` (two fan-out levels keep directories small). Files
derived from a recording (its waveform peaks) lie beside it as ``<sha256>.<kind>.<ext>`` and
are deleted with it. Framework-free on purpose: it is part of the ingest stage.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from qa_service.errors import RecordingTooLarge, StorageError

_SHA256 = re.compile(r"[0-9a-f]{64}")
_EXT = re.compile(r"\.[a-z0-9]{1,8}")
_DERIVED = re.compile(r"\.[a-z0-9_]{1,16}\.[a-z0-9]{1,8}")  # ".peaks.json"
_CHUNK = 1 << 20


@dataclass(frozen=True)
class StoredAudio:
    """One recording in the store."""

    sha256: str
    path: Path
    size: int

    @property
    def ext(self) -> str:
        return self.path.suffix


def _check_sha(sha256: str) -> str:
    if not _SHA256.fullmatch(sha256):
        raise ValueError(f"not a lower-case SHA-256 hex digest: {sha256!r}")
    return sha256


def normalize_ext(ext: str) -> str:
    """``'WAV'`` or ``'.wav'`` → ``'.wav'``; anything odd (paths, long names) → ``''``.

    The extension is kept only as a hint for humans and decoders; the bytes identify the file.
    """
    ext = ext.strip().lower()
    if ext and not ext.startswith("."):
        ext = "." + ext
    return ext if _EXT.fullmatch(ext) else ""


def _storage_error(exc: OSError, action: str, path: Path) -> StorageError:
    if exc.errno == errno.ENOSPC:
        return StorageError(
            f"录音存储空间已满，无法保存录音（{path}） / the audio store is full; "
            f"cannot store the recording ({path})",
            path=path,
            action=action,
        )
    return StorageError(
        f"无法写入录音存储（{action}：{exc.strerror or exc}） / cannot write to the audio "
        f"store ({action}: {exc})",
        path=path,
        action=action,
    )


class AudioStore:
    """A content-addressed directory of recordings (see the module docstring)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def _dir_for(self, sha256: str) -> Path:
        return self.root / sha256[:2] / sha256[2:4]

    def path_for(self, sha256: str, ext: str | None = None) -> Path:
        """Where ``sha256`` lives; with ``ext=None`` the stored file whatever its extension.

        Without an extension and no stored file, the extension-less path is returned (it
        does not exist): callers check ``exists()``.
        """
        directory = self._dir_for(_check_sha(sha256))
        if ext is not None:
            return directory / f"{sha256}{normalize_ext(ext)}"
        if directory.is_dir():
            for candidate in sorted(directory.iterdir()):
                if candidate.stem == sha256 and candidate.is_file():
                    return candidate
        return directory / sha256

    def find(self, sha256: str) -> StoredAudio | None:
        """The stored recording with these bytes, if any."""
        path = self.path_for(sha256)
        if not path.is_file():
            return None
        return StoredAudio(sha256, path, path.stat().st_size)

    def put_file(self, source: Path, *, ext: str = "") -> StoredAudio:
        """Copy ``source`` into the store (hashing it on the way); the source is left as is."""
        with Path(source).open("rb") as f:
            return self.put_stream(iter(lambda: f.read(_CHUNK), b""), max_bytes=None, ext=ext)

    def put_stream(
        self, chunks: Iterable[bytes], *, max_bytes: int | None, ext: str = ""
    ) -> StoredAudio:
        """Store the bytes of ``chunks``, hashing while writing.

        Raises :class:`RecordingTooLarge` as soon as more than ``max_bytes`` arrived, and
        :class:`StorageError` when the disk is full or unwritable; either way nothing is
        left behind (the temporary file is removed).
        """
        ext = normalize_ext(ext)
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            fd, tmp_name = tempfile.mkstemp(prefix=".upload-", suffix=".part", dir=self.root)
        except OSError as exc:
            raise _storage_error(exc, "create", self.root) from exc
        tmp = Path(tmp_name)
        digest = hashlib.sha256()
        size = 0
        try:
            with os.fdopen(fd, "wb") as out:
                # Errors raised by the source itself (a client that hung up) pass through
                # unchanged; only the store's own writes become StorageError.
                for chunk in chunks:
                    size += len(chunk)
                    if max_bytes is not None and size > max_bytes:
                        raise RecordingTooLarge(
                            f"录音超过大小上限 {max_bytes / 1_048_576:.0f} MB / the recording "
                            f"is larger than the {max_bytes / 1_048_576:.0f} MB limit",
                            max_bytes=max_bytes,
                        )
                    digest.update(chunk)
                    with _writing(tmp):
                        out.write(chunk)
                with _writing(tmp):
                    out.flush()
                    os.fsync(out.fileno())
            sha256 = digest.hexdigest()
            final = self.path_for(sha256, ext)
            with _writing(final):
                final.parent.mkdir(parents=True, exist_ok=True)
                # Atomic: the temporary file lies under the same root, so on the same file
                # system. The same bytes stored again replace an identical file.
                os.replace(tmp, final)
            _fsync_dir(final.parent)
            return StoredAudio(sha256, final, size)
        finally:
            _unlink_quietly(tmp)

    def derived_path(self, sha256: str, suffix: str) -> Path:
        """Where a file derived from the recording ``sha256`` lies (``suffix`` such as
        ``.peaks.json``): beside the recording, whether or not the recording is stored."""
        if not _DERIVED.fullmatch(suffix):
            raise ValueError(f"not a derived-file suffix like '.peaks.json': {suffix!r}")
        return self._dir_for(_check_sha(sha256)) / f"{sha256}{suffix}"

    def put_derived(self, sha256: str, suffix: str, data: bytes) -> Path:
        """Write a derived file atomically (temporary name, then ``os.replace``).

        Not fsynced: a derived file is a cache that can be computed again, so a reader
        that finds it damaged after a crash recomputes it.
        """
        final = self.derived_path(sha256, suffix)
        try:
            final.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp_name = tempfile.mkstemp(prefix=".derived-", suffix=".part", dir=final.parent)
        except OSError as exc:
            raise _storage_error(exc, "create", final.parent) from exc
        tmp = Path(tmp_name)
        try:
            with _writing(tmp), os.fdopen(fd, "wb") as out:
                out.write(data)
            with _writing(final):
                os.replace(tmp, final)
            return final
        finally:
            _unlink_quietly(tmp)

    def delete(self, sha256: str) -> bool:
        """Remove the stored recording with these bytes and the files derived from it;
        False if there was no recording."""
        path = self.path_for(sha256)
        found = path.is_file()
        if found:
            try:
                path.unlink()
            except FileNotFoundError:
                found = False
            except OSError as exc:
                raise _storage_error(exc, "delete", path) from exc
        self._delete_derived(sha256)
        return found

    def _delete_derived(self, sha256: str) -> None:
        directory = self._dir_for(sha256)
        if not directory.is_dir():
            return
        for candidate in directory.iterdir():
            name = candidate.name
            if name.startswith(sha256) and _DERIVED.fullmatch(name[len(sha256) :]):
                try:
                    candidate.unlink()
                except FileNotFoundError:
                    pass
                except OSError as exc:
                    raise _storage_error(exc, "delete", candidate) from exc

    def free_bytes(self) -> int:
        """Free space on the store's file system (for readiness checks)."""
        self.root.mkdir(parents=True, exist_ok=True)
        return shutil.disk_usage(self.root).free


@contextmanager
def _writing(path: Path) -> Iterator[None]:
    try:
        yield
    except OSError as exc:
        raise _storage_error(exc, "write", path) from exc


def _fsync_dir(directory: Path) -> None:
    # The rename is durable only once the directory entry is on disk.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some network file systems refuse fsync on directories
    finally:
        os.close(fd)


def _unlink_quietly(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    except OSError:
        pass  # best effort: a stale ``.upload-*.part`` harms nothing but space
