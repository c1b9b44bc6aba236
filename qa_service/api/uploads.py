"""Receive a multipart recording upload into a temporary file, enforcing the size limit as
the bytes arrive.

Starlette's ``request.form()`` spools the whole body before a route sees it, so a 2 GB
upload would be read (and written to disk) before being refused. Here the body is fed to
python-multipart chunk by chunk and reading stops at the first byte over the limit: a
declared ``Content-Length`` over the limit is refused before reading anything, and a
chunked body is counted as it streams. The caller owns the returned file; on any refusal
nothing is left behind.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request

from qa_service.errors import InputError, MetadataError, RecordingTooLarge, StorageError

FILE_FIELD = "file"
METADATA_FIELD = "metadata"
# Sidecars are a few hundred bytes; anything near this is not a sidecar.
MAX_METADATA_BYTES = 64 * 1024
# Boundaries, part headers and the metadata field on top of the recording itself.
_ENVELOPE_BYTES = MAX_METADATA_BYTES + 16 * 1024


@dataclass
class ReceivedUpload:
    """A recording received in full: its temporary file (the caller deletes it)."""

    path: Path
    filename: str
    size: int
    metadata: bytes | None


@dataclass
class _Part:
    name: str = ""
    filename: str | None = None
    disposition: bytes = b""
    header_name: bytes = b""
    header_value: bytes = b""
    data: bytearray = field(default_factory=bytearray)


def too_large(max_bytes: int) -> RecordingTooLarge:
    mb = max_bytes / (1024 * 1024)
    return RecordingTooLarge(
        f"录音超过大小上限 {mb:g} MB / the recording exceeds the {mb:g} MB limit",
        max_bytes=max_bytes,
    )


def _invalid(zh: str, en: str) -> InputError:
    return InputError(f"{zh} / {en}")


def _safe_filename(raw: str) -> str:
    # A browser sends a bare name; other clients may send a path, even a Windows one.
    name = PurePosixPath(raw.replace("\\", "/")).name.strip()
    return name[-200:] if name else "recording"


class _Receiver:
    """python-multipart callbacks writing the file part to disk and keeping the metadata."""

    def __init__(self, *, max_bytes: int, tmp_dir: Path) -> None:
        self.max_bytes = max_bytes
        self.tmp_dir = tmp_dir
        self.part = _Part()
        self.file: BinaryIO | None = None
        self.path: Path | None = None
        self.filename: str | None = None
        self.size = 0
        self.metadata: bytes | None = None

    def on_part_begin(self) -> None:
        self.part = _Part()

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self.part.header_name += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self.part.header_value += data[start:end]

    def on_header_end(self) -> None:
        if self.part.header_name.strip().lower() == b"content-disposition":
            self.part.disposition = self.part.header_value
        self.part.header_name = self.part.header_value = b""

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self.part.disposition)
        self.part.name = options.get(b"name", b"").decode("utf-8", "replace")
        if b"filename" in options:
            self.part.filename = options[b"filename"].decode("utf-8", "replace")
        if self.part.name == FILE_FIELD:
            if self.file is not None:
                raise _invalid("只能上传一个录音文件", "only one recording per upload")
            self.filename = _safe_filename(self.part.filename or "")
            suffix = PurePosixPath(self.filename).suffix.lower()[:10]
            with _spooling(self.tmp_dir):
                fd, name = tempfile.mkstemp(prefix="upload-", suffix=suffix, dir=self.tmp_dir)
            self.path = Path(name)
            self.file = os.fdopen(fd, "wb")

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        chunk = data[start:end]
        if self.part.name == FILE_FIELD:
            self.size += len(chunk)
            if self.size > self.max_bytes:
                raise too_large(self.max_bytes)
            assert self.file is not None
            with _spooling(self.tmp_dir):
                self.file.write(chunk)
        elif len(self.part.data) + len(chunk) > MAX_METADATA_BYTES:
            raise MetadataError(
                f"字段 {self.part.name} 超过 {MAX_METADATA_BYTES // 1024} KB / "
                f"field '{self.part.name}' exceeds {MAX_METADATA_BYTES // 1024} KB",
                field=self.part.name,
            )
        else:
            self.part.data.extend(chunk)

    def on_part_end(self) -> None:
        if self.part.name == METADATA_FIELD:
            self.metadata = bytes(self.part.data)

    def discard(self) -> None:
        if self.file is not None:
            with suppress(OSError):  # a full disk fails the close's flush too
                self.file.close()
        if self.path is not None:
            with suppress(FileNotFoundError):
                self.path.unlink()


@contextmanager
def _spooling(tmp_dir: Path) -> Iterator[None]:
    """A full or unwritable temporary disk is the server's trouble (503), never a 500."""
    try:
        yield
    except OSError as exc:
        full = exc.errno == errno.ENOSPC
        raise StorageError(
            ("上传临时目录空间已满，无法接收录音" if full else "无法写入上传临时目录")
            + f" / cannot spool the upload to {tmp_dir}: {exc.strerror or exc}",
            path=tmp_dir,
            action="spool",
        ) from exc


def remove_orphaned_spools(root: Path) -> int:
    """Delete what processes that died mid-upload left under ``root``; the count removed.

    Each process spools into ``root/p<pid>`` (:attr:`ServiceState.upload_tmp_dir`). A
    folder whose process is gone, or this process's own (a recycled pid: nothing of ours
    is in flight yet at start-up), holds only partial bodies nobody will finish.
    """
    if not root.is_dir():
        return 0
    removed = 0
    for entry in root.iterdir():
        pid = int(entry.name[1:]) if entry.name[1:].isdigit() else None
        if entry.is_dir() and pid is not None and pid != os.getpid() and _alive(pid):
            continue
        if entry.is_dir() and not entry.is_symlink():
            removed += sum(1 for p in entry.rglob("*") if p.is_file())
            shutil.rmtree(entry, ignore_errors=True)
        else:
            with suppress(OSError):
                entry.unlink()
                removed += 1
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def _boundary(request: Request) -> bytes:
    content_type, params = parse_options_header(request.headers.get("content-type", ""))
    if content_type != b"multipart/form-data" or b"boundary" not in params:
        raise _invalid(
            "请以 multipart/form-data 上传（字段 file，可选 metadata）",
            "send multipart/form-data with a 'file' field and an optional 'metadata' field",
        )
    return params[b"boundary"]


def _check_declared_length(request: Request, max_bytes: int) -> None:
    declared = request.headers.get("content-length")
    if declared is None:
        return
    try:
        length = int(declared)
    except ValueError:
        raise _invalid("Content-Length 无效", "invalid Content-Length") from None
    if length > max_bytes + _ENVELOPE_BYTES:
        raise too_large(max_bytes)


async def receive_upload(request: Request, *, max_bytes: int, tmp_dir: Path) -> ReceivedUpload:
    """Stream the request's multipart body into a temporary file under ``tmp_dir``.

    Raises :class:`RecordingTooLarge` as soon as the recording passes ``max_bytes`` (or at
    once when Content-Length says it will), :class:`InputError` for a malformed body or a
    missing ``file`` part, :class:`MetadataError` for an oversized ``metadata`` field.
    """
    _check_declared_length(request, max_bytes)
    boundary = _boundary(request)
    with _spooling(tmp_dir):
        tmp_dir.mkdir(parents=True, exist_ok=True)
    receiver = _Receiver(max_bytes=max_bytes, tmp_dir=tmp_dir)
    parser = MultipartParser(
        boundary,
        {
            "on_part_begin": receiver.on_part_begin,
            "on_part_data": receiver.on_part_data,
            "on_part_end": receiver.on_part_end,
            "on_header_field": receiver.on_header_field,
            "on_header_value": receiver.on_header_value,
            "on_header_end": receiver.on_header_end,
            "on_headers_finished": receiver.on_headers_finished,
        },
    )
    try:
        async for chunk in request.stream():
            parser.write(chunk)
        parser.finalize()
        if receiver.file is None or receiver.path is None or receiver.filename is None:
            raise _invalid("缺少录音文件（字段 file）", "the 'file' field is missing")
        with _spooling(tmp_dir):
            receiver.file.close()
        if receiver.size == 0:
            raise _invalid("录音文件是空的（0 字节）", "the recording is empty (0 bytes)")
        return ReceivedUpload(
            path=receiver.path,
            filename=receiver.filename,
            size=receiver.size,
            metadata=receiver.metadata,
        )
    except FormParserError as exc:
        receiver.discard()
        raise _invalid("上传内容格式错误", f"malformed multipart body: {exc}") from exc
    except BaseException:
        receiver.discard()
        raise
