"""The GraphQL ASGI endpoint: authenticates the caller, fills in persisted documents,
and runs the view inside the request's single transaction, committed in one place (and
begun only if the request needs the ORM session: see ``RequestTransaction``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import structlog
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as SQLAlchemyTimeoutError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from auth.middleware import authenticate, challenge
from auth.services import AuthServices
from auth.tokens import InvalidToken
from domain.database import ReadConnections, RequestTransaction
from domain.metrics import Metrics
from domain.ratelimit import RateLimiter
from domain.services.persisted import PersistedQueryStore
from domain.settings import Settings
from schema.get_requests import read_filled_in, read_get_request
from schema.http import (
    JSON,
    Answer,
    HTTPRefusal,
    decode_json,
    first_headers,
    negotiate,
    refuse_early,
    unavailable_response,
)
from schema.persisted import (
    PersistedQueryError,
    get_payload,
    read_body,
    replay,
    resolve_persisted,
    set_get_payload,
)
from schema.subscriptions.hub import SubscriptionHub
from schema.subscriptions.transport import SubscriptionView
from schema.view import PortfolioGraphQL

log = structlog.get_logger(__name__)

_MARKER = b"persistedQuery"


class GraphQLEndpoint:
    """ASGI endpoint: authenticates the caller, opens the request's transaction and
    commits it in one place."""

    def __init__(
        self,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession],
        auth: AuthServices,
        rate_limiter: RateLimiter,
        metrics: Metrics,
        reads: ReadConnections,
    ) -> None:
        self.view = PortfolioGraphQL(settings, rate_limiter, metrics, reads)
        # Subscriptions (WebSocket): fed by the change feed through the hub (``api.app``).
        self.hub = SubscriptionHub(reads, settings.subscription_queue_size)
        self.subscriptions = SubscriptionView(
            self.view.schema,
            settings,
            sessions,
            auth,
            reads,
            rate_limiter,
            self.view.anonymous,
            self.hub,
        )
        self.sessions = sessions
        self.auth = auth
        self.persisted = PersistedQueryStore()
        self.only_persisted = settings.persisted_queries_only
        self.attempts = settings.transaction_attempts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await self.subscriptions(scope, receive, send)
            return
        if scope["type"] != "http":
            await self.view(scope, receive, send)
            return
        method = scope["method"]
        accept, content_type, authorization = first_headers(
            scope, b"accept", b"content-type", b"authorization"
        )
        refusal = refuse_early(method, accept, content_type)
        state = scope.setdefault("state", {})
        state["media_type"] = negotiate(accept) or JSON
        if refusal is not None:
            await refusal.response(state["media_type"])(scope, receive, send)
            return
        body = _Body(receive)
        try:
            answer = await self._known(scope, body, authorization, accept)
        except InvalidToken as error:
            answer = _unauthorized(error)
        except HTTPRefusal as refused:
            answer = refused.response(state["media_type"])
        except _UNAVAILABLE as error:
            log.warning("database_unavailable", error=type(error).__name__)
            answer = unavailable_response()
        if answer is not None:
            await answer(scope, receive, send)
            return
        for attempt in range(1, self.attempts + 1):
            conflict = await self._attempt(scope, body, send, last=attempt == self.attempts)
            if conflict is None:
                return
            log.info("request_run_again", reason=conflict, attempt=attempt)

    async def _known(
        self, scope: Scope, body: _Body, authorization: str | None, accept: str | None
    ) -> Answer | Response | None:
        """Authenticates the caller (``InvalidToken`` if refused), then answers a known
        read or update (``PortfolioGraphQL.answer_known``; a GET: a known read only,
        ``_known_get``) at once: it needs neither
        the request's transaction nor a held answer, as it commits nothing or commits on
        its own. None: the request takes the whole path (``_attempt``)."""
        state = scope["state"]
        state["principal"] = await authenticate(
            self.auth, self.view.reads, authorization, self.view.anonymous
        )
        method = scope["method"]
        if not self.view.takes_known(method, accept):
            return None
        if method == "GET":
            return await self._known_get(scope)
        data = await body.read()
        if data.lstrip().startswith(b"["):
            return None  # a batch: ``_persisted`` refuses it
        payload = decode_json(data)
        if not (self.only_persisted or _MARKER in data):
            return await self.view.answer_known(scope, data, payload)
        # A persisted document, filled in here if the store has it in memory (what a
        # client of the persisted-only mode sends on every request).
        if not isinstance(payload, dict):
            return None
        filled = await self._filled_in_memory(payload, state)
        if not isinstance(filled, dict):
            return filled
        return await self.view.answer_known(scope, data, filled)

    async def _known_get(self, scope: Scope) -> Answer | Response | None:
        """A GET's known read (``PortfolioGraphQL.answer_known_read``), its persisted
        document filled in as ``_persisted`` fills it in (when the store has it in
        memory), then read as strawberry reads the query string ``_persisted`` passes
        on. Anything else (a refusal of its parameters, a document not known, a
        mutation) is left to the whole path, which answers it in its own words."""
        request = read_get_request(scope.get("query_string", b""))
        if request is None:
            return None  # refused by strawberry's path
        # ``_persisted``'s test, on the same decoded extensions: where this reading of
        # the query string succeeds, ``get_payload`` decodes the same values.
        if self._asks_persisted(request.get("extensions")):
            try:
                payload = get_payload(scope)
            except HTTPRefusal:
                return None
            filled = await self._filled_in_memory(payload, scope["state"])
            if not isinstance(filled, dict):
                return filled
            request = read_filled_in(filled)
            if request is None:
                return None
        return await self.view.answer_known_read(scope, request)

    def _asks_persisted(self, extensions: Any) -> bool:
        """Whether a request's document is to be filled in from the store (or refused):
        always in the persisted-only mode, else when its extensions name one."""
        return self.only_persisted or "persistedQuery" in str(extensions or "")

    async def _filled_in(
        self, payload: dict[str, Any], session: Callable[[], Awaitable[AsyncSession]], state: Any
    ) -> dict[str, Any]:
        """``payload`` with its persisted document filled in (``resolve_persisted``), or
        ``PersistedQueryError``; ``session`` is asked for only if the store must read
        the database."""
        return await resolve_persisted(
            self.persisted, session, payload, only_persisted=self.only_persisted, state=state
        )

    async def _filled_in_memory(
        self, payload: dict[str, Any], state: Any
    ) -> dict[str, Any] | Response | None:
        """``_filled_in`` for the lane, which has no transaction: None when the store
        must read the database (``_persisted`` then does, in the request's transaction),
        the refusal's answer when it is refused."""
        try:
            return await self._filled_in(payload, _not_in_memory, state)
        except _NotInMemory:
            return None
        except PersistedQueryError as refused:
            return refused.response

    async def _attempt(self, scope: Scope, body: _Body, send: Send, *, last: bool) -> str | None:
        """Run the request once, in a transaction of its own. When PostgreSQL aborted a
        statement of it as a deadlock or a serialization failure, the transaction is
        rolled back whole and the reason returned, so that the request is run again from
        the start: its answer is held until the commit (``HeldResponse``), so the caller
        has heard nothing of it yet. Not on the ``last`` attempt: the caller is then told
        (``schema.mutations.common.run``). Returns None once the request is answered."""
        state = scope["state"]
        state.pop("graphql_context", None)
        receive = body.receive
        response = HeldResponse(send)
        try:
            async with RequestTransaction(self.sessions) as transaction:
                state["transaction"] = response.transaction = transaction
                try:
                    receive = await self._persisted(scope, body, transaction)
                except PersistedQueryError as refused:
                    await refused.response(scope, receive, send)
                    return None
                except HTTPRefusal as refused:
                    await refused.response(state["media_type"])(scope, receive, send)
                    return None
                try:
                    await self.view(scope, receive, response.send)
                finally:
                    context = state.get("graphql_context")
                    if context is not None:
                        await context.finish()  # no statement may outlive its transaction
                if context is not None and context.conflict and not last and not response.started:
                    # Charged once: the next attempt spends this budget, not another.
                    state["budget"] = context.budget
                    raise _RunAgain(context.conflict)
                # An answer telling of writes is never sent for a transaction that
                # PostgreSQL aborted, which cannot commit: it is answered 503 below.
                transaction.wrote = context is not None and context.mutated
            context = state.get("graphql_context")
            if context is not None and context.mutated:
                # Committed: no answer read before it may be served after it.
                self.view.responses.invalidate()
            if transaction.committed or response.status == 503:
                await response.release()  # committed: now the caller may hear of it
            else:
                log.warning("request_not_committed")
                await unavailable_response()(scope, receive, send)
        except _RunAgain as again:
            return again.reason
        except _UNAVAILABLE as error:
            # Pool exhausted, database unreachable, or the commit failed: the held answer
            # is dropped, and the caller is told to come back.
            log.warning("database_unavailable", error=type(error).__name__)
            if not response.started:
                await unavailable_response()(scope, receive, send)
        return None

    async def _persisted(
        self, scope: Scope, body: _Body, transaction: RequestTransaction
    ) -> Receive:
        """Fill in a persisted document (or refuse); returns the receive to pass on."""
        if scope["method"] == "GET":
            payload = get_payload(scope)
            if self._asks_persisted(payload.get("extensions")):
                filled = await self._filled_in(payload, transaction.session, scope["state"])
                set_get_payload(scope, filled)
            return body.receive
        data = await body.read()
        if data.lstrip().startswith(b"["):
            raise HTTPRefusal(
                400,
                "BATCHING_NOT_SUPPORTED",
                "Send one operation per request; JSON arrays of operations are not accepted.",
            )
        if self.only_persisted or _MARKER in data:
            payload = decode_json(data)  # a malformed body is refused (400) here
            if isinstance(payload, dict):
                filled = await self._filled_in(payload, transaction.session, scope["state"])
                data = orjson.dumps(filled)
        return replay(data)


# What a request meets when the database cannot be reached, its pool is exhausted or a
# commit fails: answered 503, nothing done.
_UNAVAILABLE = (SQLAlchemyTimeoutError, OperationalError, DBAPIError, OSError)


class _NotInMemory(Exception):
    """The persisted document must be read from the database."""


async def _not_in_memory() -> AsyncSession:
    """The session ``resolve_persisted`` asks for when the store must read the database:
    the lane has none, and leaves the request to the whole path."""
    raise _NotInMemory


class _Body:
    """A POST body, read once (after the caller is authenticated) and replayed to each
    attempt of the request."""

    def __init__(self, receive: Receive) -> None:
        self.receive = receive
        self._data: bytes | None = None

    async def read(self) -> bytes:
        if self._data is None:
            self._data = await read_body(self.receive)
        return self._data


class _RunAgain(Exception):
    """Leaves the request's transaction with a rollback, to run the request again."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _unauthorized(error: InvalidToken) -> Response:
    """A refused token, in GraphQL's error format, with RFC 6750's challenge."""
    body = {"errors": [{"message": error.description, "extensions": {"code": "UNAUTHENTICATED"}}]}
    return Response(
        orjson.dumps(body),
        status_code=401,
        media_type="application/json",
        headers={"WWW-Authenticate": challenge("invalid_token", error.description)},
    )


class HeldResponse:
    """Holds the answer of a request whose transaction is open until it is committed: a
    caller told of a write finds it on any connection it reads next, and a commit that
    fails is answered 503, never with the success it would contradict. An answer sent
    without a transaction (a known read) or streamed in parts (reads only) passes on
    at once."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self.transaction: RequestTransaction | None = None
        self._held: list[Message] = []
        self._passing = False
        self.status: int | None = None  # of the answer held or sent, once it has one
        self.started = False  # the caller has received something

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
        if not self._passing:
            opened = self.transaction is not None and self.transaction.opened
            streamed = message["type"] == "http.response.body" and message.get("more_body")
            self._held.append(message)
            if opened and not streamed:
                return
            self._passing = True
            await self.release()
            return
        self.started = True
        await self._send(message)

    async def release(self) -> None:
        held, self._held = self._held, []
        for message in held:
            self.started = True
            await self._send(message)
