"""``webhooks``: the endpoints, oldest first, each with its latest deliveries and their
attempts, as ``schema.types.webhook`` reads them (``every_endpoint``,
``deliveries_where``): the same rows, orders and page cap, in one statement.

These types are not a model's (``webhook_of`` copies the row), so each field names its
column here; a field not listed makes the compiler decline, as for any other type."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from graphql import FieldNode
from sqlalchemy import Select, select

from domain.models.webhooks import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from schema.compiled import jsontext
from schema.compiled.selection import Unsupported
from schema.compiled.values import column_value, global_id
from schema.types.webhook import MAX_DELIVERIES

if TYPE_CHECKING:
    from schema.compiled.compiler import Compiler

# GraphQL field -> its value on a row (an alias of the type's table).
Fields = dict[str, Callable[[Any], Any]]

_ENDPOINT: Fields = {
    "id": lambda row: global_id("Webhook", row.id),
    "url": lambda row: row.url,
    "eventTypes": lambda row: row.event_types,
    "query": lambda row: row.query,
    "active": lambda row: row.is_active,
    "consecutiveFailures": lambda row: row.consecutive_failures,
    "disabledAt": lambda row: column_value(row.disabled_at),
    "createdAt": lambda row: column_value(row.created_at),
}
_DELIVERY: Fields = {
    "id": lambda row: global_id("WebhookDelivery", row.id),
    "webhookId": lambda row: row.message_id,
    "eventType": lambda row: row.event_type,
    "status": lambda row: row.status,
    "attempts": lambda row: row.attempts,
    "createdAt": lambda row: column_value(row.created_at),
    "deliveredAt": lambda row: column_value(row.delivered_at),
}
_ATTEMPT: Fields = {
    "attemptedAt": lambda row: column_value(row.attempted_at),
    "statusCode": lambda row: row.status_code,
    "latencyMs": lambda row: row.latency_ms,
    "error": lambda row: row.error,
}


def webhooks(c: Compiler, node: FieldNode) -> Select[Any]:
    endpoint = c.alias(WebhookEndpoint)
    item = _object(c, "Webhook", endpoint, node, _ENDPOINT, {"deliveries": _deliveries})
    return select(jsontext.json_array(item, endpoint.id)).select_from(endpoint)


def _deliveries(c: Compiler, endpoint: Any, node: FieldNode, definition: Any, field: Any) -> Any:
    """The latest ``last`` (0 to ``MAX_DELIVERIES``), oldest first."""
    count = max(0, min(c.arguments(definition, field, node)["last"], MAX_DELIVERIES))
    delivery = c.alias(WebhookDelivery)
    shown = [delivery.id, delivery.message_id, delivery.event_type, delivery.status]
    shown += [delivery.attempts, delivery.created_at, delivery.delivered_at]
    latest = (
        select(*shown)  # not the payload: the subquery keeps what it selects
        .where(delivery.endpoint_id == endpoint.id)
        .order_by(delivery.id.desc())
        .limit(count)
        .correlate(endpoint)
        .subquery()
    )
    row = latest.c
    item = _object(c, "WebhookDelivery", row, node, _DELIVERY, {"log": _log})
    return select(jsontext.json_array(item, row.id)).select_from(latest).scalar_subquery()


def _log(c: Compiler, delivery: Any, node: FieldNode, definition: Any, field: Any) -> Any:
    attempt = c.alias(WebhookAttempt)
    item = _object(c, "WebhookAttempt", attempt, node, _ATTEMPT, {})
    return (
        select(jsontext.json_array(item, attempt.id))
        .select_from(attempt)
        .where(attempt.delivery_id == delivery.id)
        .scalar_subquery()
    )


def _object(
    c: Compiler,
    type_name: str,
    row: Any,
    node: FieldNode,
    fields: Fields,
    nested: dict[str, Callable[..., Any]],
) -> Any:
    def value(child: FieldNode) -> Any:
        name = child.name.value
        definition, field = c.definition(type_name, child)  # its scopes, as declared
        if name in nested:
            return nested[name](c, row, child, definition, field)
        if name in fields and not child.selection_set:
            return fields[name](row)
        raise Unsupported(f"{type_name}.{name}")

    return jsontext.json_object(c.pairs(type_name, node, value))
