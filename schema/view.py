"""The GraphQL HTTP endpoint: one session and one transaction per request."""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send
from strawberry.asgi import GraphQL
from strawberry.http import GraphQLHTTPResponse
from strawberry.types import ExecutionResult

from api.database import transaction
from api.ratelimit import RateLimiter
from api.settings import Settings
from auth.middleware import authenticate, unauthorized
from auth.principal import anonymous_principal
from auth.services import AuthServices
from auth.tokens import InvalidToken
from schema.build import schema_for
from schema.context import Context
from schema.errors import with_code


class PortfolioGraphQL(GraphQL[Context, None]):
    def __init__(self, settings: Settings, rate_limiter: RateLimiter) -> None:
        super().__init__(
            schema_for(settings),
            graphql_ide="graphiql" if settings.is_development else None,
            allow_queries_via_get=True,
        )
        self.rate_limiter = rate_limiter
        self.settings = settings
        self.anonymous = anonymous_principal(
            development=settings.is_development, configured=settings.anonymous_scopes
        )

    async def get_context(self, request: Any, response: Any) -> Context:
        state = request.scope["state"]
        state["graphql_context"] = context = Context(
            session=state["session"],
            principal=state["principal"],
            settings=self.settings,
            response=response,
            compiled=self.settings.compiled_reads,
            rate_limiter=self.rate_limiter,
            rate_limit_key=_rate_limit_key(state["principal"], request),
        )
        return context

    async def process_result(
        self, request: Request, result: ExecutionResult
    ) -> GraphQLHTTPResponse:
        data: GraphQLHTTPResponse = {"data": result.data}
        if result.errors:
            data["errors"] = [with_code(e).formatted for e in result.errors]
        extensions = dict(result.extensions or {})
        if self.settings.is_development:
            # Which read path answered: a debugging aid, not part of the contract.
            context = request.scope.get("state", {}).get("graphql_context")
            if context is not None and context.answered_by:
                extensions["answeredBy"] = context.answered_by
        if extensions:
            data["extensions"] = extensions
        return data

    def encode_json(self, data: object) -> bytes:
        return orjson.dumps(data)


def _rate_limit_key(principal: Any, request: Any) -> str:
    """Users are charged across their clients; services per client; others per address."""
    if principal.user_id is not None:
        return f"user:{principal.user_id}"
    if principal.client_id is not None:
        return f"client:{principal.client_id}"
    client = request.client
    return f"address:{client.host if client else 'unknown'}"


class GraphQLEndpoint:
    """ASGI endpoint: authenticates the caller, opens the request's transaction and
    commits it in one place."""

    def __init__(
        self,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession],
        auth: AuthServices,
        rate_limiter: RateLimiter,
    ) -> None:
        self.view = PortfolioGraphQL(settings, rate_limiter)
        self.sessions = sessions
        self.auth = auth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.view(scope, receive, send)
            return
        authorization = Headers(scope=scope).get("authorization")
        async with transaction(self.sessions) as session:
            try:
                principal = await authenticate(
                    self.auth, session, authorization, self.view.anonymous
                )
            except InvalidToken as error:
                await unauthorized("invalid_token", error.description)(scope, receive, send)
                return
            state = scope.setdefault("state", {})
            state["session"] = session
            state["principal"] = principal
            await self.view(scope, receive, send)


__all__ = ["GraphQLEndpoint", "Response"]
