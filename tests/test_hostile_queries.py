"""Hostile documents: each is refused cheaply (no SQL, a precise error) or answered
within the limits, never by burning CPU or failing the server."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from tests.conftest import make_client
from tests.fixtures.database import StatementCounter

LIMITS: dict[str, Any] = {"max_query_cost": 1000, "max_aliases": 30, "max_root_fields": 10}


@pytest.fixture
async def hostile(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> AsyncIterator[httpx.AsyncClient]:
    """A development client with the production limits."""
    async with make_client(engine, sessions, **LIMITS) as client:
        yield client


async def refused(
    client: httpx.AsyncClient,
    statements: StatementCounter,
    body: dict[str, Any],
    status: int = 200,
) -> dict[str, Any]:
    """Posts ``body``; asserts the status, that no data came back and no SQL ran."""
    statements.reset()
    response = await client.post("/graphql", json=body)
    assert response.status_code == status, response.text
    assert statements.statements == []
    payload: dict[str, Any] = response.json()
    assert not payload.get("data")
    return payload


def fragment_bomb(levels: int, on: str = "Query", leaf: str = "__typename") -> str:
    """Each fragment spreads the one below twice: 2**levels fields from ~40 bytes a level."""
    fragments = [f"fragment F0 on {on} {{ {leaf} }}"] + [
        f"fragment F{i} on {on} {{ ...F{i - 1} ...F{i - 1} }}" for i in range(1, levels + 1)
    ]
    return "\n".join(fragments)


async def test_fragment_bomb_is_refused_before_validation_walks_it(
    hostile: httpx.AsyncClient, statements: StatementCounter
) -> None:
    document = "query { ...F40 }\n" + fragment_bomb(40)
    payload = await refused(hostile, statements, {"query": document})
    assert payload["errors"] == [
        {
            "message": f"This document selects {2**40} fields once its fragments are spread; "
            "the limit is 2000.",
            "extensions": {"code": "QUERY_TOO_LARGE", "limit": 2000},
        }
    ]


async def test_fragment_bomb_inside_a_connection(
    hostile: httpx.AsyncClient, statements: StatementCounter
) -> None:
    document = "query { products(first: 1) { nodes { ...F30 } } }\n" + fragment_bomb(
        30, "Product", "key"
    )
    payload = await refused(hostile, statements, {"query": document})
    assert payload["errors"][0]["extensions"] == {"code": "QUERY_TOO_LARGE", "limit": 2000}


async def test_fragments_within_the_limit_still_run(hostile: httpx.AsyncClient) -> None:
    document = "query { ...F8 }\n" + fragment_bomb(8)  # 256 selections of one field
    response = await hostile.post("/graphql", json={"query": document})
    assert response.json()["data"] == {"__typename": "Query"}


async def test_fragment_cycle(hostile: httpx.AsyncClient, statements: StatementCounter) -> None:
    document = "fragment A on Query { ...B } fragment B on Query { ...A } query { ...A }"
    payload = await refused(hostile, statements, {"query": document})
    [error] = payload["errors"]
    assert error["message"] == "Cannot spread fragment 'A' within itself via 'B'."
    assert error["extensions"] == {"code": "GRAPHQL_VALIDATION_FAILED"}


async def test_directive_overloading(
    hostile: httpx.AsyncClient, statements: StatementCounter
) -> None:
    document = "{ __typename " + "@include(if: true) " * 500 + "}"
    payload = await refused(hostile, statements, {"query": document})
    assert payload["errors"] == [
        {
            "message": "This document uses 500 directives; the limit is 50.",
            "extensions": {"code": "QUERY_TOO_LARGE", "limit": 50},
        }
    ]


async def test_repeated_and_unknown_directives(
    hostile: httpx.AsyncClient, statements: StatementCounter
) -> None:
    twice = await refused(
        hostile, statements, {"query": "{ __typename @skip(if: false) @skip(if: false) }"}
    )
    assert twice["errors"][0]["message"] == (
        "The directive '@skip' can only be used once at this location."
    )
    unknown = await refused(hostile, statements, {"query": "{ __typename @cached }"})
    assert unknown["errors"][0]["message"] == "Unknown directive '@cached'."
    assert unknown["errors"][0]["extensions"] == {"code": "GRAPHQL_VALIDATION_FAILED"}


async def test_circular_edges_multiply_into_a_refused_cost(
    hostile: httpx.AsyncClient, statements: StatementCounter
) -> None:
    """product → initiatives → products → initiatives: each level multiplies."""
    document = (
        "{ products(first: 20) { nodes { initiatives(first: 20) { nodes { "
        "products(first: 20) { nodes { initiatives(first: 20) { nodes { key } } } } } } } } }"
    )
    payload = await refused(hostile, statements, {"query": document})
    [error] = payload["errors"]
    assert error["extensions"] == {"code": "QUERY_TOO_COSTLY", "cost": 176841, "limit": 1000}
    assert error["message"].startswith("This query costs 176841 points; the limit is 1000.")


async def test_huge_id_lists_cost_what_they_ask(
    hostile: httpx.AsyncClient, statements: StatementCounter
) -> None:
    ids = ",".join(f'"x{i}"' for i in range(3000))
    literal = f"{{ nodes(ids: [{ids}]) {{ id }} }}"
    payload = await refused(hostile, statements, {"query": literal})
    assert payload["errors"][0]["extensions"] == {
        "code": "QUERY_TOO_COSTLY",
        "cost": 3000,
        "limit": 1000,
    }
    variables = {
        "query": "query ($ids: [ID!]!) { nodes(ids: $ids) { id } }",
        "variables": {"ids": ["x"] * 100_000},
    }
    payload = await refused(hostile, statements, variables)
    assert payload["errors"][0]["extensions"]["cost"] == 100_000


async def test_introspection_abuse(
    hostile: httpx.AsyncClient, statements: StatementCounter
) -> None:
    nested = "{ __schema { types { fields { type { fields { type { name } } } } } } }"
    payload = await refused(hostile, statements, {"query": nested})
    assert payload["errors"][0] == {
        "message": "This introspection selects `fields` inside `fields` "
        "(types > fields > fields); a list may appear once on a path.",
        "extensions": {"code": "INTROSPECTION_TOO_DEEP"},
    }
    many = "{ " + " ".join(f"s{i}: __schema {{ queryType {{ name }} }}" for i in range(11)) + " }"
    payload = await refused(hostile, statements, {"query": many})
    assert payload["errors"][0]["extensions"] == {"code": "TOO_MANY_ROOT_FIELDS"}


async def test_introspection_is_off_in_production(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession], caller: Any
) -> None:
    reader = await caller(["portfolio:read"])  # production app, real token
    response = await reader.client.post(
        "/graphql", json={"query": "{ __schema { types { name } } }"}
    )
    errors = response.json()["errors"]
    assert [(e["message"], e["extensions"]["code"]) for e in errors] == [
        (
            "GraphQL introspection has been disabled, but the requested query contained "
            f"the field '{name}'.",
            "GRAPHQL_VALIDATION_FAILED",
        )
        for name in ("__schema", "types")
    ]


async def test_null_bytes(hostile: httpx.AsyncClient, statements: StatementCounter) -> None:
    """No text the database could not hold gets in: a NUL is refused at the edge (400),
    in the document and in a variable alike (``schema.http``)."""
    payload = await refused(hostile, statements, {"query": "{ __typename }\u0000"}, status=400)
    assert payload["errors"] == [
        {
            "message": "`query` contains a NUL character (U+0000), which text may not hold.",
            "extensions": {"code": "BAD_USER_INPUT"},
        }
    ]
    in_a_variable = {
        "query": "query ($s: String) { teams(filter: {search: $s}) { totalCount } }",
        "variables": {"s": "pay\u0000ments"},
    }
    payload = await refused(hostile, statements, in_a_variable, status=400)
    assert payload["errors"] == [
        {
            "message": "`variables.s` contains a NUL character (U+0000), which text may not hold.",
            "extensions": {"code": "BAD_USER_INPUT"},
        }
    ]


async def test_operation_selection_abuse(
    hostile: httpx.AsyncClient, statements: StatementCounter
) -> None:
    unknown = await refused(
        hostile,
        statements,
        {"query": "query A { __typename } query B { __typename }", "operationName": "C"},
        status=400,
    )
    assert unknown["errors"] == [
        {"message": 'Unknown operation named "C".', "extensions": {"code": "BAD_REQUEST"}}
    ]
    anonymous = await refused(hostile, statements, {"query": "{ __typename } { __typename }"})
    assert anonymous["errors"][0]["message"] == (
        "This anonymous operation must be the only defined operation."
    )


async def test_oversized_body_is_413(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession], statements: StatementCounter
) -> None:
    async with make_client(engine, sessions, max_body_bytes=10_000, **LIMITS) as client:
        payload = await refused(
            client, statements, {"query": "{ __typename }" + " " * 20_000}, status=413
        )
    assert payload["errors"] == [
        {
            "message": "Request bodies are limited to 10000 bytes.",
            "extensions": {"code": "REQUEST_TOO_LARGE"},
        }
    ]


async def test_a_long_unknown_name_is_a_validation_error(
    hostile: httpx.AsyncClient, statements: StatementCounter
) -> None:
    payload = await refused(hostile, statements, {"query": "{ " + "a" * 90_000 + " }"})
    [error] = payload["errors"]
    assert error["extensions"] == {"code": "GRAPHQL_VALIDATION_FAILED"}
    assert error["message"].startswith("Cannot query field 'aaaa")


async def test_batched_array_is_refused(
    hostile: httpx.AsyncClient, statements: StatementCounter
) -> None:
    statements.reset()
    response = await hostile.post("/graphql", json=[{"query": "{ __typename }"}] * 1000)
    assert response.status_code == 400
    assert response.json()["errors"][0]["extensions"] == {"code": "BATCHING_NOT_SUPPORTED"}
    assert statements.statements == []


MULTIPLE = (
    "query Teams {{ {alias}: teams(first: 1) {{ totalCount }} }} "
    "query Products {{ {alias}: products(first: 1) {{ totalCount }} }}"
)


@pytest.mark.parametrize("compiled", [True, False], ids=["compiled", "resolvers"])
async def test_several_operations_need_an_operation_name(
    engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
    statements: StatementCounter,
    compiled: bool,
) -> None:
    """Neither path runs the first operation when the request names none (the GraphQL
    specification's GetOperation), not even once the named one is planned, rendered
    and answered from memory."""
    alias = f"p{uuid.uuid4().hex}"  # a document no other test has planned
    document = MULTIPLE.format(alias=alias)
    async with make_client(engine, sessions, compiled_reads=compiled, **LIMITS) as client:
        named = [
            (
                await client.post("/graphql", json={"query": document, "operationName": "Teams"})
            ).json()
            for _ in range(3)
        ]
        expected = "compiled" if compiled else "resolvers"
        assert named[0]["extensions"]["answeredBy"] == expected
        assert named[2]["data"] == named[0]["data"]
        # asyncpg reports a statement to its loggers on the loop's next turn: one more
        # request (no SQL) lets the last named one's report arrive before counting.
        await client.post("/graphql", json={"query": "{ __typename }"})
        for body in (
            {"query": document},
            {"query": document, "operationName": None},
        ):
            payload = await refused(client, statements, body)
            assert payload["errors"] == [
                {
                    "message": "Must provide operation name if query contains multiple operations.",
                    "extensions": {"code": "OPERATION_NAME_REQUIRED"},
                }
            ]
        by_get = await client.get("/graphql", params={"query": document})
    assert by_get.json()["errors"][0]["extensions"] == {"code": "OPERATION_NAME_REQUIRED"}
    assert "data" not in by_get.json()
