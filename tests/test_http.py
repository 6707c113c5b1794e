"""The HTTP surface: health, GraphiQL only in development, GET for queries."""

from __future__ import annotations

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from tests.conftest import make_client


async def test_healthz(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_graphiql_in_development_only(
    client: httpx.AsyncClient, engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    page = await client.get("/graphql", headers={"Accept": "text/html"})
    assert page.status_code == 200
    assert "graphiql" in page.text.lower()
    async with make_client(engine, sessions, environment="production") as production:
        refused = await production.get("/graphql", headers={"Accept": "text/html"})
    assert refused.status_code == 404


async def test_query_over_get(client: httpx.AsyncClient) -> None:
    response = await client.get("/graphql", params={"query": "{ teams(first: 1) { totalCount } }"})
    assert response.status_code == 200
    assert response.json()["data"]["teams"]["totalCount"] >= 1


async def test_cors_allow_list(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    async with make_client(engine, sessions, cors_origins=["https://board.example.com"]) as client:
        allowed = await client.options(
            "/graphql",
            headers={
                "Origin": "https://board.example.com",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization, content-type",
            },
        )
        assert allowed.status_code == 200
        assert allowed.headers["access-control-allow-origin"] == "https://board.example.com"
        refused = await client.options(
            "/graphql",
            headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
        )
        assert refused.status_code == 400
        assert "access-control-allow-origin" not in refused.headers
        simple = await client.post(
            "/graphql",
            json={"query": "{ __typename }"},
            headers={"Origin": "https://evil.example"},
        )
        assert "access-control-allow-origin" not in simple.headers
