"""``qa-service serve`` refuses to start on a bad configuration, naming the setting."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from qa_service.cli.main import app
from qa_service.settings import get_settings


@pytest.fixture(autouse=True)
def fresh_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    monkeypatch.setenv("QA_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("REDIS_URL", raising=False)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def _serve() -> tuple[int, str]:
    result = CliRunner().invoke(app, ["serve", "--port", "1"])
    return result.exit_code, result.output


def test_default_secret_is_refused_in_production(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QA_ENVIRONMENT", "production")
    monkeypatch.delenv("QA_SECRET_KEY", raising=False)
    code, output = _serve()
    assert code == 2 and "QA_SECRET_KEY" in output


@pytest.mark.parametrize(
    ("name", "value"),
    [("QA_MAX_UPLOAD_MB", "lots"), ("QA_ENVIRONMENT", "staging"), ("QA_SESSION_IDLE_MINUTES", "0")],
)
def test_malformed_setting_is_named(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    code, output = _serve()
    assert code == 2 and name in output and "设置" in output
