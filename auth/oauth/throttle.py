"""Failed sign-ins and client authentications, counted per key in the database
(``login_throttle``, shared by replicas) and paused beyond a limit (429)."""

from __future__ import annotations

import asyncio
import math
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import case, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.requests import Request
from starlette.responses import Response

from auth.models import LoginThrottle
from auth.oauth.credentials import CLIENT_ID_MAX_LENGTH, credentials
from auth.oauth.errors import OAuthError
from domain.settings import Settings


@dataclass(frozen=True)
class Limit:
    """At most ``max_failures`` failures under ``key`` in a window of ``window_seconds``
    (starting at the first failure); beyond it, requests under that key get 429."""

    key: str
    max_failures: int
    window_seconds: int


class ClientAuthenticationFailed(OAuthError):
    """invalid_client, to be counted against ``limits`` once the request's transaction
    has rolled back."""

    def __init__(self, basic: bool, limits: list[Limit]) -> None:
        super().__init__("invalid_client", "Client authentication failed.", 401, basic)
        self.limits = limits


@dataclass
class Throttle:
    settings: Settings
    sessions: async_sessionmaker[AsyncSession]
    # Client authentications under way in this process, per throttle key (``admit``).
    _in_flight: Counter[str] = field(default_factory=Counter)
    _finished: asyncio.Condition = field(default_factory=asyncio.Condition)
    _released: int = 0  # attempts finished so far (their failures, if any, recorded)

    def client_limits(self, request: Request, client_id: str) -> tuple[Limit, Limit | None]:
        """The throttles of a client authentication: by address, and by client id (None
        for an id that cannot be registered)."""
        address = request.client.host if request.client else "unknown"
        by_address = Limit(
            f"client-address:{address}",
            self.settings.login_max_failures,
            self.settings.login_window_seconds,
        )
        if not client_id or len(client_id) > CLIENT_ID_MAX_LENGTH or "\x00" in client_id:
            return by_address, None
        by_client = Limit(
            f"client:{client_id}",
            self.settings.client_auth_max_failures,
            self.settings.client_auth_window_seconds,
        )
        return by_address, by_client

    def admitting(
        self, endpoint: Callable[[Request], Awaitable[Response]]
    ) -> Callable[[Request], Awaitable[Response]]:
        """``endpoint`` (which authenticates a client), admitted by ``admit`` first."""

        async def admitted(request: Request) -> Response:
            form = await request.form()  # kept by the request: the endpoint reads it again
            try:
                client_id, _, basic = credentials(request, form)
            except OAuthError as error:
                return error.response()
            by_address, by_client = self.client_limits(request, client_id)
            limits = [by_address] if by_client is None else [by_address, by_client]
            refusal = await self.admit(limits, basic)
            if refusal is not None:
                return refusal.response()
            try:
                return await endpoint(request)
            finally:
                async with self._finished:
                    self._in_flight.subtract(limit.key for limit in limits)
                    self._in_flight += Counter()  # drops the keys that reached zero
                    self._released += 1
                    self._finished.notify_all()

        return admitted

    async def admit(self, limits: list[Limit], basic: bool) -> OAuthError | None:
        """Admit a client authentication, or refuse it with 429 before any secret is
        hashed, so that guessing costs the guesser, not the server.

        Failed client authentications are counted like failed sign-ins (the same
        ``login_throttle`` rows, shared by replicas):
        - per address (``client-address:``): ``login_max_failures`` failures in
          ``login_window_seconds`` pause that address, whatever client id it names.
          One attacking address locks out only itself.
        - per client id (``client:``): ``client_auth_max_failures`` failures from all
          addresses pause that client id for what remains of a short window
          (``client_auth_window_seconds``, from the first failure). A higher threshold
          than per address, so that one address cannot pause a client, and a short
          window, so that a distributed attacker must keep failing from many addresses
          (each then paused for the long window) to keep a client paused.
        Success does not reset the counters: an attacker holding one valid client
        could otherwise reset his address.

        Attempts under way in this process count too: beyond a limit's remaining
        failures, an attempt waits for one under way to finish and looks again, so a
        burst of concurrent guesses is not all hashed before the first failures are
        recorded (a burst costs at most the limit's hashes per replica)."""
        while True:
            released = self._released
            async with self.sessions() as session:
                failures, retry_after = await self.window_state(session, limits)
            if retry_after is not None:
                return OAuthError(
                    "slow_down",
                    "Too many failed client authentications; try again later.",
                    429,
                    basic,
                    retry_after,
                )
            async with self._finished:
                if self._released != released:
                    continue  # a failure may have been recorded after we read: read again
                if all(
                    failures.get(limit.key, 0) + self._in_flight[limit.key] < limit.max_failures
                    for limit in limits
                ):
                    self._in_flight.update(limit.key for limit in limits)
                    return None
                await self._finished.wait()

    async def refused(self, error: OAuthError) -> Response:
        """The error response; a failed client authentication is counted first, in a
        transaction of its own (the request's was rolled back)."""
        if isinstance(error, ClientAuthenticationFailed):
            async with self.sessions() as session, session.begin():
                await self.fail(session, error.limits)
        return error.response()

    async def throttled(self, session: AsyncSession, limits: list[Limit]) -> int | None:
        """Seconds until every exhausted limit among ``limits`` ends, or None if none is."""
        return (await self.window_state(session, limits))[1]

    async def window_state(
        self, session: AsyncSession, limits: list[Limit]
    ) -> tuple[dict[str, int], int | None]:
        """Failures in each key's current window, and the seconds until every exhausted
        limit ends (None if none is)."""
        now = datetime.now(UTC)
        windows = {limit.key: limit for limit in limits}
        rows = await session.execute(
            select(
                LoginThrottle.key, LoginThrottle.window_started_at, LoginThrottle.failures
            ).where(LoginThrottle.key.in_(list(windows)))
        )
        failures: dict[str, int] = {}
        ends: list[datetime] = []
        for key, started, count in rows:
            end = started + timedelta(seconds=windows[key].window_seconds)
            if end > now:
                failures[key] = count
                if count >= windows[key].max_failures:
                    ends.append(end)
        if not ends:
            return failures, None
        return failures, max(1, math.ceil((max(ends) - now).total_seconds()))

    async def fail(self, session: AsyncSession, limits: list[Limit]) -> None:
        now = datetime.now(UTC)
        for limit in limits:
            since = now - timedelta(seconds=limit.window_seconds)
            statement = insert(LoginThrottle).values(
                key=limit.key, window_started_at=now, failures=1
            )
            await session.execute(
                statement.on_conflict_do_update(
                    index_elements=[LoginThrottle.key],
                    set_={
                        # A window that has run out starts again at this failure.
                        "failures": _case_window(since, LoginThrottle.failures + 1, 1),
                        "window_started_at": _case_window(
                            since, LoginThrottle.window_started_at, now
                        ),
                    },
                )
            )


def _case_window(since: datetime, inside: Any, outside: Any) -> Any:
    return case((LoginThrottle.window_started_at > since, inside), else_=outside)
