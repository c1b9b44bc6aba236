"""Ingest: finding recordings, sidecar metadata, and turning a path into an IngestedCall."""

from __future__ import annotations

import hashlib
import json
import shutil
import wave
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from audio_factory import FIXTURES, MONO_WAV, STEREO_WAV

from qa_service.domain import Speaker
from qa_service.errors import (
    AudioDecodeError,
    AudioTooShort,
    EmptyFile,
    FileNotFound,
    MetadataError,
)
from qa_service.ingest.recordings import (
    AUDIO_EXTENSIONS,
    discover_recordings,
    ingest_recording,
    load_metadata,
    sha256_file,
)

CST = timezone(timedelta(hours=8))
SIDECAR = json.loads((FIXTURES / "stereo_8k.json").read_text(encoding="utf-8"))


def _with_sidecar(tmp_path: Path, audio: Path, sidecar: object, name: str = "call") -> Path:
    target = tmp_path / f"{name}{audio.suffix}"
    shutil.copyfile(audio, target)
    text = sidecar if isinstance(sidecar, str) else json.dumps(sidecar, ensure_ascii=False)
    target.with_suffix(".json").write_text(text, encoding="utf-8")
    return target


# --- discover_recordings ---------------------------------------------------------------


def test_audio_extensions_cover_the_supported_formats() -> None:
    assert {".wav", ".mp3", ".amr", ".aac", ".m4a", ".ogg", ".opus"} == AUDIO_EXTENSIONS


def test_directory_yields_its_audio_files_sorted(tmp_path: Path) -> None:
    for name in ["b.wav", "a.mp3", "c.M4A", "notes.txt", "b.json", ".a.wav", "._c.wav"]:
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "sub.wav").mkdir()  # a folder named like audio is not a recording
    (tmp_path / "sub.wav" / "d.wav").write_bytes(b"x")
    found = discover_recordings([tmp_path])
    assert [p.name for p in found] == ["a.mp3", "b.wav", "c.M4A"]


def test_explicit_paths_keep_their_order_even_if_bad(tmp_path: Path) -> None:
    calls = tmp_path / "calls"
    calls.mkdir()
    (calls / "x.wav").write_bytes(b"x")
    z = tmp_path / "z.wav"
    z.write_bytes(b"x")
    missing = tmp_path / "missing.wav"
    text = tmp_path / "report.txt"
    text.write_text("hi")
    found = discover_recordings([z, calls, missing, text, calls / "x.wav"])
    # x.wav given twice (inside calls/ and by name) is analysed once, where first met.
    assert found == [z, calls / "x.wav", missing, text]


# --- sha256_file ---------------------------------------------------------------------------


def test_sha256_matches_hashlib_and_is_stable() -> None:
    data = STEREO_WAV.read_bytes()
    assert sha256_file(STEREO_WAV) == (hashlib.sha256(data).hexdigest(), len(data))
    assert sha256_file(STEREO_WAV) == sha256_file(STEREO_WAV)


# --- load_metadata -------------------------------------------------------------------------


def test_sidecar_is_parsed_into_call_metadata() -> None:
    meta = load_metadata(STEREO_WAV)
    assert meta.has_sidecar
    assert meta.call_id == "dev-001"
    assert meta.recording == "stereo_8k.wav"
    assert (meta.agent_id, meta.customer_id, meta.dialed_number) == (
        "A765",
        "CUST28585",
        "18451450612",
    )
    assert (meta.contact_role, meta.direction, meta.channels) == ("debtor", "outbound", "stereo")
    assert meta.started_at == datetime(2026, 11, 6, 14, 32, 18, tzinfo=CST)
    assert meta.duration_s == 4.0
    assert meta.channel_map == {0: Speaker.AGENT, 1: Speaker.CUSTOMER}


def test_without_sidecar_the_file_stem_is_the_call_id() -> None:
    meta = load_metadata(MONO_WAV)
    assert (meta.call_id, meta.recording, meta.has_sidecar) == ("mono_8k", "mono_8k.wav", False)
    assert meta.started_at is None and meta.channel_map is None and meta.agent_id is None


def test_naive_start_time_is_taken_as_call_centre_time(tmp_path: Path) -> None:
    path = _with_sidecar(tmp_path, MONO_WAV, {"call_id": "c1", "started_at": "2026-11-06 23:10:00"})
    assert load_metadata(path).started_at == datetime(2026, 11, 6, 23, 10, tzinfo=CST)
    utc = load_metadata(path, assume_offset=UTC).started_at
    assert utc == datetime(2026, 11, 6, 23, 10, tzinfo=UTC)


def test_sidecar_tolerates_bom_numbers_case_and_extra_keys(tmp_path: Path) -> None:
    path = tmp_path / "call.wav"
    shutil.copyfile(MONO_WAV, path)
    body = {"call_id": 7001, "agent_id": 1023, "channels": "Mono", "queue": "M1", "recording": "x"}
    body["dialed_number"] = "+86 138-0013-8000"
    path.with_suffix(".json").write_bytes(b"\xef\xbb\xbf" + json.dumps(body).encode())
    meta = load_metadata(path)
    assert (meta.call_id, meta.agent_id, meta.channels) == ("7001", "1023", "mono")
    assert meta.dialed_number == "13800138000"  # as the dial log and do-not-call list store it
    assert meta.recording == "call.wav"  # the file actually there, not the exporter's name


def test_sidecar_with_json_syntax_error_names_file_line_and_column(tmp_path: Path) -> None:
    path = _with_sidecar(tmp_path, MONO_WAV, '{\n "call_id": "c1",\n "agent_id": \n}\n')
    with pytest.raises(MetadataError) as info:
        load_metadata(path)
    message = info.value.message
    assert str(path.with_suffix(".json")) in message
    assert "line 4, column 1" in message and "第 4 行第 1 列" in message


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"contact_role": "debter"}, "contact_role"),
        ({"started_at": "yesterday afternoon"}, "started_at"),
        ({"started_at": "2026-11-06"}, "started_at"),  # midnight would be a forbidden hour
        ({"started_at": 1762410738}, "started_at"),
        ({"duration_s": -3}, "duration_s"),
        ({"duration_s": "long"}, "duration_s"),
        ({"channels": "quad"}, "channels"),
        ({"direction": "sideways"}, "direction"),
        ({"channel_map": {"0": "agent", "1": "supervisor"}}, "channel_map.1"),
        ({"channel_map": {"left": "agent", "right": "customer"}}, "channel_map"),
        ({"channel_map": {"0": "agent", "1": "agent"}}, "channel_map"),
        ({"channel_map": ["agent", "customer"]}, "channel_map"),
        ({"dialed_number": "unknown"}, "dialed_number"),
        ({"call_id": ""}, "call_id"),
        ({"call_id": None}, "call_id"),
    ],
)
def test_sidecar_with_bad_field_names_the_field(
    tmp_path: Path, change: dict[str, object], field: str
) -> None:
    path = _with_sidecar(tmp_path, STEREO_WAV, {**SIDECAR, **change})
    with pytest.raises(MetadataError) as info:
        load_metadata(path)
    message = info.value.message
    assert f"字段 {field} " in message and f"field '{field}'" in message
    assert str(path.with_suffix(".json")) in message
    assert info.value.context["field"] == field


def test_sidecar_without_call_id_is_an_error(tmp_path: Path) -> None:
    body = {k: v for k, v in SIDECAR.items() if k != "call_id"}
    path = _with_sidecar(tmp_path, STEREO_WAV, body)
    with pytest.raises(MetadataError, match="required field 'call_id' is missing"):
        load_metadata(path)


def test_sidecar_that_is_not_an_object_is_an_error(tmp_path: Path) -> None:
    path = _with_sidecar(tmp_path, STEREO_WAV, "[1, 2]")
    with pytest.raises(MetadataError, match="sidecar"):
        load_metadata(path)


# --- ingest_recording ----------------------------------------------------------------------


def test_ingest_stereo_recording_with_sidecar() -> None:
    call = ingest_recording(STEREO_WAV)
    assert call.path == STEREO_WAV
    assert (call.sha256, call.size_bytes) == sha256_file(STEREO_WAV)
    assert call.metadata.call_id == "dev-001"
    assert call.layout == "stereo" and call.audio.n_channels == 2
    assert call.audio.sample_rate == 16000
    assert call.audio.duration_s == pytest.approx(4.0, abs=0.01)
    assert call.speaker_of_channel(0) is Speaker.AGENT
    assert call.speaker_of_channel(1) is Speaker.CUSTOMER


def test_ingest_mono_without_sidecar() -> None:
    call = ingest_recording(MONO_WAV, sample_rate=8000)
    assert call.metadata.call_id == "mono_8k" and not call.metadata.has_sidecar
    assert call.metadata.channels == "mono" and call.metadata.channel_map is None
    assert call.audio.sample_rate == 8000 and call.layout == "mono"
    assert call.speaker_of_channel(0) is Speaker.UNKNOWN


def test_file_layout_wins_over_a_sidecar_that_says_stereo(tmp_path: Path) -> None:
    path = _with_sidecar(tmp_path, MONO_WAV, SIDECAR)  # declares stereo with a channel map
    call = ingest_recording(path)
    assert call.metadata.channels == "mono" and call.metadata.channel_map is None
    assert call.speaker_of_channel(0) is Speaker.UNKNOWN


def test_stereo_file_declared_mono_gets_the_default_channel_map(tmp_path: Path) -> None:
    path = _with_sidecar(tmp_path, STEREO_WAV, {**SIDECAR, "channels": "mono", "channel_map": None})
    call = ingest_recording(path)
    assert call.metadata.channels == "stereo"
    assert call.metadata.channel_map == {0: Speaker.AGENT, 1: Speaker.CUSTOMER}


def test_swapped_channel_map_is_respected(tmp_path: Path) -> None:
    path = _with_sidecar(
        tmp_path, STEREO_WAV, {**SIDECAR, "channel_map": {"0": "customer", "1": "agent"}}
    )
    call = ingest_recording(path)
    assert call.speaker_of_channel(0) is Speaker.CUSTOMER
    assert call.speaker_of_channel(1) is Speaker.AGENT


def test_stereo_without_sidecar_defaults_to_agent_then_customer(tmp_path: Path) -> None:
    path = tmp_path / "bare.wav"
    shutil.copyfile(STEREO_WAV, path)
    call = ingest_recording(path)
    assert call.metadata.channel_map == {0: Speaker.AGENT, 1: Speaker.CUSTOMER}


def test_short_clip_is_too_short(tmp_path: Path) -> None:
    path = tmp_path / "clip.wav"
    with wave.open(str(STEREO_WAV)) as src, wave.open(str(path), "wb") as dst:
        dst.setparams(src.getparams())
        dst.writeframes(src.readframes(int(0.3 * src.getframerate())))
    with pytest.raises(AudioTooShort) as info:
        ingest_recording(path)
    message = info.value.message
    assert "0.30 s" in message and "1 s minimum" in message and "0.30 秒" in message
    assert str(path) in message
    ingest_recording(path, min_duration_s=0.2)  # the threshold is the caller's


def test_missing_and_empty_files(tmp_path: Path) -> None:
    with pytest.raises(FileNotFound):
        ingest_recording(tmp_path / "gone.wav")
    empty = tmp_path / "empty.mp3"
    empty.touch()
    with pytest.raises(EmptyFile):
        ingest_recording(empty)


def test_malformed_sidecar_fails_even_when_audio_is_fine(tmp_path: Path) -> None:
    path = _with_sidecar(tmp_path, STEREO_WAV, '{"call_id": "c1",}')
    with pytest.raises(MetadataError, match="invalid JSON"):
        ingest_recording(path)


def test_corrupt_audio_with_good_sidecar_is_a_decode_error(tmp_path: Path) -> None:
    path = _with_sidecar(tmp_path, STEREO_WAV, SIDECAR)
    path.write_bytes(STEREO_WAV.read_bytes()[:20000])
    with pytest.raises(AudioDecodeError, match="truncated"):
        ingest_recording(path)
