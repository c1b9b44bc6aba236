"""``qa-service demo``: the embedded default, ready to look at, in one command.

SQLite under ``./var``, no Redis: the sample calls are analysed (a Chinese summary per
call is printed), the sample roster puts them under teams, one demo account per role is
created, and the service is served until Ctrl-C with the URL and the logins printed.
Running it again reuses the database: the accounts are kept (passwords reset to the demo
ones) and the samples re-analysed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

import typer

from qa_service.cli.support import fail
from qa_service.errors import QAServiceError
from qa_service.settings import Settings


@dataclass(frozen=True)
class DemoAccount:
    username: str
    role: str
    display_name: str
    password: str
    team_ids: tuple[str, ...] = ()
    agent_id: str | None = None


# Demo logins are printed on purpose: the demo is a development set-up on one machine.
# Each password satisfies the policy (length, 3 character classes, zxcvbn strength).
DEMO_ACCOUNTS = (
    DemoAccount("admin", "admin", "系统管理员（演示）", "Qa-Adm1n#7406"),
    DemoAccount("manager", "manager", "质检经理（演示）", "Qa-Mgr#5291vx"),
    DemoAccount("supervisor", "supervisor", "一组主管（演示）", "Qa-Sup#8817kw", ("催收一组",)),
    DemoAccount("inspector", "inspector", "质检员（演示）", "Qa-Insp#3364z"),
    DemoAccount("agent", "agent", "张敏（坐席 A738）", "Qa-Agt#6042mq", agent_id="A738"),
)


def ensure_demo_accounts(settings: Settings) -> list[tuple[DemoAccount, bool]]:
    """Create the demo accounts that do not exist yet (an existing one is enabled, not reset).

    Returns each account with whether its demo password still works (someone may have
    changed it in an earlier demo session; the password history forbids resetting it back).
    """
    from qa_service.accounts import service
    from qa_service.accounts.passwords import verify_password
    from qa_service.accounts.rows import user_row
    from qa_service.cli.support import open_sessions

    out: list[tuple[DemoAccount, bool]] = []
    with open_sessions(settings) as factory, factory() as session, session.begin():
        for acc in DEMO_ACCOUNTS:
            user = service.find_user(session, username=acc.username)
            if user is None:
                service.create_user(
                    session,
                    username=acc.username,
                    role=acc.role,
                    password=acc.password,
                    display_name=acc.display_name,
                    team_ids=acc.team_ids,
                    agent_id=acc.agent_id,
                    settings=settings,
                )
                out.append((acc, True))
                continue
            if user.disabled:
                service.enable_user(session, user_id=user.user_id)
            row = user_row(session, user.user_id)
            out.append((acc, verify_password(row.password_hash, acc.password)))
    return out


def import_sample_roster(settings: Settings) -> int:
    """Put the sample calls under their teams (samples/roster.csv); returns calls moved."""
    from qa_service.accounts.roster import import_roster
    from qa_service.cli.support import open_sessions

    roster = settings.samples_dir / "roster.csv"
    if not roster.is_file():
        return 0
    with open_sessions(settings) as factory, factory() as session, session.begin():
        return import_roster(session, csv_path=roster).calls_updated


def print_logins(url: str, accounts: list[tuple[DemoAccount, bool]]) -> None:
    typer.echo("")
    typer.echo(f"演示服务地址：{url}    （API 文档：{url}docs；按 Ctrl-C 停止）")
    typer.echo("演示账号（用户名 / 密码 / 角色）：")
    for acc, works in accounts:
        note = "" if works else "（密码已在之前的演示中修改）"
        typer.echo(f"  {acc.username:<11} {acc.password:<15} {acc.display_name}{note}")


def register(app: typer.Typer, *, run_analysis: Callable[..., int]) -> None:
    """Add ``demo`` to the ``qa-service`` command group (``run_analysis``: the CLI's own
    analyse-and-store loop, passed in so that this module does not import ``main``)."""

    @app.command()
    def demo(
        host: Annotated[str, typer.Option(help="监听地址 / address to bind")] = "127.0.0.1",
        port: Annotated[int, typer.Option(help="端口 / port")] = 8000,
        serve: Annotated[
            bool, typer.Option("--serve/--no-serve", help="分析后是否启动服务 / serve after set-up")
        ] = True,
    ) -> None:
        """演示：分析样例通话、创建演示账号并启动服务 / demo set-up, then serve until Ctrl-C."""
        from qa_service.cli.serve import load_settings, run_server

        try:
            settings = load_settings()
            samples = settings.samples_dir
            cdr = samples / "cdr.csv"
            db = settings.resolved_database_url
            typer.secho(f"样例通话目录：{samples}；数据库：{db}", err=True)
            code = run_analysis(
                [samples], settings, as_json=False, cdr=cdr if cdr.is_file() else None, store=True
            )
            import_sample_roster(settings)
            accounts = ensure_demo_accounts(settings)
            if not serve:
                raise typer.Exit(code=code)
            url = settings.public_url or f"http://{host}:{port}/"
            print_logins(url, accounts)
            run_server(settings, host=host, port=port)
        except QAServiceError as exc:
            raise fail(exc) from exc
