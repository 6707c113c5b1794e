"""The database's change notifications (migration 0006): every committed write to the
data a read can return sends ``NOTIFY portfolio_changes``. A ChangeFeed listens on a
connection of its own and tells its subscriber when something changed, and whether it
is listening at all: while it is not, nothing may be assumed unchanged."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import asyncpg
import structlog

log = structlog.get_logger(__name__)

CHANNEL = "portfolio_changes"
APPLICATION_NAME = "portfolio-graph-changes"
# Reconnecting after the listening connection was lost: first after this many seconds,
# doubling up to the maximum.
RETRY_SECONDS = 0.5
RETRY_MAX_SECONDS = 15.0


class ChangeFeed:
    """``on_change()`` runs for every notification; ``on_listening(bool)`` when the feed
    starts or stops listening (a connection lost, the database restarted)."""

    def __init__(
        self,
        dsn: str,
        *,
        on_change: Callable[[], None],
        on_listening: Callable[[bool], None],
        connect_timeout: float = 5.0,
    ) -> None:
        self.dsn = dsn
        self.on_change = on_change
        self.on_listening = on_listening
        self.connect_timeout = connect_timeout
        self._task: asyncio.Task[None] | None = None
        self._connection: asyncpg.Connection | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="change-feed")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._connection is not None and not self._connection.is_closed():
            await self._connection.close()

    async def _run(self) -> None:
        delay = RETRY_SECONDS
        while True:
            lost = asyncio.Event()
            try:
                self._connection = await asyncpg.connect(
                    self.dsn,
                    timeout=self.connect_timeout,
                    server_settings={"application_name": APPLICATION_NAME},
                )
                self._connection.add_termination_listener(lambda _, lost=lost: lost.set())
                await self._connection.add_listener(CHANNEL, self._notified)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as error:
                log.warning("change_feed_unavailable", error=type(error).__name__)
                await asyncio.sleep(delay)  # a backoff before reconnecting, not a wait on a result
                delay = min(delay * 2, RETRY_MAX_SECONDS)
                continue
            delay = RETRY_SECONDS
            self.on_listening(True)
            try:
                await lost.wait()
            finally:
                self.on_listening(False)
            log.warning("change_feed_lost")

    def _notified(self, connection: Any, pid: int, channel: str, payload: str) -> None:
        self.on_change()
