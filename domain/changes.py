"""The database's change notifications (migration 0006): every committed write to the
data a read can return sends ``NOTIFY portfolio_changes``. A ChangeFeed listens on a
connection of its own and tells its subscriber when something changed, and whether it
is listening at all: while it is not, nothing may be assumed unchanged. Other channels
(``portfolio_principals``, migration 0007) are heard on the same connection
(``ChangeFeed.subscribe``)."""

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
    starts or stops listening (a connection lost, the database restarted). More channels
    can be heard on the same connection with ``subscribe``."""

    def __init__(
        self,
        dsn: str,
        *,
        on_change: Callable[[], None] | None = None,
        on_listening: Callable[[bool], None] | None = None,
        connect_timeout: float = 5.0,
    ) -> None:
        self.dsn = dsn
        self.connect_timeout = connect_timeout
        # channel -> what to call with each notification's payload
        self._channels: dict[str, list[Callable[[str], None]]] = {}
        self._listening: list[Callable[[bool], None]] = []
        if on_change is not None and on_listening is not None:
            self.subscribe(CHANNEL, lambda _payload: on_change(), on_listening)
        self._task: asyncio.Task[None] | None = None
        self._connection: asyncpg.Connection | None = None

    def subscribe(
        self,
        channel: str,
        on_notify: Callable[[str], None],
        on_listening: Callable[[bool], None],
    ) -> None:
        """Before ``start``: call ``on_notify(payload)`` for each notification on
        ``channel``, and ``on_listening`` as for the feed's own channel."""
        self._channels.setdefault(channel, []).append(on_notify)
        self._listening.append(on_listening)

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
                for channel in self._channels:
                    await self._connection.add_listener(channel, self._notified)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as error:
                log.warning("change_feed_unavailable", error=type(error).__name__)
                await asyncio.sleep(delay)  # a backoff before reconnecting, not a wait on a result
                delay = min(delay * 2, RETRY_MAX_SECONDS)
                continue
            delay = RETRY_SECONDS
            self._tell_listening(True)
            try:
                await lost.wait()
            finally:
                self._tell_listening(False)
            log.warning("change_feed_lost")

    def _tell_listening(self, listening: bool) -> None:
        for on_listening in self._listening:
            on_listening(listening)

    def _notified(self, connection: Any, pid: int, channel: str, payload: str) -> None:
        for on_notify in self._channels.get(channel, ()):
            on_notify(payload)
