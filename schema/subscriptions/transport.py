"""Subscriptions over WebSocket: the graphql-transport-ws protocol at /graphql.

strawberry speaks the protocol (``BaseGraphQLTransportWSHandler``); this module adds
what the API needs around it:

- the caller, authenticated at ``connection_init`` with the same bearer tokens as HTTP
  (payload ``{"Authorization": "Bearer <token>"}``), checked again whenever identity
  changes (a token revoked, a user disabled, roles changed) and when the token expires;
- the limits: subscriptions per connection and per caller (cost is refused by the
  limits extension, through ``SubscriptionGate``);
- one context per subscription and a fresh read transaction per event
  (``SubscriptionContext``);
- what the caller sees of errors (``extensions.code``, as over HTTP).

Close codes (the protocol's, and ours in 44xx) are listed in ``CLOSE_CODES`` and
docs/api.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import timedelta
from typing import Any

import asyncpg
import httpx
import structlog
from graphql import GraphQLError
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from strawberry.asgi import GraphQL
from strawberry.schema import BaseSchema
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
    Operation,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.types import (
    ConnectionInitMessage,
    SubscribeMessage,
)
from strawberry.types import ExecutionResult
from strawberry.utils.aio import aclosing

from auth.principal import Principal, resolve_principal
from auth.services import AuthServices
from auth.tokens import InvalidToken
from domain.database import ReadConnections
from domain.ratelimit import RateLimiter
from domain.settings import Settings
from schema.errors import INTERNAL, with_code
from schema.subscriptions.context import Caller, NoResponse, SubscriptionContext
from schema.subscriptions.hub import SubscriptionHub

log = structlog.get_logger(__name__)

# Ours, beside the protocol's own (4400 bad message, 4403 refused, 4408 no
# connection_init in time, 4409 duplicate id, 4429 a second connection_init).
UNAUTHORIZED = 4401  # bad, expired or revoked token
TOO_SLOW = 4413  # the subscriber's queue overflowed
NOT_LISTENING = 4503  # the server stopped hearing the database's changes
TRY_AGAIN_LATER = 1013  # RFC 6455: the caller could not be checked (database away)
CLOSE_CODES = {
    UNAUTHORIZED: "the token is missing a valid form, expired, or was revoked",
    TOO_SLOW: "more changes waited for a subscription than PORTFOLIO_SUBSCRIPTION_QUEUE_SIZE",
    NOT_LISTENING: "changes may have been missed: subscribe again and read afresh",
    TRY_AGAIN_LATER: "the database could not be reached to check the token",
}


def caller_key(principal: Principal, host: str | None) -> str:
    """What per-caller limits count by (as the rate limit does): users across their
    clients, services per client, anonymous callers per address."""
    if principal.user_id is not None:
        return f"user:{principal.user_id}"
    if principal.client_id is not None:
        return f"client:{principal.client_id}"
    return f"address:{host or 'unknown'}"


def _authorization(payload: dict[str, Any]) -> str | None:
    """The bearer token of a connection_init payload: ``Authorization`` (any case),
    as an HTTP header would carry it."""
    for name, value in payload.items():
        if isinstance(name, str) and name.lower() == "authorization":
            return value if isinstance(value, str) else ""
    return None


class SubscriptionHandler(BaseGraphQLTransportWSHandler[SubscriptionContext, None]):
    """One WebSocket connection (see the module's docstring)."""

    view: SubscriptionView

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.authorization: str | None = None
        self.caller: Caller | None = None
        self._expiry: asyncio.TimerHandle | None = None
        self._recheck: asyncio.Task[None] | None = None
        self._closing = False
        self._closer: asyncio.Task[None] | None = None

    # --- the caller -------------------------------------------------------------

    async def handle_connection_init(self, message: ConnectionInitMessage) -> None:
        payload = message.get("payload") or {}
        if self.connection_init_received or not isinstance(payload, dict):
            await super().handle_connection_init(message)  # the protocol's refusals
            return
        self.authorization = _authorization(payload)
        try:
            principal, expires_at = await self.view.authenticate(self.authorization)
        except InvalidToken as error:
            await self._refuse_init(UNAUTHORIZED, f"Unauthorized: {error.description}")
            return
        except (OSError, SQLAlchemyError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
            log.warning("database_unavailable", error=type(error).__name__)
            await self._refuse_init(TRY_AGAIN_LATER, "The database is unavailable; retry shortly.")
            return
        client = self._client()
        host = client.host if client is not None else None
        self.caller = Caller(principal, caller_key(principal, host), expires_at)
        self.context.caller = self.caller
        self.context.principal = principal
        self.context.rate_limit_key = self.caller.key
        self.context.on_overflow = self._too_slow
        if expires_at is not None:
            delay = max(0.0, expires_at - time.time())
            self._expiry = asyncio.get_running_loop().call_later(delay, self._expired)
        self.view.hub.connections.add(self)
        await super().handle_connection_init(message)

    async def _refuse_init(self, code: int, reason: str) -> None:
        self.connection_init_received = True
        if self.connection_init_timeout_task:
            self.connection_init_timeout_task.cancel()
        await self._close(code, reason)

    def _client(self) -> Any:
        socket = getattr(self.websocket, "ws", None)  # strawberry's ASGI adapter
        return getattr(socket, "client", None)

    def _expired(self) -> None:
        self._close_soon(UNAUTHORIZED, "Unauthorized: the token has expired.")

    def identity_changed(self) -> None:
        """Identity changed somewhere (``SubscriptionHub``): check this caller again,
        once at a time."""
        if self.caller is None or self._closing or not self.caller.principal.authenticated:
            return
        if self._recheck is None or self._recheck.done():
            self._recheck = asyncio.create_task(self._check_again())

    async def _check_again(self) -> None:
        try:
            principal, _ = await self.view.authenticate(self.authorization)
        except InvalidToken as error:
            await self._close(UNAUTHORIZED, f"Unauthorized: {error.description}")
            return
        except Exception:  # the database is away: keep the caller as last checked
            log.warning("subscription_caller_not_checked", exc_info=True)
            return
        caller = self.caller
        if caller is not None and principal != caller.principal:
            caller.principal = principal  # the next event is read with these scopes
            log.info("subscription_caller_changed", caller=caller.key)

    def not_listening(self) -> None:
        self._close_soon(NOT_LISTENING, "Changes may have been missed: subscribe again.")

    def _too_slow(self) -> None:
        log.info("subscription_too_slow", caller=self.caller.key if self.caller else None)
        size = self.view.settings.subscription_queue_size
        self._close_soon(TOO_SLOW, f"Too slow: over {size} changes waited unread.")

    def _close_soon(self, code: int, reason: str) -> None:
        if not self._closing:
            self._closer = asyncio.create_task(self._close(code, reason))

    async def _close(self, code: int, reason: str) -> None:
        if self._closing:
            return
        self._closing = True
        for operation in list(self.operations.values()):
            if operation.task:
                operation.task.cancel()
        with contextlib.suppress(Exception):  # the client may be gone already
            await self.websocket.close(code=code, reason=reason[:120])

    async def shutdown(self) -> None:
        self.view.hub.connections.discard(self)
        if self._expiry is not None:
            self._expiry.cancel()
        if self._recheck is not None:
            self._recheck.cancel()
        await super().shutdown()

    # --- subscriptions ---------------------------------------------------------------

    async def handle_subscribe(self, message: SubscribeMessage) -> None:
        if self._closing:
            return  # the connection is being closed (token expired, too slow, ...)
        if not self.connection_acknowledged or message["id"] in self.operations:
            await super().handle_subscribe(message)  # the protocol's refusals
            return
        settings = self.view.settings
        assert self.caller is not None
        limit = settings.max_subscriptions_per_connection
        if len(self.operations) >= limit:
            await self._refuse(
                message["id"],
                f"This connection has {limit} subscriptions open, the most it may have "
                "(PORTFOLIO_MAX_SUBSCRIPTIONS_PER_CONNECTION); complete one first.",
                limit,
            )
            return
        per_caller = settings.max_subscriptions_per_caller
        if not self.view.hub.admit(self.caller.key, per_caller):
            await self._refuse(
                message["id"],
                f"You have {per_caller} subscriptions open on this server, the most a caller "
                "may have (PORTFOLIO_MAX_SUBSCRIPTIONS_PER_CALLER); complete one first.",
                per_caller,
            )
            return
        await super().handle_subscribe(message)
        operation = self.operations.get(message["id"])
        if operation is None or operation.task is None:  # refused after all: not counted
            self.view.hub.release(self.caller.key)
            return
        # Given back when the task ends, however it ends: a task cancelled before it
        # first ran (a `complete` sent at once) never enters its own `finally`.
        key = self.caller.key
        operation.task.add_done_callback(lambda _: self.view.hub.release(key))

    async def _refuse(self, id: str, message: str, limit: int) -> None:
        error = GraphQLError(message, extensions={"code": "TOO_MANY_SUBSCRIPTIONS", "limit": limit})
        await self.send_message({"id": id, "type": "error", "payload": [error.formatted]})

    async def run_operation(self, operation: Operation[SubscriptionContext, None]) -> None:
        """strawberry's, with a context of the subscription's own."""
        context = self.context.for_operation()
        try:
            result_source = await self.schema.stream(
                operation.query,
                variable_values=operation.variables,
                context_value=context,
                root_value=self.root_value,
                operation_name=operation.operation_name,
            )
            async with aclosing(result_source):
                await self._stream_results(operation, context, result_source)
            await operation.send_operation_message({"id": operation.id, "type": "complete"})
        except asyncio.CancelledError:
            raise
        except Exception as error:
            await self.handle_task_exception(error)
            with contextlib.suppress(Exception):
                await operation.send_operation_message({"id": operation.id, "type": "complete"})
            self.operations.pop(operation.id, None)
        finally:
            await context.end_event()

    async def _stream_results(
        self, operation: Operation[SubscriptionContext, None], context: Any, source: Any
    ) -> None:
        async for result in source:
            # Resolved: the event's transaction ends before the (maybe slow) send.
            await context.end_event()
            if not isinstance(result, ExecutionResult):
                await operation.send_initial_errors(
                    [GraphQLError("Incremental delivery is not supported over WebSocket.")]
                )
                return
            errors = [self._public(with_code(e)) for e in result.errors or ()]
            if result.data is None and errors and all(e.path is None for e in errors):
                # Refused (limits, scopes, a key that names nothing) or failed as a whole:
                # the protocol's `error` message, which ends the subscription.
                await operation.send_initial_errors(errors)
                return
            await operation.send_next(
                ExecutionResult(data=result.data, errors=errors or None, extensions=None)
            )

    def _public(self, error: GraphQLError) -> GraphQLError:
        if (error.extensions or {}).get("code") == INTERNAL:
            log.error("internal_error", path=error.path, exc_info=error.original_error)
            if not self.view.settings.is_development:
                error.message = "Internal server error."
        return error


class SubscriptionView(GraphQL[SubscriptionContext, None]):
    """strawberry's ASGI view, for WebSockets only (HTTP goes to ``PortfolioGraphQL``)."""

    def __init__(
        self,
        schema: BaseSchema,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession],
        auth: AuthServices,
        reads: ReadConnections,
        rate_limiter: RateLimiter,
        anonymous: Principal,
        hub: SubscriptionHub,
    ) -> None:
        super().__init__(
            schema,
            graphql_ide=None,
            subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
            connection_init_wait_timeout=timedelta(
                seconds=settings.subscription_init_timeout_seconds
            ),
            max_subscriptions_per_connection=None,  # ours: SubscriptionHandler
            allowed_origins=settings.cors_origins,
        )
        self.settings = settings
        self.sessions = sessions
        self.auth = auth
        self.reads = reads
        self.rate_limiter = rate_limiter
        self.anonymous = anonymous
        self.hub = hub

    graphql_transport_ws_handler_class = SubscriptionHandler

    async def get_context(self, request: Any, response: Any) -> SubscriptionContext:
        return SubscriptionContext(
            session=None,  # type: ignore[arg-type]  # per event (SubscriptionContext)
            principal=self.anonymous,
            settings=self.settings,
            response=NoResponse(),
            compiled=False,
            rate_limiter=self.rate_limiter,
            rate_limit_key="anonymous",
            sessions=self.sessions,
            hub=self.hub,
        )

    async def authenticate(self, authorization: str | None) -> tuple[Principal, int | None]:
        """The caller and its token's expiry, as ``auth.middleware.authenticate`` finds
        them for HTTP; raises InvalidToken."""
        if authorization is None:
            return self.anonymous, None
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise InvalidToken('Use {"Authorization": "Bearer <access token>"}.')
        try:
            claims = await self.auth.tokens.verify(token.strip())
        except httpx.HTTPError:
            raise InvalidToken("The issuer's signing keys could not be fetched.") from None
        async with self.reads() as connection:
            principal = await resolve_principal(connection, claims)
        return principal, claims.expires_at
