"""PostgreSQL restarted under a live server: the request in flight fails with a clear
error, /readyz reports the outage, and the server serves again by itself."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pgserver
import pytest
from pgserver._commands import pg_ctl  # type: ignore[attr-defined]  # pgserver sets it at import
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from api import migrate
from api.embedded import to_async_url
from tests.fixtures.server import live_server
from tests.test_shutdown import wait_until_blocked

TEAMS = {"query": "{ teams(first: 5) { totalCount nodes { key } } }"}


class EmbeddedPostgres:
    """A PostgreSQL of the test's own (pgserver), which the test may stop and start."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.server = pgserver.get_server(data_dir, cleanup_mode="stop")
        self.uri = self.server.get_uri()
        self.socket_dir = parse_qs(urlsplit(self.uri).query)["host"][0]
        # Under root, pgserver runs PostgreSQL as an unprivileged system user.
        self.user = self.server.system_user

    @property
    def url(self) -> str:
        return to_async_url(self.uri)

    def stop(self) -> None:
        # immediate: every backend quits at once (no request can slip through as the
        # lock holder dies first); the next start recovers from the WAL.
        pg_ctl(["-w", "-m", "immediate", "stop"], pgdata=self.data_dir, user=self.user)

    def start(self) -> None:
        # As pgserver starts it: Unix socket only, in the same directory.
        pg_ctl(
            [
                "-w",
                "-o",
                '-h ""',
                "-o",
                f"-k {self.socket_dir}",
                "-l",
                str(self.data_dir / "log"),
                "start",
            ],
            pgdata=self.data_dir,
            user=self.user,
        )


@pytest.fixture
def postgres(pg_tmp: Path) -> Iterator[EmbeddedPostgres]:
    embedded = EmbeddedPostgres(pg_tmp / "pgdata")
    yield embedded
    embedded.server.cleanup()


@pytest.mark.parametrize("compiled", ["true", "false"], ids=["compiled", "resolvers"])
async def test_postgres_restart_is_survived(postgres: EmbeddedPostgres, compiled: str) -> None:
    engine = create_async_engine(postgres.url)
    await migrate.upgrade(engine)
    await engine.dispose()
    with live_server(postgres.url, PORTFOLIO_COMPILED_READS=compiled) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
            assert (await client.get("/readyz")).status_code == 200
            assert (await client.post("/graphql", json=TEAMS)).status_code == 200

            # A request in flight (waiting for a lock) when PostgreSQL goes down.
            locker = create_async_engine(postgres.url)
            async with locker.connect() as lock:
                await lock.execute(text("LOCK TABLE teams IN ACCESS EXCLUSIVE MODE"))
                in_flight = asyncio.create_task(client.post("/graphql", json=TEAMS))
                await wait_until_blocked(lock, "teams")
                await asyncio.to_thread(postgres.stop)
                response = await in_flight
                await lock.invalidate()
            await locker.dispose()
            assert response.status_code == 503, response.text
            assert response.headers["retry-after"] == "2"
            error = response.json()["errors"][0]
            assert error["extensions"]["code"] == "SERVICE_UNAVAILABLE"
            assert error["message"] == "The database connection was lost; retry shortly."

            # While it is down: not ready, requests refused fast with 503, process alive.
            ready = await client.get("/readyz")
            assert ready.status_code == 503
            assert ready.json()["checks"]["database"].startswith("unreachable")
            down = await client.post("/graphql", json=TEAMS)
            assert down.status_code == 503
            assert down.json()["errors"][0]["extensions"]["code"] == "SERVICE_UNAVAILABLE"
            assert (await client.get("/healthz")).status_code == 200

            # Back up: ready again and serving, without restarting the server.
            await asyncio.to_thread(postgres.start)
            assert (await client.get("/readyz")).status_code == 200
            again = await client.post("/graphql", json=TEAMS)
            assert again.status_code == 200
            assert "errors" not in again.json()
            assert again.json()["data"]["teams"]["totalCount"] == 0
        server.terminate()
        assert server.exited_gracefully()
