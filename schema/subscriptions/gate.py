"""Which transport runs which operation: subscriptions over WebSocket only, and
nothing else there.

A query or mutation over WebSocket would bypass the HTTP endpoint's transaction (and
its commit); a subscription over HTTP (strawberry can stream one as server-sent events)
would have no connection to hold it. Also: strawberry starts a subscription even when
an ``on_execute`` hook refused it (the limits set a result); here the refusal is
raised instead, so the client gets it as the protocol's ``error`` message.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from graphql import GraphQLError
from strawberry.extensions import SchemaExtension
from strawberry.types.graphql import OperationType

from schema.subscriptions.context import SubscriptionContext


def _refusal(message: str) -> GraphQLError:
    return GraphQLError(message, extensions={"code": "OPERATION_NOT_SUPPORTED"})


class SubscriptionGate(SchemaExtension):
    """After the limits (which measure and charge the cost), before the compiled path."""

    async def on_execute(self) -> AsyncIterator[None]:
        execution = self.execution_context
        over_websocket = isinstance(execution.context, SubscriptionContext)
        subscription = execution.operation_type is OperationType.SUBSCRIPTION
        if subscription and not over_websocket:
            raise _refusal("Subscriptions run over WebSocket (graphql-transport-ws) at /graphql.")
        if over_websocket and not subscription:
            raise _refusal(
                "Only subscriptions run over WebSocket; send queries and mutations over HTTP."
            )
        if subscription and execution.result is not None and execution.result.errors:
            raise execution.result.errors[0]  # refused by the limits
        yield
