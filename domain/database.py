"""Engine, sessions and read connections. One request = at most one session = one
transaction; a read answered from a known plan runs on a pooled connection instead."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from types import TracebackType
from typing import Any

import asyncpg
from sqlalchemy import event
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.exc import DBAPIError, PendingRollbackError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    AsyncSessionTransaction,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import ConnectionPoolEntry, QueuePool
from sqlalchemy.util.concurrency import greenlet_spawn

from domain.settings import Settings


def to_async_url(url: str) -> str:
    """Normalise a libpq URL to SQLAlchemy's asyncpg dialect.

    asyncpg takes a Unix socket directory as ``host`` in the query string, the
    form pgserver hands out, so that part is kept as is.
    """
    for prefix in ("postgresql+asyncpg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    raise ValueError(f"not a PostgreSQL URL: {url.split('@')[-1]}")


# Per connection: the statements asyncpg keeps prepared, and the largest it keeps.
STATEMENT_CACHE_SIZE = 256
STATEMENT_CACHE_MAX_BYTES = 256 * 1024


def create_engine(url: str, settings: Settings) -> AsyncEngine:
    engine = create_async_engine(
        url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        # Waiting longer than this for a connection answers 503 instead of hanging.
        pool_timeout=settings.db_pool_timeout_seconds,
        # No ping before each checkout (it costs a transaction per request): a connection
        # found dead (database restarted) fails its request with 503 and the pool is
        # invalidated, so the following requests reconnect.
        pool_pre_ping=False,
        connect_args={
            "server_settings": {
                "statement_timeout": str(settings.statement_timeout_ms),
                # A prepared statement keeps one generic plan: under `auto` PostgreSQL
                # planned each execution of a compiled page anew (docs/performance.md).
                "plan_cache_mode": settings.db_plan_cache_mode,
                "TimeZone": "UTC",
                "application_name": "portfolio-graph",
            },
            "timeout": settings.db_connect_timeout_seconds,
            # asyncpg keeps statements prepared by their text, but by default only those
            # under 15 KB: a compiled read of a Relay page with nested connections is
            # bigger, and was parsed and planned anew on every request (~4 ms of the
            # database's time for a 20-row page). Prepared, PostgreSQL reuses its plan
            # (a generic one: `plan_cache_mode` above).
            "max_cacheable_statement_size": STATEMENT_CACHE_MAX_BYTES,
            "statement_cache_size": STATEMENT_CACHE_SIZE,
            "async_creator_fn": connect_in_own_context,
        },
    )
    discard_after_errors(engine)
    return engine


# Set, on a pool entry's ``info``, when a statement on its connection failed.
_FAILED = "portfolio_failed"


def discard_after_errors(engine: AsyncEngine) -> None:
    """A connection on which anything failed is never handed out again: it is closed on
    its next checkout and a fresh one opened in its place. Whatever the error left behind
    on it (a transaction the driver and the server disagree about, a cancellation still
    on its way, a half-read protocol exchange) cannot reach an unrelated request; a
    failed statement costs one new connection. The mark is set by SQLAlchemy's error
    hook and by the driver calls made outside SQLAlchemy (``_Watched``)."""
    event.listen(engine.sync_engine, "handle_error", _mark_failed)
    event.listen(engine.sync_engine.pool, "checkin", _recycle_if_failed)


def _mark_failed(context: ExceptionContext) -> None:
    connection = context.connection
    if connection is None or connection.invalidated or connection.closed:
        return  # nothing to mark, or SQLAlchemy discards it already
    connection.info[_FAILED] = True


def _recycle_if_failed(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
    if record.info.pop(_FAILED, False) and dbapi_connection is not None:
        # Soft: no I/O here (the pool may be returning it outside any greenlet); the
        # next checkout closes it and connects anew.
        record.invalidate(soft=True)


def connect_in_own_context(*args: Any, **kwargs: Any) -> asyncio.Task[asyncpg.Connection]:
    """``asyncpg.connect`` in an empty context. A connection's callbacks run, for its
    whole life, in the context it was opened in: opened by the pool during a request,
    it would keep that request's context variables (its ``request_id`` on every log
    line the connection's callbacks write, and whatever else the request had set) as
    long as it stays in the pool. Cancelling the awaiting request cancels the connect."""
    return asyncio.get_running_loop().create_task(
        asyncpg.connect(*args, **kwargs), context=contextvars.Context()
    )


def create_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


class RequestTransaction:
    """A request's single transaction, begun when the request first asks for its session.
    A read answered from a known plan never does: it runs one statement on a pooled
    connection (``read_connections``) and skips the ORM session's cost (~0.15 ms a
    request). Commits on a clean exit, rolls back on any error, or when ``discard`` was
    called: a request whose only mutation was refused leaves nothing behind without
    having paid for a savepoint (``schema.mutations.common.run``). A request that
    ``wrote`` is not committed (``committed`` turns False) when PostgreSQL aborted its
    transaction (``_aborted``)."""

    def __init__(self, factory: async_sessionmaker[AsyncSession]) -> None:
        self._factory = factory
        self._session: AsyncSession | None = None
        self._transaction: AsyncSessionTransaction | None = None
        self.committed = True  # or there was nothing to commit
        self.discarded = False
        # Set by the request when its answer tells of writes: their commit is then
        # checked (``_aborted``); a read's is not, it loses nothing by it.
        self.wrote = False

    def discard(self) -> None:
        """Roll the transaction back at the end instead of committing it: everything it
        wrote (rows, audit events, outbox rows, queued NOTIFYs) vanishes. The answer is
        still sent: it says why nothing was done."""
        self.discarded = True

    @property
    def opened(self) -> bool:
        """Whether the request began its transaction (and has it still)."""
        return self._session is not None

    async def session(self) -> AsyncSession:
        if self._session is None:
            session = self._factory()
            try:
                self._transaction = await session.begin()
                # Take the connection now: a busy pool or a database that is down raises
                # here (the endpoint answers 503), not inside a resolver's result.
                await session.connection()
            except BaseException:
                await session.close()
                raise
            self._session = session
        return self._session

    async def __aenter__(self) -> RequestTransaction:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        session, self._session = self._session, None
        if session is None or self._transaction is None:
            return
        try:
            if self.discarded and exc_type is None:
                await self._transaction.rollback()
                return
            if exc_type is None and self.wrote and await _aborted(session):
                # Its COMMIT would roll back and say nothing: the endpoint is told.
                self.committed = False
                await self._transaction.rollback()
                return
            # As ``async with session.begin()``: commits, or rolls back on an error.
            await self._transaction.__aexit__(exc_type, exc, traceback)
        except PendingRollbackError:
            # The connection was lost under a statement (its error is in the answer):
            # nothing can be committed; the endpoint answers that it was not.
            self.committed = False
            await session.rollback()
        finally:
            await session.close()


# PostgreSQL's in_failed_sql_transaction: a statement after one that aborted it.
_IN_FAILED_TRANSACTION = "25P02"


async def _aborted(session: AsyncSession) -> bool:
    """Whether PostgreSQL aborted the session's transaction: a statement failed in it
    outside any savepoint rolled back since (a resolver's read after a mutation, a
    statement timeout, an error turned into a GraphQL error). Its COMMIT would then be
    answered ROLLBACK, with no error from PostgreSQL, asyncpg or SQLAlchemy. asyncpg
    knows the transaction's state but does not expose it, so PostgreSQL is asked, with
    one statement, and only when a statement failed on the connection (its ``_FAILED``
    mark): a request in which nothing failed pays nothing."""
    connection = await session.connection()
    if not connection.info.get(_FAILED):
        return False
    try:
        await connection.exec_driver_sql("SELECT 1")
    except DBAPIError as error:
        if getattr(error.orig, "sqlstate", None) == _IN_FAILED_TRANSACTION:
            return True
        raise
    return False


# A pooled asyncpg connection for one read, returned to the pool when the block ends.
ReadConnections = Callable[[], AbstractAsyncContextManager[Any]]


def read_connections(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> ReadConnections:
    """Where a single-statement read runs: where the request sessions run. That is the
    engine's pool, or, when the sessions are bound to one connection (tests, where each
    request joins the test's transaction), that connection, one read at a time."""
    bind = sessions.kw.get("bind")
    if isinstance(bind, AsyncConnection):  # on_one_connection
        return _bound_reads(bind)
    return _pooled_reads(engine)


def on_one_connection(sessions: async_sessionmaker[AsyncSession]) -> bool:
    """Whether every session runs on one connection (tests: one outer transaction, whose
    writes no other connection sees and which is never committed)."""
    return isinstance(sessions.kw.get("bind"), AsyncConnection)


def listen_dsn(engine: AsyncEngine) -> str:
    """The engine's database as a plain asyncpg DSN (for a connection of one's own)."""
    return engine.url.set(drivername="postgresql").render_as_string(hide_password=False)


def _pooled_reads(engine: AsyncEngine) -> ReadConnections:
    @asynccontextmanager
    async def connection() -> AsyncIterator[Any]:
        pooled = await _live_connection(engine)
        try:
            yield _Watched(_driver(pooled), pooled.info)
        finally:
            pool = engine.sync_engine.pool
            if _driver(pooled).is_closed():
                # Lost under the read (database restarted): never handed out again.
                await greenlet_spawn(pooled.invalidate)
            elif isinstance(pool, QueuePool) and pool.overflow() <= 0:
                # No transaction was begun, so returning it sends nothing, and the pool
                # has room for it: no I/O, no greenlet needed.
                pooled.close()
            else:
                # An overflow connection may find the pool full and be closed: I/O.
                await greenlet_spawn(pooled.close)

    return connection


async def _live_connection(engine: AsyncEngine) -> Any:
    """A connection from the pool whose socket is still open. asyncpg notices a server
    that went away (restart, failover) on idle connections too, so those are dropped
    here instead of failing a request; a live one is used without a ping."""
    pool = engine.sync_engine.pool
    for _ in range(pool.size() if isinstance(pool, QueuePool) else 1):
        pooled = await engine.raw_connection()
        if not _driver(pooled).is_closed():
            return pooled
        await greenlet_spawn(pooled.invalidate)
    return await engine.raw_connection()


async def session_driver(session: AsyncSession) -> Any:
    """The asyncpg connection under a session, inside its transaction (COPY, a
    hand-written statement)."""
    connection = await session.connection()
    pooled = await connection.get_raw_connection()
    return _Watched(pooled.driver_connection, pooled.info)


class _Watched:
    """An asyncpg connection whose failed calls mark its pool entry (``_FAILED``), so
    that it is discarded on its return: calls made on the driver itself bypass
    SQLAlchemy's error hook."""

    __slots__ = ("_driver", "_info")

    def __init__(self, driver: Any, info: dict[Any, Any]) -> None:
        self._driver = driver
        self._info = info

    async def fetchval(self, *args: Any, **kwargs: Any) -> Any:
        """The known reads' one call, without ``__getattr__``'s wrapper per call."""
        try:
            return await self._driver.fetchval(*args, **kwargs)
        except BaseException:  # cancelled mid-statement included
            self._info[_FAILED] = True
            raise

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._driver, name)
        if not inspect.iscoroutinefunction(attribute):
            return attribute
        info = self._info

        @functools.wraps(attribute)
        async def watched(*args: Any, **kwargs: Any) -> Any:
            try:
                return await attribute(*args, **kwargs)
            except BaseException:  # cancelled mid-statement included
                info[_FAILED] = True
                raise

        return watched


def _driver(pooled: Any) -> Any:
    """The asyncpg connection under SQLAlchemy's pooled DBAPI adapter."""
    return pooled.driver_connection


def _bound_reads(bind: AsyncConnection) -> ReadConnections:
    lock = asyncio.Lock()  # one connection runs one statement at a time

    @asynccontextmanager
    async def connection() -> AsyncIterator[Any]:
        async with lock:
            raw = await bind.get_raw_connection()
            yield raw.driver_connection

    return connection
