"""Webhook bodies chosen by a GraphQL document (Saleor's model): an endpoint registered
with a ``query`` gets, in ``data``, that query's answer for the changed row (its global
ID as ``$id``), resolved through the same schema and guards as any request, with the
scopes its owner holds when the delivery is first sent. A field the owner may not read
is null and its FORBIDDEN error is in ``errors``, exactly as over HTTP.

The body is rendered once, before the first attempt, and stored: every retry sends the
same bytes (``domain.webhooks.worker``)."""

from __future__ import annotations

import orjson
import strawberry
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from auth.principal import Principal
from domain.ratelimit import LocalRateLimiter
from domain.settings import Settings
from domain.webhooks.worker import Claimed
from schema.build import schema_for
from schema.context import Context
from schema.subscriptions.context import NoResponse

# The owner's effective scopes: a user's through its roles, a client's own; none once
# disabled (its deliveries then carry FORBIDDEN errors, never data).
_OWNER_SCOPES = text(
    """
    SELECT coalesce(
      (SELECT array_agg(DISTINCT scope) FROM users u
         JOIN role_grants g ON g.user_id = u.id JOIN roles r ON r.id = g.role_id,
              unnest(r.scopes) AS scope
        WHERE u.id = :user AND u.is_active),
      (SELECT scopes FROM oauth_clients WHERE id = :client AND is_active),
      '{}')
    """
)


class PayloadRenderer:
    """Renders the bodies of deliveries whose endpoint has a query."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], settings: Settings) -> None:
        self.sessions = sessions
        self.settings = settings
        self.schema: strawberry.Schema = schema_for(settings)
        self.limiter = LocalRateLimiter(
            settings.rate_limit_points, settings.rate_limit_window_seconds
        )

    async def __call__(self, delivery: Claimed) -> str:
        assert delivery.query is not None
        envelope = orjson.loads(delivery.payload)
        async with self.sessions() as session:
            scopes = await session.scalar(
                _OWNER_SCOPES, {"user": delivery.owner_user_id, "client": delivery.owner_client_id}
            )
            principal = Principal(
                scopes=frozenset(scopes or ()),
                user_id=delivery.owner_user_id,
                client_pk=delivery.owner_client_id,
                authenticated=True,
            )
            context = Context(
                session=session,
                principal=principal,
                settings=self.settings,
                response=NoResponse(),
                compiled=False,
                rate_limiter=self.limiter,
                rate_limit_key=f"webhook:{delivery.endpoint_id}",
            )
            try:
                result = await self.schema.execute(
                    delivery.query,
                    variable_values={"id": envelope["data"]["id"]},
                    context_value=context,
                )
            finally:
                await context.finish()
        envelope["data"] = result.data
        if result.errors:
            envelope["errors"] = [error.formatted for error in result.errors]
        return orjson.dumps(envelope).decode()
