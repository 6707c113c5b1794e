"""Query limits and rate limits: refused cheaply, before any SQL, with a clear error."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from api.app import assemble_app
from domain.ratelimit import LocalRateLimiter
from schema.limits.documents import parse_points
from tests.conftest import GraphQL, make_client, settings_for
from tests.fixtures.database import StatementCounter

OVERVIEW = """{ products(first: 50) { nodes { key
  initiatives(first: 10) { nodes { key title status riceScore isBlocked } }
  kpis(first: 4) { nodes { key latestValue status } } } } }"""


@pytest.fixture
async def limited(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> AsyncIterator[Any]:
    clients: list[httpx.AsyncClient] = []

    def make(**settings: Any) -> GraphQL:
        defaults = {"max_query_cost": 1000, "max_aliases": 30, "max_root_fields": 10}
        client = make_client(engine, sessions, **{**defaults, **settings})
        clients.append(client)
        return GraphQL(client)

    yield make
    for client in clients:
        await client.aclose()


async def test_cost_is_reported(limited: Any) -> None:
    # A document never parsed before in this process: parsing it is charged too.
    document = f"# {uuid.uuid4()}\n{OVERVIEW}"
    body = await limited()(document)
    assert "errors" not in body
    cost = body["extensions"]["cost"]
    # The dashboard query fits the default: the products connection, then per product
    # itself, its initiatives connection and 10 initiatives, its KPIs connection and 4 KPIs.
    assert cost["requested"] == 1 + 50 * (1 + (1 + 10) + (1 + 4)) == 851
    assert cost["limit"] == 1000
    assert cost["actual"] > 0
    assert cost["remaining"] == cost["budget"] - 851 - parse_points(len(document))


async def test_too_costly_is_refused_before_any_sql(
    limited: Any, statements: StatementCounter
) -> None:
    statements.reset()
    body = await limited()(
        "{ products(first: 100) { nodes { initiatives(first: 100) { nodes { key } } } } }"
    )
    assert "data" not in body  # refused before execution: a request error
    [error] = body["errors"]
    assert error["extensions"] == {"code": "QUERY_TOO_COSTLY", "cost": 10201, "limit": 1000}
    assert error["message"] == (
        "This query costs 10201 points; the limit is 1000. Ask for fewer items (first/last) "
        "or fewer nested connections."
    )
    assert statements.count == 0


async def test_variables_count_in_the_cost(limited: Any) -> None:
    query = (
        "query($n: Int) { products(first: $n) { nodes { kpis(first: 100) { nodes { key } } } } }"
    )
    assert "errors" not in await limited()(query, {"n": 5})
    refused = await limited()(query, {"n": 20})
    assert refused["errors"][0]["extensions"]["cost"] == 1 + 20 * (1 + 1 + 100)


async def test_input_objects_do_not_change_the_cost(limited: Any) -> None:
    """A filter (or a batch of measurements) is not coerced again to be measured; the
    cost still follows the variables that count, and bad input is still refused."""
    query = (
        "query($n: Int, $f: ProductFilter) { products(first: $n, filter: $f) "
        "{ nodes { kpis(first: 100) { nodes { key } } } } }"
    )
    api = limited()
    small = await api(query, {"n": 5, "f": {"keys": ["A"]}})
    other = await api(query, {"n": 5, "f": {"search": "x"}})
    assert small["extensions"]["cost"]["requested"] == 1 + 5 * (1 + 1 + 100)
    assert other["extensions"]["cost"]["requested"] == small["extensions"]["cost"]["requested"]
    refused = await api(query, {"n": 20, "f": {"keys": ["A"]}})
    assert refused["errors"][0]["extensions"]["code"] == "QUERY_TOO_COSTLY"
    assert refused["errors"][0]["extensions"]["cost"] == 1 + 20 * (1 + 1 + 100)
    invalid = await api(query, {"n": 5, "f": {"keys": 7}})
    assert "data" not in invalid
    [error] = invalid["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert error["message"] == (
        "Variable '$f' has invalid value at .keys: String cannot represent a non string value: 7"
    )


@pytest.mark.parametrize(
    ("query", "code", "message"),
    [
        (
            "{ " + " ".join(f"a{i}: viewer {{ scopes }}" for i in range(31)) + " }",
            "GRAPHQL_VALIDATION_FAILED",
            "31 aliases found. Allowed: 30",
        ),
        (
            "{ " + " ".join(f"f{i}: __typename" for i in range(11)) + " }",
            "GRAPHQL_VALIDATION_FAILED",
            "11 aliases found. Allowed: 30",
        ),
    ],
)
async def test_alias_limit(limited: Any, query: str, code: str, message: str) -> None:
    body = await limited(max_aliases=30 if "31" in message else 10)(query)
    if "31" not in message:
        message = "11 aliases found. Allowed: 10"
    assert body["errors"][0]["extensions"]["code"] == code
    assert body["errors"][0]["message"] == message


async def test_root_field_limit(limited: Any) -> None:
    query = "{ " + " ".join(f"v{i}: viewer {{ authenticated }}" for i in range(11)) + " }"
    body = await limited()(query)
    assert body["errors"][0]["extensions"] == {"code": "TOO_MANY_ROOT_FIELDS"}
    assert body["errors"][0]["message"] == "This operation selects 11 root fields; the limit is 10."


async def test_depth_limit(limited: Any) -> None:
    nested = "key"
    for _ in range(4):
        nested = f"products {{ nodes {{ initiatives {{ nodes {{ {nested} }} }} }} }}"
    body = await limited(max_query_cost=10**9)("{ " + nested + " }")
    [error] = body["errors"]
    assert error["message"] == "'anonymous' exceeds maximum operation depth of 12"
    assert error["extensions"] == {"code": "GRAPHQL_VALIDATION_FAILED"}


async def test_token_limit(limited: Any) -> None:
    query = "{ " + " ".join("__typename" for _ in range(6000)) + " }"
    body = await limited()(query)
    [error] = body["errors"]
    assert error["message"] == (
        "Syntax Error: Document contains more than 5000 tokens. Parsing aborted."
    )
    assert error["extensions"] == {"code": "GRAPHQL_PARSE_FAILED"}


async def _budgets(engine: AsyncEngine, sessions: Any, **settings: Any) -> tuple[Any, Any]:
    apps = [
        assemble_app(settings_for(**settings), engine, sessions) for _ in range(2)
    ]  # two replicas
    return apps[0], apps[1]


async def test_rate_limit_shared_between_replicas_through_redis(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    # A document of its own, parsed (and charged for it) once by the first replica;
    # the second finds it parsed (each process has its own cache; these share one).
    query = (
        "{ rateLimit { limit cost remaining resetAt } "
        f"p{uuid.uuid4().hex}: products(first: 10) {{ nodes {{ key }} }} }}"
    )
    parsing = parse_points(len(query))
    # A fresh window key per test run: the Redis on this machine is shared.
    settings = {
        "redis_url": "redis://127.0.0.1:6379/0",
        "rate_limit_points": 48 + parsing,
        "rate_limit_window_seconds": 3600,
    }
    first, second = await _budgets(engine, sessions, **settings)
    address = f"10.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}.7"

    async def ask(app: Any) -> httpx.Response:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, client=(address, 1234)),
            base_url="http://test",
        ) as client:
            return await client.post("/graphql", json={"query": query})

    one = await ask(first)
    assert one.status_code == 200
    # rateLimit 1 + products connection 1 + 10 products = 12 points per request.
    assert one.json()["data"]["rateLimit"]["remaining"] == 36
    two = await ask(second)  # the other replica sees the same counter
    assert two.json()["data"]["rateLimit"]["remaining"] == 24
    await ask(first)
    await ask(second)
    refused = await ask(first)
    assert refused.status_code == 429
    retry_after = int(refused.headers["retry-after"])
    assert 0 < retry_after <= 3600
    [error] = refused.json()["errors"]
    assert error["extensions"] == {"code": "RATE_LIMITED", "retryAfter": retry_after}
    assert error["message"] == (
        f"Rate limit exceeded: 0 of {48 + parsing} points left in this window and this query "
        f"costs 12. Retry after {retry_after} seconds."
    )
    for app in (first, second):
        await app.state.rate_limiter.aclose()


async def test_rate_limit_in_process_without_redis(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    app = assemble_app(settings_for(rate_limit_points=20), engine, sessions)
    async with make_client(engine, sessions, app=app) as client:
        api = GraphQL(client)
        assert (await api.data("{ products(first: 10) { nodes { key } } }"))["products"]
        body = await api("{ products(first: 10) { nodes { key } } }", status=429)
    assert body["errors"][0]["extensions"]["code"] == "RATE_LIMITED"


async def test_repeated_queries_are_charged_once_each_on_the_fast_path(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """A repeated identical query skips strawberry (answeredBy "repeated"); it is still
    charged, once, and refused with the same error when the budget is spent."""
    # 11 points; a document of its own, which no other test has planned in this process
    # (parsing it costs its points once; the budget leaves room for them).
    query = f"{{ p{uuid.uuid4().hex}: products(first: 10) {{ nodes {{ key }} }} }}"
    parsing = parse_points(len(query))
    app = assemble_app(settings_for(rate_limit_points=40 + parsing), engine, sessions)
    async with make_client(engine, sessions, app=app) as client:
        api = GraphQL(client)
        answers = [await api(query) for _ in range(3)]
        refused = await api(query, status=429)
    assert [a["extensions"]["answeredBy"] for a in answers] == ["compiled", "repeated", "repeated"]
    assert [a["extensions"]["cost"]["remaining"] for a in answers] == [29, 18, 7]
    assert answers[2]["data"] == answers[0]["data"]
    assert answers[2]["extensions"]["cost"] == {
        "requested": 11,
        "actual": 11,
        "limit": 10_000_000,
        "remaining": 7,
        "budget": 40 + parsing,
    }
    error = refused["errors"][0]
    assert error["extensions"]["code"] == "RATE_LIMITED"
    assert error["message"].startswith(
        f"Rate limit exceeded: 7 of {40 + parsing} points left in this window and this query "
        "costs 11."
    )


@pytest.mark.parametrize("operation_name", [None, "Named"], ids=["name in document", "given"])
async def test_named_operations_take_the_fast_path_too(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession], operation_name: str | None
) -> None:
    query = f"query Named {{ p{uuid.uuid4().hex}: teams(first: 2) {{ totalCount }} }}"
    async with make_client(engine, sessions) as client:
        answers = [
            (
                await client.post(
                    "/graphql", json={"query": query, "operationName": operation_name}
                )
            ).json()
            for _ in range(3)
        ]
    assert [a["extensions"]["answeredBy"] for a in answers] == ["compiled", "repeated", "repeated"]
    assert answers[2]["data"] == answers[0]["data"]


async def test_the_fast_path_keeps_each_apps_limits(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """Plans are shared by the process; a plan made under generous limits is never
    served by an app whose limits refuse the query."""
    query = (
        f"{{ p{uuid.uuid4().hex}: teams(first: 5) {{ nodes {{ products {{ totalCount }} }} }} }}"
    )
    async with make_client(engine, sessions) as generous:
        answers = [
            (await generous.post("/graphql", json={"query": query})).json() for _ in range(3)
        ]
    assert answers[2]["extensions"]["answeredBy"] == "repeated"
    async with make_client(engine, sessions, max_query_cost=10) as costly:
        body = (await costly.post("/graphql", json={"query": query})).json()
    assert body["errors"][0]["extensions"] == {"code": "QUERY_TOO_COSTLY", "cost": 11, "limit": 10}
    async with make_client(engine, sessions, max_query_depth=2) as shallow:
        body = (await shallow.post("/graphql", json={"query": query})).json()
    assert body["errors"][0]["message"] == "'anonymous' exceeds maximum operation depth of 2"


async def test_in_process_budgets_are_per_caller_and_window() -> None:
    """Each caller spends its own budget; a new window starts every budget afresh, and
    the counters of past windows are let go then (not at every charge)."""
    now = [120.0]
    limiter = LocalRateLimiter(10, 60, clock=lambda: now[0])
    first = await limiter.charge("user:1", 6)
    assert (first.allowed, first.remaining, first.reset_at) == (True, 4, 180)
    assert (await limiter.charge("user:2", 8)).remaining == 2
    refused = await limiter.charge("user:1", 5)
    assert (refused.allowed, refused.remaining) == (False, 4)
    assert refused.retry_after == 61  # by the limiter's clock, not the wall clock
    assert (await limiter.charge("user:1", 4)).remaining == 0
    now[0] = 185.0
    again = await limiter.charge("user:1", 10)
    assert (again.allowed, again.remaining, again.reset_at) == (True, 0, 240)
    assert list(limiter._spent) == [("user:1", 3)]
