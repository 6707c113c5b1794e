"""A pooled connection opened during a request does not carry that request's context
for the rest of its life (domain.database.connect_in_own_context)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextvars import ContextVar
from typing import Any

import pytest
import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from domain.database import create_engine
from tests.conftest import settings_for

# Stands for whatever a request sets in its context (our own variables, a library's).
REQUEST_VALUE: ContextVar[str | None] = ContextVar("request_value", default=None)


@pytest.fixture
async def fresh_engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine whose pool is empty: its first checkout opens a connection."""
    engine = create_engine(database_url, settings_for())
    yield engine
    await engine.dispose()


async def _driver_opened_in_a_request(engine: AsyncEngine) -> Any:
    token = REQUEST_VALUE.set("request 1")
    structlog.contextvars.bind_contextvars(request_id="request-1")
    try:
        async with engine.connect() as connection:
            return (await connection.get_raw_connection()).driver_connection
    finally:
        structlog.contextvars.unbind_contextvars("request_id")
        REQUEST_VALUE.reset(token)


async def test_a_pooled_connection_keeps_no_request_context(fresh_engine: AsyncEngine) -> None:
    driver = await _driver_opened_in_a_request(fresh_engine)

    # Later, outside that request, the connection's own callbacks run: a server notice
    # is handed to its log listeners.
    seen: list[tuple[str | None, str | None]] = []
    heard = asyncio.Event()

    def listener(_: Any, message: Any) -> None:
        request_id = structlog.contextvars.get_contextvars().get("request_id")
        seen.append((REQUEST_VALUE.get(), request_id))
        heard.set()

    driver.add_log_listener(listener)
    async with fresh_engine.connect() as connection:
        reused = (await connection.get_raw_connection()).driver_connection
        assert reused is driver  # the pool's only connection, checked out again
        await connection.exec_driver_sql("DO $$ BEGIN RAISE NOTICE 'later'; END $$")
    await asyncio.wait_for(heard.wait(), timeout=5)
    assert seen == [(None, None)]
