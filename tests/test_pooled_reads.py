"""The app as ``portfolio serve`` wires it (``create_app``), not on the tests' one
transaction, so on a database of the test's own: a repeated read runs on a connection of
the driver pool (``DriverPool``), outside any ORM session; a write is answered once it is
committed."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from starlette.types import Message

from api.embedded import to_async_url
from domain.database import DriverPool, create_session_factory, read_connections
from domain.database import create_engine as create_database_engine
from schema.ids import encode_id
from tests.conftest import settings_for

NODE = "query($id: ID!) { node(id: $id) { ... on Initiative { key title } } }"


async def _initiatives(url: str) -> list[tuple[int, str]]:
    engine = create_async_engine(url)
    async with engine.connect() as connection:
        rows = await connection.execute(text("SELECT id, key FROM initiatives ORDER BY id"))
        found = [(row.id, row.key) for row in rows]
    await engine.dispose()
    return found


async def _ask(client: httpx.AsyncClient, pk: int) -> httpx.Response:
    return await client.post(
        "/graphql", json={"query": NODE, "variables": {"id": encode_id("Initiative", pk)}}
    )


async def test_a_repeated_read_runs_on_a_pooled_connection_and_returns_it(
    wired_app: Any, own_database: str
) -> None:
    app = wired_app
    initiatives = await _initiatives(own_database)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        paths = []
        for pk, key in initiatives[:4]:
            response = await _ask(client, pk)
            assert response.status_code == 200
            body = response.json()
            assert body["data"] == {"node": {"key": key, "title": body["data"]["node"]["title"]}}
            paths.append(body["extensions"]["answeredBy"])
            # Every request gave its connection back; none took one of the engine's.
            assert app.state.reads.in_use == 0
            assert app.state.engine.pool.checkedout() == 0
    # Planned once, then answered from the known plan with new IDs.
    assert paths == ["compiled", "repeated", "repeated", "repeated"]


async def test_a_pooled_connection_lost_to_the_database_is_replaced(
    wired_app: Any, own_database: str
) -> None:
    app = wired_app
    initiatives = await _initiatives(own_database)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        for pk, _ in initiatives[:3]:
            assert (await _ask(client, pk)).status_code == 200
        # Every server connection of the app ends (an administrator, a failover).
        admin = create_async_engine(own_database)
        async with admin.connect() as connection:
            await connection.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE application_name = 'portfolio-graph'"
                    " AND datname = current_database()"
                )
            )
        await admin.dispose()
        # Either the loss was seen while idle (the connection is dropped before use) or
        # the read hits it: then that request alone is refused, as retryable.
        first = await _ask(client, initiatives[3][0])
        if first.status_code != 200:
            assert first.status_code == 503
            assert first.headers["retry-after"] == "2"
            error = first.json()["errors"][0]
            assert error["extensions"]["code"] == "SERVICE_UNAVAILABLE"
            assert error["message"] == "The database connection was lost; retry shortly."
        again = await _ask(client, initiatives[4][0])
        assert again.status_code == 200
        assert again.json()["data"]["node"]["key"] == initiatives[4][1]
        assert again.json()["extensions"]["answeredBy"] == "repeated"
        assert app.state.reads.in_use == 0


UPDATE = """mutation($id: ID!, $version: Int, $title: String) {
  updateInitiative(input: {id: $id, expectedVersion: $version, title: $title}) {
    initiative { version } userErrors { code }
  }
}"""


async def test_a_write_is_answered_only_once_it_is_committed(
    wired_app: Any, own_database: str
) -> None:
    pk, _ = (await _initiatives(own_database))[0]
    observer = create_async_engine(own_database)
    seen_when_answered: list[Any] = []

    async def stored() -> tuple[int, str]:
        async with observer.connect() as connection:
            row = (
                await connection.execute(
                    text("SELECT version, title FROM initiatives WHERE id = :id"), {"id": pk}
                )
            ).one()
        return row.version, row.title

    before = await stored()
    body = orjson.dumps(
        {
            "query": UPDATE,
            "variables": {
                "id": encode_id("Initiative", pk),
                "version": before[0],
                "title": "Committed before answered",
            },
        }
    )
    messages: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            # What any other connection sees at the moment the caller hears back.
            seen_when_answered.append(await stored())
        messages.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/graphql",
        "raw_path": b"/graphql",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"test"), (b"content-type", b"application/json")],
        "client": ("127.0.0.1", 5000),
        "server": ("test", 80),
        "state": {},
    }
    await wired_app(scope, receive, send)
    await observer.dispose()
    assert messages[0]["status"] == 200
    answer = orjson.loads(b"".join(m.get("body", b"") for m in messages[1:]))
    assert answer["data"]["updateInitiative"] == {
        "initiative": {"version": before[0] + 1},
        "userErrors": [],
    }
    assert seen_when_answered == [(before[0] + 1, "Committed before answered")]


async def test_a_read_cancelled_mid_statement_does_not_leave_its_connection_busy(
    own_database: str,
) -> None:
    # A pool of one: the cancelled read's connection is closed (never handed out again)
    # and its place freed, so the next read gets a new connection, not a busy one.
    engine = create_database_engine(to_async_url(own_database), settings_for())
    reads = read_connections(
        engine, create_session_factory(engine), settings_for(db_read_pool_size=1)
    )
    assert isinstance(reads, DriverPool)  # not bound to one connection

    async def slow() -> None:
        async with reads() as connection:
            await connection.fetchval("SELECT pg_sleep(30)")

    # A deadline, as the request guard's: it cancels the read while PostgreSQL sleeps.
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(slow(), timeout=0.5)
    async with reads() as connection:
        assert await connection.fetchval("SELECT 1") == 1
    assert reads.opened == 2
    assert reads.in_use == 0
    await reads.close()
    await engine.dispose()
