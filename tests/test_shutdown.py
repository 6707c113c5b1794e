"""Graceful shutdown of a live server (SIGTERM): an in-flight mutation finishes and
commits whole; one that outlives the grace period is cancelled and leaves nothing."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

from tests.fixtures.server import LiveServer, live_server

WRITE_SCOPES = json.dumps(["portfolio:read", "initiatives:write", "audit:read"])
RENAME = """
mutation ($id: ID!, $title: String!) {
  updateInitiative(input: {id: $id, title: $title}) {
    initiative { title version }
    userErrors { code message }
  }
}"""


@asynccontextmanager
async def row_locked(database_url: str, key: str) -> AsyncIterator[AsyncConnection]:
    """Holds initiative ``key``'s row lock until the block ends (then commits nothing)."""
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as connection:
            await connection.execute(
                text("SELECT 1 FROM initiatives WHERE key = :key FOR UPDATE"), {"key": key}
            )
            yield connection
            await connection.rollback()
    finally:
        await engine.dispose()


async def wait_until_blocked(connection: AsyncConnection, table: str = "initiatives") -> None:
    """Until a server backend waits for our lock: the request is then in flight."""
    query = text(
        "SELECT count(*) FROM pg_stat_activity "
        "WHERE application_name = 'portfolio-graph' AND wait_event_type = 'Lock' "
        "AND query ILIKE :table"
    )
    async with asyncio.timeout(30):
        while not await connection.scalar(query, {"table": f"%{table}%"}):
            # Statistics are a snapshot per transaction: take a fresh one each time.
            await connection.execute(text("SELECT pg_stat_clear_snapshot()"))
            await asyncio.sleep(0.01)  # polling a condition, with a deadline


async def first_initiative(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.post(
        "/graphql",
        json={"query": "{ initiatives(first: 1) { nodes { id key title version } } }"},
    )
    return dict(response.json()["data"]["initiatives"]["nodes"][0])


async def audit_events(database_url: str, key: str) -> int:
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as connection:
            count = await connection.scalar(
                text(
                    "SELECT count(*) FROM audit_events e JOIN initiatives i ON i.id = e.entity_id "
                    "WHERE i.key = :key AND e.action = 'UPDATE'"
                ),
                {"key": key},
            )
            return int(count or 0)
    finally:
        await engine.dispose()


async def stored_title(database_url: str, key: str) -> str:
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as connection:
            title = await connection.scalar(
                text("SELECT title FROM initiatives WHERE key = :key"), {"key": key}
            )
            return str(title)
    finally:
        await engine.dispose()


async def rename_in_flight(
    client: httpx.AsyncClient, lock: AsyncConnection, initiative: dict[str, Any], title: str
) -> asyncio.Task[httpx.Response]:
    """Sends the rename and returns once it waits for the row lock (is in flight)."""
    variables = {"id": initiative["id"], "title": title}
    task = asyncio.create_task(
        client.post("/graphql", json={"query": RENAME, "variables": variables})
    )
    await wait_until_blocked(lock)
    return task


def serve(database_url: str, **environment: str) -> Any:
    return live_server(database_url, PORTFOLIO_ANONYMOUS_SCOPES=WRITE_SCOPES, **environment)


async def test_sigterm_lets_the_in_flight_mutation_commit(own_database: str) -> None:
    with serve(own_database) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
            initiative = await first_initiative(client)
            events_before = await audit_events(own_database, initiative["key"])
            async with row_locked(own_database, initiative["key"]) as lock:
                in_flight = await rename_in_flight(client, lock, initiative, "Renamed in flight")
                server.terminate()
                await asyncio.to_thread(server.wait_for, "Shutting down")
                # No new connections once shutting down.
                refused = await _connect_refused(server)
                assert refused
            # The lock is gone: the request finishes during the shutdown.
            response = await in_flight
        assert response.status_code == 200
        payload = response.json()["data"]["updateInitiative"]
        assert payload == {
            "initiative": {"title": "Renamed in flight", "version": initiative["version"] + 1},
            "userErrors": [],
        }
        assert await asyncio.to_thread(server.exited_gracefully)
    assert await stored_title(own_database, initiative["key"]) == "Renamed in flight"
    assert await audit_events(own_database, initiative["key"]) == events_before + 1


async def test_a_request_outliving_the_grace_is_cancelled_and_rolled_back(
    own_database: str,
) -> None:
    with serve(own_database, PORTFOLIO_SHUTDOWN_GRACE_SECONDS="1") as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
            initiative = await first_initiative(client)
            events_before = await audit_events(own_database, initiative["key"])
            async with row_locked(own_database, initiative["key"]) as lock:
                in_flight = await rename_in_flight(client, lock, initiative, "Never stored")
                server.terminate()
                # The lock outlives the grace: the server gives up on the request and exits.
                assert await asyncio.to_thread(server.exited_gracefully)
            outcome = await asyncio.gather(in_flight, return_exceptions=True)
        response = outcome[0]
        if isinstance(response, httpx.Response):
            assert response.status_code >= 500
        else:
            assert isinstance(response, httpx.TransportError)
    assert await stored_title(own_database, initiative["key"]) == initiative["title"]
    assert await audit_events(own_database, initiative["key"]) == events_before


async def _connect_refused(server: LiveServer) -> bool:
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=5) as fresh:
            await fresh.get("/healthz")
    except httpx.ConnectError:
        return True
    return False
