"""Alembic environment: run migrations on the connection ``qa_service.db.migrate`` hands over.

There is no alembic.ini; :func:`qa_service.db.session.alembic_config` builds the config in
code. Without a handed-over connection (e.g. ``alembic`` driven by a developer through that
config) the URL comes from the config or, failing that, from the service settings.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from qa_service.db.search import include_object
from qa_service.db.tables import Base

target_metadata = Base.metadata


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        compare_type=True,
        # The transcript search index (0005) lives outside the ORM tables.
        include_object=include_object,
        # SQLite cannot ALTER most things; batch mode rebuilds the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
    )


def _url() -> str:
    url = context.config.get_main_option("sqlalchemy.url")
    if url:
        return url
    from qa_service.settings import get_settings

    return get_settings().resolved_database_url


def run_migrations_offline() -> None:
    context.configure(
        url=_url(),
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        return

    from qa_service.db.session import make_engine

    engine = make_engine(_url())
    try:
        with engine.connect() as own_connection:
            _configure(own_connection)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
