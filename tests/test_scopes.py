"""Scopes declared on fields are enforced on exactly those fields."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from schema.ids import encode_id
from tests.conftest import GraphQL, make_client
from tests.fixtures import factories


@pytest.fixture
async def reader(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> AsyncIterator[GraphQL]:
    """A caller with portfolio:read only (no finance:read)."""
    client: httpx.AsyncClient
    async with make_client(engine, sessions, anonymous_scopes=["portfolio:read"]) as client:
        yield GraphQL(client)


@pytest.fixture
async def nobody(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> AsyncIterator[GraphQL]:
    async with make_client(engine, sessions, anonymous_scopes=[]) as client:
        yield GraphQL(client)


async def test_money_needs_finance_read_and_other_fields_still_resolve(
    reader: GraphQL, gql: GraphQL, db: AsyncSession
) -> None:
    initiative = await factories.initiative(db, estimated_cost=125000)
    await db.commit()
    query = "query($k: String!) { initiative(key: $k) { key estimatedCost } }"
    body = await reader(query, {"k": initiative.key})
    assert body["data"] == {"initiative": {"key": initiative.key, "estimatedCost": None}}
    [error] = body["errors"]
    assert error["path"] == ["initiative", "estimatedCost"]
    assert error["extensions"] == {"code": "FORBIDDEN", "requiredScopes": ["finance:read"]}
    assert error["message"] == "Missing scope: this field requires finance:read."
    # With every read scope (development default) the value is there.
    allowed = await gql.data(query, {"k": initiative.key})
    assert allowed["initiative"]["estimatedCost"] == "125000.00"


async def test_without_portfolio_read_every_root_and_node_is_refused(
    nobody: GraphQL, db: AsyncSession
) -> None:
    product = await factories.product(db)
    await db.commit()
    body = await nobody(
        "query($id: ID!) { products { totalCount } node(id: $id) { id } }",
        {"id": encode_id("Product", product.id)},
    )
    assert body["data"] == {"products": None, "node": None}
    errors = sorted(body["errors"], key=lambda e: e["path"][0])
    assert [e["path"] for e in errors] == [["node"], ["products"]]
    for error in errors:
        assert error["extensions"] == {"code": "FORBIDDEN", "requiredScopes": ["portfolio:read"]}


async def test_production_default_grants_nothing_to_anonymous(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    async with make_client(engine, sessions, environment="production") as client:
        body = await GraphQL(client)("{ products { totalCount } }")
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
