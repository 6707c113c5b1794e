"""The outbox's state for the metrics: one statement over the pending deliveries (the
partial index ``ix_webhook_deliveries_due`` holds exactly them)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

_STATE = text(
    """
    SELECT coalesce(extract(epoch FROM now() - min(d.next_attempt_at)
                                       FILTER (WHERE d.next_attempt_at <= now())), 0),
           coalesce(extract(epoch FROM now() - min(d.created_at)), 0),
           count(d.id),
           (SELECT count(*) FROM webhook_endpoints WHERE NOT is_active)
      FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id
     WHERE d.status = 'pending' AND e.is_active
    """
)


@dataclass(frozen=True)
class OutboxState:
    # Seconds since the oldest delivery due now became due: how far workers are behind.
    lag_seconds: float
    # Seconds since the oldest pending delivery's change committed, retries included.
    oldest_seconds: float
    pending: int
    endpoints_inactive: int


async def outbox_state(engine: AsyncEngine) -> OutboxState:
    async with engine.connect() as connection:
        lag, oldest, pending, inactive = (await connection.execute(_STATE)).one()
    return OutboxState(max(0.0, float(lag)), max(0.0, float(oldest)), pending, inactive)
