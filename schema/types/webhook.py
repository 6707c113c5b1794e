"""Webhook endpoints and their delivery log, for administrators (admin:webhooks)."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Annotated, Any

import strawberry
from sqlalchemy import ColumnElement, select
from sqlalchemy.ext.asyncio import AsyncSession

from domain.models.webhooks import WebhookAttempt as AttemptRow
from domain.models.webhooks import WebhookDelivery as DeliveryRow
from schema.ids import encode_id

MAX_DELIVERIES = 100


@strawberry.type(description="One POST of a delivery.")
class WebhookAttempt:
    attempted_at: datetime = strawberry.field(description="When it was sent.")
    status_code: int | None = strawberry.field(
        description="The receiver's HTTP status; null when no answer came (timeout, refused)."
    )
    latency_ms: int = strawberry.field(description="Time to the answer or the failure, in ms.")
    error: str | None = strawberry.field(description="Why it failed; null on a 2xx.")


@strawberry.type(description="One event for one webhook, with every attempt to send it.")
class WebhookDelivery:
    id: strawberry.ID = strawberry.field(description="Global ID (for `redeliverWebhook`).")
    webhook_id: str = strawberry.field(
        description="The `webhook-id` header: the same on every attempt and redelivery."
    )
    event_type: str = strawberry.field(description="The event, e.g. `initiative.created`.")
    status: str = strawberry.field(description="`pending`, `delivered` or `failed`.")
    attempts: int = strawberry.field(description="Attempts since it was queued or redelivered.")
    created_at: datetime = strawberry.field(description="When the change committed.")
    delivered_at: datetime | None = strawberry.field(description="When a 2xx was received.")
    log: list[WebhookAttempt] = strawberry.field(description="Every attempt, oldest first.")


def _delivery_of(row: DeliveryRow, log: list[WebhookAttempt]) -> WebhookDelivery:
    return WebhookDelivery(
        id=strawberry.ID(encode_id("WebhookDelivery", row.id)),
        webhook_id=row.message_id,
        event_type=row.event_type,
        status=row.status,
        attempts=row.attempts,
        created_at=row.created_at,
        delivered_at=row.delivered_at,
        log=log,
    )


async def deliveries_where(
    session: AsyncSession, condition: ColumnElement[bool], last: int
) -> list[WebhookDelivery]:
    """The latest ``last`` deliveries meeting ``condition``, oldest first, with their
    attempts: two statements."""
    rows = (
        await session.scalars(
            select(DeliveryRow).where(condition).order_by(DeliveryRow.id.desc()).limit(last)
        )
    ).all()
    logs: dict[int, list[WebhookAttempt]] = defaultdict(list)
    if rows:
        attempts = await session.scalars(
            select(AttemptRow)
            .where(AttemptRow.delivery_id.in_([row.id for row in rows]))
            .order_by(AttemptRow.id)
        )
        for attempt in attempts:
            logs[attempt.delivery_id].append(
                WebhookAttempt(
                    attempted_at=attempt.attempted_at,
                    status_code=attempt.status_code,
                    latency_ms=attempt.latency_ms,
                    error=attempt.error,
                )
            )
    return [_delivery_of(row, logs[row.id]) for row in reversed(rows)]


@strawberry.type(description="Where changes are POSTed, signed (see docs/api.md, Webhooks).")
class Webhook:
    pk: strawberry.Private[int]
    id: strawberry.ID = strawberry.field(description="Global ID.")
    url: str = strawberry.field(description="The target URL.")
    event_types: list[str] = strawberry.field(description="The events it receives.")
    query: str | None = strawberry.field(
        description="The GraphQL query whose answer is each body's `data`; null: the changed "
        "row's type and global ID."
    )
    active: bool = strawberry.field(
        description="False once disabled after repeated failures; nothing is sent then.",
        metadata={"stored_as": "is_active"},  # how the audit trail names it
    )
    consecutive_failures: int = strawberry.field(description="Failed attempts since a success.")
    disabled_at: datetime | None = strawberry.field(description="When it was disabled.")
    created_at: datetime = strawberry.field(description="When it was registered.")

    @strawberry.field(description="Its latest deliveries, oldest first, with their attempts.")
    async def deliveries(
        self,
        info: strawberry.Info,
        last: Annotated[
            int, strawberry.argument(description=f"How many (at most {MAX_DELIVERIES}).")
        ] = 20,
    ) -> list[WebhookDelivery]:
        count = max(0, min(last, MAX_DELIVERIES))
        return await info.context.run(
            lambda s: deliveries_where(s, DeliveryRow.endpoint_id == self.pk, count)
        )


def webhook_of(row: Any) -> Webhook:
    return Webhook(
        pk=row.id,
        id=strawberry.ID(encode_id("Webhook", row.id)),
        url=row.url,
        event_types=list(row.event_types),
        query=row.query,
        active=row.is_active,
        consecutive_failures=row.consecutive_failures,
        disabled_at=row.disabled_at,
        created_at=row.created_at,
    )
