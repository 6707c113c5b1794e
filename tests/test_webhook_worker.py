"""The delivery worker inside the server (``PORTFOLIO_WEBHOOK_WORKER``, on in
development): real server processes, a real receiver on 127.0.0.1, committed writes.
Several processes deliver each event once; SIGTERM lets the delivery in flight finish;
the outcomes show in /metrics."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from domain.database import create_engine
from tests.conftest import TEST_WEBHOOK_SECRET_KEY, settings_for
from tests.fixtures.server import live_server
from tests.fixtures.webhooks import deliver, deliveries, receiving, register, verify

pytestmark = pytest.mark.asyncio

# A bound on how long a delivery may take to come, so that a lost one fails the test
# rather than hanging it; never a wait for something to happen.
PATIENCE = 60
STARTED = "webhook_worker_started"


def serve(database_url: str, **environment: str) -> Any:
    """A live server holding the key the tests seal webhook secrets with."""
    return live_server(
        database_url, PORTFOLIO_WEBHOOK_SECRET_KEY=TEST_WEBHOOK_SECRET_KEY, **environment
    )


@pytest.fixture
async def committed(own_database: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(own_database, settings_for())
    yield engine
    await engine.dispose()


async def create_initiatives(engine: AsyncEngine, prefix: str, count: int) -> None:
    async with engine.begin() as connection:
        await connection.execute(
            text(
                "INSERT INTO initiatives (key, title, status)"
                " SELECT :prefix || n, 'x', 'PROPOSED' FROM generate_series(1, :count) AS n"
            ),
            {"prefix": prefix, "count": count},
        )


def samples(exposition: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
    }


async def test_two_server_processes_deliver_every_event_once(
    own_database: str, committed: AsyncEngine
) -> None:
    async with receiving() as receiver:
        secret = await register(committed, receiver.url, ["initiative.created"])
        with serve(own_database, WEB_CONCURRENCY="2") as server:
            # The worker runs in each process (started before the app says it is up).
            assert server.output.count(STARTED) >= 2
            await create_initiatives(committed, "TWICE-", 30)
            async with asyncio.timeout(PATIENCE):
                await receiver.received(30)
            for _ in range(30):  # each attempt is logged once recorded
                await asyncio.to_thread(server.wait_for, "webhook_attempt")
            rows = await deliveries(committed)
        ids = [headers["webhook-id"] for headers, _ in receiver.requests]
    assert len(ids) == len(set(ids)) == 30
    assert all(verify(secret, *request) for request in receiver.requests)
    assert sorted(row["message_id"] for row in rows) == sorted(ids)
    assert {(row["status"], row["attempts"]) for row in rows} == {("delivered", 1)}


async def test_sigterm_lets_the_delivery_in_flight_finish(
    own_database: str, committed: AsyncEngine
) -> None:
    async with receiving() as receiver:
        receiver.hold = asyncio.Event()
        await register(committed, receiver.url, ["initiative.created"])
        with serve(own_database) as server:
            assert STARTED in server.output
            await create_initiatives(committed, "FLIGHT-", 1)
            async with asyncio.timeout(PATIENCE):
                await receiver.received(1)  # in flight: the answer is held
            server.terminate()
            await asyncio.to_thread(server.wait_for, "Shutting down")
            receiver.hold.set()  # the receiver answers during the shutdown
            assert await asyncio.to_thread(server.exited_gracefully)
        assert "webhook_worker_stopped" in server.output
    [row] = await deliveries(committed)
    assert (row["status"], row["attempts"], row["codes"]) == ("delivered", 1, [200])
    assert len(receiver.requests) == 1


async def test_a_delivery_cut_short_by_the_shutdown_is_sent_later_under_the_same_id(
    own_database: str, committed: AsyncEngine
) -> None:
    """The receiver never answers in time: the attempt times out during the shutdown and
    is recorded as failed; the next worker sends it again with the same webhook-id."""
    async with receiving() as receiver:
        receiver.hold = asyncio.Event()
        await register(committed, receiver.url, ["initiative.created"])
        with serve(
            own_database,
            PORTFOLIO_WEBHOOK_TIMEOUT_SECONDS="1",
            PORTFOLIO_WEBHOOK_BACKOFF_SECONDS="0",
        ) as server:
            assert STARTED in server.output
            await create_initiatives(committed, "CUT-", 1)
            async with asyncio.timeout(PATIENCE):
                await receiver.received(1)
            server.terminate()
            assert await asyncio.to_thread(server.exited_gracefully)
        [row] = await deliveries(committed)
        assert (row["status"], row["attempts"], row["codes"]) == ("pending", 1, [None])
        receiver.hold.set()
        assert await deliver(committed) == 1
        first, second = receiver.requests
    assert first[0]["webhook-id"] == second[0]["webhook-id"] == row["message_id"]
    assert first[1] == second[1]
    [row] = await deliveries(committed)
    assert (row["status"], row["codes"]) == ("delivered", [None, 200])


async def test_metrics_count_outcomes_failures_and_latency(
    own_database: str, committed: AsyncEngine
) -> None:
    async with receiving(statuses=[500]) as receiver:
        await register(committed, receiver.url, ["initiative.created"])
        with serve(
            own_database,
            PORTFOLIO_WEBHOOK_BACKOFF_SECONDS="0",
            PORTFOLIO_WEBHOOK_POLL_SECONDS="0.1",
        ) as server:
            assert STARTED in server.output
            await create_initiatives(committed, "METRIC-", 1)
            async with asyncio.timeout(PATIENCE):
                await receiver.received(2)  # a 500, then the retry's 200
                while (await deliveries(committed))[0]["status"] != "delivered":
                    await asyncio.to_thread(server.wait_for, "webhook_attempt")
            async with httpx.AsyncClient(base_url=server.url) as client:
                exposition = (await client.get("/metrics")).text
    found = samples(exposition)
    assert found[("portfolio_webhook_attempts_total", (("outcome", "delivered"),))] == 1
    assert found[("portfolio_webhook_attempts_total", (("outcome", "retrying"),))] == 1
    assert found[("portfolio_webhook_failures_total", (("reason", "status"),))] == 1
    assert found[("portfolio_webhook_attempt_seconds_count", ())] == 2
    assert found[("portfolio_webhook_outbox_pending", ())] == 0
    assert found[("portfolio_webhook_outbox_lag_seconds", ())] == 0


async def test_metrics_report_the_outbox_lag_and_disabled_endpoints(
    committed: AsyncEngine, wired_app: Any
) -> None:
    """Read from the database at the scrape, whichever process delivers."""
    await register(committed, "https://hooks.example.com/a", ["initiative.created"])
    await register(committed, "https://hooks.example.com/b", ["initiative.created"])
    await create_initiatives(committed, "LAG-", 3)
    async with committed.begin() as connection:
        await connection.execute(
            text(
                "UPDATE webhook_endpoints SET is_active = false"
                " WHERE id = (SELECT max(id) FROM webhook_endpoints)"
            )
        )
        # Due for two minutes, committed ten minutes ago; another waits for its retry.
        await connection.execute(
            text(
                "UPDATE webhook_deliveries SET created_at = now() - interval '10 minutes',"
                " next_attempt_at = now() - interval '2 minutes'"
                " WHERE id = (SELECT min(id) FROM webhook_deliveries)"
            )
        )
        await connection.execute(
            text(
                "UPDATE webhook_deliveries SET next_attempt_at = now() + interval '1 hour'"
                " WHERE id = (SELECT min(id) + 2 FROM webhook_deliveries)"
            )
        )
    transport = httpx.ASGITransport(app=wired_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        found = samples((await client.get("/metrics")).text)
    lag = found[("portfolio_webhook_outbox_lag_seconds", ())]
    oldest = found[("portfolio_webhook_outbox_oldest_seconds", ())]
    assert 120 <= lag < 180 and 600 <= oldest < 660
    # Pending for the active endpoint: 3 (those of the disabled one are not counted).
    assert found[("portfolio_webhook_outbox_pending", ())] == 3
    assert found[("portfolio_webhook_endpoints_inactive", ())] == 1
