"""The strawberry view: GraphQL over HTTP (media types, status codes, refusals), the
request's context, and what the caller sees of errors. A repeated read is answered
by ``schema.known`` before strawberry's path when it can."""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

import orjson
import structlog
from cross_web import HTTPException
from graphql import GraphQLError
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send
from strawberry.asgi import GraphQL
from strawberry.http import GraphQLHTTPResponse, GraphQLRequestData
from strawberry.schema.exceptions import InvalidOperationTypeError
from strawberry.types import ExecutionResult

from auth.principal import anonymous_principal
from domain.database import ReadConnections
from domain.metrics import Metrics
from domain.ratelimit import RateLimiter
from domain.settings import Settings
from schema.build import schema_for
from schema.compiled.errors import refused
from schema.compiled.responses import ResponseCache
from schema.context import Context
from schema.errors import INTERNAL, UNAVAILABLE, with_code
from schema.graphiql import enabled as graphiql_enabled
from schema.graphiql import page as graphiql_page
from schema.http import (
    GRAPHQL_RESPONSE,
    JSON,
    RETRY_AFTER_SECONDS,
    Answer,
    HTTPRefusal,
    content_type,
    decode_json,
    unavailable_response,
)
from schema.known import KnownReads
from schema.known_writes import CommitFailed, KnownUpdates
from schema.permissions import ask_for_token, challenge_anonymous
from schema.persisted import PENDING_REGISTRATION, PERSISTED_DOCUMENT, PendingRegistration

log = structlog.get_logger(__name__)


class PortfolioGraphQL(GraphQL[Context, None]):
    def __init__(
        self,
        settings: Settings,
        rate_limiter: RateLimiter,
        metrics: Metrics,
        reads: ReadConnections,
    ) -> None:
        super().__init__(
            schema_for(settings),
            graphql_ide="graphiql" if graphiql_enabled(settings) else None,
            allow_queries_via_get=True,
        )
        self.rate_limiter = rate_limiter
        self.metrics = metrics
        self.reads = reads
        # Off until something listens to the database's changes (``api.app``).
        self.responses = ResponseCache(settings.response_cache_chars)
        self.settings = settings
        self.known = KnownReads(settings, self.schema, rate_limiter, reads, self.responses)
        self.updates = KnownUpdates(settings, self.schema, rate_limiter, reads, self.responses)
        self.anonymous = anonymous_principal(
            development=settings.is_development, configured=settings.anonymous_scopes
        )
        # Requests may register persisted documents (``schema.persisted``): writing
        # permanent storage on an unauthenticated caller's word is for development.
        register = settings.persisted_queries_register
        self.registers = settings.is_development if register is None else register

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        response: Answer | Response
        request = Request(scope, receive)
        decoded = _DecodedBody()
        token = _DECODED.set(decoded)
        try:
            response = await self._answer_known(request) or await self.run(request)
        except HTTPRefusal as refusal:
            response = refusal.response(media_type(scope))
        except HTTPException as error:  # strawberry's own refusals, as JSON like ours
            code = "METHOD_NOT_ALLOWED" if error.status_code == 405 else "BAD_REQUEST"
            response = HTTPRefusal(error.status_code, code, error.reason).response(
                media_type(scope)
            )
        finally:
            decoded.clear()
            _DECODED.reset(token)
        await response(scope, receive, send)

    async def render_graphql_ide(self, request: Request) -> Response:
        return graphiql_page(request)  # strawberry's loads its files from a CDN

    async def get_sub_response(self, request: Request | Any) -> Response:
        sub_response = await super().get_sub_response(request)
        sub_response.media_type = media_type(request.scope)
        return sub_response

    def create_response(
        self,
        response_data: GraphQLHTTPResponse | list[GraphQLHTTPResponse],
        sub_response: Response,
    ) -> Response:
        response = super().create_response(response_data, sub_response)
        negotiated = sub_response.media_type or JSON
        response.headers["content-type"] = content_type(negotiated)
        if (
            negotiated == GRAPHQL_RESPONSE
            and not sub_response.status_code
            and "data" not in response_data
        ):
            # A request error (the document, the variables or a limit) is the client's.
            response.status_code = 400
        return response

    async def execute_single(
        self,
        request: Request,
        request_adapter: Any,
        sub_response: Response,
        context: Context,
        root_value: None,
        request_data: Any,
    ) -> ExecutionResult:
        # A set budget means the fast path tried and was refused it: strawberry answers.
        known = (
            self.known.lookup(context.principal, request_data)
            if context.compiled and context.budget is None
            else None
        )
        if known is not None:
            context.operation_name = known[1].operation_name
            context.requested_cost = known[1].cost
            repeated, context.budget, answered_by = await self.known.run(
                known, request_data, context.principal.scopes, context.rate_limit_key
            )
            if repeated is not None:
                context.answered_by = answered_by
                if refused(repeated):
                    ask_for_token(context)  # as the resolvers' check does
                # A document sent with its hash is registered on either path: a client
                # would otherwise be told PersistedQueryNotFound for it ever after.
                await self._register(request.scope["state"], context, repeated)
                return repeated
        try:
            result = await super().execute_single(
                request=request,
                request_adapter=request_adapter,
                sub_response=sub_response,
                context=context,
                root_value=root_value,
                request_data=request_data,
            )
            await self._register(request.scope["state"], context, result)
            return result
        except HTTPException as error:
            if isinstance(error.__cause__, InvalidOperationTypeError):
                raise HTTPRefusal(
                    405,
                    "METHOD_NOT_ALLOWED",
                    "GET runs queries only; send mutations with POST.",
                    {"Allow": "POST"},
                ) from error
            raise

    async def _register(self, state: dict[str, Any], context: Context, result: Any) -> None:
        """Stores a document sent with its hash once it has run: it parsed, validated
        and passed the limits (a request error leaves no data and no error path)."""
        pending: PendingRegistration | None = state.get(PENDING_REGISTRATION)
        ran = result.data is not None or any(e.path for e in result.errors or ())
        # A refused lone mutation's transaction is rolled back: registered next time.
        discarded = context.transaction is not None and context.transaction.discarded
        if pending is not None and self.registers and ran and not discarded:
            await context.run(lambda session: pending.store.register(session, pending.document))

    def takes_known(self, method: str, accept: str | None) -> bool:
        """Whether a request may be a known read or update: a POST (``answer_known``,
        whose JSON Content-Type ``schema.http.refuse_early`` checked) or a GET (reads
        only, ``answer_known_read``) that does not ask for a streamed answer, while the
        compiled reads are on."""
        return (
            method in _KNOWN_METHODS
            and self.settings.compiled_reads
            and not any(streaming in (accept or "") for streaming in _STREAMING)
        )

    async def _answer_known(self, request: Request) -> Answer | Response | None:
        """``answer_known`` for a request the endpoint did not try it on (a persisted
        document the store had to read from the database). What the body decoded to, if neither known path took
        it, is handed to strawberry's path (``decode_json``) and let go of here."""
        state = request.scope["state"]
        # A GET's known read is tried by strawberry's path (``execute_single``).
        if (
            _KNOWN_TRIED not in state
            and request.method == "POST"
            and self.takes_known(request.method, request.headers.get("accept"))
        ):
            body = await request.body()
            response = await self.answer_known(request.scope, body, decode_json(body))
            if response is not None:
                return response
        # Popped: a request run again (``GraphQLEndpoint._attempt``) tries once more, and
        # may find the plan its first attempt made.
        tried: _DecodedBody | None = state.pop(_KNOWN_TRIED, None)
        decoded = _DECODED.get()
        if tried is not None and decoded is not None:
            # Starlette's body is a copy of what the endpoint read, and the one
            # strawberry reads: ``decode_json`` recognises it.
            decoded.keep(await request.body(), tried.payload)
        return None

    async def answer_known(
        self, scope: Scope, body: bytes, payload: Any
    ) -> Answer | Response | None:
        """A JSON POST of a query the compiler answered before, or of a known update, is
        answered here, before strawberry's HTTP handling and without an ORM session
        (``schema.known``, ``schema.known_writes``, on a pooled connection): the same
        answer strawberry's path would give, at a fraction of the cost, which is what a
        repeated small read (a node lookup) is made of. The endpoint calls it first
        (``GraphQLEndpoint``), for a caller it authenticated; None when neither path
        takes the request (parameters of the wrong type, a document not seen before),
        which is then left to strawberry, with the decoded body (``decode_json``).
        ``payload``: what ``body`` decoded to (refused with 400 as strawberry's path
        would), a persisted document's filled in."""
        scope["state"][_KNOWN_TRIED] = tried = _DecodedBody()
        tried.keep(body, payload)
        return await self._known_answer(scope, payload, updates=True)

    async def answer_known_read(
        self, scope: Scope, payload: dict[str, Any]
    ) -> Answer | Response | None:
        """A GET of a query the compiler answered before, answered as ``answer_known``
        answers a POST's; ``payload``: its parameters as strawberry reads them
        (``schema.get_requests``). Reads only: a mutation is never run over GET
        (strawberry's path refuses it, 405) and the known updates are not asked; a plan
        is only ever made for a query (``CompiledQueries._cached_plan``), so a document
        or operation that is not one finds none and is left to strawberry's refusal.
        None when the read is not known, as for ``answer_known``."""
        return await self._known_answer(scope, payload, updates=False)

    async def _known_answer(
        self, scope: Scope, payload: Any, *, updates: bool
    ) -> Answer | Response | None:
        """A known read's answer, else (with ``updates``) a known update's; None when
        neither takes the request."""
        state = scope["state"]
        data = _known_request_data(state, payload)
        if data is None:
            return None
        principal = state["principal"]
        rate_limit_key = _rate_limit_key(principal, scope.get("client"))
        known = self.known.lookup(principal, data)
        if known is not None:
            return await self._answer_read(scope, known, data, rate_limit_key)
        if updates:
            return await self._answer_update(scope, principal, data, rate_limit_key)
        return None

    async def _answer_read(
        self, scope: Scope, known: tuple[Any, Any], data: GraphQLRequestData, rate_limit_key: str
    ) -> Answer | Response | None:
        """A known read (``KnownReads.lookup``) run and answered; None if the caller's
        budget refused it, which strawberry's path then says, charging nothing more."""
        state = scope["state"]
        principal = state["principal"]
        result, budget, answered_by = await self.known.run(
            known, data, principal.scopes, rate_limit_key, state.get("budget")
        )
        if result is None:
            state["budget"] = budget  # refused: strawberry's path says so, charging nothing
            return None
        answer = self._answer(state, result, answered_by, known[1].operation_name)
        response = Answer(self.encode_json(answer), media_type(scope))
        if _unavailable(answer):
            _retry_later(response)
        if refused(result):
            challenge_anonymous(principal, response)  # as the resolvers' check does
        return response

    async def _answer_update(
        self, scope: Scope, principal: Any, data: GraphQLRequestData, rate_limit_key: str
    ) -> Answer | Response | None:
        """A known entity update (``schema.known_writes``), committed; None otherwise."""
        state = scope["state"]
        try:
            written = await self.updates.answer(principal, data, rate_limit_key, state)
        except CommitFailed:
            return unavailable_response()
        if written is None:
            return None
        answer = self._answer(state, written.result, "update", written.operation_name)
        return Answer(self.encode_json(answer), media_type(scope))

    async def get_context(self, request: Any, response: Any) -> Context:
        state = request.scope["state"]
        state["graphql_context"] = context = Context(
            session=await state["transaction"].session(),
            transaction=state["transaction"],
            principal=state["principal"],
            settings=self.settings,
            response=response,
            compiled=self.settings.compiled_reads,
            rate_limiter=self.rate_limiter,
            rate_limit_key=_rate_limit_key(state["principal"], request.scope.get("client")),
            # Charged by the fast path, which its budget refused: not charged again.
            budget=state.get("budget"),
            persisted_document=state.get(PERSISTED_DOCUMENT, False),
        )
        return context

    async def process_result(
        self, request: Request, result: ExecutionResult
    ) -> GraphQLHTTPResponse:
        state = request.scope.get("state", {})
        context = state.get("graphql_context")
        if context is None:  # refused before a context was made (a malformed request)
            return self._answer(state, result, "", None)
        answer = self._answer(state, result, context.answered_by, context.operation_name)
        if _unavailable(answer):
            _retry_later(context.response)
        return answer

    def _answer(
        self,
        state: dict[str, Any],
        result: ExecutionResult,
        answered_by: str,
        operation_name: str | None,
    ) -> GraphQLHTTPResponse:
        """The response body of a result; counts its errors and cost in the metrics."""
        # An error before execution (document, variables, limits) leaves no data entry.
        request_error = result.data is None and all(e.path is None for e in result.errors or ())
        data: GraphQLHTTPResponse = {} if request_error else {"data": result.data}
        errors = [self._public(with_code(e), state) for e in result.errors or []]
        if errors:
            data["errors"] = errors  # type: ignore[typeddict-item]
        extensions = dict(result.extensions or {})
        if self.settings.is_development and answered_by:
            # Which read path answered: a debugging aid, not part of the contract.
            extensions["answeredBy"] = answered_by
        if extensions:
            data["extensions"] = extensions
        cost: dict[str, Any] = extensions.get("cost") or {}
        record_graphql(self.metrics, state, errors, cost.get("requested"))
        state["operation_name"] = operation_name
        return data

    def _public(self, error: GraphQLError, state: dict[str, Any]) -> dict[str, Any]:
        """An internal error is logged with its detail; the caller gets the request id."""
        formatted: dict[str, Any] = dict(error.formatted)
        if (formatted.get("extensions") or {}).get("code") != INTERNAL:
            return formatted
        request_id = state.get("request_id", "")
        log.error(
            "internal_error",
            path=formatted.get("path"),
            exc_info=error.original_error,
        )
        formatted["extensions"] = {"code": INTERNAL, "requestId": request_id}
        if not self.settings.is_development:
            formatted["message"] = f"Internal server error; quote request id {request_id}."
        return formatted

    def encode_json(self, data: object) -> bytes:
        return orjson.dumps(data)

    def decode_json(self, data: str | bytes) -> object:
        """The body ``_answer_known`` decoded already, if it is this very one: a
        10,000-measurement batch is 1.3 MB of JSON to parse once, not twice. Any other
        text is decoded by ``schema.http.decode_json``, which refuses what the database
        could not take (400)."""
        decoded = _DECODED.get()
        if decoded is not None and decoded.body is data:
            return decoded.payload
        return decode_json(data)


class _DecodedBody:
    """The request body and what orjson made of it, emptied once the answer is ready.

    Emptied, not just unset: whatever the request starts keeps a copy of its context
    (uvicorn's keep-alive timer until the next request, any task or callback scheduled
    meanwhile; pool connections no longer do, see domain.database.connect_in_own_context),
    and a copy holds this box, not what was in it. A batch of 10,000 measurements is
    10 MB of objects."""

    __slots__ = ("body", "payload")
    body: bytes | None
    payload: Any

    def __init__(self) -> None:
        self.clear()

    def keep(self, body: bytes, payload: Any) -> None:
        self.body, self.payload = body, payload

    def clear(self) -> None:
        self.body, self.payload = None, None


_DECODED: ContextVar[_DecodedBody | None] = ContextVar("decoded_body", default=None)

# The methods a known read may come by (a known update: POST only).
_KNOWN_METHODS = ("GET", "POST")

# Accept values for which strawberry streams the answer (incremental delivery, SSE).
_STREAMING = ("multipart/mixed", "text/event-stream")

# Scope state: what ``answer_known`` decoded of a body it did not answer (a
# ``_DecodedBody``), until strawberry's path has it.
_KNOWN_TRIED = "known_tried"


def _known_request_data(state: dict[str, Any], payload: Any) -> GraphQLRequestData | None:
    """The request a known path may answer; None for what strawberry's path must see:
    a payload that is not an object, extensions that are not one, a document to register
    (strawberry's path runs it, then registers it)."""
    if not isinstance(payload, dict):
        return None
    data = GraphQLRequestData(
        query=payload.get("query"),
        variables=payload.get("variables"),
        operation_name=payload.get("operationName"),
        extensions=payload.get("extensions"),
    )
    if not isinstance(data.extensions, dict | None) or PENDING_REGISTRATION in state:
        return None
    return data


def _unavailable(answer: GraphQLHTTPResponse) -> bool:
    errors: list[dict[str, Any]] = answer.get("errors") or []  # type: ignore[assignment]
    return any((error.get("extensions") or {}).get("code") == UNAVAILABLE for error in errors)


def _retry_later(response: Answer | Response) -> None:
    """The connection died under the request: its transaction is gone, so the whole
    answer is unavailable, as when the database cannot be reached at all."""
    response.status_code = 503
    response.headers["Retry-After"] = RETRY_AFTER_SECONDS


def media_type(scope: Scope) -> str:
    """The response media type negotiated for this request (JSON by default)."""
    return str(scope.get("state", {}).get("media_type") or JSON)


def _rate_limit_key(principal: Any, client: tuple[str, int] | None) -> str:
    """Users are charged across their clients; services per client; others per address
    (the ASGI scope's ``client``)."""
    if principal.user_id is not None:
        return f"user:{principal.user_id}"
    if principal.client_id is not None:
        return f"client:{principal.client_id}"
    return f"address:{client[0] if client else 'unknown'}"


def record_graphql(
    metrics: Metrics, state: dict[str, Any], errors: list[dict[str, Any]], cost: int | None
) -> None:
    for error in errors:
        metrics.errors.labels(error.get("extensions", {}).get("code", "UNKNOWN")).inc()
    if cost:
        metrics.cost.inc(cost)
        state["cost"] = cost
