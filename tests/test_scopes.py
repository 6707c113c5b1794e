"""Scopes declared on fields are enforced on exactly those fields, for real tokens;
anonymous callers refused a field are asked to authenticate (401)."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from schema.ids import encode_id
from tests.conftest import GraphQL
from tests.fixtures import factories


async def test_money_needs_finance_read_and_other_fields_still_resolve(
    caller: Any, db: AsyncSession
) -> None:
    initiative = await factories.initiative(db, estimated_cost=125000)
    await db.commit()
    query = "query($k: String!) { initiative(key: $k) { key estimatedCost } }"
    reader: GraphQL = await caller(["portfolio:read"])
    body = await reader(query, {"k": initiative.key})
    assert body["data"] == {"initiative": {"key": initiative.key, "estimatedCost": None}}
    [error] = body["errors"]
    assert error["path"] == ["initiative", "estimatedCost"]
    assert error["extensions"] == {"code": "FORBIDDEN", "requiredScopes": ["finance:read"]}
    assert error["message"] == "Missing scope: this field requires finance:read."

    finance: GraphQL = await caller(["portfolio:read", "finance:read"])
    allowed = await finance.data(query, {"k": initiative.key})
    assert allowed["initiative"]["estimatedCost"] == "125000.00"


async def test_without_portfolio_read_roots_and_nodes_are_refused(
    caller: Any, db: AsyncSession
) -> None:
    product = await factories.product(db)
    await db.commit()
    api: GraphQL = await caller(["finance:read"])
    body = await api(
        "query($id: ID!) { products { totalCount } node(id: $id) { id } }",
        {"id": encode_id("Product", product.id)},
    )
    assert body["data"] == {"products": None, "node": None}
    errors = sorted(body["errors"], key=lambda e: e["path"][0])
    assert [e["path"] for e in errors] == [["node"], ["products"]]
    for error in errors:
        assert error["extensions"] == {"code": "FORBIDDEN", "requiredScopes": ["portfolio:read"]}


async def test_audit_node_needs_audit_read(caller: Any, writer: GraphQL, db: AsyncSession) -> None:
    created = await writer.data(
        'mutation { createTeam(input: {key: "AUDITED", name: "x", kind: BUSINESS}) '
        "{ team { history { nodes { id } } } } }"
    )
    event_id = created["createTeam"]["team"]["history"]["nodes"][0]["id"]
    reader: GraphQL = await caller(["portfolio:read"])
    body = await reader("query($id: ID!) { node(id: $id) { id } }", {"id": event_id})
    assert body["errors"][0]["extensions"] == {
        "code": "FORBIDDEN",
        "requiredScopes": ["audit:read"],
    }
    auditor: GraphQL = await caller(["audit:read"])
    assert await auditor.data("query($id: ID!) { node(id: $id) { id } }", {"id": event_id}) == {
        "node": {"id": event_id}
    }


async def test_anonymous_in_production_is_asked_for_a_token(app: Any) -> None:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as client:
        response = await client.post("/graphql", json={"query": "{ products { totalCount } }"})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="portfolio-graph"'
    body = response.json()
    assert body["data"] == {"products": None}
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
