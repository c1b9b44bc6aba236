"""``qa-service user | token | roster`` as an administrator types them (SQLite)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from account_helpers import STRONG
from typer.testing import CliRunner

from qa_service.accounts.service import resolve_api_token
from qa_service.cli.main import app
from qa_service.db.session import make_engine, make_session_factory
from qa_service.errors import AuthenticationFailed
from qa_service.settings import get_settings


@pytest.fixture
def url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    url = f"sqlite:///{tmp_path / 'var' / 'qa.sqlite3'}"
    monkeypatch.setenv("DATABASE_URL", url)
    get_settings.cache_clear()
    yield url
    get_settings.cache_clear()


def _run(*args: str, stdin: str | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args), input=stdin)
    return result.exit_code, result.output


def test_user_add_then_list(url: str) -> None:
    code, out = _run(
        "user", "add", "zhangsan", "--role", "supervisor", "--team", "一组", "--team", "二组",
        "--password-stdin", stdin=STRONG[0] + "\n",
    )  # fmt: skip
    assert code == 0, out
    code, out = _run("user", "list")
    assert code == 0, out
    line = next(line for line in out.splitlines() if line.startswith("zhangsan"))
    assert "supervisor" in line and "一组,二组" in line and "启用" in line


@pytest.mark.parametrize(
    ("password", "reason"),
    [("Password1234", "常见或有规律"), ("short1!", "密码长度"), ("alllowercase", "3 类")],
)
def test_user_add_refuses_a_weak_password(url: str, password: str, reason: str) -> None:
    code, out = _run(
        "user", "add", "lisi", "--role", "inspector", "--password-stdin", stdin=password + "\n"
    )
    assert code != 0
    assert reason in out and "password_policy" in out
    assert "lisi" not in _run("user", "list")[1]


def test_agent_needs_an_agent_id(url: str) -> None:
    code, out = _run("user", "add", "a07", "--role", "agent", "--password-stdin", stdin=STRONG[0])
    assert code != 0 and "坐席工号" in out
    code, out = _run(
        "user", "add", "a07", "--role", "agent", "--agent-id", "A07", "--password-stdin",
        stdin=STRONG[0],
    )  # fmt: skip
    assert code == 0, out


def test_token_create_prints_a_working_token_and_disable_revokes_it(url: str) -> None:
    _run("user", "add", "recorder", "--role", "admin", "--password-stdin", stdin=STRONG[1])
    code, out = _run("token", "create", "recorder")
    assert code == 0, out
    token = next(line for line in out.splitlines() if line.startswith("qas_"))
    engine = make_engine(url)
    sessions = make_session_factory(engine)
    try:
        with sessions.begin() as session:
            assert resolve_api_token(session, token=token).username == "recorder"
        code, out = _run("user", "disable", "recorder")
        assert code == 0 and "撤销令牌 1 个" in out
        with sessions.begin() as session, pytest.raises(AuthenticationFailed):
            resolve_api_token(session, token=token)
    finally:
        engine.dispose()
    assert "停用" in _run("user", "list")[1]


def test_unknown_user_is_an_error(url: str) -> None:
    code, out = _run("token", "create", "nobody")
    assert code == 2 and "用户不存在" in out


def test_roster_import_reports_bad_rows(url: str, tmp_path: Path) -> None:
    path = tmp_path / "名单.csv"
    path.write_bytes("坐席工号,姓名,组别,机构\nA07,张三,一组,华信\nA08,李四,,华信\n".encode("gbk"))
    code, out = _run("roster", "import", str(path))
    assert code == 1
    assert "新增 1" in out and "第 3 行" in out and "团队为空" in out
