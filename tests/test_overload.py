"""Overload is shed, not queued: a worker admits a bounded number of requests at once
(plus a short line); the next one is answered 503 OVERLOADED with Retry-After at once,
and health and metrics still answer.

Requests are held in flight by PostgreSQL itself: the test locks the ``products`` table,
so reads of it wait in the database until the test lets go. That needs the app wired as
``portfolio serve`` wires it (its own pool), on a database of the test's own."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from pydantic import ValidationError
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine
from starlette.applications import Starlette

from api.app import admission_limits, create_app
from domain.settings import Settings
from tests.conftest import ALL_SCOPES, settings_for

# Distinct documents, so no answer is shared between them.
PRODUCTS = "{{ products(first: {n}) {{ nodes {{ key }} }} }}"


@pytest.fixture
async def products_locked(own_database: str) -> AsyncIterator[AsyncConnection]:
    """An open transaction holding ``products`` exclusively: every read of it waits until
    the test rolls it back."""
    engine = create_async_engine(own_database)
    async with engine.connect() as connection:
        await connection.begin()
        await connection.execute(text("LOCK TABLE products IN ACCESS EXCLUSIVE MODE"))
        yield connection
        if connection.in_transaction():
            await connection.rollback()
    await engine.dispose()


async def _client(own_database: str, **settings: Any) -> tuple[Starlette, httpx.AsyncClient]:
    app = create_app(
        settings_for(anonymous_scopes=ALL_SCOPES, **settings), database_url=own_database
    )
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")
    return app, client


async def _metric(client: httpx.AsyncClient, name: str) -> float:
    body = (await client.get("/metrics")).text
    found = re.search(rf"^{name} (\S+)$", body, re.MULTILINE)
    assert found is not None, body
    return float(found.group(1))


async def _until(client: httpx.AsyncClient, name: str, value: float) -> None:
    """Give the requests started meanwhile turns until the gauge reads ``value``."""
    for _ in range(1_000):
        await asyncio.sleep(0)
        if await _metric(client, name) == value:
            return
    pytest.fail(f"{name} never reached {value}")


async def _until_blocked(lock: AsyncConnection, requests: int) -> None:
    """Wait until ``requests`` queries wait for the test's lock in PostgreSQL."""
    for _ in range(1_000):
        await asyncio.sleep(0)
        waiting = await lock.scalar(
            text(
                "SELECT count(*) FROM pg_locks"
                " WHERE relation = 'products'::regclass AND NOT granted"
            )
        )
        if waiting == requests:
            return
    pytest.fail(f"{requests} requests never reached the database")


def _held(client: httpx.AsyncClient, n: int) -> asyncio.Future[httpx.Response]:
    return asyncio.ensure_future(client.post("/graphql", json={"query": PRODUCTS.format(n=n)}))


def _assert_shed(response: httpx.Response, at_once: int, waiting: int) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["retry-after"] == "1"
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {
        "errors": [
            {
                "message": f"The server is at capacity ({at_once} requests at once, "
                f"{waiting} waiting); retry after 1 s.",
                "extensions": {"code": "OVERLOADED"},
            }
        ]
    }


async def _assert_answered(held: list[asyncio.Future[httpx.Response]]) -> None:
    for n, response in enumerate(await asyncio.gather(*held), start=1):
        assert response.status_code == 200, response.text
        assert len(response.json()["data"]["products"]["nodes"]) == n


async def test_past_the_limit_a_request_is_shed_at_once(
    own_database: str, products_locked: AsyncConnection
) -> None:
    """Two requests in flight, no line: the third is answered 503 while the two are still
    held in the database; /healthz and /metrics still answer, /readyz (a database
    query) is shed like any other request; the held ones then complete."""
    app, client = await _client(own_database, max_concurrent_requests=2, max_queued_requests=0)
    async with client:
        held = [_held(client, 1), _held(client, 2)]
        await _until_blocked(products_locked, 2)
        assert await _metric(client, "portfolio_requests_in_flight") == 2

        _assert_shed(await client.post("/graphql", json={"query": "{ __typename }"}), 2, 0)
        _assert_shed(await client.get("/readyz"), 2, 0)
        assert (await client.get("/healthz")).json() == {"status": "ok"}
        assert await _metric(client, "portfolio_requests_shed_total") == 2
        assert not any(request.done() for request in held)  # the 503s did not wait for them

        await products_locked.rollback()
        await _assert_answered(held)
        assert await _metric(client, "portfolio_requests_in_flight") == 0
        # Their places are given back: the next request is admitted.
        after = await client.post("/graphql", json={"query": "{ __typename }"})
        assert after.json()["data"] == {"__typename": "Query"}
        assert await _metric(client, "portfolio_requests_shed_total") == 2
    await app.state.reads.close()
    await app.state.engine.dispose()


async def test_a_short_line_waits_and_the_request_past_it_is_shed(
    own_database: str, products_locked: AsyncConnection
) -> None:
    """One place and a line of one: the second request waits for the place (counted in a
    gauge), the third is shed, and the one in line is answered once the first ends."""
    app, client = await _client(own_database, max_concurrent_requests=1, max_queued_requests=1)
    async with client:
        held = [_held(client, 1)]
        await _until_blocked(products_locked, 1)
        held.append(_held(client, 2))
        await _until(client, "portfolio_requests_waiting", 1)

        _assert_shed(await client.post("/graphql", json={"query": "{ __typename }"}), 1, 1)
        assert await _metric(client, "portfolio_requests_shed_total") == 1

        await products_locked.rollback()
        await _assert_answered(held)
        assert await _metric(client, "portfolio_requests_waiting") == 0
        assert await _metric(client, "portfolio_requests_in_flight") == 0
    await app.state.reads.close()
    await app.state.engine.dispose()


async def test_a_limit_of_zero_admits_everything(
    own_database: str, products_locked: AsyncConnection
) -> None:
    """``PORTFOLIO_MAX_CONCURRENT_REQUESTS=0`` switches shedding off (the benchmark's
    comparison): with requests held, another is still answered."""
    app, client = await _client(own_database, max_concurrent_requests=0)
    async with client:
        held = [_held(client, 1), _held(client, 2)]
        await _until_blocked(products_locked, 2)
        answer = await client.post("/graphql", json={"query": "{ __typename }"})
        assert answer.json()["data"] == {"__typename": "Query"}
        await products_locked.rollback()
        await _assert_answered(held)
        assert await _metric(client, "portfolio_requests_shed_total") == 0
    await app.state.reads.close()
    await app.state.engine.dispose()


@pytest.mark.parametrize(
    ("settings", "limits"),
    [
        ({}, (30, 120)),  # the pool's 20 connections and 10 overflow; four wait per place
        ({"db_pool_size": 7, "db_max_overflow": 3}, (10, 40)),
        ({"max_concurrent_requests": 4}, (4, 16)),
        ({"max_concurrent_requests": 4, "max_queued_requests": 0}, (4, 0)),
        ({"max_concurrent_requests": 0}, (None, 0)),
    ],
)
def test_the_limit_follows_the_pool_unless_set(
    settings: dict[str, Any], limits: tuple[int | None, int]
) -> None:
    assert admission_limits(Settings(**settings)) == limits


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("PORTFOLIO_MAX_CONCURRENT_REQUESTS", "-1", "Input should be greater than or equal to 0"),
        ("PORTFOLIO_MAX_QUEUED_REQUESTS", "few", "Input should be a valid integer"),
    ],
)
def test_the_admission_settings_refuse_bad_values(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValidationError) as refused:
        Settings()
    (error,) = refused.value.errors()
    assert error["loc"] == (variable.removeprefix("PORTFOLIO_").lower(),)
    assert error["msg"].startswith(message)
