"""The `portfolio` command against a fresh database: migrate, seed (idempotent), current."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import create_async_engine
from typer.testing import CliRunner

from api import migrate, models
from api.cli import app
from api.settings import get_settings
from tests.fixtures.database import create_database, drop_database

COUNTED = (models.Team, models.Product, models.Initiative, models.Kpi, models.KpiMeasurement)


@pytest.fixture
def fresh_database(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    url, name = asyncio.run(create_database(database_url))
    monkeypatch.setenv("DATABASE_URL", url)
    get_settings.cache_clear()
    yield url
    get_settings.cache_clear()
    asyncio.run(drop_database(database_url, name))


def counts(url: str) -> dict[str, int]:
    async def run() -> dict[str, int]:
        engine = create_async_engine(url)
        async with engine.connect() as connection:
            found = {
                model.__tablename__: await connection.scalar(
                    select(func.count()).select_from(model)
                )
                for model in COUNTED
            }
        await engine.dispose()
        return found  # type: ignore[return-value]

    return asyncio.run(run())


def invoke(*args: str) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_migrate_and_seed_demo_twice(fresh_database: str) -> None:
    assert "database: empty" in invoke("migrate", "current")
    invoke("migrate", "upgrade")
    head = migrate.head_revision()
    assert f"database: {head}  head: {head}" in invoke("migrate", "current")
    invoke("seed", "--demo")
    first = counts(fresh_database)
    assert first["products"] >= 8 and first["initiatives"] >= 50
    assert first["kpi_measurements"] >= 365 * first["kpis"] * 0.9
    invoke("seed", "--demo")
    assert counts(fresh_database) == first


def test_seed_generated_scales_with_products(fresh_database: str) -> None:
    invoke("seed", "--products", "20")
    generated = counts(fresh_database)
    assert generated["products"] == 20
    assert 150 <= generated["initiatives"] <= 250
    assert generated["kpis"] == 80
    invoke("seed", "--products", "20")
    assert counts(fresh_database) == generated


def test_seed_needs_exactly_one_source() -> None:
    result = CliRunner().invoke(app, ["seed"])
    assert result.exit_code == 2
    assert "pass exactly one of --demo or --products N" in result.output
