"""The HTTP surface: health, GraphiQL only in development, GET for queries."""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from api.app import assemble_app
from tests.conftest import GraphQL, make_client, settings_for
from tests.fixtures.paths import whole_path_counter


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


async def test_known_queries_skip_strawberry_but_not_its_http_rules(
    client: httpx.AsyncClient,
) -> None:
    """A JSON POST of a query the compiler answered before is answered before
    strawberry's HTTP handling; the answer has the same status, headers and body as
    strawberry's, and anything unusual still reaches strawberry's rules."""
    for accept in ("application/json", "application/graphql-response+json"):
        alias = f"p{uuid.uuid4().hex}"  # a document no other test has planned
        query = f"{{ {alias}: teams(first: 2) {{ nodes {{ key }} }} }}"
        answers = [
            await client.post("/graphql", json={"query": query}, headers={"accept": accept})
            for _ in range(2)
        ]
        paths = [a.json()["extensions"].pop("answeredBy") for a in answers]
        assert paths == ["compiled", "repeated"]
        through_strawberry, known = answers[0], answers[1]
        assert known.status_code == through_strawberry.status_code == 200
        assert known.headers["content-type"] == through_strawberry.headers["content-type"]
        assert known.headers["content-type"].startswith(accept)
        assert sorted(known.headers.keys()) == sorted(through_strawberry.headers.keys())
        first, again = through_strawberry.json(), known.json()
        assert first["data"] == again["data"]
        assert first["data"][alias]["nodes"]
        remaining = first["extensions"]["cost"].pop("remaining")
        assert again["extensions"]["cost"].pop("remaining") == remaining - 3
        assert {k: v for k, v in first.items() if k != "extensions"} == {
            k: v for k, v in again.items() if k != "extensions"
        }

    with_charset = await client.post(
        "/graphql",
        content=orjson.dumps({"query": query}),
        headers={"content-type": "application/json; charset=utf-8"},
    )
    assert with_charset.json()["extensions"]["answeredBy"] == "repeated"

    # Strawberry's refusals stand for known queries too.
    wrong_extensions = await client.post("/graphql", json={"query": query, "extensions": "x"})
    assert wrong_extensions.status_code == 400
    assert wrong_extensions.json()["errors"][0]["message"] == (
        "The GraphQL operation's `extensions` must be an object or null, if provided."
    )
    as_text = await client.post(
        "/graphql", content=orjson.dumps({"query": query}), headers={"content-type": "text/plain"}
    )
    assert as_text.status_code == 415
    assert as_text.json()["errors"][0]["extensions"]["code"] == "UNSUPPORTED_MEDIA_TYPE"
    streamed = await client.post(
        "/graphql", json={"query": query}, headers={"accept": "multipart/mixed"}
    )
    assert b'"answeredBy":"repeated"' not in streamed.content


async def test_a_body_is_decoded_once(writer: GraphQL, monkeypatch: pytest.MonkeyPatch) -> None:
    """The view decodes a JSON POST (orjson) to look for a known query; when it is not
    one (here a mutation), strawberry takes that decoding rather than parsing the
    body again. A body orjson refuses is still decoded and judged by strawberry."""
    decoded: list[object] = []
    loads = json.loads

    def counting(data: str | bytes, *args: Any, **kwargs: Any) -> Any:
        decoded.append(data)
        return loads(data, *args, **kwargs)

    monkeypatch.setattr(json, "loads", counting)
    body = orjson.dumps(
        {
            "query": 'mutation { createTeam(input: {key: "ONCE", name: "x", kind: BUSINESS}) '
            "{ team { key } } }"
        }
    )
    answer = await writer.client.post(
        "/graphql", content=body, headers={"content-type": "application/json"}
    )
    assert orjson.loads(answer.content)["data"]["createTeam"]["team"] == {"key": "ONCE"}
    assert body not in decoded

    # NaN is not JSON for orjson; strawberry's json.loads takes it, as it always has.
    nan = (
        b'{"query": "mutation($m: [KpiMeasurementInput!]!) { recordKpiMeasurements(input: '
        b'{measurements: $m}) { received } }", "variables": {"m": [{"kpiKey": "K", '
        b'"observedAt": "2026-01-01T00:00:00Z", "value": NaN, "source": "s", '
        b'"externalId": "e"}]}}'
    )
    refused = await writer.client.post(
        "/graphql", content=nan, headers={"content-type": "application/json"}
    )
    assert nan in decoded
    error = orjson.loads(refused.content)["errors"][0]
    assert error["message"] == (
        "Variable '$m' has invalid value at [0].value: Float cannot represent non numeric "
        "value: nan"
    )


async def test_graphql_is_served_under_a_root_path(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """Behind a proxy that mounts the API under a prefix (ASGI ``root_path``), /graphql
    is still reached, on both read paths, and the other routes too."""
    app = assemble_app(settings_for(), engine, sessions)
    transport = httpx.ASGITransport(app=app, root_path="/api")
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        query = f"{{ p{uuid.uuid4().hex}: teams(first: 1) {{ totalCount }} }}"
        answers = [(await client.post("/api/graphql", json={"query": query})) for _ in range(2)]
        assert [a.status_code for a in answers] == [200, 200]
        paths = [a.json()["extensions"]["answeredBy"] for a in answers]
        assert paths == ["compiled", "repeated"]
        assert answers[0].json()["data"] == answers[1].json()["data"]
        health = await client.get("/api/healthz")
        assert health.status_code == 200
        missing = await client.get("/api/nowhere")
        assert missing.status_code == 404


async def test_a_known_read_takes_the_endpoints_lane(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A known read is answered by the endpoint's lane: no request transaction and no
    Starlette request are made for it, also when it is sent as a persisted document's
    hash whose document is in memory; a document not seen before takes the whole path,
    and so does a hash the store must look up."""
    made = whole_path_counter(monkeypatch)
    query = f"{{ p{uuid.uuid4().hex}: teams(first: 1) {{ totalCount }} }}"
    first = await client.post("/graphql", json={"query": query})
    assert first.json()["extensions"]["answeredBy"] == "compiled"
    assert made == ["transaction", "request", "session"]  # strawberry's context has one
    made.clear()
    again = await client.post("/graphql", json={"query": query})
    assert again.json()["extensions"]["answeredBy"] == "repeated"
    assert again.json()["data"] == first.json()["data"]
    assert made == []
    digest = hashlib.sha256(query.encode()).hexdigest()
    persisted = {"version": 1, "sha256Hash": digest}
    by_hash = await client.post(
        "/graphql", json={"query": query, "extensions": {"persistedQuery": persisted}}
    )
    assert by_hash.json()["data"] == first.json()["data"]
    assert made[:2] == ["transaction", "session"]  # registered: the store is written
    made.clear()
    # The hash alone, its document in memory: filled in and answered by the lane too.
    hash_only = await client.post("/graphql", json={"extensions": {"persistedQuery": persisted}})
    assert hash_only.json()["data"] == first.json()["data"]
    assert hash_only.json()["extensions"]["answeredBy"] == "repeated"
    assert made == []
    # A hash the store does not have in memory is looked up in the request's transaction.
    unknown = {"version": 1, "sha256Hash": "0" * 64}
    missing = await client.post("/graphql", json={"extensions": {"persistedQuery": unknown}})
    assert missing.json()["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND"
    assert made == ["transaction", "session"]
