"""The encoder-head trainer (``models/train_encoder_head.py``, a script, not a package
module) loaded once for the tests that exercise it."""

from __future__ import annotations

import importlib.util
from functools import cache
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]


@cache
def load_trainer() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "train_encoder_head", ROOT / "models" / "train_encoder_head.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
