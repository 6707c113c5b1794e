"""The driver pool of the known reads and updates (``domain.database.DriverPool``), on a
database of the test's own so that every connection named ``portfolio-graph`` on it is
the pool's: connections are reused, never more than its size are open, waiters are
served in order or refused with 503 after the pool timeout, a connection that failed is
not handed out again, and nothing leaks when an acquirer is cancelled."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from api.app import create_app
from api.embedded import to_async_url
from domain.database import (
    APPLICATION_NAME,
    DriverPool,
    ReadPoolTimeout,
    ReadPoolUnavailable,
    create_engine,
    driver_connector,
)
from schema.ids import encode_id
from tests.conftest import ALL_SCOPES, settings_for
from tests.test_connection_context import REQUEST_VALUE
from tests.test_pooled_reads import _initiatives

PID = "SELECT pg_backend_pid()"
# A document of these tests' own: the plans a process knows are shared by every app.
NODE = "query DriverPoolNode($id: ID!) { node(id: $id) { ... on Initiative { key } } }"
# The pool's connections as the server counts them (the test's database is its own).
OPEN_ON_SERVER = (
    "SELECT count(*) FROM pg_stat_activity"
    f" WHERE datname = current_database() AND application_name = '{APPLICATION_NAME}'"
)


@pytest.fixture
async def engine(own_database: str) -> AsyncIterator[AsyncEngine]:
    """The app's engine, for its database and dialect: the pool opens its own."""
    engine = create_engine(to_async_url(own_database), settings_for())
    yield engine
    await engine.dispose()


@asynccontextmanager
async def driver_pool(
    engine: AsyncEngine, size: int, wait_seconds: float = 5.0
) -> AsyncIterator[DriverPool]:
    pool = DriverPool(driver_connector(engine, settings_for()), size, wait_seconds)
    try:
        yield pool
    finally:
        await pool.close()


async def until(condition: Callable[[], bool]) -> None:
    """Lets the other tasks run until ``condition`` holds (a state, not a delay)."""
    for _ in range(10_000):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("the pool never reached the expected state")


async def _ask(client: httpx.AsyncClient, pk: int) -> httpx.Response:
    return await client.post(
        "/graphql", json={"query": NODE, "variables": {"id": encode_id("Initiative", pk)}}
    )


def _waiting(pool: DriverPool, count: int) -> bool:
    return pool.waiting == count


async def test_sequential_reads_reuse_one_connection(engine: AsyncEngine) -> None:
    async with driver_pool(engine, size=5) as pool:
        pids = []
        for _ in range(10):
            async with pool() as driver:
                pids.append(await driver.fetchval(PID))
        assert len(set(pids)) == 1
        assert pool.opened == 1
        assert (pool.in_use, pool.idle) == (0, 1)


async def test_concurrent_acquirers_never_open_more_than_its_size(engine: AsyncEngine) -> None:
    async with driver_pool(engine, size=3) as pool:
        on_server: list[int] = []
        waiting: list[int] = []

        async def read() -> int:
            async with pool() as driver:
                waiting.append(pool.waiting)
                on_server.append(int(await driver.fetchval(OPEN_ON_SERVER)))
                return int(await driver.fetchval(PID))

        pids = await asyncio.gather(*(read() for _ in range(30)))
        assert max(waiting) > 0  # the acquirers did contend for the connections
        assert len(set(pids)) == 3
        assert max(on_server) == 3
        assert pool.opened == 3
        assert (pool.in_use, pool.idle, pool.waiting) == (0, 3, 0)


async def test_waiters_are_served_first_come_first_served(engine: AsyncEngine) -> None:
    async with driver_pool(engine, size=1) as pool:
        served: list[str] = []

        async def wait(name: str) -> None:
            async with pool():
                served.append(name)

        async with pool() as held:
            holder = await held.fetchval(PID)
            waiters = []
            for count, name in enumerate(("first", "second", "third"), start=1):
                waiters.append(asyncio.create_task(wait(name)))
                await until(functools.partial(_waiting, pool, count))  # queued in order
        await asyncio.gather(*waiters)
        assert served == ["first", "second", "third"]
        async with pool() as driver:  # handed from one to the next, never reopened
            assert await driver.fetchval(PID) == holder
        assert pool.opened == 1


async def test_a_wait_past_the_pool_timeout_is_refused(engine: AsyncEngine) -> None:
    async with driver_pool(engine, size=1, wait_seconds=0.1) as pool, pool():
        with pytest.raises(ReadPoolTimeout) as refused:
            async with pool():
                pass
        assert str(refused.value) == ("No database connection came free within 0.1 s (1 in use).")
        assert pool.waiting == 0


async def test_a_known_read_waiting_past_the_pool_timeout_is_answered_503(
    own_database: str,
) -> None:
    app = create_app(
        settings_for(anonymous_scopes=ALL_SCOPES, db_read_pool_size=1, db_pool_timeout_seconds=0.1),
        database_url=own_database,
    )
    initiatives = await _initiatives(own_database)
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            assert (await _ask(client, initiatives[0][0])).status_code == 200  # now known
            async with app.state.reads():  # the pool's only connection, held
                busy = await _ask(client, initiatives[1][0])
            assert busy.status_code == 503
            assert busy.headers["retry-after"] == "2"
            error = busy.json()["errors"][0]
            assert error["extensions"]["code"] == "SERVICE_UNAVAILABLE"
            assert error["message"] == "The database is unavailable or busy; retry shortly."
            # Once it is free, the same read is answered on it.
            again = await _ask(client, initiatives[1][0])
            assert again.status_code == 200
            assert again.json()["extensions"]["answeredBy"] == "repeated"
            assert again.json()["data"]["node"]["key"] == initiatives[1][1]
            assert app.state.reads.opened == 1
    finally:
        await app.state.reads.close()
        await app.state.engine.dispose()


async def test_a_connection_whose_statement_failed_is_not_handed_out_again(
    engine: AsyncEngine,
) -> None:
    async with driver_pool(engine, size=1) as pool:
        async with pool() as driver:
            failed = await driver.fetchval(PID)
            with pytest.raises(asyncpg.DivisionByZeroError):
                await driver.fetchval("SELECT 1 / 0")
        async with pool() as driver:  # its place came free once it was closed
            assert await driver.fetchval(PID) != failed
        assert pool.opened == 2
        assert (pool.in_use, pool.idle) == (0, 1)


async def test_a_connection_returned_inside_a_transaction_is_not_handed_out_again(
    engine: AsyncEngine,
) -> None:
    async with driver_pool(engine, size=1) as pool:
        async with pool() as driver:
            left_open = await driver.fetchval(PID)
            await driver.transaction().start()  # neither committed nor rolled back
        async with pool() as driver:
            assert await driver.fetchval(PID) != left_open
            assert not driver.is_in_transaction()
        assert pool.opened == 2


async def test_a_cancelled_waiter_leaks_nothing(engine: AsyncEngine) -> None:
    async with driver_pool(engine, size=1) as pool:
        async with pool() as held:
            holder = await held.fetchval(PID)
            waiter = asyncio.create_task(pool.acquire())
            await until(lambda: pool.waiting == 1)
            waiter.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiter
            assert pool.waiting == 0
        assert (pool.in_use, pool.idle) == (0, 1)
        async with pool() as driver:
            assert await driver.fetchval(PID) == holder
        assert pool.opened == 1


async def test_a_waiter_cancelled_once_served_passes_its_connection_on(
    engine: AsyncEngine,
) -> None:
    async with driver_pool(engine, size=1) as pool:
        held = await pool.acquire()
        waiter = asyncio.create_task(pool.acquire())
        await until(lambda: pool.waiting == 1)
        pool.release(held)  # handed to the waiter, which is cancelled before it runs
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        assert (pool.in_use, pool.idle, pool.opened) == (0, 1, 1)


async def test_an_acquirer_cancelled_while_connecting_frees_its_place(
    engine: AsyncEngine,
) -> None:
    async with driver_pool(engine, size=1) as pool:
        connecting = asyncio.create_task(pool.acquire())
        await until(lambda: pool.in_use == 1)  # its place taken, the connection opening
        connecting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await connecting
        assert pool.in_use == 0
        async with pool() as driver:
            assert await driver.fetchval("SELECT 1") == 1
        assert pool.opened == 1


async def test_a_refused_connection_frees_its_place(engine: AsyncEngine) -> None:
    elsewhere: Any = engine.url.set(database="portfolio_no_such_database")
    missing = create_engine(elsewhere.render_as_string(hide_password=False), settings_for())
    async with driver_pool(missing, size=1) as pool:
        for _ in range(2):  # the place is free again for the second attempt
            with pytest.raises(ReadPoolUnavailable) as refused:
                await pool.acquire()
            assert str(refused.value).startswith("PostgreSQL refused a connection: database ")
            assert pool.in_use == 0
    await missing.dispose()


async def test_an_idle_connection_terminated_by_the_server_is_dropped(
    own_database: str,
) -> None:
    app = create_app(settings_for(anonymous_scopes=ALL_SCOPES), database_url=own_database)
    initiatives = await _initiatives(own_database)
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            for pk, _ in initiatives[:2]:
                assert (await _ask(client, pk)).status_code == 200
            assert app.state.reads.opened == 1
            lost = asyncio.Event()
            async with app.state.reads() as driver:
                driver.add_termination_listener(lambda _connection: lost.set())
                terminated = await driver.fetchval(PID)
            admin = create_async_engine(own_database)
            async with admin.connect() as connection:
                await connection.execute(
                    text("SELECT pg_terminate_backend(:pid)"), {"pid": terminated}
                )
            await admin.dispose()
            await lost.wait()  # asyncpg has seen the server close it, while idle
            read = await _ask(client, initiatives[2][0])
            assert read.status_code == 200
            assert read.json()["extensions"]["answeredBy"] == "repeated"
            assert read.json()["data"]["node"]["key"] == initiatives[2][1]
            assert app.state.reads.opened == 2
            assert (app.state.reads.in_use, app.state.reads.idle) == (0, 1)
    finally:
        await app.state.reads.close()
        await app.state.engine.dispose()


async def test_close_closes_every_connection(engine: AsyncEngine) -> None:
    pool = DriverPool(driver_connector(engine, settings_for()), 3, 5.0)
    drivers: list[Any] = []
    together = asyncio.Barrier(3)

    async def hold() -> None:
        async with pool() as driver:
            drivers.append(driver)
            await together.wait()  # all three are out at once

    await asyncio.gather(*(hold() for _ in range(3)))
    in_use = await pool.acquire()
    await pool.close()
    assert sum(driver.is_closed() for driver in drivers) == 2  # the idle ones
    assert not in_use.is_closed()  # closed as it comes back
    pool.release(in_use)
    await until(lambda: pool.in_use == 0)
    assert all(driver.is_closed() for driver in drivers)
    with pytest.raises(ReadPoolUnavailable) as refused:
        await pool.acquire()
    assert str(refused.value) == "The driver connection pool is closed."


async def test_close_refuses_the_waiters(engine: AsyncEngine) -> None:
    pool = DriverPool(driver_connector(engine, settings_for()), 1, 5.0)
    held = await pool.acquire()
    waiter = asyncio.create_task(pool.acquire())
    await until(lambda: pool.waiting == 1)
    await pool.close()
    with pytest.raises(ReadPoolUnavailable) as refused:
        await waiter
    assert str(refused.value) == "The driver connection pool closed."
    pool.release(held)
    await until(lambda: pool.in_use == 0)
    assert held.is_closed()


async def test_a_connection_opened_during_a_request_keeps_no_request_context(
    engine: AsyncEngine,
) -> None:
    # As the engine's (tests/test_connection_context.py): a connection's callbacks run
    # in the context it was opened in, for as long as the pool keeps it.
    async with driver_pool(engine, size=1) as pool:
        token = REQUEST_VALUE.set("request 1")
        try:
            async with pool():
                pass
        finally:
            REQUEST_VALUE.reset(token)
        seen: list[str | None] = []
        heard = asyncio.Event()

        def listener(_connection: Any, _message: Any) -> None:
            seen.append(REQUEST_VALUE.get())
            heard.set()

        async with pool() as driver:
            driver.add_log_listener(listener)
            await driver.execute("DO $$ BEGIN RAISE NOTICE 'later'; END $$")
        await asyncio.wait_for(heard.wait(), timeout=5)
        assert seen == [None]
        assert pool.opened == 1


SESSION_SETTINGS = (
    "statement_timeout",
    "plan_cache_mode",
    "random_page_cost",
    "TimeZone",
    "application_name",
)


async def test_connections_are_opened_as_the_engines(engine: AsyncEngine) -> None:
    """The same session settings and JSON codecs as a connection of the engine's pool
    (a jsonb column read by a known update is a mapping, as through the ORM)."""
    async with engine.connect() as connection:
        through_engine: Any = (await connection.get_raw_connection()).driver_connection
        expected = [await through_engine.fetchval(f"SHOW {name}") for name in SESSION_SETTINGS]
    async with driver_pool(engine, size=1) as pool, pool() as driver:
        assert [await driver.fetchval(f"SHOW {name}") for name in SESSION_SETTINGS] == expected
        assert await driver.fetchval("""SELECT '{"a": [1]}'::jsonb""") == {"a": [1]}
        assert await driver.fetchval("""SELECT '{"a": [1]}'::json""") == {"a": [1]}


def _gauges(metrics: str) -> dict[str, float]:
    """The driver pool's gauges in a /metrics page."""
    return {
        name.removeprefix("portfolio_db_read_pool_"): float(value)
        for name, value in (
            line.split() for line in metrics.splitlines() if line.startswith("portfolio_db_read_")
        )
    }


async def test_metrics_report_the_driver_pool(own_database: str) -> None:
    """/metrics says how much of the driver pool is used, beside the engine's pool: after
    a known read its one connection is idle; held, it is in use."""
    app = create_app(
        settings_for(anonymous_scopes=ALL_SCOPES, db_read_pool_size=3), database_url=own_database
    )
    initiatives = await _initiatives(own_database)
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            await _ask(client, initiatives[0][0])  # now known
            known = await _ask(client, initiatives[1][0])
            assert known.json()["extensions"]["answeredBy"] == "repeated"
            after_read = _gauges((await client.get("/metrics")).text)
            async with app.state.reads():
                while_held = _gauges((await client.get("/metrics")).text)
        assert after_read == {"in_use": 0, "idle": 1, "size": 3, "waiting": 0}
        assert while_held == {"in_use": 1, "idle": 0, "size": 3, "waiting": 0}
    finally:
        await app.state.reads.close()
        await app.state.engine.dispose()
