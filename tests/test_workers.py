"""`portfolio serve --workers N`: several processes behind one port, each with its own
caches, which the database's change notifications keep coherent, sharing rate-limit
budgets through Redis, and stopping together on SIGTERM."""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, contextmanager
from typing import Any
from unittest import mock

import httpx
import psutil
import pytest
import structlog.testing
import uvicorn
from typer.testing import CliRunner

from api.cli import _prepare_for_workers, _worker_options, default_workers
from api.cli import app as cli
from domain.settings import Environment, Settings
from tests.fixtures.database import demo_database
from tests.fixtures.server import LiveServer, children, live_server
from tests.test_shutdown import RENAME, audit_events, row_locked, stored_title, wait_until_blocked

SCOPES = json.dumps(["portfolio:read", "initiatives:write"])
TITLE = "{ initiatives(first: 1) { nodes { id key title version } } }"
BUDGET = "{ rateLimit { cost remaining } }"
PID = re.compile(r"^portfolio_worker_process_id ([0-9.e+]+)$", re.MULTILINE)
ENTRIES = re.compile(r"^portfolio_response_cache_entries ([0-9.e+]+)$", re.MULTILINE)
HITS = re.compile(r'^portfolio_response_cache_answers_total\{result="hit"\} ([0-9.e+]+)$', re.M)
# Polling a condition another process brings about: bounded, never a fixed sleep.
ATTEMPTS = 500


@contextmanager
def serving_workers(database_url: str, workers: int, **environment: str) -> Iterator[LiveServer]:
    """``portfolio serve --workers N`` in production mode, once every worker is up."""
    with live_server(
        database_url,
        WEB_CONCURRENCY=str(workers),
        PORTFOLIO_ENVIRONMENT="production",
        PORTFOLIO_ANONYMOUS_SCOPES=SCOPES,
        **environment,
    ) as server:
        yield server


def _workers(pid: int) -> set[int]:
    return {
        child.pid
        for child in children(pid)
        if "multiprocessing.spawn" in " ".join(child.cmdline())
        and "resource_tracker" not in " ".join(child.cmdline())
    }


def _metric(pattern: re.Pattern[str], text: str) -> float:
    found = pattern.search(text)
    assert found, text
    return float(found.group(1))


async def pinned_clients(
    stack: AsyncExitStack, url: str, count: int = 2
) -> dict[int, httpx.AsyncClient]:
    """Clients on one keep-alive connection each, to ``count`` different workers, by pid.

    The kernel hands each new connection to one of the workers; a connection stays
    with its worker, and the worker's /metrics names it."""
    # A loopback address of this test's own: anonymous budgets are per address, and
    # the Redis on this machine is shared with other test runs.
    address = (
        f"127.{random.randrange(1, 255)}.{random.randrange(1, 255)}.{random.randrange(2, 255)}"
    )
    pinned: dict[int, httpx.AsyncClient] = {}
    for _ in range(100):
        client = await stack.enter_async_context(
            httpx.AsyncClient(
                base_url=url,
                timeout=30,
                transport=httpx.AsyncHTTPTransport(local_address=address),
                limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
            )
        )
        pinned.setdefault(int(_metric(PID, (await client.get("/metrics")).text)), client)
        if len(pinned) == count:
            return pinned
    raise AssertionError(f"100 connections reached only the workers {sorted(pinned)}")


@pytest.fixture(scope="module")
async def workers_database(database_server: str) -> AsyncIterator[str]:
    async with demo_database(database_server) as url:
        yield url


@pytest.fixture(scope="module")
def two_workers(workers_database: str) -> Iterator[LiveServer]:
    with serving_workers(
        workers_database, 2, REDIS_URL="redis://127.0.0.1:6379/0", PORTFOLIO_RATE_LIMIT_POINTS="500"
    ) as server:
        yield server


async def test_two_workers_are_two_processes_serving_requests(two_workers: LiveServer) -> None:
    async with AsyncExitStack() as stack:
        clients = await pinned_clients(stack, two_workers.url)
        assert set(clients) == _workers(two_workers.process.pid)
        for client in clients.values():
            response = await client.post("/graphql", json={"query": TITLE})
            assert response.status_code == 200
            assert response.json()["data"]["initiatives"]["nodes"][0]["key"]


async def test_a_write_through_one_worker_clears_the_others_cached_answer(
    two_workers: LiveServer,
) -> None:
    async with AsyncExitStack() as stack:
        reader, writer = (await pinned_clients(stack, two_workers.url)).values()
        first = (await reader.post("/graphql", json={"query": TITLE})).json()
        hits = _metric(HITS, (await reader.get("/metrics")).text)
        # A document is planned once it repeats; from then on its answer is kept.
        for _ in range(5):
            again = (await reader.post("/graphql", json={"query": TITLE})).json()
            assert again["data"] == first["data"]
            metrics = (await reader.get("/metrics")).text
            if _metric(HITS, metrics) > hits:
                break
        else:
            raise AssertionError("the reader's worker never answered from memory")
        assert _metric(ENTRIES, metrics) >= 1
        initiative = first["data"]["initiatives"]["nodes"][0]
        title = f"Renamed through the other worker {random.randrange(10**9)}"

        written = await writer.post(
            "/graphql",
            json={"query": RENAME, "variables": {"id": initiative["id"], "title": title}},
        )
        assert written.json()["data"]["updateInitiative"]["initiative"]["title"] == title

        # The reader's worker hears the write's NOTIFY and drops what it kept.
        for _ in range(ATTEMPTS):
            if _metric(ENTRIES, (await reader.get("/metrics")).text) == 0:
                break
            await asyncio.sleep(0.01)
        else:
            raise AssertionError("the reader's worker kept its answers after the write")
        now = (await reader.post("/graphql", json={"query": TITLE})).json()
        node = now["data"]["initiatives"]["nodes"][0]
        assert (node["title"], node["version"]) == (title, initiative["version"] + 1)


async def test_the_rate_limit_budget_is_shared_between_workers_through_redis(
    two_workers: LiveServer,
) -> None:
    async with AsyncExitStack() as stack:
        one, other = (await pinned_clients(stack, two_workers.url)).values()

        async def budget(client: httpx.AsyncClient) -> dict[str, Any]:
            response = await client.post("/graphql", json={"query": BUDGET})
            assert response.status_code == 200, response.text
            return dict(response.json()["data"]["rateLimit"])

        await budget(one), await budget(other)  # each worker parses (and charges) it once
        first, second, third = await budget(one), await budget(other), await budget(one)
        cost = first["cost"]
        assert cost > 0
        # One counter: each request, on either worker, spends from what the other left.
        assert second["remaining"] == first["remaining"] - cost
        assert third["remaining"] == second["remaining"] - cost


def test_one_worker_per_cpu_in_production_and_one_in_development() -> None:
    production = Settings(environment=Environment.PRODUCTION)
    assert default_workers(production) == len(os.sched_getaffinity(0))
    assert default_workers(Settings(environment=Environment.DEVELOPMENT)) == 1


def test_a_worker_has_a_minute_to_start_before_the_supervisor_replaces_it() -> None:
    """uvicorn kills a worker that does not answer its health ping within the timeout, its
    start-up included: 5 s by default, less than a spawned worker's import of the app takes
    on a loaded host (workers were killed and restarted in a loop)."""
    options = _worker_options(Settings(), 2, "127.0.0.1", 8000)
    config = uvicorn.Config("api.cli:worker_app", **options)
    assert (config.workers, config.factory, config.timeout_worker_healthcheck) == (2, True, 60)
    slower = _worker_options(Settings(worker_start_seconds=90), 2, "127.0.0.1", 8000)
    assert uvicorn.Config("api.cli:worker_app", **slower).timeout_worker_healthcheck == 90


def test_the_supervisor_imports_neither_the_app_nor_the_schema() -> None:
    """`serve --workers N` runs in a process that serves nothing: importing the command
    line must not load the app, strawberry, the schema or alembic (each worker imports
    them through `worker_app`), which cost the supervisor ~55 MB and 1.5 s of CPU."""
    heavy = ("api.app", "strawberry", "schema.view", "alembic", "domain.models")
    found = subprocess.run(
        [
            sys.executable,
            "-c",
            f"import sys, api.cli; print([m for m in {heavy!r} if m in sys.modules])",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert found.stdout.strip() == "[]"


def test_the_demo_refuses_several_workers() -> None:
    result = CliRunner().invoke(cli, ["serve", "--demo", "--workers", "2"])
    assert result.exit_code == 2
    assert "Invalid value for --workers: --demo serves from one worker" in result.output


def test_workers_without_redis_are_told_budgets_are_counted_per_worker(
    database_url: str,
) -> None:
    """What ``serve --workers N`` does before starting workers without REDIS_URL: it
    warns (the shared server above has Redis)."""
    settings = Settings(database_url=database_url, migrate_on_start=False, redis_url=None)
    # It hands the workers their settings through the environment: put back after.
    with mock.patch.dict(os.environ), structlog.testing.capture_logs() as logged:
        _prepare_for_workers(settings)
    [warning] = [entry for entry in logged if entry["event"] == "rate_limits_per_worker"]
    assert warning["log_level"] == "warning"
    assert "without REDIS_URL each worker counts rate-limit points" in warning["detail"]


async def test_sigterm_drains_every_worker_and_leaves_no_process(
    two_workers: LiveServer, workers_database: str
) -> None:
    """The module's server (with Redis), stopped: this test comes after every other one
    using it, as starting two more workers costs each of them the app's import."""
    server = two_workers
    assert len(_workers(server.process.pid)) == 2
    started = children(server.process.pid)
    async with AsyncExitStack() as stack:
        clients = await pinned_clients(stack, server.url)
        client = next(iter(clients.values()))
        nodes = (await client.post("/graphql", json={"query": TITLE})).json()
        initiative = nodes["data"]["initiatives"]["nodes"][0]
        events_before = await audit_events(workers_database, initiative["key"])
        async with row_locked(workers_database, initiative["key"]) as lock:
            variables = {"id": initiative["id"], "title": "Renamed while stopping"}
            in_flight = asyncio.create_task(
                client.post("/graphql", json={"query": RENAME, "variables": variables})
            )
            await wait_until_blocked(lock)
            server.process.send_signal(signal.SIGTERM)
            await asyncio.to_thread(server.wait_for, "Shutting down")
        # The lock is gone: the request in flight finishes during the shutdown.
        response = await in_flight
    assert response.status_code == 200
    assert response.json()["data"]["updateInitiative"]["userErrors"] == []
    assert await asyncio.to_thread(server.process.wait, 60) == 0
    assert server.pump is not None
    server.pump.join(60)
    assert server.output.count("Application shutdown complete") == 2
    gone, alive = psutil.wait_procs(started, timeout=10)
    assert alive == [] and len(gone) == len(started)
    assert await stored_title(workers_database, initiative["key"]) == "Renamed while stopping"
    assert await audit_events(workers_database, initiative["key"]) == events_before + 1
