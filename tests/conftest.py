"""Fixtures: one migrated database with the demo portfolio per session (a copy of the
template: tests/fixtures/database.py), one rolled-back transaction per test, the real
ASGI app over real HTTP (httpx), statement counting."""

from __future__ import annotations

import asyncio
import gc
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker
from starlette.applications import Starlette

from api.app import assemble_app, create_app
from api.collector import settle_for_serving
from api.embedded import stop_embedded_server
from auth.scopes import Scope
from domain.database import create_engine
from domain.settings import Environment, Settings
from tests.fixtures.auth import bearer
from tests.fixtures.database import (
    StatementCounter,
    create_demo_database,
    demo_copies,
    demo_database,
    drop_database,
    drop_templates,
    server_url,
    warm_type_codecs,
)

# Seals the webhook secrets the tests store, as production must (tests/test_webhook_secrets).
TEST_WEBHOOK_SECRET_KEY = "dGVzdHMgc2VhbCB3ZWJob29rIHNlY3JldHMgd2l0aCA="


# Settings already made, by overrides and the environment they read: building one reads
# and validates every field's source (~5 ms), and most tests build the same few. Nothing
# assigns to a Settings (copies are made with ``model_copy``), so one may be shared.
_settings_made: dict[tuple[str, tuple[tuple[str, str], ...]], Settings] = {}


def settings_for(**overrides: Any) -> Settings:
    read = tuple(
        sorted(
            (name, value)
            for name, value in os.environ.items()
            if name.upper().startswith("PORTFOLIO_")
            or name.upper() in ("DATABASE_URL", "REDIS_URL")
        )
    )
    key = (repr(sorted(overrides.items())), read)
    made = _settings_made.get(key)
    if made is None:
        made = _settings_made[key] = _new_settings(**overrides)
    return made


def _new_settings(**overrides: Any) -> Settings:
    # Most tests ask for large nested pages on purpose: the cost limit is tested on its own.
    values: dict[str, Any] = {
        "environment": Environment.DEVELOPMENT,
        "webhook_secret_key": TEST_WEBHOOK_SECRET_KEY,
        "max_query_cost": 10_000_000,
        "rate_limit_points": 1_000_000_000,
        "max_aliases": 200,
        "max_root_fields": 100,
        **overrides,
    }
    return Settings(**values)


@pytest.fixture(scope="session", autouse=True)
def settled_collector() -> Iterator[None]:
    """The garbage collector as a serving process has it (``api.collector``): what the
    imports made (schema, models) frozen, collections rarer. With the default settings
    it walked the session's long-lived objects over and over: ~20% of the suite's CPU.
    Objects a test makes are never frozen, so ``gc.get_objects()`` still sees them."""
    thresholds = gc.get_threshold()
    settle_for_serving()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


@contextmanager
def _outside_pytest_tmp() -> Iterator[Path]:
    """A fresh directory for a PostgreSQL's data, outside pytest's temporary tree: under
    root, pgserver runs PostgreSQL as another user, and every pytest session that starts
    makes /tmp/pytest-of-root private again, cutting a running server off its files."""
    path = Path(tempfile.mkdtemp(prefix="portfolio-test-pg-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def pg_tmp() -> Iterator[Path]:
    """A directory of the test's own for a PostgreSQL it starts (see _outside_pytest_tmp)."""
    with _outside_pytest_tmp() as path:
        yield path


@pytest.fixture(scope="session")
def database_server() -> Iterator[str]:
    """TEST_DATABASE_URL's server, else an embedded one for the session, stopped at its
    end: the suite leaves no process behind."""
    with _outside_pytest_tmp() as data_dir:
        yield server_url(data_dir)
        demo_copies.finish()
        # No loop runs between tests: the templates' drops get one of their own.
        asyncio.run(drop_templates())
        stop_embedded_server(data_dir)


@pytest.fixture(scope="session")
async def database_url(database_server: str) -> AsyncIterator[str]:
    """The session's shared database: the demo portfolio, migrated (a copy of the
    template); tests write to it only inside a transaction they roll back."""
    server = database_server
    url, name = await create_demo_database(server)
    yield url
    await drop_database(server, name)


@pytest.fixture
async def own_database(database_server: str) -> AsyncIterator[str]:
    """A migrated demo database of the test's own: for a server in another process, whose
    writes are committed and must not leak into the shared database."""
    async with demo_database(database_server) as url:
        yield url


@pytest.fixture
async def wired_app(own_database: str) -> AsyncIterator[Starlette]:
    """The app as ``portfolio serve`` wires it (its own engine and pool), on a database
    of the test's own, whose writes are committed; every scope for anonymous callers."""
    app = create_app(settings_for(anonymous_scopes=ALL_SCOPES), database_url=own_database)
    yield app
    await app.state.reads.close()
    await app.state.engine.dispose()


@pytest.fixture(scope="session")
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url, settings_for())
    yield engine
    await engine.dispose()


@pytest.fixture
async def connection(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """The test's outer transaction; everything the test and the app write is rolled back."""
    async with engine.connect() as connection:
        transaction = await connection.begin()
        yield connection
        await transaction.rollback()


@pytest.fixture
def sessions(connection: AsyncConnection) -> async_sessionmaker[AsyncSession]:
    # Request transactions become savepoints of the test's transaction.
    return async_sessionmaker(
        bind=connection, expire_on_commit=False, join_transaction_mode="create_savepoint"
    )


@pytest.fixture
async def db(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """A session for arranging data and checking the database directly."""
    async with sessions() as session:
        yield session


@pytest.fixture
async def statements(
    engine: AsyncEngine, connection: AsyncConnection
) -> AsyncIterator[StatementCounter]:
    """Counts what reaches PostgreSQL, through SQLAlchemy and on the driver itself."""
    counter = StatementCounter()
    driver = (await connection.get_raw_connection()).driver_connection
    assert driver is not None  # the connection is open: the test's transaction holds it
    await warm_type_codecs(driver)
    event.listen(engine.sync_engine, "before_cursor_execute", counter)
    driver.add_query_logger(counter.logged)
    yield counter
    driver.remove_query_logger(counter.logged)
    event.remove(engine.sync_engine, "before_cursor_execute", counter)


async def in_pieces(data: bytes, size: int) -> AsyncIterator[bytes]:
    """A request body sent chunked, ``size`` bytes at a time: httpx then sends no
    Content-Length."""
    for start in range(0, len(data), size):
        yield data[start : start + size]


def make_client(
    engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
    *,
    headers: dict[str, str] | None = None,
    app: Starlette | None = None,
    **settings: Any,
) -> httpx.AsyncClient:
    app = app or assemble_app(settings_for(**settings), engine, sessions)
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test", headers=headers
    )


@pytest.fixture
def app(engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]) -> Starlette:
    """The app in production mode: anonymous callers get nothing, tokens are required."""
    return assemble_app(settings_for(environment="production"), engine, sessions)


@pytest.fixture
async def caller(
    app: Starlette,
    engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
    db: AsyncSession,
) -> AsyncIterator[Any]:
    """``await caller(scopes)``: a GraphQL client carrying a real token with those scopes."""
    clients: list[httpx.AsyncClient] = []

    async def make(scopes: list[str], *, user: Any = None) -> GraphQL:
        headers = await bearer(app, db, scopes, user=user)
        client = make_client(engine, sessions, headers=headers, app=app)
        clients.append(client)
        return GraphQL(client)

    yield make
    for client in clients:
        await client.aclose()


@pytest.fixture
async def client(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> AsyncIterator[httpx.AsyncClient]:
    async with make_client(engine, sessions) as client:
        yield client


@pytest.fixture
async def pair(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> AsyncIterator[Any]:
    """``pair(scopes)``: the same caller against an app that compiles and one that only
    resolves (the reference path)."""
    clients: list[httpx.AsyncClient] = []

    def make(scopes: list[str]) -> tuple[GraphQL, GraphQL]:
        compiled = make_client(engine, sessions, anonymous_scopes=scopes)
        reference = make_client(engine, sessions, anonymous_scopes=scopes, compiled_reads=False)
        clients.extend([compiled, reference])
        return GraphQL(compiled), GraphQL(reference)

    yield make
    for client in clients:
        await client.aclose()


class GraphQL:
    """Posts a query over HTTP and returns the decoded JSON body."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client
        self.last_body = b""  # the raw body of the last answer

    async def __call__(
        self, query: str, variables: dict[str, Any] | None = None, *, status: int | None = 200
    ) -> dict[str, Any]:
        """``status=None`` accepts any status (for comparing two apps)."""
        response = await self.client.post(
            "/graphql", json={"query": query, "variables": variables or {}}
        )
        if status is not None:
            assert response.status_code == status, response.text
        self.last_body = response.content
        return response.json()

    async def data(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        body = await self(query, variables)
        assert "errors" not in body, body["errors"]
        return body["data"]


@pytest.fixture
def gql(client: httpx.AsyncClient) -> GraphQL:
    """A caller with the development default: every read scope."""
    return GraphQL(client)


ALL_SCOPES = [scope.value for scope in Scope]


@pytest.fixture
async def writer(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> AsyncIterator[GraphQL]:
    """A caller holding every scope (until OAuth lands, granted to anonymous callers)."""
    async with make_client(engine, sessions, anonymous_scopes=ALL_SCOPES) as client:
        yield GraphQL(client)
