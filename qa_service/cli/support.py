"""What every ``qa-service`` command shares: the error exit, the database sessions, the reader."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import TYPE_CHECKING

import typer

from qa_service.accounts.roles import Principal, Role
from qa_service.errors import QAServiceError
from qa_service.settings import Settings

if TYPE_CHECKING:  # SQLAlchemy loads only when a command runs: keeps `qa-service --help` fast
    from sqlalchemy.orm import Session, sessionmaker

# The command line reads everything, as a manager does (it holds the database anyway):
# the principal its reports pass to the scoped loaders (complaints, trends, coaching).
CLI_READER = Principal(user_id=0, username="cli", display_name="命令行", role=Role.MANAGER)


def fail(exc: QAServiceError) -> typer.Exit:
    """Print ``exc`` in red (code and bilingual message) and exit with status 2."""
    typer.secho(f"错误 / error [{exc.code}]: {exc.message}", err=True, fg=typer.colors.RED)
    return typer.Exit(code=2)


def open_sessions(settings: Settings) -> AbstractContextManager[sessionmaker[Session]]:
    """The configured database, migrated, as a session factory (closed on exit)."""
    from qa_service.db.session import open_database
    from qa_service.privacy.keys import install_key_ring, key_ring_from_settings

    # Sealed columns (personal data) read and write through this process's key ring.
    install_key_ring(key_ring_from_settings(settings))
    return open_database(settings.resolved_database_url)
