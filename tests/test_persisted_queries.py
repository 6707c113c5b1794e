"""Persisted queries (Apollo's protocol) and the persisted-only mode."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from typer.testing import CliRunner

from api import models
from api.cli import app as cli
from api.services.persisted import digest
from tests.conftest import make_client
from tests.test_cli import fresh_database  # noqa: F401  (fixture)

QUERY = "{ products(first: 1) { totalCount } }"
HASH = digest(QUERY)


def persisted(sha256: str = HASH, **extra: Any) -> dict[str, Any]:
    return {"extensions": {"persistedQuery": {"version": 1, "sha256Hash": sha256}}, **extra}


async def test_automatic_persisted_queries(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession], db: AsyncSession
) -> None:
    async with make_client(engine, sessions) as client:
        missing = await client.post("/graphql", json=persisted())
        assert missing.status_code == 200
        assert missing.json() == {
            "errors": [
                {
                    "message": "PersistedQueryNotFound",
                    "extensions": {"code": "PERSISTED_QUERY_NOT_FOUND"},
                }
            ]
        }
        registered = await client.post("/graphql", json=persisted(query=QUERY))
        assert registered.json()["data"]["products"]["totalCount"] >= 1
        by_hash = await client.post("/graphql", json=persisted())
        assert by_hash.json()["data"] == registered.json()["data"]
        by_get = await client.get(
            "/graphql",
            params={"extensions": orjson.dumps(persisted()["extensions"]).decode()},
        )
        assert by_get.json()["data"] == registered.json()["data"]
        mismatch = await client.post("/graphql", json=persisted(query="{ teams { totalCount } }"))
    assert mismatch.status_code == 400
    assert mismatch.json()["errors"][0]["extensions"] == {"code": "PERSISTED_QUERY_HASH_MISMATCH"}
    stored = await db.scalar(
        select(func.count())
        .select_from(models.PersistedQuery)
        .where(models.PersistedQuery.sha256 == HASH)
    )
    assert stored == 1


async def test_persisted_only_mode(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession], db: AsyncSession
) -> None:
    async with make_client(engine, sessions, persisted_queries_only=True) as client:
        free_form = await client.post("/graphql", json={"query": QUERY})
        assert free_form.status_code == 400
        assert free_form.json()["errors"][0] == {
            "message": "This server only runs persisted queries: send "
            "extensions.persistedQuery.sha256Hash of a registered document.",
            "extensions": {"code": "PERSISTED_QUERY_REQUIRED"},
        }
        # Clients cannot register new documents in this mode.
        attempt = await client.post("/graphql", json=persisted(query=QUERY))
        assert attempt.json()["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND"
        db.add(models.PersistedQuery(sha256=HASH, document=QUERY))
        await db.commit()
        allowed = await client.post("/graphql", json=persisted())
    assert allowed.status_code == 200
    assert allowed.json()["data"]["products"]["totalCount"] >= 1


def test_persist_queries_command(fresh_database: str, tmp_path: Path) -> None:  # noqa: F811
    assert CliRunner().invoke(cli, ["migrate", "upgrade"]).exit_code == 0
    document = tmp_path / "overview.graphql"
    document.write_text(QUERY, encoding="utf-8")
    result = CliRunner().invoke(cli, ["persist-queries", str(document)])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"{HASH}  {document}"

    async def stored() -> str | None:
        from sqlalchemy.ext.asyncio import create_async_engine

        engine = create_async_engine(fresh_database)
        async with engine.connect() as connection:
            found = await connection.scalar(
                select(models.PersistedQuery.document).where(models.PersistedQuery.sha256 == HASH)
            )
        await engine.dispose()
        return found

    assert asyncio.run(stored()) == QUERY
