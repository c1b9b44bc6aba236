"""Command line for accounts: ``qa-service user | token | roster``.

Thin like :mod:`qa_service.cli.main`: parse options, open the database, call
:mod:`qa_service.accounts`. Whoever can run these commands holds the database already, so
they need no login; the web API checks roles instead. :func:`register` adds them.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from qa_service.cli.support import fail, open_sessions
from qa_service.errors import InputError, QAServiceError, UserNotFound
from qa_service.settings import get_settings

if TYPE_CHECKING:  # SQLAlchemy loads only when a command runs: keeps `qa-service --help` fast
    from sqlalchemy.orm import Session

    from qa_service.accounts.roster import ImportResult
    from qa_service.audit.events import Actor

user_app = typer.Typer(help="账户 / user accounts", no_args_is_help=True)
token_app = typer.Typer(help="API 令牌 / API tokens for machine clients", no_args_is_help=True)
roster_app = typer.Typer(help="坐席名单 / agent roster (team, agency)", no_args_is_help=True)

_ROLES = "admin, manager, supervisor, inspector, agent"


def register(app: typer.Typer) -> None:
    """Add ``user``, ``token`` and ``roster`` to the main ``qa-service`` app."""
    app.add_typer(user_app, name="user")
    app.add_typer(token_app, name="token")
    app.add_typer(roster_app, name="roster")


PasswordStdin = Annotated[
    bool,
    typer.Option(
        "--password-stdin",
        help="从标准输入读取密码（一行）/ read the password from stdin (one line)",
    ),
]


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        # Only the line break goes: spaces may be part of a password.
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("密码 / password", hide_input=True, confirmation_prompt=True)
    if not password:
        raise InputError("没有读到密码 / no password was given")
    return password


@user_app.command("add")
def user_add(
    name: Annotated[str, typer.Argument(help="用户名 / user name")],
    role: Annotated[str, typer.Option("--role", help=f"角色 / role: {_ROLES}")],
    team: Annotated[
        list[str] | None, typer.Option("--team", help="所属团队，可重复 / team (repeatable)")
    ] = None,
    agent_id: Annotated[
        str | None, typer.Option("--agent-id", help="坐席工号（agent 角色必填）/ agent id")
    ] = None,
    display_name: Annotated[
        str | None, typer.Option("--display-name", help="显示名称 / display name")
    ] = None,
    must_change: Annotated[
        bool,
        typer.Option("--must-change", help="首次登录须改密码 / change password at first login"),
    ] = False,
    password_stdin: PasswordStdin = False,
) -> None:
    """新建账户；密码须符合密码策略 / create an account (the password must pass the policy)."""
    from qa_service.accounts.service import create_user

    settings = get_settings()
    try:
        password = _read_password(password_stdin)
        with open_sessions(settings) as factory, factory.begin() as session:
            account = create_user(
                session,
                username=name,
                role=role,
                password=password,
                display_name=display_name,
                team_ids=team or (),
                agent_id=agent_id,
                must_change_password=must_change,
                settings=settings,
                actor=_actor(),
            )
    except QAServiceError as exc:
        raise fail(exc) from exc
    typer.echo(f"已创建账户 {account.username}（{account.role.value}）/ created")


@user_app.command("disable")
def user_disable(name: Annotated[str, typer.Argument(help="用户名 / user name")]) -> None:
    """停用账户：立即结束其会话并撤销其令牌 / disable: end sessions, revoke tokens now."""
    from qa_service.accounts.service import disable_user

    try:
        with open_sessions(get_settings()) as factory, factory.begin() as session:
            ended, revoked = disable_user(session, user_id=_user_id(session, name), actor=_actor())
    except QAServiceError as exc:
        raise fail(exc) from exc
    typer.echo(f"已停用 {name}：结束会话 {ended} 个，撤销令牌 {revoked} 个 / disabled")


@user_app.command("enable")
def user_enable(name: Annotated[str, typer.Argument(help="用户名 / user name")]) -> None:
    """重新启用账户并解除锁定 / re-enable an account and lift a lockout."""
    from qa_service.accounts.service import enable_user

    try:
        with open_sessions(get_settings()) as factory, factory.begin() as session:
            enable_user(session, user_id=_user_id(session, name), actor=_actor())
    except QAServiceError as exc:
        raise fail(exc) from exc
    typer.echo(f"已启用 {name} / enabled")


@user_app.command("reset-password")
def user_reset_password(
    name: Annotated[str, typer.Argument(help="用户名 / user name")],
    password_stdin: PasswordStdin = False,
) -> None:
    """重置密码，用户下次登录须修改 / set a password the user must change at next login."""
    from qa_service.accounts.service import admin_reset_password

    settings = get_settings()
    try:
        password = _read_password(password_stdin)
        with open_sessions(settings) as factory, factory.begin() as session:
            admin_reset_password(
                session,
                user_id=_user_id(session, name),
                new_password=password,
                settings=settings,
                actor=_actor(),
            )
    except QAServiceError as exc:
        raise fail(exc) from exc
    typer.echo(f"已重置 {name} 的密码 / password reset")


@user_app.command("list")
def user_list() -> None:
    """列出账户 / list accounts."""
    from qa_service.accounts.service import list_users
    from qa_service.db.tables import utcnow

    try:
        with open_sessions(get_settings()) as factory, factory() as session:
            accounts = list_users(session)
    except QAServiceError as exc:
        raise fail(exc) from exc
    now = utcnow()
    typer.echo("用户名\t角色\t显示名称\t坐席工号\t团队\t状态\t密码修改时间")
    for a in accounts:
        if a.disabled:
            state = "停用"
        elif a.locked_until is not None and a.locked_until > now:
            state = "锁定"
        else:
            state = "启用"
        typer.echo(
            f"{a.username}\t{a.role.value}\t{a.display_name}\t{a.agent_id or ''}\t"
            f"{','.join(sorted(a.team_ids))}\t{state}\t{a.password_changed_at:%Y-%m-%d}"
        )


@token_app.command("create")
def token_create(
    name: Annotated[str, typer.Argument(help="账户的用户名 / the account's user name")],
    label: Annotated[
        str, typer.Option("--label", help="令牌用途说明 / what the token is for")
    ] = "cli",
) -> None:
    """为账户生成 API 令牌并打印（只显示这一次）/ print a new API token (shown once)."""
    from qa_service.accounts.service import create_api_token

    try:
        with open_sessions(get_settings()) as factory, factory.begin() as session:
            token = create_api_token(
                session, user_id=_user_id(session, name), name=label, actor=_actor()
            )
    except QAServiceError as exc:
        raise fail(exc) from exc
    typer.echo(token)
    typer.echo("令牌只显示这一次，请妥善保存 / the token is shown only once", err=True)


@roster_app.command("import")
def roster_import(
    path: Annotated[Path, typer.Argument(help="名单 CSV：工号、姓名、团队、机构")],
) -> None:
    """导入坐席名单（UTF-8 或 GBK）；有被拒绝的行时退出码为 1 / import the agent roster.

    Good rows are saved even when others are rejected; the exit status is then 1.
    """
    from qa_service.accounts.roster import import_roster

    try:
        with open_sessions(get_settings()) as factory, factory.begin() as session:
            result = import_roster(session, csv_path=path)
            _record_roster(session, path, result)
    except QAServiceError as exc:
        raise fail(exc) from exc
    typer.echo(
        f"导入坐席名单：新增 {result.created}，更新 {result.updated}，未变 {result.unchanged}；"
        f"通话归属更新 {result.calls_updated} 通；拒绝 {len(result.rejected)} 行"
    )
    for rejected in result.rejected:
        typer.secho(f"  第 {rejected.line} 行：{rejected.reason}", err=True, fg="yellow")
    raise typer.Exit(code=1 if result.rejected else 0)


def _actor() -> Actor:
    from qa_service.audit.events import Actor

    return Actor.cli()


def _record_roster(session: Session, path: Path, result: ImportResult) -> None:
    from qa_service.audit.events import AuditEvent, record_event

    record_event(
        session,
        actor=_actor(),
        event=AuditEvent.ROSTER_IMPORT,
        target=f"file:{path.name}",
        details={
            "created": result.created,
            "updated": result.updated,
            "unchanged": result.unchanged,
            "calls_updated": result.calls_updated,
            "rejected": len(result.rejected),
        },
    )


def _user_id(session: Session, name: str) -> int:
    from qa_service.accounts.service import find_user

    account = find_user(session, username=name)
    if account is None:
        raise UserNotFound(f"用户不存在 / no such user: {name}", username=name)
    return account.user_id
