"""Scopes declared on fields are enforced on exactly those fields, for real tokens;
anonymous callers refused a field are asked to authenticate (401)."""

from __future__ import annotations

from typing import Any

import httpx
from graphql import GraphQLObjectType, build_schema, get_named_type
from sqlalchemy.ext.asyncio import AsyncSession

from schema.ids import encode_id
from tests.conftest import GraphQL
from tests.fixtures import factories
from tests.test_schema_contract import SCHEMA_FILE


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


def _entity_paths_without_a_guard() -> list[str]:
    """Fields, anywhere in the schema, that lead to an object identified by a global ID
    (a ``Node``) or to a connection of them, without a scope of their own. A connection's
    ``nodes``/``edges``/``node`` are reached only through a connection field, and
    ``node``/``nodes`` check the scope of the type they find in their resolver."""
    schema = build_schema(SCHEMA_FILE.read_text())
    node = schema.type_map["Node"]
    entities = {
        name
        for name, kind in schema.type_map.items()
        if isinstance(kind, GraphQLObjectType) and node in kind.interfaces
    }
    unguarded = []
    for type_name, kind in schema.type_map.items():
        if not isinstance(kind, GraphQLObjectType) or type_name.startswith("__"):
            continue
        if type_name.endswith(("Connection", "Edge")):
            continue  # nodes, edges, node: behind the connection's own field
        for field_name, field in kind.fields.items():
            target = get_named_type(field.type).name
            leads = target in entities or target == "Node" or target.endswith("Connection")
            if not leads or (type_name, field_name) in {("Query", "node"), ("Query", "nodes")}:
                continue
            assert field.ast_node is not None
            if not any(d.name.value == "requiresScopes" for d in field.ast_node.directives or ()):
                unguarded.append(f"{type_name}.{field_name}")
    return unguarded


# The caller itself.
SELF = {"Viewer.user", "Viewer.client"}
# Admin payloads, checked below: every mutation returning them needs the scope that
# reading their type needs.
ADMIN_PAYLOADS = {
    "UserPayload.user": "users",
    "RolePayload.role": "roles",
    "OAuthClientPayload.client": "oauthClients",
}


def _scopes_of(field: Any) -> set[str]:
    for directive in field.ast_node.directives or ():
        if directive.name.value == "requiresScopes":
            return {value.value for value in directive.arguments[0].value.values}
    return set()


def test_every_path_to_an_entity_names_its_scope() -> None:
    """Mutation payloads included: a caller holding only a write scope must not read
    what it writes through the payload (a stale version once showed the row as stored)."""
    assert set(_entity_paths_without_a_guard()) == SELF | set(ADMIN_PAYLOADS)
    schema = build_schema(SCHEMA_FILE.read_text())
    mutation = schema.mutation_type
    assert mutation is not None
    for payload_field, listing in ADMIN_PAYLOADS.items():
        payload = payload_field.split(".")[0]
        needed = _scopes_of(schema.query_type.fields[listing])  # type: ignore[union-attr]
        returning = [
            field
            for field in mutation.fields.values()
            if get_named_type(field.type).name == payload
        ]
        assert returning and needed
        assert all(_scopes_of(field) == needed for field in returning), payload


PAYLOAD_UPDATE = """
mutation($id: ID!, $version: Int!, $title: String!) {
  updateInitiative(input: {id: $id, expectedVersion: $version, title: $title}) {
    initiative { id title summary }
    userErrors { code message }
  }
}
"""


async def test_a_writer_without_read_scope_is_not_shown_the_payloads_entity(
    caller: Any, db: AsyncSession
) -> None:
    initiative = await factories.initiative(db, title="Secret plan", summary="hush")
    await db.commit()
    writer: GraphQL = await caller(["initiatives:write"])
    variables = {"id": encode_id("Initiative", initiative.id), "version": 1}
    # Twice each: the second time the document is known (schema.known_writes).
    for attempt in range(2):
        stale = await writer(PAYLOAD_UPDATE, variables | {"version": 99, "title": "x"})
        assert stale["data"]["updateInitiative"]["initiative"] is None
        assert [e["code"] for e in stale["data"]["updateInitiative"]["userErrors"]] == ["CONFLICT"]
        [error] = stale["errors"]
        assert error["path"] == ["updateInitiative", "initiative"]
        assert error["extensions"] == {"code": "FORBIDDEN", "requiredScopes": ["portfolio:read"]}
        assert error["message"] == "Missing scope: this field requires portfolio:read."
        assert "Secret plan" not in str(stale) and "hush" not in str(stale)

        title = f"Renamed {attempt}"
        written = await writer(PAYLOAD_UPDATE, variables | {"version": 1 + attempt, "title": title})
        assert written["data"]["updateInitiative"] == {"initiative": None, "userErrors": []}
        assert written["errors"][0]["extensions"]["code"] == "FORBIDDEN"
        await db.refresh(initiative)
        assert initiative.title == title  # the write itself is the writer's to make

    reader: GraphQL = await caller(["initiatives:write", "portfolio:read"])
    shown = await reader(PAYLOAD_UPDATE, variables | {"version": 3, "title": "Shown"})
    assert "errors" not in shown
    assert shown["data"]["updateInitiative"]["initiative"]["title"] == "Shown"
