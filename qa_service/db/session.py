"""Engines, sessions and schema migration: the one place that knows how to reach the database.

The service runs on an embedded SQLite file by default and on PostgreSQL in production
(``Settings.resolved_database_url``). Everything backend-specific about *connecting* lives
here, so the repository can stay portable. Every failure to reach or migrate the database
becomes a :class:`~qa_service.errors.StorageError` a user can read.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, Engine, create_engine, event, make_url, text
from sqlalchemy.engine import URL
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

import qa_service.migrations
from qa_service.errors import StorageError

MIGRATIONS_DIR = Path(qa_service.migrations.__file__).resolve().parent

# Any fixed 64-bit key: serialises concurrent migrate() calls (web and worker starting
# together) on PostgreSQL so they do not both try to create the tables.
_MIGRATION_LOCK_KEY = 0x51_41_5F_4D_49_47  # "QA_MIG"


def _json_default(value: object) -> object:
    """Serialise the few non-JSON types evidence dictionaries carry in practice."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, set | frozenset):
        return sorted(value, key=str)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def dumps_json(value: Any) -> str:
    """JSON as stored: UTF-8 Chinese kept readable (no ``\\uXXXX``) for whoever queries it."""
    return json.dumps(value, ensure_ascii=False, default=_json_default)


def _redacted(url: URL) -> str:
    return url.render_as_string(hide_password=True)


def _parse_url(url: str | URL) -> URL:
    try:
        return make_url(url)
    except ArgumentError as exc:
        raise StorageError(
            f"数据库地址无效 / invalid database URL: {exc}", url="<unparseable>"
        ) from exc


def _prepare_sqlite_file(url: URL) -> None:
    database = url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    try:
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(
            f"无法创建数据库目录 / cannot create the database directory: {exc}",
            url=_redacted(url),
        ) from exc


# How long a SQLite writer waits for another one before giving up (a loaded 2-core machine
# analysing and serving at once needs seconds, not the driver's 5 s default).
_SQLITE_BUSY_TIMEOUT_MS = 30_000


def _configure_sqlite(engine: Engine) -> None:
    """Foreign keys on, real transactions, and writers that wait for each other.

    SQLite ignores foreign keys (so ON DELETE CASCADE) unless each connection enables them.
    pysqlite also opens transactions lazily, only before DML, so DDL in a migration and
    SAVEPOINTs would run outside the transaction; SQLAlchemy's documented workaround
    ("Serializable isolation / Savepoints / Transactional DDL") is to switch the driver's
    own handling off and emit BEGIN ourselves.

    ``serve`` runs many requests and the in-process worker against one file: WAL lets
    readers and one writer proceed together, and a writer waits up to the busy timeout for
    another instead of failing at once. (``BEGIN IMMEDIATE`` would also stop two
    read-then-write transactions from failing to upgrade their locks, but code that writes
    an event in its own short transaction while an outer one is open would then wait on
    itself.)
    """

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={_SQLITE_BUSY_TIMEOUT_MS}")
            if engine.url.database not in (None, "", ":memory:"):
                cursor.execute("PRAGMA journal_mode=WAL")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        connection.exec_driver_sql("BEGIN")


def make_engine(url: str | URL) -> Engine:
    """Create the engine for ``url``; connects lazily, so a dead server shows up on first use.

    SQLite file URLs get their parent directory created (the default lives under
    ``data_dir``, which may not exist yet) and foreign keys enabled.
    """
    parsed = _parse_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        _prepare_sqlite_file(parsed)
    try:
        engine = create_engine(
            parsed,
            json_serializer=dumps_json,
            # Long-lived web and worker processes outlive server restarts and idle timeouts.
            pool_pre_ping=backend != "sqlite",
        )
    except (ArgumentError, NoSuchModuleError, ImportError) as exc:
        raise StorageError(
            f"无法创建数据库连接 / cannot create the database engine: {exc}",
            url=_redacted(parsed),
        ) from exc
    if backend == "sqlite":
        _configure_sqlite(engine)
    return engine


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions for ``engine``; use ``with factory.begin() as session:`` to commit or roll back.

    Objects are not expired on commit: the repository returns domain dataclasses, and a
    caller reading a row after commit should not trigger a surprise reload.
    """
    return sessionmaker(bind=engine, expire_on_commit=False)


def alembic_config(url: str | URL | None = None) -> Config:
    """An Alembic ``Config`` built in code: the package ships no alembic.ini.

    ``url`` is only needed for offline (``--sql``) use; :func:`migrate` hands Alembic an
    open connection instead.
    """
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url is not None:
        rendered = _parse_url(url).render_as_string(hide_password=False)
        # ConfigParser interpolation would read a '%' in a password as a directive.
        config.set_main_option("sqlalchemy.url", rendered.replace("%", "%%"))
    return config


def migrate(target: Engine | str | URL) -> None:
    """Bring the schema to the latest revision (``alembic upgrade head``).

    Idempotent and cheap when already current, so every CLI, web and worker start calls it.
    """
    engine = target if isinstance(target, Engine) else make_engine(target)
    config = alembic_config()
    try:
        with engine.connect() as connection:
            sqlite = connection.dialect.name == "sqlite"
            if sqlite:
                # Batch migrations rebuild a table (copy, DROP, rename); with foreign keys on,
                # the DROP would cascade into every child row. SQLite's documented procedure
                # for schema changes: foreign keys off (only possible outside a transaction),
                # change, then foreign_key_check before committing.
                _sqlite_foreign_keys(connection, on=False)
            try:
                with connection.begin():
                    if connection.dialect.name == "postgresql":
                        connection.execute(
                            text("SELECT pg_advisory_xact_lock(:key)"),
                            {"key": _MIGRATION_LOCK_KEY},
                        )
                    config.attributes["connection"] = connection
                    command.upgrade(config, "head")
                    if sqlite:
                        broken = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
                        if broken:
                            raise StorageError(
                                f"迁移后外键不一致 / foreign keys broken by a migration: "
                                f"{broken[:5]}",
                                url=_redacted(engine.url),
                            )
            finally:
                if sqlite:
                    _sqlite_foreign_keys(connection, on=True)
    except SQLAlchemyError as exc:
        raise StorageError(
            f"数据库不可用或迁移失败 / database unreachable or migration failed: {exc}",
            url=_redacted(engine.url),
        ) from exc
    finally:
        if engine is not target:
            engine.dispose()


def _sqlite_foreign_keys(connection: Connection, *, on: bool) -> None:
    # On the driver connection: a statement through SQLAlchemy would begin a transaction
    # first (see _configure_sqlite), and the pragma is a no-op inside one.
    raw = connection.connection.driver_connection
    assert raw is not None
    raw.execute(f"PRAGMA foreign_keys={'ON' if on else 'OFF'}")


def head_revision() -> str:
    """The newest migration this code ships (what ``migrate`` brings a database to)."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "no migrations found"
    return head


def current_revision(engine: Engine) -> str | None:
    """The schema revision the database is at, or None if it was never migrated."""
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    except SQLAlchemyError as exc:
        raise StorageError(
            f"无法读取数据库版本 / cannot read the database schema revision: {exc}",
            url=_redacted(engine.url),
        ) from exc


@contextmanager
def open_database(url: str | URL) -> Iterator[sessionmaker[Session]]:
    """Engine + up-to-date schema + session factory for one command; disposed on exit."""
    engine = make_engine(url)
    try:
        migrate(engine)
        yield make_session_factory(engine)
    finally:
        engine.dispose()
