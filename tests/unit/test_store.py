"""The audio store: content-addressed, atomic, size-limited, and clean after failures."""

from __future__ import annotations

import errno
import hashlib
from pathlib import Path

import pytest

from qa_service.errors import RecordingTooLarge, StorageError
from qa_service.ingest import store as store_module
from qa_service.ingest.store import AudioStore, normalize_ext

DATA = b"RIFF....WAVEfmt " + bytes(range(256)) * 40
SHA = hashlib.sha256(DATA).hexdigest()


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def test_put_file_is_content_addressed(tmp_path: Path) -> None:
    source = tmp_path / "upload.WAV"
    source.write_bytes(DATA)
    store = AudioStore(tmp_path / "audio")

    stored = store.put_file(source, ext=source.suffix)

    assert stored.sha256 == SHA
    assert stored.size == len(DATA)
    assert stored.path == tmp_path / "audio" / SHA[:2] / SHA[2:4] / f"{SHA}.wav"
    assert stored.path.read_bytes() == DATA
    assert source.read_bytes() == DATA  # the source is left alone
    assert store.path_for(SHA) == stored.path  # found without knowing the extension
    assert store.find(SHA) == stored


def test_same_bytes_twice_keep_one_file(tmp_path: Path) -> None:
    store = AudioStore(tmp_path)
    first = store.put_stream([DATA[:100], DATA[100:]], max_bytes=None, ext="wav")
    second = store.put_stream([DATA], max_bytes=len(DATA), ext=".wav")
    assert first == second
    assert _files(tmp_path) == [first.path]


def test_too_large_stops_while_streaming_and_leaves_nothing(tmp_path: Path) -> None:
    store = AudioStore(tmp_path)
    consumed = []

    def chunks():
        for i in range(100):
            consumed.append(i)
            yield b"x" * 1000

    with pytest.raises(RecordingTooLarge):
        store.put_stream(chunks(), max_bytes=2500, ext=".wav")
    assert len(consumed) == 3  # stopped at the chunk that passed the limit, not at the end
    assert _files(tmp_path) == []


def test_full_disk_is_a_clear_storage_error_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # ENOSPC often surfaces only when the data is flushed to disk (delayed allocation).
    def full(_fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(store_module.os, "fsync", full)
    store = AudioStore(tmp_path)
    with pytest.raises(StorageError) as info:
        store.put_stream([DATA], max_bytes=None, ext=".wav")
    assert "已满" in info.value.message and "full" in info.value.message
    assert _files(tmp_path) == []


def test_failing_source_stream_leaves_nothing(tmp_path: Path) -> None:
    def broken():
        yield DATA
        raise ConnectionResetError("client went away")

    store = AudioStore(tmp_path)
    with pytest.raises(ConnectionResetError):
        store.put_stream(broken(), max_bytes=None)
    assert _files(tmp_path) == []


def test_delete(tmp_path: Path) -> None:
    store = AudioStore(tmp_path)
    stored = store.put_stream([DATA], max_bytes=None, ext=".mp3")
    assert store.delete(SHA) is True
    assert not stored.path.exists()
    assert store.delete(SHA) is False
    assert store.find(SHA) is None


def test_derived_files_lie_beside_the_recording_and_go_with_it(tmp_path: Path) -> None:
    store = AudioStore(tmp_path)
    stored = store.put_stream([DATA], max_bytes=None, ext=".wav")
    peaks = store.put_derived(SHA, ".peaks.json", b"{}")
    assert peaks == stored.path.with_name(f"{SHA}.peaks.json")
    assert store.find(SHA) == stored  # never mistaken for the recording
    assert _files(tmp_path) == sorted([stored.path, peaks])  # no temporary file left
    with pytest.raises(ValueError):
        store.derived_path(SHA, "/../../x.json")
    assert store.delete(SHA) is True
    assert _files(tmp_path) == []
    # A derived file of a recording that is not in the store (analysed by the CLI from
    # elsewhere) goes too.
    store.put_derived(SHA, ".peaks.json", b"{}")
    assert store.delete(SHA) is False
    assert _files(tmp_path) == []


def test_extension_is_a_hint_never_a_path() -> None:
    assert normalize_ext("WAV") == ".wav"
    assert normalize_ext(".Mp3") == ".mp3"
    assert normalize_ext("../../etc/passwd") == ""
    assert normalize_ext("") == ""


def test_path_for_refuses_what_is_not_a_digest(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        AudioStore(tmp_path).path_for("../" + "a" * 61)
