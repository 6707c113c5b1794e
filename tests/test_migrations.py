"""Migrations and models agree, and the chain goes up, down and up again."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, inspect
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from api import migrate
from api.models import Base
from tests.fixtures.database import create_database, drop_database


@pytest.fixture
async def empty_engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    url, name = await create_database(database_url)
    engine = create_async_engine(url)
    yield engine
    await engine.dispose()
    await drop_database(database_url, name)


async def test_models_and_migrations_agree(engine: AsyncEngine) -> None:
    def diff(connection: Connection) -> list[object]:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "compare_server_default": True}
        )
        return compare_metadata(context, Base.metadata)

    async with engine.connect() as connection:
        assert await connection.run_sync(diff) == []


async def test_upgrade_downgrade_upgrade(empty_engine: AsyncEngine) -> None:
    def tables(connection: Connection) -> set[str]:
        return set(inspect(connection).get_table_names()) - {"alembic_version"}

    await migrate.upgrade(empty_engine)
    assert await migrate.current_revision(empty_engine) == migrate.head_revision()
    async with empty_engine.connect() as connection:
        created = await connection.run_sync(tables)
    assert created == set(Base.metadata.tables)

    await migrate.downgrade(empty_engine, "base")
    assert await migrate.current_revision(empty_engine) is None
    async with empty_engine.connect() as connection:
        assert await connection.run_sync(tables) == set()

    await migrate.upgrade(empty_engine)
    assert await migrate.current_revision(empty_engine) == migrate.head_revision()
