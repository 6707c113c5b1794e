"""Alembic environment.

Runs on a connection handed over by ``api.migrate`` (so the app, the CLI and
the tests migrate through one code path), or, for the plain ``alembic`` CLI,
on a fresh async engine built from the application settings.
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import pool
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from domain.database import to_async_url
from domain.models import Base
from domain.settings import get_settings

config = context.config
target_metadata = Base.metadata


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        compare_type=True,
        compare_server_default=True,
        transaction_per_migration=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_with_own_engine() -> None:
    # Run as `alembic ...` from the shell: the database is DATABASE_URL's. The
    # embedded server is started by the application (`portfolio migrate ...`), not here.
    url = config.get_main_option("sqlalchemy.url") or get_settings().database_url
    if not url:
        raise SystemExit(
            "alembic needs DATABASE_URL; with the embedded database use "
            "`.venv/bin/portfolio migrate ...` instead."
        )
    url = to_async_url(url)
    engine = create_async_engine(url, poolclass=pool.NullPool)
    async with engine.connect() as connection:
        await connection.run_sync(_configure)
        await connection.commit()
    await engine.dispose()


if context.is_offline_mode():
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()
elif (connection := config.attributes.get("connection")) is not None:
    _configure(connection)
else:
    asyncio.run(_run_with_own_engine())
