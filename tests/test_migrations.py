"""Migrations and models agree, and the chain goes up, down and up again."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, inspect
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

import migrations
from api import migrate
from domain.models import Base
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


async def test_a_new_revision_takes_the_next_number_and_follows_head(engine: AsyncEngine) -> None:
    versions = sorted(p.name for p in (Path(migrations.__file__).parent / "versions").glob("0*.py"))
    expected = f"{int(versions[-1][:4]) + 1:04d}"
    head = migrate.head_revision()

    written = await migrate.new_revision(engine, "nothing changed")
    try:
        assert written.name == f"{expected}_nothing_changed.py"
        text = written.read_text()
        assert f"revision: str = {expected!r}" in text
        assert f"= {head!r}" in text  # down_revision: the previous head
        # The models and the database agree, so autogenerate found nothing to do.
        assert "op." not in text
    finally:
        written.unlink()
    assert migrate.head_revision() == head
