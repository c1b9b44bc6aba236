"""Command line: ``qa-service keys generate | rotate`` (personal data at rest).

The keys themselves live in settings (``QA_DATA_KEY``, ``QA_SEARCH_KEY``), never in the
database; see :mod:`qa_service.privacy.keys`.
"""

from __future__ import annotations

import typer

from qa_service.cli.support import fail
from qa_service.errors import QAServiceError
from qa_service.settings import get_settings

keys_app = typer.Typer(help="个人信息加密密钥 / keys for personal data", no_args_is_help=True)


@keys_app.command("generate")
def generate() -> None:
    """打印一个新的随机密钥 / print a new random key (base64, 32 bytes)."""
    from qa_service.privacy.keys import generate_key

    typer.echo(generate_key())


@keys_app.command("rotate")
def rotate() -> None:
    """用 QA_DATA_KEY 的第一个密钥重新加密全部数据 / re-seal everything under the first key.

    先把新密钥放在 QA_DATA_KEY 最前面（旧密钥保留在后面），运行本命令，完成后再删除旧密钥。
    Put the new key first in QA_DATA_KEY (old keys after it), run this, then drop the old
    keys. Also re-hashes every number under the current QA_SEARCH_KEY.
    """
    from qa_service.db.rotation import rotate_keys
    from qa_service.db.session import make_engine, migrate
    from qa_service.privacy.keys import install_key_ring, key_ring_from_settings

    settings = get_settings()
    try:
        ring = key_ring_from_settings(settings)
        install_key_ring(ring)
        engine = make_engine(settings.resolved_database_url)
        try:
            migrate(engine)
            report = rotate_keys(engine, ring=ring)
        finally:
            engine.dispose()
    except QAServiceError as exc:
        raise fail(exc) from exc
    if ring.development:
        typer.secho(
            "警告：使用的是公开的开发密钥 / warning: the public development key is in use",
            err=True,
            fg=typer.colors.YELLOW,
        )
    for name, seen in report.seen.items():
        typer.echo(
            f"{name}: {seen} 个加密值，重新加密 {report.resealed[name]}，"
            f"重算哈希 {report.rehashed[name]} / {seen} sealed, "
            f"{report.resealed[name]} re-sealed, {report.rehashed[name]} re-hashed"
        )
    typer.echo(f"当前密钥 / primary key id: {ring.primary_id}")


def register(app: typer.Typer) -> None:
    app.add_typer(keys_app, name="keys")
