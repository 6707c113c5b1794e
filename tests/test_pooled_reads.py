"""A repeated read runs on a connection of the engine's pool, outside any ORM session:
the app here is the production wiring (``create_app``), not the tests' one transaction,
so its database is one of the test's own."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from api.app import create_app
from schema.ids import encode_id
from tests.conftest import settings_for

NODE = "query($id: ID!) { node(id: $id) { ... on Initiative { key title } } }"


@pytest.fixture
async def app(own_database: str) -> AsyncIterator[Any]:
    app = create_app(settings_for(anonymous_scopes=["portfolio:read"]), database_url=own_database)
    yield app
    await app.state.engine.dispose()


async def _initiatives(url: str) -> list[tuple[int, str]]:
    engine = create_async_engine(url)
    async with engine.connect() as connection:
        rows = await connection.execute(text("SELECT id, key FROM initiatives ORDER BY id"))
        found = [(row.id, row.key) for row in rows]
    await engine.dispose()
    return found


async def _ask(client: httpx.AsyncClient, pk: int) -> httpx.Response:
    return await client.post(
        "/graphql", json={"query": NODE, "variables": {"id": encode_id("Initiative", pk)}}
    )


async def test_a_repeated_read_runs_on_a_pooled_connection_and_returns_it(
    app: Any, own_database: str
) -> None:
    initiatives = await _initiatives(own_database)
    pool = app.state.engine.pool
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        paths = []
        for pk, key in initiatives[:4]:
            response = await _ask(client, pk)
            assert response.status_code == 200
            body = response.json()
            assert body["data"] == {"node": {"key": key, "title": body["data"]["node"]["title"]}}
            paths.append(body["extensions"]["answeredBy"])
            assert pool.checkedout() == 0  # every request gave its connection back
    # Planned, rendered, then answered from the known plan with new IDs.
    assert paths == ["compiled", "compiled", "repeated", "repeated"]


async def test_a_pooled_connection_lost_to_the_database_is_replaced(
    app: Any, own_database: str
) -> None:
    initiatives = await _initiatives(own_database)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        for pk, _ in initiatives[:3]:
            assert (await _ask(client, pk)).status_code == 200
        # Every server connection of the app ends (an administrator, a failover).
        admin = create_async_engine(own_database)
        async with admin.connect() as connection:
            await connection.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE application_name = 'portfolio-graph'"
                    " AND datname = current_database()"
                )
            )
        await admin.dispose()
        # Either the loss was seen while idle (the connection is dropped before use) or
        # the read hits it: then that request alone is refused, as retryable.
        first = await _ask(client, initiatives[3][0])
        if first.status_code != 200:
            assert first.status_code == 503
            assert first.headers["retry-after"] == "2"
            error = first.json()["errors"][0]
            assert error["extensions"]["code"] == "SERVICE_UNAVAILABLE"
            assert error["message"] == "The database connection was lost; retry shortly."
        again = await _ask(client, initiatives[4][0])
        assert again.status_code == 200
        assert again.json()["data"]["node"]["key"] == initiatives[4][1]
        assert again.json()["extensions"]["answeredBy"] == "repeated"
        assert app.state.engine.pool.checkedout() == 0
