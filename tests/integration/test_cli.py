"""The command-line contract (shared/spec/output.md), end to end in a subprocess."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from audio_factory import MONO_WAV, STEREO_WAV

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REQUIRED_KEYS = {
    "call_id",
    "recording",
    "duration_s",
    "channels",
    "status",
    "utterances",
    "findings",
    "score",
}
FINDING_KEYS = {"rule", "speaker", "start", "end", "text", "source", "confidence"}


def _run(args: list[str], env_extra: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, **env_extra}
    return subprocess.run(
        [sys.executable, "-m", "qa_service.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=600,
    )


def _stereo_copy(directory: Path, stem: str, sidecar: dict | None = None) -> Path:
    wav = directory / f"{stem}.wav"
    shutil.copy(STEREO_WAV, wav)
    meta = json.loads(STEREO_WAV.with_suffix(".json").read_text(encoding="utf-8"))
    meta.update({"call_id": stem, "recording": wav.name, **(sidecar or {})})
    (directory / f"{stem}.json").write_text(json.dumps(meta), encoding="utf-8")
    return wav


@pytest.fixture
def bad_inputs(tmp_path: Path) -> dict[str, Path]:
    d = tmp_path / "bad"
    d.mkdir()
    corrupt = d / "corrupt.wav"
    data = bytearray(STEREO_WAV.read_bytes())
    corrupt.write_bytes(bytes(data[:44]) + bytes(b ^ 0x5A for b in data[44:200]) + b"\x00" * 10)
    empty = d / "empty.wav"
    empty.write_bytes(b"")
    text = d / "notes.wav"
    text.write_text("这不是录音文件，只是一段文字。\n" * 20, encoding="utf-8")
    short = d / "short.wav"
    _write_short_clip(short, seconds=0.3)
    malformed = d / "malformed.wav"
    shutil.copy(STEREO_WAV, malformed)
    (d / "malformed.json").write_text('{"call_id": "x", "started_at": ', encoding="utf-8")
    return {
        "corrupt": corrupt,
        "empty": empty,
        "text": text,
        "short": short,
        "malformed": malformed,
        "missing": d / "missing.wav",
    }


def _write_short_clip(path: Path, seconds: float) -> None:
    """The first ``seconds`` of the stereo fixture, as a valid PCM WAV."""
    import wave

    with wave.open(str(STEREO_WAV), "rb") as src, wave.open(str(path), "wb") as dst:
        dst.setparams(src.getparams())
        dst.writeframes(src.readframes(int(seconds * src.getframerate())))


def test_analyze_json_lines_errors_do_not_stop_the_run(
    tmp_path: Path, bad_inputs: dict[str, Path]
) -> None:
    good = _stereo_copy(tmp_path, "good-1")
    paths = [
        bad_inputs["corrupt"],
        good,
        bad_inputs["empty"],
        bad_inputs["text"],
        bad_inputs["short"],
        bad_inputs["malformed"],
        bad_inputs["missing"],
        MONO_WAV,
    ]
    db = tmp_path / "qa.sqlite3"
    proc = _run(
        ["analyze", *map(str, paths), "--json"], {"DATABASE_URL": f"sqlite:///{db}"}, tmp_path
    )
    assert proc.returncode == 1, proc.stderr  # some failed: exit status 1 at the end
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [o["recording"] for o in lines] == [p.name for p in paths]  # one per input, in order
    for obj in lines:
        assert obj.keys() >= REQUIRED_KEYS
    by_name = {o["recording"]: o for o in lines}
    expected_codes = {
        "corrupt.wav": {"audio_decode_error", "unsupported_format"},
        "empty.wav": {"empty_file"},
        "notes.wav": {"unsupported_format"},
        "short.wav": {"audio_too_short"},
        "malformed.wav": {"invalid_metadata"},
        "missing.wav": {"file_not_found"},
    }
    for name, codes in expected_codes.items():
        obj = by_name[name]
        assert obj["status"] == "error"
        assert obj["error"]["code"] in codes, obj["error"]
        assert name in obj["error"]["message"] or "malformed.json" in obj["error"]["message"]
        assert obj["findings"] == []
    assert "0.30" in by_name["short.wav"]["error"]["message"]
    assert "JSON" in by_name["malformed.wav"]["error"]["message"]

    ok = by_name["good-1.wav"]
    assert ok["status"] == "analyzed" and ok["call_id"] == "good-1"
    assert ok["channels"] == "stereo" and ok["duration_s"] == pytest.approx(4.0, abs=0.1)
    assert {u["speaker"] for u in ok["utterances"]} == {"agent", "customer"}
    for f in ok["findings"]:
        assert f.keys() >= FINDING_KEYS
    assert by_name["mono_8k.wav"]["channels"] == "mono"
    assert by_name["mono_8k.wav"]["call_id"] == "mono_8k"  # no sidecar: the file stem

    with sqlite3.connect(db) as conn:
        stored = dict(conn.execute("SELECT call_id, status FROM calls").fetchall())
    # Errors with known bytes are stored as such; a missing file has nothing to store.
    assert stored["good-1"] == "analyzed" and stored["mono_8k"] == "analyzed"
    assert "missing" not in stored


def test_same_bytes_twice_are_one_call_and_metadata_rules_use_the_dial_log(
    tmp_path: Path,
) -> None:
    # 23:10 local time (M01) and the fourth attempt today after a connected one (M02).
    wav = _stereo_copy(
        tmp_path,
        "night-1",
        {"started_at": "2026-11-02T23:10:00+08:00", "customer_id": "C9", "dialed_number": "1391"},
    )
    cdr = tmp_path / "cdr.csv"
    rows = [
        "通话ID,坐席工号,客户号,被叫号码,呼叫时间,是否接通,通话时长",
        ",A1,C9,1391,2026-11-02 20:00:00,是,60",
        ",A1,C9,1391,2026-11-02 20:30:00,否,0",
        ",A1,C9,1391,2026-11-02 21:00:00,否,0",
        "night-1,A1,C9,1391,2026-11-02 23:10:00,是,4",
    ]
    cdr.write_bytes(("\r\n".join(rows) + "\r\n").encode("gbk"))
    db = tmp_path / "qa.sqlite3"
    env = {"DATABASE_URL": f"sqlite:///{db}"}
    first = _run(["analyze", str(wav), "--cdr", str(cdr), "--json"], env, tmp_path)
    assert first.returncode == 0, first.stderr
    second = _run(["analyze", str(wav), "--cdr", str(cdr), "--json"], env, tmp_path)
    assert second.returncode == 0, second.stderr
    [obj] = [json.loads(line) for line in second.stdout.splitlines()]
    rules = sorted(f["rule"] for f in obj["findings"])
    assert {"M01", "M02"} <= set(rules)
    m02 = next(f for f in obj["findings"] if f["rule"] == "M02")
    assert (m02["speaker"], m02["start"], m02["end"], m02["source"]) == (
        None,
        None,
        None,
        "metadata",
    )
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM calls").fetchone()[0] == 1
        assert conn.execute("SELECT count(*) FROM analysis_runs").fetchone()[0] == 2
        assert conn.execute("SELECT count(*) FROM dial_attempts").fetchone()[0] == 4
        n_findings = conn.execute("SELECT count(*) FROM findings").fetchone()[0]
    assert n_findings == len(obj["findings"])


def test_analyze_stores_into_postgresql(tmp_path: Path, postgres_url: str) -> None:
    wav = _stereo_copy(tmp_path, "pg-1")
    proc = _run(["analyze", str(wav), "--json"], {"DATABASE_URL": postgres_url}, tmp_path)
    assert proc.returncode == 0, proc.stderr
    from sqlalchemy import create_engine, text

    engine = create_engine(postgres_url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT call_id FROM calls")).scalars().all() == ["pg-1"]
        assert conn.execute(text("SELECT count(*) FROM utterances")).scalar_one() >= 2
    engine.dispose()


def test_eval_and_demo_on_a_tiny_corpus(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    (corpus / "calls").mkdir(parents=True)
    (corpus / "labels").mkdir()
    _stereo_copy(corpus / "calls", "t-1", {"started_at": "2026-11-02T07:30:00+08:00"})
    labels = {
        "call_id": "t-1",
        "channels": "stereo",
        "turns": [
            {"speaker": "agent", "start": 0.0, "end": 0.9, "text": "请问是王芳本人吗？"},
            {"speaker": "customer", "start": 1.5, "end": 3.8, "text": "嗯，是我，你说吧。"},
        ],
        "expected_rules": ["M01"],
    }
    (corpus / "labels" / "t-1.json").write_text(json.dumps(labels, ensure_ascii=False))
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'qa.sqlite3'}"}
    saved = tmp_path / "saved.jsonl"
    proc = _run(["eval", str(corpus), "--json", "--save", str(saved)], env, tmp_path)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["calls"] == 1 and report["errors"] == []
    assert report["rules"]["M01"] == {
        "tp": 1,
        "fp": 0,
        "fn": 0,
        "precision": 1.0,
        "recall": 1.0,
        "f1": 1.0,
    }
    assert 0.0 <= report["cer"]["stereo"]["cer"] < 0.6

    # Re-detection on the saved transcripts: same report, no ASR; then an edited
    # transcript shows detection really runs again while M01 is kept from the save.
    again = _run(["eval", str(corpus), "--json", "--transcripts", str(saved)], env, tmp_path)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["rules"] == report["rules"]
    analysis = json.loads(saved.read_text(encoding="utf-8"))
    agent = next(u for u in analysis["utterances"] if u["speaker"] == "agent")
    agent["text"] = "再不还钱，我们明天就上门找你，让你全家都不得安宁。"
    saved.write_text(json.dumps(analysis, ensure_ascii=False) + "\n", encoding="utf-8")
    edited = _run(["eval", str(corpus), "--json", "--transcripts", str(saved)], env, tmp_path)
    assert edited.returncode == 0, edited.stderr
    rules = json.loads(edited.stdout)["rules"]
    assert rules["P01"]["fp"] == 1 and rules["M01"]["tp"] == 1
    broken = tmp_path / "broken.jsonl"
    broken.write_text("{not json\n", encoding="utf-8")
    bad = _run(["eval", str(corpus), "--transcripts", str(broken)], env, tmp_path)
    assert bad.returncode != 0 and "broken.jsonl:1" in bad.stderr

    demo = _run(["demo", "--no-serve"], {**env, "QA_SAMPLES_DIR": str(corpus / "calls")}, tmp_path)
    assert demo.returncode == 0, demo.stderr
    assert "通话 t-1" in demo.stdout and "禁止时段" in demo.stdout
