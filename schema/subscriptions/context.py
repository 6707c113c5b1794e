"""The context of one subscription: the caller of its connection, and per event a
fresh session (its own short read transaction) and fresh dataloaders, so that each
event shows the data as committed when it is read, with the caller's scopes as they
are then."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from auth.principal import Principal
from schema.context import Context

if TYPE_CHECKING:
    from schema.subscriptions.hub import SubscriptionHub

V = TypeVar("V")


class NoResponse:
    """What the limits and permissions write on an HTTP response (a status, headers)
    has nowhere to go on a WebSocket: kept here and ignored."""

    def __init__(self) -> None:
        self.status_code: int | None = None
        self.headers: dict[str, str] = {}


@dataclass
class Caller:
    """A connection's caller, as last checked (``connection_init``, then every change
    to identity): what each event of its subscriptions is resolved with."""

    principal: Principal
    key: str  # what limits count by: user, client or address
    expires_at: int | None = None  # the token's exp


@dataclass
class SubscriptionContext(Context):
    """A ``Context`` whose session is opened by the first statement of an event and
    closed once the event is resolved (``end_event``), so that no transaction and no
    pooled connection is held while the event is sent or the next change awaited."""

    sessions: async_sessionmaker[AsyncSession] | None = None
    hub: SubscriptionHub | None = None
    caller: Caller | None = None
    # strawberry sets the connection_init payload here.
    connection_params: dict[str, Any] | None = None
    # Called when the subscriber's queue overflows (closes the connection).
    on_overflow: Callable[[], None] = field(default=lambda: None)

    def for_operation(self) -> SubscriptionContext:
        """A context of its own for one subscription of the connection."""
        return SubscriptionContext(
            session=None,  # type: ignore[arg-type]  # opened per event
            principal=self.caller.principal if self.caller else self.principal,
            settings=self.settings,
            response=NoResponse(),
            compiled=False,
            rate_limiter=self.rate_limiter,
            rate_limit_key=self.caller.key if self.caller else self.rate_limit_key,
            sessions=self.sessions,
            hub=self.hub,
            caller=self.caller,
            on_overflow=self.on_overflow,
        )

    async def run(self, work: Callable[[AsyncSession], Awaitable[V]]) -> V:
        if self.session is None:
            assert self.sessions is not None
            self.session = self.sessions()
        return await super().run(work)

    async def end_event(self) -> None:
        """The event is resolved: its transaction ends (nothing was written), its
        loaders go, and the next event sees the caller as checked by then."""
        await self.settle()
        session, self.session = self.session, None  # type: ignore[assignment]
        if session is not None:
            await session.close()
        self._loaders.clear()
        if self.caller is not None:
            self.principal = self.caller.principal
