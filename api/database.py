"""Engine and sessions. One request = one session = one transaction."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from api.embedded import embedded_database_url, to_async_url
from api.settings import Settings


def resolve_database_url(settings: Settings) -> str:
    if settings.database_url:
        return to_async_url(settings.database_url)
    return embedded_database_url(settings.data_dir)


def create_engine(url: str, settings: Settings) -> AsyncEngine:
    return create_async_engine(
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
                "TimeZone": "UTC",
                "application_name": "portfolio-graph",
            },
            "timeout": settings.db_connect_timeout_seconds,
        },
    )


def create_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


@asynccontextmanager
async def transaction(
    factory: async_sessionmaker[AsyncSession],
) -> AsyncIterator[AsyncSession]:
    """The single place that commits: on success at the end, rollback on any error."""
    async with factory() as session, session.begin():
        yield session
