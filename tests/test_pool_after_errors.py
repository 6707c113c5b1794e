"""A pooled connection on which anything failed is never handed to another request
(domain.database.discard_after_errors), and a burst of bad requests against the app as
``portfolio serve`` wires it (its own engine and pool, committed writes) leaves every
later good request unharmed: token checks, ``/oauth/token``, reads and writes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine

from auth.identity import DEMO_CLIENT_ID, demo_client
from domain.database import create_engine, create_session_factory, read_connections
from schema.ids import encode_id
from tests.conftest import settings_for
from tests.test_bad_input_generated import POSITIONS, inline, with_variables

GRAPHQL_RESPONSE = "application/graphql-response+json"


@pytest.fixture
async def fresh_engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    """The engine as the app makes it, with a pool of its own."""
    engine = create_engine(database_url, settings_for())
    yield engine
    await engine.dispose()


async def _session_pid(engine: AsyncEngine, statement: str = "SELECT 1") -> int:
    """The server process of the connection a session gets, after running ``statement``."""
    async with create_session_factory(engine)() as session:
        pid = int(await session.scalar(text("SELECT pg_backend_pid()")) or 0)
        await session.execute(text(statement))
        return pid


async def test_a_connection_is_reused_while_nothing_fails(fresh_engine: AsyncEngine) -> None:
    first = await _session_pid(fresh_engine)
    assert await _session_pid(fresh_engine) == first


async def test_a_connection_whose_statement_failed_is_not_handed_out_again(
    fresh_engine: AsyncEngine,
) -> None:
    with pytest.raises(DBAPIError, match="division by zero"):
        await _session_pid(fresh_engine, "SELECT 1 / 0")
    failed = await _session_pid(fresh_engine)  # the pool had one connection: this is new
    with pytest.raises(DBAPIError, match="division by zero"):
        await _session_pid(fresh_engine, "SELECT 1 / 0")
    assert await _session_pid(fresh_engine) != failed
    assert fresh_engine.pool.checkedout() == 0  # type: ignore[attr-defined]


async def test_a_failure_on_a_pooled_read_discards_its_connection(
    fresh_engine: AsyncEngine,
) -> None:
    """Reads on the driver itself bypass SQLAlchemy; a failure the caller handles (the
    compiled path turns it into a GraphQL error) still marks the connection."""
    reads = read_connections(fresh_engine, create_session_factory(fresh_engine), settings_for())
    async with reads() as driver:
        first = await driver.fetchval("SELECT pg_backend_pid()")
    async with reads() as driver:
        assert await driver.fetchval("SELECT pg_backend_pid()") == first
        try:
            await driver.fetchval("SELECT $1::int", "not a number")
        except Exception as error:  # as the compiled path does: reported, not raised
            assert "invalid input" in str(error)
    async with reads() as driver:
        assert await driver.fetchval("SELECT pg_backend_pid()") != first
    await reads.close()


# -- The whole app, on its own pool ---------------------------------------------------


@pytest.fixture
async def secret(own_database: str, tmp_path: Path) -> str:
    """The demo client's secret (client credentials, every scope), committed."""
    engine = create_async_engine(own_database)
    async with AsyncSession(engine) as session, session.begin():
        value = await demo_client(session, tmp_path)
    await engine.dispose()
    return value


async def _counts(url: str) -> dict[str, int]:
    engine = create_async_engine(url)
    async with engine.connect() as connection:
        tables = (
            await connection.execute(
                text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
            )
        ).scalars()
        counts = {
            table: int(
                (await connection.execute(text(f'SELECT count(*) FROM "{table}"'))).scalar() or 0
            )
            for table in list(tables)
        }
    await engine.dispose()
    return counts


def _bad_requests() -> list[dict[str, Any]]:
    """One of each kind of bad input: every generated NUL position (as a variable and
    as a literal), IDs beyond 64 bits, costs the column cannot hold, bodies that are
    not clean JSON."""
    bodies: list[dict[str, Any]] = []
    for position in POSITIONS:
        query, variables = with_variables(position)
        bodies.append({"json": {"query": query, "variables": variables}})
        bodies.append({"json": {"query": inline(position)}})
    huge = encode_id("Product", 2**70)
    bodies.append(
        {"json": {"query": "query($i: ID!) { node(id: $i) { id } }", "variables": {"i": huge}}}
    )
    bodies.append(
        {
            "json": {
                "query": f'mutation {{ archiveProduct(input: {{id: "{huge}"}}) '
                "{ userErrors { code } } }"
            }
        }
    )
    for cost in ("1e400", "NaN", "Infinity", "99999999999999999999999.999"):
        bodies.append(
            {
                "json": {
                    "query": "mutation($c: Decimal) { createInitiative(input: "
                    '{key: "BURST", title: "x", estimatedCost: $c}) { userErrors { code } } }',
                    "variables": {"c": cost},
                }
            }
        )
    for raw in (
        b'{"query": "{ __typename }", "variables": {"v": '
        + b"[" * 100_000
        + b"]" * 100_000
        + b"}}",
        b'{"query": "{ __typename }", "variables": {"v": "\\ud800"}}',
        b'{"query": "{ __typename \xff }"}',
    ):
        bodies.append({"content": raw, "headers": {"content-type": "application/json"}})
    return bodies


def _harmful(response: httpx.Response) -> str | None:
    """Why an answer to a bad request is wrong: a 5xx, or an error coded as the
    server's fault or the database's."""
    if response.status_code >= 500:
        return f"status {response.status_code}"
    try:
        body = response.json()
    except ValueError:
        return "not JSON"
    for error in body.get("errors") or []:
        code = (error.get("extensions") or {}).get("code")
        if code in {None, "INTERNAL_SERVER_ERROR", "SERVICE_UNAVAILABLE", "TIMEOUT"}:
            return f"code {code}"
    return None


async def test_a_burst_of_bad_requests_leaves_later_requests_unharmed(
    wired_app: Any, own_database: str, secret: str
) -> None:
    app = wired_app
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=transport, base_url="http://test", headers={"accept": GRAPHQL_RESPONSE}
        ) as client,
    ):
        token = await client.post(
            "/oauth/token", data={"grant_type": "client_credentials"}, auth=(DEMO_CLIENT_ID, secret)
        )
        assert token.status_code == 200, token.text
        bearer = {"authorization": f"Bearer {token.json()['access_token']}"}
        before = await _counts(own_database)  # the first token made the signing key

        requests = _bad_requests()
        semaphore = asyncio.Semaphore(8)  # several connections of the pool in use at once

        async def send(request: dict[str, Any]) -> httpx.Response:
            async with semaphore:
                headers = {**bearer, **request.get("headers", {})}
                if "content" in request:
                    return await client.post(
                        "/graphql", content=request["content"], headers=headers
                    )
                return await client.post("/graphql", json=request["json"], headers=headers)

        answers = await asyncio.gather(*(send(request) for request in requests))
        harmful = {
            str(request.get("json", {}).get("query", "raw body"))[:120]: reason
            for request, answer in zip(requests, answers, strict=True)
            if (reason := _harmful(answer)) is not None
        }
        assert harmful == {}
        assert await _counts(own_database) == before  # nothing of the burst was written

        # Every later good request, on whichever connection of the pool it gets.
        for attempt in range(3 * settings_for().db_pool_size // 4):
            minted = await client.post(
                "/oauth/token",
                data={"grant_type": "client_credentials"},
                auth=(DEMO_CLIENT_ID, secret),
            )
            assert minted.status_code == 200, minted.text
            headers = {"authorization": f"Bearer {minted.json()['access_token']}"}
            read = await client.post(
                "/graphql", json={"query": "{ products(first: 1) { totalCount } }"}, headers=headers
            )
            assert read.status_code == 200, read.text
            assert read.json()["data"]["products"]["totalCount"] > 0
            wrote = await client.post(
                "/graphql",
                json={
                    "query": "mutation($k: String!) { createTeam(input: "
                    '{key: $k, name: "After the burst", kind: BUSINESS}) '
                    "{ team { key } userErrors { code } } }",
                    "variables": {"k": f"AFTER-{attempt}"},
                },
                headers=headers,
            )
            assert wrote.json()["data"]["createTeam"] == {
                "team": {"key": f"AFTER-{attempt}"},
                "userErrors": [],
            }
    # Once the app has stopped (its webhook worker, woken by each commit, claims on a
    # pooled connection of its own while it runs), every connection is back in the pool:
    # none was left to the garbage collector; the driver pool's too.
    assert app.state.engine.pool.checkedout() == 0
    assert app.state.reads.in_use == 0


async def test_connections_keep_one_generic_plan_per_prepared_statement(
    fresh_engine: AsyncEngine, database_url: str
) -> None:
    """Prepared statements (every compiled read) keep one generic plan: under `auto`
    PostgreSQL planned a compiled Relay page anew on each execution. The setting can
    give `auto` back."""
    async with fresh_engine.connect() as connection:
        assert await connection.scalar(text("SHOW plan_cache_mode")) == "force_generic_plan"
    engine = create_engine(database_url, settings_for(db_plan_cache_mode="auto"))
    try:
        async with engine.connect() as connection:
            assert await connection.scalar(text("SHOW plan_cache_mode")) == "auto"
    finally:
        await engine.dispose()


async def test_connections_model_ssd_storage_unless_told_otherwise(
    fresh_engine: AsyncEngine, database_url: str
) -> None:
    """The planner is told random reads are cheap (1.1, not the server's 4), so that
    nested lists probe the link tables' indexes per row; unset, the server's value
    stands."""
    async with fresh_engine.connect() as connection:
        assert await connection.scalar(text("SHOW random_page_cost")) == "1.1"
    plain = create_async_engine(database_url)  # no session settings: the server's
    engine = create_engine(database_url, settings_for(db_random_page_cost=None))
    try:
        async with plain.connect() as connection:
            servers = await connection.scalar(text("SHOW random_page_cost"))
        async with engine.connect() as connection:
            assert await connection.scalar(text("SHOW random_page_cost")) == servers
    finally:
        await engine.dispose()
        await plain.dispose()
    assert servers != "1.1"  # else the first half proved nothing
    # Empty in the environment: unset (the server's value).
    assert settings_for(db_random_page_cost="").db_random_page_cost is None
