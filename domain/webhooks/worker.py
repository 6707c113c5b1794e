"""The delivery worker: claims due deliveries from the outbox, POSTs them signed, and
records each attempt.

A claim is a short transaction of its own (``FOR UPDATE SKIP LOCKED``, so workers in
several processes never take the same row) that counts the attempt and pushes the
delivery's ``next_attempt_at`` past the attempt's timeout: a lease. Nothing is held
while the request is in flight. A worker killed mid-delivery leaves the row pending; it
is claimed again when the lease ends and sent under the same ``webhook-id``, so
receivers can drop duplicates (delivery is at least once).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace

import httpx
import structlog
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from domain.settings import Settings
from domain.webhooks import signing
from domain.webhooks.targets import TargetRefused, check_target

log = structlog.get_logger(__name__)

# Past the attempt's timeout, before another worker may take the delivery again.
LEASE_MARGIN_SECONDS = 30.0
MAX_ERROR_CHARS = 500

_CLAIM = text(
    """
    WITH due AS (
      SELECT d.id FROM webhook_deliveries d
        JOIN webhook_endpoints e ON e.id = d.endpoint_id
       WHERE d.status = 'pending' AND d.next_attempt_at <= now() AND e.is_active
       ORDER BY d.next_attempt_at, d.id
       LIMIT :limit
         FOR UPDATE OF d SKIP LOCKED)
    UPDATE webhook_deliveries d
       SET attempts = d.attempts + 1,
           next_attempt_at = now() + make_interval(secs => :lease)
      FROM due, webhook_endpoints e
     WHERE d.id = due.id AND e.id = d.endpoint_id
    RETURNING d.id, d.message_id, d.payload, d.attempts, e.id, e.url, e.secret,
              CASE WHEN d.rendered THEN NULL ELSE e.query END,
              e.owner_user_id, e.owner_client_id,
              CASE WHEN e.previous_secret_expires_at > now() THEN e.previous_secret END
    """
)
_ATTEMPT = text(
    "INSERT INTO webhook_attempts (delivery_id, status_code, latency_ms, error)"
    " VALUES (:delivery, :status_code, :latency_ms, :error)"
)
_DELIVERED = text(
    "UPDATE webhook_deliveries SET status = 'delivered', delivered_at = now() WHERE id = :id"
)
_SUCCEEDED = text("UPDATE webhook_endpoints SET consecutive_failures = 0 WHERE id = :id")
_RENDERED = text("UPDATE webhook_deliveries SET payload = :payload, rendered = true WHERE id = :id")
_RETRY = text(
    "UPDATE webhook_deliveries SET status = CASE WHEN attempts >= :max THEN 'failed'"
    " ELSE 'pending' END, next_attempt_at = now() + make_interval(secs => :delay)"
    " WHERE id = :id"
)
_FAILED = text(
    "UPDATE webhook_endpoints SET consecutive_failures = consecutive_failures + 1,"
    " is_active = consecutive_failures + 1 < :limit,"
    " disabled_at = CASE WHEN consecutive_failures + 1 >= :limit THEN now() END"
    " WHERE id = :id AND is_active RETURNING is_active"
)


@dataclass(frozen=True)
class Claimed:
    id: int
    message_id: str
    payload: str
    attempt: int
    endpoint_id: int
    url: str
    secret: str
    # The endpoint's GraphQL document, while the body is still to be rendered from it.
    query: str | None = None
    owner_user_id: int | None = None
    owner_client_id: int | None = None
    # The secret before a rotation, while it still signs too.
    previous_secret: str | None = None


# Renders a delivery's body from its endpoint's query (``schema.webhook_payloads``: the
# schema is a floor above this one, so the composition root passes it in).
Render = Callable[[Claimed], Awaitable[str]]


@dataclass(frozen=True)
class Outcome:
    status_code: int | None
    latency_ms: int
    error: str | None

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def backoff_seconds(attempt: int, settings: Settings) -> float:
    """Wait after failed attempt ``attempt`` (1-based): exponential, capped, and with
    jitter (between half and all of it) so that retries of one outage spread out."""
    ceiling = min(
        settings.webhook_backoff_seconds * 2 ** (attempt - 1), settings.webhook_backoff_max_seconds
    )
    return ceiling / 2 + random.uniform(0, ceiling / 2)


async def claim(engine: AsyncEngine, settings: Settings) -> list[Claimed]:
    lease = settings.webhook_timeout_seconds + LEASE_MARGIN_SECONDS
    async with engine.begin() as connection:
        rows = await connection.execute(
            _CLAIM, {"limit": settings.webhook_batch_size, "lease": lease}
        )
        return [Claimed(*row) for row in rows]


async def send(client: httpx.AsyncClient, delivery: Claimed, settings: Settings) -> Outcome:
    body = delivery.payload.encode()
    started = time.perf_counter()
    try:
        await check_target(delivery.url, settings)
        secrets = [delivery.secret] + (
            [delivery.previous_secret] if delivery.previous_secret else []
        )
        headers = signing.headers(secrets, delivery.message_id, int(time.time()), body)
        response = await client.post(
            delivery.url,
            content=body,
            headers=headers,
            timeout=settings.webhook_timeout_seconds,
            follow_redirects=False,
        )
        status_code: int | None = response.status_code
        error = None if 200 <= response.status_code < 300 else f"HTTP {response.status_code}"
    except TargetRefused as refused:
        status_code, error = None, f"refused: {refused}"
    except httpx.HTTPError as failure:
        status_code, error = None, f"{type(failure).__name__}: {failure}"
    latency_ms = round((time.perf_counter() - started) * 1000)
    return Outcome(status_code, latency_ms, error[:MAX_ERROR_CHARS] if error else None)


async def record(
    engine: AsyncEngine, delivery: Claimed, outcome: Outcome, settings: Settings
) -> None:
    async with engine.begin() as connection:
        await connection.execute(
            _ATTEMPT,
            {
                "delivery": delivery.id,
                "status_code": outcome.status_code,
                "latency_ms": outcome.latency_ms,
                "error": outcome.error,
            },
        )
        if outcome.ok:
            await connection.execute(_DELIVERED, {"id": delivery.id})
            await connection.execute(_SUCCEEDED, {"id": delivery.endpoint_id})
            return
        await connection.execute(
            _RETRY,
            {
                "id": delivery.id,
                "max": settings.webhook_max_attempts,
                "delay": backoff_seconds(delivery.attempt, settings),
            },
        )
        still_active = (
            await connection.execute(
                _FAILED,
                {"id": delivery.endpoint_id, "limit": settings.webhook_disable_after_failures},
            )
        ).scalar_one_or_none()
    if still_active is False:
        log.warning(
            "webhook_endpoint_disabled",
            endpoint=delivery.endpoint_id,
            failures=settings.webhook_disable_after_failures,
        )


async def rendered(engine: AsyncEngine, delivery: Claimed, render: Render | None) -> Claimed:
    """The delivery with its body rendered from its endpoint's query, stored first so
    that every attempt sends the same bytes."""
    if delivery.query is None:
        return delivery
    if render is None:
        raise RuntimeError("a webhook with a query needs a renderer")
    payload = await render(delivery)
    async with engine.begin() as connection:
        await connection.execute(_RENDERED, {"id": delivery.id, "payload": payload})
    return replace(delivery, payload=payload, query=None)


async def deliver_due(
    engine: AsyncEngine,
    client: httpx.AsyncClient,
    settings: Settings,
    render: Render | None = None,
) -> int:
    """Claim the deliveries due now (one batch), send them at once, record the outcomes;
    the number of deliveries attempted."""
    claimed = await claim(engine, settings)

    async def one(delivery: Claimed) -> None:
        try:
            delivery = await rendered(engine, delivery, render)
        except Exception as error:  # any failure to render is this attempt's, logged
            outcome = Outcome(None, 0, f"rendering failed: {type(error).__name__}: {error}"[:500])
        else:
            outcome = await send(client, delivery, settings)
        await record(engine, delivery, outcome, settings)
        log.info(
            "webhook_attempt",
            delivery=delivery.message_id,
            attempt=delivery.attempt,
            status_code=outcome.status_code,
            latency_ms=outcome.latency_ms,
            error=outcome.error,
        )

    await asyncio.gather(*(one(delivery) for delivery in claimed))
    return len(claimed)


async def run(
    engine: AsyncEngine, settings: Settings, render: Render | None = None, *, once: bool = False
) -> int:
    """Deliver until cancelled (``once``: until nothing is due); the deliveries attempted."""
    total = 0
    async with httpx.AsyncClient(trust_env=False) as client:
        while True:
            attempted = await deliver_due(engine, client, settings, render)
            total += attempted
            if attempted == 0:
                if once:
                    return total
                # Polling when idle: nothing is lost between two polls, only delayed.
                await asyncio.sleep(settings.webhook_poll_seconds)
