"""Engine, sessions and read connections. One request = at most one session = one
transaction; a read answered from a known plan runs on a driver connection of its own
pool (``DriverPool``) instead."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import inspect
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from types import SimpleNamespace, TracebackType
from typing import Any

import asyncpg
from sqlalchemy import event
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.exc import DBAPIError, PendingRollbackError
from sqlalchemy.exc import TimeoutError as SQLAlchemyTimeoutError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    AsyncSessionTransaction,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import ConnectionPoolEntry

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
        connect_args={**connect_arguments(settings), "async_creator_fn": connect_in_own_context},
    )
    discard_after_errors(engine)
    return engine


def connect_arguments(settings: Settings) -> dict[str, Any]:
    """``asyncpg.connect``'s arguments for every connection of the process: the engine's
    and the driver pool's (``DriverPool``) are opened alike."""
    server_settings = {
        "statement_timeout": str(settings.statement_timeout_ms),
        # A prepared statement keeps one generic plan: under `auto` PostgreSQL
        # planned each execution of a compiled page anew (docs/performance.md).
        "plan_cache_mode": settings.db_plan_cache_mode,
        "TimeZone": "UTC",
        "application_name": APPLICATION_NAME,
    }
    if settings.db_random_page_cost is not None:
        # With the server's default (4) the planner scans the small link tables once
        # per row of a nested list rather than probe their indexes (docs/performance.md).
        server_settings["random_page_cost"] = str(settings.db_random_page_cost)
    return {
        "server_settings": server_settings,
        "timeout": settings.db_connect_timeout_seconds,
        # asyncpg keeps statements prepared by their text, but by default only those
        # under 15 KB: a compiled read of a Relay page with nested connections is
        # bigger, and was parsed and planned anew on every request (~4 ms of the
        # database's time for a 20-row page). Prepared, PostgreSQL reuses its plan
        # (a generic one: `plan_cache_mode` above).
        "max_cacheable_statement_size": STATEMENT_CACHE_MAX_BYTES,
        "statement_cache_size": STATEMENT_CACHE_SIZE,
    }


# How the server's connections name themselves in pg_stat_activity.
APPLICATION_NAME = "portfolio-graph"


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
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession], settings: Settings
) -> DriverPool | BoundReads:
    """Where a single-statement read (and a known update) runs: a pool of driver
    connections to the engine's database (``DriverPool``), or, when the sessions are
    bound to one connection (tests, where each request joins the test's transaction),
    that connection, one read at a time. Either is a ``ReadConnections``; ``close`` it
    when the app stops."""
    bind = sessions.kw.get("bind")
    if isinstance(bind, AsyncConnection):  # on_one_connection
        return BoundReads(bind)
    return DriverPool(
        driver_connector(engine, settings),
        settings.db_read_pool_size,
        settings.db_pool_timeout_seconds,
    )


def on_one_connection(sessions: async_sessionmaker[AsyncSession]) -> bool:
    """Whether every session runs on one connection (tests: one outer transaction, whose
    writes no other connection sees and which is never committed)."""
    return isinstance(sessions.kw.get("bind"), AsyncConnection)


def listen_dsn(engine: AsyncEngine) -> str:
    """The engine's database as a plain asyncpg DSN (for a connection of one's own)."""
    return engine.url.set(drivername="postgresql").render_as_string(hide_password=False)


def driver_connector(
    engine: AsyncEngine, settings: Settings
) -> Callable[[], asyncio.Task[asyncpg.Connection]]:
    """Opens an asyncpg connection to the engine's database as the engine opens its own:
    the same arguments (``connect_arguments``), the same JSON codecs as SQLAlchemy's
    dialect installs (a jsonb column read by a known update comes back decoded, as
    through the ORM), in an empty context (``connect_in_own_context``)."""
    dsn = listen_dsn(engine)
    arguments = connect_arguments(settings)
    dialect: Any = engine.dialect

    async def opened() -> asyncpg.Connection:
        connection = await asyncpg.connect(dsn, **arguments)
        try:
            adapted = SimpleNamespace(_connection=connection)  # what the dialect reads
            await dialect.setup_asyncpg_json_codec(adapted)
            await dialect.setup_asyncpg_jsonb_codec(adapted)
        except BaseException:
            connection.terminate()
            raise
        return connection

    def connect() -> asyncio.Task[asyncpg.Connection]:
        return asyncio.get_running_loop().create_task(opened(), context=contextvars.Context())

    return connect


class ReadPoolTimeout(SQLAlchemyTimeoutError):
    """No driver connection came free within ``db_pool_timeout_seconds``. A kind of
    SQLAlchemy's pool timeout, so every caller answers it as it answers the engine's
    pool being exhausted (the endpoint: 503 SERVICE_UNAVAILABLE)."""


class ReadPoolUnavailable(ConnectionError):
    """No driver connection can be had: PostgreSQL refused a new one (starting up, too
    many connections), or the pool is closed (the app is stopping). A ConnectionError,
    so it is answered as a database that cannot be reached (503)."""


# How long closing a discarded connection may take before it is cut (the place it held
# is freed only then, so the pool never holds more connections than its size).
_CLOSE_TIMEOUT_SECONDS = 2.0


class DriverPool:
    """Pooled asyncpg connections for the paths that run on the driver outside any ORM
    session (known reads and updates, token revocation reads, subscriptions' reads).

    SQLAlchemy's pool, through ``engine.raw_connection``, cost a tenth of a known read's
    CPU (greenlet, pool events, reset-on-return): here taking a connection is popping
    one from a list, returning it pushing it back, with no I/O and no task; asyncpg's
    own ``Pool`` is no cheaper (each release creates a task). At most ``size``
    connections are open (or opening); an acquirer finding none idle and no room waits,
    first come first served, at most ``timeout`` seconds (``ReadPoolTimeout``). A
    connection is never handed out again after a call on it failed or was cancelled
    (``_Watched`` marks it), after it was found closed (database restarted), or when
    it comes back inside a transaction: it is closed and its place freed."""

    def __init__(
        self,
        connect: Callable[[], Awaitable[asyncpg.Connection]],
        size: int,
        timeout: float,
    ) -> None:
        if size < 1:
            raise ValueError("a driver pool needs room for one connection at least")
        self._connect = connect
        self.size = size
        self._timeout = timeout
        self._idle: list[_Watched] = []
        # Each waits for a connection (or None: a place, to open one in).
        self._waiters: deque[asyncio.Future[_Watched | None]] = deque()
        self._places = 0  # connections open, opening or closing
        self._closing: set[asyncio.Task[None]] = set()
        self._closed = False
        self.opened = 0  # connections opened over the pool's life
        self._open_listeners: list[Callable[[asyncpg.Connection], None]] = []

    def __call__(self) -> _Lease:
        return _Lease(self)

    def on_open(self, listener: Callable[[asyncpg.Connection], None]) -> None:
        """Calls ``listener`` with each connection the pool opens from now on (as
        SQLAlchemy's ``connect`` event: tests count the statements of every connection)."""
        self._open_listeners.append(listener)

    @property
    def in_use(self) -> int:
        """Connections handed out (or opening, or closing), not idle."""
        return self._places - len(self._idle)

    @property
    def idle(self) -> int:
        return len(self._idle)

    @property
    def waiting(self) -> int:
        return sum(1 for waiter in self._waiters if not waiter.done())

    async def acquire(self) -> _Watched:
        if self._closed:
            raise ReadPoolUnavailable("The driver connection pool is closed.")
        idle = self._idle
        while idle:
            connection = idle.pop()  # the most recently used: its statements are warm
            if not connection._driver.is_closed():
                return connection
            # Lost while idle (database restarted): dropped, its place freed.
            self._vacate()
        if self._places < self.size:
            self._places += 1
            return await self._open_in_place()
        return await self._wait()

    def release(self, connection: _Watched) -> None:
        """Back to the first waiter, or idle; discarded if it may not be used again. No
        I/O: nothing was begun on it that returning it would have to end."""
        driver = connection._driver
        if connection._info.pop(_FAILED, False) or driver.is_closed() or driver.is_in_transaction():
            self._discard(driver)
        else:
            self._hand_over(connection)

    async def close(self) -> None:
        """Closes the idle connections (and those closing); those in use are closed as
        they come back; waiters and later acquirers get ``ReadPoolUnavailable``."""
        self._closed = True
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(ReadPoolUnavailable("The driver connection pool closed."))
        idle, self._idle = self._idle, []
        for connection in idle:
            self._discard(connection._driver)
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)

    async def _open_in_place(self) -> _Watched:
        """A new connection in a place already counted; the place is passed on if it
        cannot be opened (or the acquirer is cancelled while it is)."""
        opening = asyncio.ensure_future(self._connect())
        try:
            driver = await opening
        except BaseException as error:
            if opening.done() and not opening.cancelled() and opening.exception() is None:
                # Opened just as the acquirer was cancelled: kept for the next one.
                self._hand_over(self._opened(opening.result()))
            else:
                self._vacate()
            if isinstance(error, asyncpg.PostgresError | asyncpg.InterfaceError):
                raise ReadPoolUnavailable(f"PostgreSQL refused a connection: {error}") from error
            raise
        return self._opened(driver)

    def _opened(self, driver: asyncpg.Connection) -> _Watched:
        self.opened += 1
        for listener in self._open_listeners:
            listener(driver)
        return _Watched(driver, {})

    async def _wait(self) -> _Watched:
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[_Watched | None] = loop.create_future()
        self._waiters.append(waiter)
        # The waiter itself times out: asyncio.timeout would cancel the task and turn the
        # cancellation back into a TimeoutError, at 2-3 times the cost, and over a third
        # of the requests wait here with bench's 16 in flight on 10 connections.
        expiry = loop.call_later(self._timeout, _time_out, waiter)
        try:
            handed = await waiter
        except BaseException as error:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                # Served just as it gave up: what it was given goes to the next one.
                handed = waiter.result()
                if handed is None:
                    self._vacate()
                else:
                    self._hand_over(handed)
            else:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
            if isinstance(error, TimeoutError):
                raise ReadPoolTimeout(
                    f"No database connection came free within {self._timeout} s "
                    f"({self.size} in use)."
                ) from None
            raise
        finally:
            expiry.cancel()
        if handed is None:  # a place was freed for it
            return await self._open_in_place()
        return handed

    def _hand_over(self, connection: _Watched) -> None:
        if self._closed:
            self._discard(connection._driver)
            return
        waiters = self._waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():  # not timed out or cancelled meanwhile
                waiter.set_result(connection)
                return
        self._idle.append(connection)

    def _vacate(self) -> None:
        """A place came free: the first waiter opens a connection in it."""
        waiters = self._waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self._places -= 1

    def _discard(self, driver: asyncpg.Connection) -> None:
        """Closes the connection; its place is freed once it is closed."""
        if driver.is_closed():
            self._vacate()
            return
        closing = asyncio.get_running_loop().create_task(
            self._close(driver), context=contextvars.Context()
        )
        self._closing.add(closing)
        closing.add_done_callback(self._closing.discard)

    async def _close(self, driver: asyncpg.Connection) -> None:
        try:
            # Graceful (PostgreSQL sees a Terminate, not a reset); asyncpg cuts the
            # socket itself if that fails or takes too long.
            await driver.close(timeout=_CLOSE_TIMEOUT_SECONDS)
        except (Exception, asyncio.CancelledError):
            driver.terminate()
        finally:
            self._vacate()


def _time_out(waiter: asyncio.Future[_Watched | None]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())


class _Lease:
    """``async with pool() as driver``: one connection of a ``DriverPool``, returned
    when the block ends (a class, not a generator: it is on every known request)."""

    __slots__ = ("_connection", "_pool")

    def __init__(self, pool: DriverPool) -> None:
        self._pool = pool
        self._connection: _Watched | None = None

    async def __aenter__(self) -> _Watched:
        self._connection = await self._pool.acquire()
        return self._connection

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            self._pool.release(connection)


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


class BoundReads:
    """The reads of an app whose sessions all run on one connection (tests): on that
    connection, one statement at a time."""

    def __init__(self, bind: AsyncConnection) -> None:
        self._bind = bind
        self._lock = asyncio.Lock()  # one connection runs one statement at a time

    @asynccontextmanager
    async def __call__(self) -> AsyncIterator[Any]:
        async with self._lock:
            raw = await self._bind.get_raw_connection()
            yield raw.driver_connection

    async def close(self) -> None:
        """Nothing to close: the connection is the test's."""
