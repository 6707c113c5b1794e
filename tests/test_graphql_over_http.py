"""GraphQL over HTTP: media types, status codes, methods, content types and batching,
as the GraphQL-over-HTTP specification asks (the graphql-http audit runs against a live
server in test_graphql_http_audit.py)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from graphql import get_introspection_query
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from domain.models import Team
from tests.conftest import ALL_SCOPES, make_client

GRAPHQL_RESPONSE = "application/graphql-response+json"
CREATE_TEAM = (
    'mutation { createTeam(input: {key: "HTTP-TEAM", name: "Over HTTP"}) { team { key } } }'
)


@pytest.fixture
async def http(engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]) -> Any:
    """A development client holding every scope, so that refusals come from HTTP only."""
    async with make_client(engine, sessions, anonymous_scopes=ALL_SCOPES) as client:
        yield client


async def teams(db: AsyncSession) -> int:
    return int(await db.scalar(select(func.count()).select_from(Team)) or 0)


def post(client: httpx.AsyncClient, body: Any, accept: str | None = None, **headers: str) -> Any:
    if accept is not None:
        headers["accept"] = accept
    return client.post("/graphql", json=body, headers=headers)


@pytest.mark.parametrize(
    ("accept", "media_type"),
    [
        (GRAPHQL_RESPONSE, GRAPHQL_RESPONSE),
        ("application/json", "application/json"),
        ("*/*", "application/json"),
        (None, "application/json"),
        (f"application/json;q=0.5, {GRAPHQL_RESPONSE}", GRAPHQL_RESPONSE),
        (f"{GRAPHQL_RESPONSE};q=0.2, application/json", "application/json"),
        (f"{GRAPHQL_RESPONSE}, application/json", GRAPHQL_RESPONSE),
    ],
)
async def test_response_media_type_follows_accept(
    http: httpx.AsyncClient, accept: str | None, media_type: str
) -> None:
    response = await post(http, {"query": "{ __typename }"}, accept)
    assert response.status_code == 200
    assert response.headers["content-type"] == f"{media_type}; charset=utf-8"
    assert response.json()["data"] == {"__typename": "Query"}


@pytest.mark.parametrize(
    ("query", "variables", "code"),
    [
        ("{ __typename", {}, "GRAPHQL_PARSE_FAILED"),
        ("{ noSuchField }", {}, "GRAPHQL_VALIDATION_FAILED"),
        ("query ($n: Int!) { teams(first: $n) { totalCount } }", {"n": "ten"}, "BAD_USER_INPUT"),
    ],
)
async def test_request_errors_have_no_data_and_a_status_by_media_type(
    http: httpx.AsyncClient, query: str, variables: dict[str, Any], code: str
) -> None:
    body = {"query": query, "variables": variables}
    strict = await post(http, body, GRAPHQL_RESPONSE)
    assert strict.status_code == 400
    assert strict.headers["content-type"].startswith(GRAPHQL_RESPONSE)
    legacy = await post(http, body, "application/json")
    assert legacy.status_code == 200  # application/json: 200 for any well-formed request
    for response in (strict, legacy):
        payload = response.json()
        assert "data" not in payload
        assert [error["extensions"]["code"] for error in payload["errors"]] == [code]


async def test_refusal_by_cost_is_a_request_error(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    async with make_client(engine, sessions, max_query_cost=10) as client:
        response = await post(
            client, {"query": "{ teams(first: 50) { nodes { key } } }"}, GRAPHQL_RESPONSE
        )
    assert response.status_code == 400
    error = response.json()["errors"][0]
    assert error["extensions"] == {"code": "QUERY_TOO_COSTLY", "cost": 51, "limit": 10}
    assert "data" not in response.json()


async def test_field_errors_keep_data_and_200(caller: Any) -> None:
    """A partial answer (one field forbidden to a token) is a success at the HTTP level."""
    reader = await caller(["portfolio:read"])
    response = await post(
        reader.client,
        {"query": "{ teams(first: 1) { totalCount } users(first: 1) { totalCount } }"},
        GRAPHQL_RESPONSE,
    )
    assert response.status_code == 200, response.text
    payload = response.json()
    assert payload["data"]["teams"]["totalCount"] >= 1
    assert payload["data"]["users"] is None
    assert payload["errors"][0]["extensions"]["code"] == "FORBIDDEN"


@pytest.mark.parametrize(
    "accept", ["text/plain", "application/xml, text/csv;q=0.5", "application/json;q=0"]
)
async def test_unacceptable_accept_is_406(http: httpx.AsyncClient, accept: str) -> None:
    response = await post(http, {"query": "{ __typename }"}, accept)
    assert response.status_code == 406
    assert response.json()["errors"][0]["extensions"]["code"] == "NOT_ACCEPTABLE"
    assert response.json()["errors"][0]["message"] == (
        "Responses are application/graphql-response+json or application/json; "
        "the Accept header allows neither."
    )


@pytest.mark.parametrize(
    "content_type",
    [None, "text/plain", "application/x-www-form-urlencoded", "application/json; charset=latin-1"],
)
async def test_post_other_than_utf8_json_is_415_and_runs_nothing(
    http: httpx.AsyncClient, db: AsyncSession, content_type: str | None
) -> None:
    before = await teams(db)
    headers = {} if content_type is None else {"content-type": content_type}
    request = http.build_request(
        "POST",
        "/graphql",
        content=b'{"query": "' + CREATE_TEAM.replace('"', '\\"').encode() + b'"}',
        headers=headers,
    )
    assert request.headers.get("content-type") == content_type
    response = await http.send(request)
    assert response.status_code == 415
    error = response.json()["errors"][0]
    assert error["extensions"] == {"code": "UNSUPPORTED_MEDIA_TYPE"}
    assert error["message"].startswith("POST a JSON body (Content-Type: application/json, UTF-8)")
    assert await teams(db) == before


async def test_json_with_utf8_charset_is_accepted(http: httpx.AsyncClient) -> None:
    response = await http.post(
        "/graphql",
        content=b'{"query": "{ __typename }"}',
        headers={"content-type": "application/json; charset=UTF-8"},
    )
    assert response.status_code == 200
    assert response.json()["data"] == {"__typename": "Query"}


async def test_batched_arrays_are_refused_and_run_nothing(
    http: httpx.AsyncClient, db: AsyncSession
) -> None:
    before = await teams(db)
    response = await post(http, [{"query": CREATE_TEAM}, {"query": "{ __typename }"}])
    assert response.status_code == 400
    assert response.json()["errors"] == [
        {
            "message": "Send one operation per request; JSON arrays of operations are not accepted.",
            "extensions": {"code": "BATCHING_NOT_SUPPORTED"},
        }
    ]
    assert await teams(db) == before


async def test_mutation_over_get_is_405_and_runs_nothing(
    http: httpx.AsyncClient, db: AsyncSession
) -> None:
    before = await teams(db)
    response = await http.get("/graphql", params={"query": CREATE_TEAM})
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert response.json()["errors"][0] == {
        "message": "GET runs queries only; send mutations with POST.",
        "extensions": {"code": "METHOD_NOT_ALLOWED"},
    }
    assert await teams(db) == before


async def test_other_methods_are_405(http: httpx.AsyncClient) -> None:
    response = await http.put("/graphql", json={"query": "{ __typename }"})
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, POST"
    assert response.json()["errors"][0]["extensions"]["code"] == "METHOD_NOT_ALLOWED"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"query": 1}, "The GraphQL operation's `query` must be a string or null, if provided."),
        (
            {"query": "{ __typename }", "variables": "x"},
            "The GraphQL operation's `variables` must be an object or null, if provided.",
        ),
        ({"variables": {}}, "No GraphQL query found in the request"),
    ],
)
async def test_malformed_parameters_are_400_json(
    http: httpx.AsyncClient, body: dict[str, Any], message: str
) -> None:
    response = await post(http, body, GRAPHQL_RESPONSE)
    assert response.status_code == 400
    assert response.headers["content-type"] == f"{GRAPHQL_RESPONSE}; charset=utf-8"
    assert response.json()["errors"] == [
        {"message": message, "extensions": {"code": "BAD_REQUEST"}}
    ]


DEEP = b"[" * 100_000 + b"]" * 100_000
NAN = b'"value": NaN, '  # read (json module) for GraphQL to refuse: not the JSON at fault


@pytest.mark.parametrize(
    ("body", "code", "message"),
    [
        (
            b'{"query": ',
            "BAD_REQUEST",
            "Unable to parse request body as JSON: unexpected end of data (at position 10).",
        ),
        (
            b'{"query": "{ __typename }", "variables": {"v": ' + DEEP + b"}}",
            "BAD_REQUEST",
            "Unable to parse request body as JSON: depth limit exceeded (at position 1070).",
        ),
        (
            b'{"query": "{ __typename }", ' + NAN + b'"variables": {"v": ' + DEEP + b"}}",
            "BAD_REQUEST",
            "Unable to parse request body as JSON: nested too deeply.",
        ),
        (
            b'{"query": "{ __typename }", "variables": {"v": "\\ud800"}}',
            "BAD_REQUEST",
            "Unable to parse request body as JSON: lone surrogate '\\ud800' in `variables.v`.",
        ),
        (
            b'{"query": "{ __typename }", ' + NAN + b'"variables": {"v": ["\\udfff"]}}',
            "BAD_REQUEST",
            "Unable to parse request body as JSON: lone surrogate '\\udfff' in `variables.v.0`.",
        ),
        (
            b'{"query": "{ __typename \xff }"}',
            "BAD_REQUEST",
            "Unable to parse request body as JSON: not valid UTF-8 (at position 24).",
        ),
        (
            b'{"query": "{ __typename }", "variables": {"v": [1, {"w": "a\\u0000"}]}}',
            "BAD_USER_INPUT",
            "`variables.v.1.w` contains a NUL character (U+0000), which text may not hold.",
        ),
        (
            b'{"query": "{ __typename }", "variables": {"a\\u0000": 1}}',
            "BAD_USER_INPUT",
            "`variables.a\\u0000` contains a NUL character (U+0000), which text may not hold.",
        ),
        (
            b'{"query": "{ __typename }", "operationName": "\\u0000"}',
            "BAD_USER_INPUT",
            "`operationName` contains a NUL character (U+0000), which text may not hold.",
        ),
    ],
    ids=[
        "truncated",
        "nested 100,000 deep",
        "nested 100,000 deep after NaN",
        "lone surrogate",
        "lone surrogate after NaN",
        "invalid UTF-8",
        "NUL in a variable",
        "NUL in a variable's name",
        "NUL in the operation name",
    ],
)
async def test_a_body_that_is_not_clean_json_is_400(
    http: httpx.AsyncClient, body: bytes, code: str, message: str
) -> None:
    """Refused as the body is decoded, on every path (the repeated-query fast path, the
    persisted-query lookup, strawberry's): never a 500, never the database's refusal."""
    for accept in (GRAPHQL_RESPONSE, "application/json"):
        response = await http.post(
            "/graphql", content=body, headers={"content-type": "application/json", "accept": accept}
        )
        assert response.status_code == 400
        assert response.headers["content-type"] == f"{accept}; charset=utf-8"
        assert response.json() == {"errors": [{"message": message, "extensions": {"code": code}}]}


async def test_a_nul_in_get_variables_is_400(http: httpx.AsyncClient) -> None:
    response = await http.get(
        "/graphql",
        params={
            "query": "query ($name: String!) { __type(name: $name) { name } }",
            "variables": '{"name": "Initiative\\u0000"}',
        },
    )
    assert response.status_code == 400
    assert response.json()["errors"] == [
        {
            "message": "`name` contains a NUL character (U+0000), which text may not hold.",
            "extensions": {"code": "BAD_USER_INPUT"},
        }
    ]


async def test_get_takes_json_variables(http: httpx.AsyncClient) -> None:
    response = await http.get(
        "/graphql",
        params={
            "query": "query ($name: String!) { __type(name: $name) { name kind } }",
            "variables": '{"name": "Initiative"}',
        },
        headers={"accept": GRAPHQL_RESPONSE},
    )
    assert response.status_code == 200
    assert response.json()["data"] == {"__type": {"name": "Initiative", "kind": "OBJECT"}}


async def test_standard_introspection_runs_within_the_limits(http: httpx.AsyncClient) -> None:
    query = get_introspection_query(descriptions=True, input_value_deprecation=True)
    response = await post(http, {"query": query})
    payload = response.json()
    assert "errors" not in payload
    names = {t["name"] for t in payload["data"]["__schema"]["types"]}
    assert {"Product", "Initiative", "Kpi"} <= names
    assert payload["extensions"]["cost"]["requested"] == 1


NUL_HASH = {"persistedQuery": {"version": 1, "sha256Hash": "a\x00" + "b" * 62}}


async def test_a_nul_in_a_persisted_query_hash_is_400_not_a_lookup(
    http: httpx.AsyncClient,
) -> None:
    """The hash is looked up in the database: a NUL in it is refused before (it was a
    503, as if the database were down)."""
    got = await http.get("/graphql", params={"extensions": json.dumps(NUL_HASH)})
    posted = await http.post("/graphql", json={"extensions": NUL_HASH})
    for response, where in ((got, "persistedQuery"), (posted, "extensions.persistedQuery")):
        assert response.status_code == 400
        assert response.json()["errors"] == [
            {
                "message": f"`{where}.sha256Hash` contains a NUL character (U+0000), "
                "which text may not hold.",
                "extensions": {"code": "BAD_USER_INPUT"},
            }
        ]
