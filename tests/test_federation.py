"""The schema as an Apollo Federation 2 subgraph (``PORTFOLIO_FEDERATION=true``):
``_service { sdl }`` publishes the public SDL with ``@key`` and ``@link``; ``_entities``
answers as ``nodes`` does (scopes first, nulls for what does not exist, precise errors
for malformed representations), batched; a real Apollo gateway composes it with a
second subgraph. Off by default, and the committed schema.graphql never changes."""

from __future__ import annotations

import json
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from graphql import build_ast_schema, parse
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from schema.federation import MAX_REPRESENTATIONS
from schema.ids import encode_id
from schema.sdl import render_sdl
from tests.conftest import GraphQL, make_client
from tests.fixtures.auth import bearer
from tests.fixtures.cli import created_client, portfolio
from tests.fixtures.database import StatementCounter
from tests.fixtures.node import NodePackages
from tests.fixtures.server import served_in_process

GATEWAY = Path(__file__).with_name("federation_gateway")
# Installing starts now, at collection: see tests.fixtures.node.
GATEWAY_PACKAGES = NodePackages(GATEWAY, "@apollo/gateway")
READ = ["portfolio:read"]

ENTITIES = """query($r: [_Any!]!) { _entities(representations: $r) {
  __typename
  ... on Product { key name }
  ... on Initiative { key title }
  ... on TechnicalConstraint { key title }
  ... on Kpi { key name }
} }"""


@pytest.fixture
async def subgraph(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> AsyncIterator[Any]:
    """``await subgraph(scopes)``: a caller with a real token of those scopes, against the
    app serving the subgraph (production: anonymous callers may read nothing)."""
    clients: list[httpx.AsyncClient] = []
    app_client = make_client(engine, sessions, environment="production", federation=True)
    clients.append(app_client)
    app = app_client._transport.app  # type: ignore[attr-defined]

    async def make(scopes: list[str]) -> GraphQL:
        async with sessions() as db:
            headers = await bearer(app, db, scopes)
        client = make_client(engine, sessions, headers=headers, app=app)
        clients.append(client)
        return GraphQL(client)

    yield make
    for client in clients:
        await client.aclose()


async def ids_of(db: AsyncSession, table: str, type_name: str, *keys: str) -> list[str]:
    rows = await db.execute(
        text(f"SELECT key, id FROM {table} WHERE key = ANY(:keys)"), {"keys": list(keys)}
    )
    found = {key: pk for key, pk in rows}
    return [encode_id(type_name, found[key]) for key in keys]


def representation(type_name: str, **key: str) -> dict[str, str]:
    return {"__typename": type_name, **key}


async def test_the_subgraph_sdl_has_keys_and_link_and_no_federation_fields(
    subgraph: Any,
) -> None:
    reader = await subgraph([])  # _service needs no scope
    sdl = (await reader.data("{ _service { sdl } }"))["_service"]["sdl"]
    assert sdl == render_sdl(federation=True)
    assert sdl.startswith(
        'extend schema @link(url: "https://specs.apollo.dev/federation/v2.3", import: ["@key"])\n'
    )
    for type_name in ("Product", "Initiative", "TechnicalConstraint", "Kpi"):
        assert f'type {type_name} implements Node @key(fields: "id") @key(fields: "key") {{' in sdl
    assert "type Team implements Node {" in sdl  # not an entity
    assert "_entities" not in sdl and "_Any" not in sdl and "_Service" not in sdl
    # The rest is the public schema, type for type.
    public = build_ast_schema(parse(render_sdl()))
    published = build_ast_schema(parse(sdl.split("\n", 1)[1]), assume_valid_sdl=True)
    assert sorted(public.type_map) == sorted(published.type_map)


async def test_the_committed_schema_and_the_default_server_have_no_federation(
    writer: GraphQL,
) -> None:
    assert "_entities" not in render_sdl() and "@key" not in render_sdl()
    body = await writer("{ _service { sdl } }")
    assert body["errors"][0]["message"] == "Cannot query field '_service' on type 'Query'."
    assert body["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"


async def test_entities_by_id_and_by_key_in_order_one_statement_per_type_and_key(
    subgraph: Any, db: AsyncSession, statements: StatementCounter
) -> None:
    reader = await subgraph(READ)
    pay, chk = await ids_of(db, "products", "Product", "PAY", "CHK")
    [initiative] = await ids_of(db, "initiatives", "Initiative", "CHK-103")
    [constraint] = await ids_of(db, "technical_constraints", "TechnicalConstraint", "TC-02")
    kpi_key = await db.scalar(text("SELECT min(key) FROM kpis"))
    representations = [
        representation("Product", id=pay),
        representation("Initiative", key="CHK-103"),
        representation("Product", key="CHK"),
        representation("TechnicalConstraint", id=constraint),
        representation("Kpi", key=kpi_key),
        representation("Initiative", id=initiative),
        representation("Product", id=chk),
        representation("Product", key="NO-SUCH-PRODUCT"),
        representation("Product", id=encode_id("Product", 987654321)),
    ]
    statements.statements.clear()
    entities = (await reader.data(ENTITIES, {"r": representations}))["_entities"]
    assert [e and (e["__typename"], e["key"]) for e in entities] == [
        ("Product", "PAY"),
        ("Initiative", "CHK-103"),
        ("Product", "CHK"),
        ("TechnicalConstraint", "TC-02"),
        ("Kpi", kpi_key),
        ("Initiative", "CHK-103"),
        ("Product", "CHK"),
        None,  # no such key
        None,  # no such id
    ]
    # Products by id, by key; initiatives by id, by key; constraints by id; KPIs by key.
    tables = ("products", "initiatives", "technical_constraints", "kpis")
    lookups = [s for s in statements.statements if s.split("\nFROM ")[-1].split()[0] in tables]
    assert len(lookups) == 6, lookups


async def test_a_long_batch_is_still_one_statement_per_type_and_key(
    subgraph: Any, db: AsyncSession, statements: StatementCounter
) -> None:
    reader = await subgraph(READ)
    keys = list(await db.scalars(text("SELECT key FROM initiatives ORDER BY key LIMIT 60")))
    statements.statements.clear()
    representations = [representation("Initiative", key=key) for key in keys]
    entities = (await reader.data(ENTITIES, {"r": representations}))["_entities"]
    assert [entity["key"] for entity in entities] == keys
    lookups = [s for s in statements.statements if "FROM initiatives" in s]
    assert len(lookups) == 1, lookups


async def test_an_archived_entity_is_null(subgraph: Any, db: AsyncSession) -> None:
    reader = await subgraph(READ)
    await db.execute(text("UPDATE products SET archived_at = now() WHERE key = 'PAY'"))
    await db.commit()
    entities = await reader.data(ENTITIES, {"r": [representation("Product", key="PAY")]})
    assert entities == {"_entities": [None]}


async def test_entities_need_the_scope_node_needs(subgraph: Any, db: AsyncSession) -> None:
    """Without portfolio:read every representation is refused before any lookup: the
    same FORBIDDEN for an object that exists and one that does not."""
    ingest = await subgraph(["kpis:ingest"])
    [pay] = await ids_of(db, "products", "Product", "PAY")
    representations = [
        representation("Product", id=pay),
        representation("Product", id=encode_id("Product", 987654321)),
        representation("Kpi", key="NOPE"),
    ]
    body = await ingest(ENTITIES, {"r": representations})
    assert body["data"] == {"_entities": [None, None, None]}
    assert [(e["path"], e["message"], e["extensions"]) for e in body["errors"]] == [
        (
            ["_entities", index],
            "Missing scope: this field requires portfolio:read.",
            {"code": "FORBIDDEN", "requiredScopes": ["portfolio:read"]},
        )
        for index in range(3)
    ]


async def test_a_guarded_field_stays_guarded_on_an_entity(subgraph: Any, db: AsyncSession) -> None:
    reader = await subgraph(READ)
    query = """query($r: [_Any!]!) { _entities(representations: $r) {
      ... on Initiative { key estimatedCost } } }"""
    body = await reader(query, {"r": [representation("Initiative", key="CHK-103")]})
    assert body["data"] == {"_entities": [{"key": "CHK-103", "estimatedCost": None}]}
    [error] = body["errors"]
    assert error["path"] == ["_entities", 0, "estimatedCost"]
    assert error["message"] == "Missing scope: this field requires finance:read."
    assert error["extensions"]["code"] == "FORBIDDEN"


BAD = [
    (
        "not an object",
        "`representations.0` must be an object with `__typename` and a key.",
        "representations.0",
    ),
    (
        {"__typename": "Team", "key": "PAYMENTS-ENG"},
        "`representations.0.__typename` must be one of Product, Initiative, "
        'TechnicalConstraint, Kpi; got "Team".',
        "representations.0.__typename",
    ),
    (
        {"key": "PAY"},
        "`representations.0.__typename` must be one of Product, Initiative, "
        "TechnicalConstraint, Kpi; got null.",
        "representations.0.__typename",
    ),
    (
        {"__typename": "Product", "name": "Payments Platform"},
        "`representations.0` must give one of id, key for a Product.",
        "representations.0",
    ),
    (
        {"__typename": "Product", "key": 7},
        "`representations.0.key` must be a string.",
        "representations.0.key",
    ),
    (
        {"__typename": "Product", "id": "not a global id"},
        "`not a global id` is not a valid global ID.",
        "representations.0.id",
    ),
    (
        {"__typename": "Product", "id": encode_id("Team", 1)},
        "`representations.0.id` is a Team ID, not a Product ID.",
        "representations.0.id",
    ),
]


@pytest.mark.parametrize(("bad", "message", "field"), BAD)
async def test_a_malformed_representation_is_null_with_a_precise_error(
    subgraph: Any, bad: Any, message: str, field: str
) -> None:
    reader = await subgraph(READ)
    good = representation("Product", key="PAY")
    body = await reader(ENTITIES, {"r": [bad, good]})
    assert body["data"]["_entities"][0] is None
    assert body["data"]["_entities"][1]["key"] == "PAY"  # the rest is answered
    [error] = body["errors"]
    assert (error["path"], error["message"]) == (["_entities", 0], message)
    assert error["extensions"] == {"code": "INVALID", "field": field}


async def test_too_many_representations_are_refused(subgraph: Any) -> None:
    reader = await subgraph(READ)
    many = [representation("Product", key="PAY")] * (MAX_REPRESENTATIONS + 1)
    body = await reader(ENTITIES, {"r": many})
    assert body["data"] is None
    [error] = body["errors"]
    assert error["message"] == (
        f"`representations` takes at most {MAX_REPRESENTATIONS} entities; "
        f"got {MAX_REPRESENTATIONS + 1}."
    )
    assert error["extensions"]["code"] == "INVALID"


async def test_entities_cost_as_many_as_the_representations(subgraph: Any) -> None:
    reader = await subgraph(READ)
    query = """query($r: [_Any!]!) { _entities(representations: $r) {
      ... on Product { key } } rateLimit { cost } }"""
    few = await reader.data(query, {"r": [representation("Product", key="PAY")] * 2})
    more = await reader.data(query, {"r": [representation("Product", key="PAY")] * 40})
    assert (few["rateLimit"]["cost"], more["rateLimit"]["cost"]) == (2 + 1, 40 + 1)


# A real gateway: @apollo/gateway (tests/federation_gateway, pinned by its lock file)
# composes the live server's subgraph with a reviews subgraph that extends Product.


def through_gateway(url: str, requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    run = subprocess.run(
        ["node", "gateway.mjs", f"{url}/graphql"],
        cwd=GATEWAY,
        input=json.dumps(requests),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    answers: list[dict[str, Any]] = json.loads(run.stdout)
    return answers


def token_with(url: str, database_url: str, scopes: str) -> str:
    created = portfolio(
        *["create-client", "--name", "gateway test", "--scopes", scopes],
        *["--grant", "client_credentials"],
        database_url=database_url,
    )
    assert created.exit_code == 0, created.output
    client_id, secret = created_client(created.stdout)
    issued = httpx.post(
        f"{url}/oauth/token", data={"grant_type": "client_credentials"}, auth=(client_id, secret)
    )
    assert issued.status_code == 200, issued.text
    return str(issued.json()["access_token"])


REVIEWS = "{ topReviews { body product { key name lifecycleStage reviewCount } } }"
PRODUCT = '{ product(key: "CHK") { key name reviewCount } }'


def test_an_apollo_gateway_composes_the_subgraph(own_database: str) -> None:
    GATEWAY_PACKAGES.ready()
    with served_in_process(
        own_database, PORTFOLIO_FEDERATION="true", PORTFOLIO_ENVIRONMENT="production"
    ) as server:
        reader = token_with(server.url, own_database, "portfolio:read")
        ingest = token_with(server.url, own_database, "kpis:ingest")
        answers = through_gateway(
            server.url,
            [
                {"query": REVIEWS, "authorization": f"Bearer {reader}"},
                {"query": PRODUCT, "authorization": f"Bearer {reader}"},
                {"query": REVIEWS, "authorization": f"Bearer {ingest}"},
            ],
        )
    reviews, product, hidden = answers
    # Fields of both subgraphs in one answer: reviews, then products by key from ours.
    assert "errors" not in reviews, reviews
    assert reviews["data"]["topReviews"] == [
        {
            "body": "Checkout got faster",
            "product": {
                "key": "CHK",
                "name": "Checkout",
                "lifecycleStage": "MATURE",
                "reviewCount": 1,
            },
        },
        {
            "body": "Payments never fail",
            "product": {
                "key": "PAY",
                "name": "Payments Platform",
                "lifecycleStage": "MATURE",
                "reviewCount": 1,
            },
        },
        {"body": "Gone for good", "product": None},  # no such product here: null
    ]
    # Ours first, then the reviews subgraph resolves the Product entity.
    assert product == {"data": {"product": {"key": "CHK", "name": "Checkout", "reviewCount": 1}}}
    # A token without portfolio:read sees no product of ours through the gateway.
    assert [review["product"] for review in hidden["data"]["topReviews"]] == [None, None, None]
    assert {error["extensions"]["code"] for error in hidden["errors"]} == {"FORBIDDEN"}
    assert "Payments Platform" not in json.dumps(hidden)  # a name of ours
