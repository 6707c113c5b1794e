"""The delivery worker: claims due deliveries from the outbox, POSTs them signed, and
records each attempt.

A claim is a short transaction of its own (``FOR UPDATE SKIP LOCKED``, so workers in
several processes never take the same row) that counts the attempt and pushes the
delivery's ``next_attempt_at`` past the attempt's timeout: a lease. Nothing is held
while the request is in flight. A worker killed mid-delivery leaves the row pending; it
is claimed again when the lease ends and sent under the same ``webhook-id``, so
receivers can drop duplicates (delivery is at least once).

The server runs a ``DeliveryWorker`` in each process (``PORTFOLIO_WEBHOOK_WORKER``),
woken by the database's change notifications as well as by a poll; stopping it lets
the deliveries in flight finish and be recorded (``stop``).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace

import httpx
import orjson
import structlog
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from domain.errors import InvalidInput
from domain.metrics import WebhookMetrics
from domain.settings import Settings
from domain.webhooks import signing
from domain.webhooks.events import WEBHOOK_DISABLED
from domain.webhooks.secrets import SecretBox, SecretUnavailable
from domain.webhooks.targets import Resolver, TargetRefused, check_url, resolve
from domain.webhooks.transport import webhook_client

log = structlog.get_logger(__name__)

# Past the attempt's timeout, before another worker may take the delivery again.
LEASE_MARGIN_SECONDS = 30.0
MAX_ERROR_CHARS = 500
# A stopping worker waits an attempt's timeout and this for its batch to be recorded.
STOP_MARGIN_SECONDS = 5.0

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
# Only when there is a count to reset: every delivery to an endpoint would otherwise
# update (and lock, one transaction after the other) the same endpoint row.
_SUCCEEDED = text(
    "UPDATE webhook_endpoints SET consecutive_failures = 0"
    " WHERE id = :id AND consecutive_failures <> 0"
)
_RENDERED = text("UPDATE webhook_deliveries SET payload = :payload, rendered = true WHERE id = :id")
_RETRY = text(
    "UPDATE webhook_deliveries SET status = CASE WHEN attempts >= :max THEN 'failed'"
    " ELSE 'pending' END, next_attempt_at = now() + make_interval(secs => :delay)"
    " WHERE id = :id RETURNING status"
)
_FAILED = text(
    "UPDATE webhook_endpoints SET consecutive_failures = consecutive_failures + 1,"
    " is_active = consecutive_failures + 1 < :limit,"
    " disabled_at = CASE WHEN consecutive_failures + 1 >= :limit THEN now() END"
    " WHERE id = :id AND is_active RETURNING is_active"
)
# An endpoint just disabled: the audit trail says so (no actor: the worker did it), and
# every other endpoint that asked for ``webhook.disabled`` is told, through the outbox
# like any event. Its body is fixed here (``rendered``): a query cannot address a webhook.
_DISABLED_AUDIT = text(
    "INSERT INTO audit_events (entity_type, entity_id, action, changes)"
    " VALUES ('Webhook', :id, 'UPDATE', CAST(:changes AS jsonb))"
)
_DISABLED_EVENT = text(
    """
    INSERT INTO webhook_deliveries (message_id, endpoint_id, event_type, payload, rendered)
    SELECT 'msg_' || replace(gen_random_uuid()::text, '-', ''), e.id, CAST(:event AS text),
           jsonb_build_object(
             'type', CAST(:event AS text),
             'timestamp', to_char(clock_timestamp() AT TIME ZONE 'UTC',
                                  'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
             'data', jsonb_build_object(
               '__typename', 'Webhook',
               'id', rtrim(translate(encode(convert_to('Webhook:' || CAST(:id AS text), 'UTF8'), 'base64'),
                                     E'+/\n', '-_'), '='),
               'url', CAST(:url AS text),
               'consecutiveFailures', CAST(:failures AS integer),
               'lastError', CAST(:error AS text)))::text,
           true
      FROM webhook_endpoints e
     WHERE e.is_active AND CAST(:event AS text) = ANY (e.event_types)
     ORDER BY e.id
    """
)
# Deliveries a stopping worker gave up waiting for: due again at once (their attempt
# stays counted), so another process sends them soon under the same ``webhook-id``.
_RELEASE = text(
    "UPDATE webhook_deliveries SET next_attempt_at = now()"
    " WHERE id = ANY (:ids) AND status = 'pending'"
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
    # Why it failed, for the metrics: status (a non-2xx answer), network, refused, render,
    # secret (it cannot be opened with the configured keys).
    failure: str | None = None

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
    """POST the delivery once. ``client`` must be a ``webhook_client``: it checks the
    addresses it connects to; the URL itself is checked here."""
    body = delivery.payload.encode()
    started = time.perf_counter()
    failure: str | None = None
    try:
        try:
            check_url(delivery.url, settings)
        except InvalidInput as invalid:
            raise TargetRefused(invalid.message) from None
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
        failure = None if error is None else "status"
    except TargetRefused as refused:
        status_code, error, failure = None, f"refused: {refused}", "refused"
    except (httpx.HTTPError, TimeoutError) as lost:
        status_code, error, failure = None, f"{type(lost).__name__}: {lost}", "network"
    latency_ms = round((time.perf_counter() - started) * 1000)
    return Outcome(status_code, latency_ms, error[:MAX_ERROR_CHARS] if error else None, failure)


async def record(
    engine: AsyncEngine,
    delivery: Claimed,
    outcome: Outcome,
    settings: Settings,
    metrics: WebhookMetrics | None = None,
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
        still_active: bool | None = None
        if outcome.ok:
            await connection.execute(_DELIVERED, {"id": delivery.id})
            await connection.execute(_SUCCEEDED, {"id": delivery.endpoint_id})
            status = "delivered"
        else:
            status = (
                await connection.execute(
                    _RETRY,
                    {
                        "id": delivery.id,
                        "max": settings.webhook_max_attempts,
                        "delay": backoff_seconds(delivery.attempt, settings),
                    },
                )
            ).scalar_one()
            still_active = (
                await connection.execute(
                    _FAILED,
                    {"id": delivery.endpoint_id, "limit": settings.webhook_disable_after_failures},
                )
            ).scalar_one_or_none()
            if still_active is False:
                await _tell_disabled(connection, delivery, outcome, settings)
    if metrics is not None:
        metrics.attempted(
            "delivered" if outcome.ok else "failed" if status == "failed" else "retrying",
            outcome.failure,
            None if outcome.failure in ("render", "secret") else outcome.latency_ms / 1000,
        )
        if not outcome.ok and still_active is False:
            metrics.disabled.inc()
    if not outcome.ok and still_active is False:
        log.warning(
            "webhook_endpoint_disabled",
            endpoint=delivery.endpoint_id,
            url=delivery.url,
            failures=settings.webhook_disable_after_failures,
            last_error=outcome.error,
        )


async def _tell_disabled(
    connection: AsyncConnection, delivery: Claimed, outcome: Outcome, settings: Settings
) -> None:
    failures = settings.webhook_disable_after_failures
    changes = {"is_active": {"before": True, "after": False}}
    await connection.execute(
        _DISABLED_AUDIT, {"id": delivery.endpoint_id, "changes": orjson.dumps(changes).decode()}
    )
    await connection.execute(
        _DISABLED_EVENT,
        {
            "event": WEBHOOK_DISABLED,
            "id": str(delivery.endpoint_id),
            "url": delivery.url,
            "failures": failures,
            "error": outcome.error,
        },
    )


def unsealed(delivery: Claimed, box: SecretBox) -> Claimed:
    """The delivery with its endpoint's secrets in clear, to sign with."""
    previous = delivery.previous_secret
    return replace(
        delivery,
        secret=box.open(delivery.secret),
        previous_secret=None if previous is None else box.open(previous),
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
    metrics: WebhookMetrics | None = None,
    in_flight: set[int] | None = None,
) -> int:
    """Claim the deliveries due now (one batch), send them at once, record the outcomes;
    the number of deliveries attempted. ``in_flight`` holds the ids claimed and not yet
    recorded (for a worker that must release them if stopped hard)."""
    claimed = await claim(engine, settings)
    if in_flight is not None:
        in_flight.update(delivery.id for delivery in claimed)

    box = SecretBox(settings)

    async def one(delivery: Claimed) -> None:
        try:
            delivery = unsealed(delivery, box)
        except SecretUnavailable as error:
            outcome = Outcome(None, 0, f"secret unavailable: {error}"[:MAX_ERROR_CHARS], "secret")
            await record(engine, delivery, outcome, settings, metrics)
            if in_flight is not None:
                in_flight.discard(delivery.id)
            log.error("webhook_secret_unavailable", endpoint=delivery.endpoint_id, error=str(error))
            return
        try:
            delivery = await rendered(engine, delivery, render)
        except Exception as error:  # any failure to render is this attempt's, logged
            reason = f"rendering failed: {type(error).__name__}: {error}"
            outcome = Outcome(None, 0, reason[:MAX_ERROR_CHARS], "render")
        else:
            outcome = await send(client, delivery, settings)
        await record(engine, delivery, outcome, settings, metrics)
        if in_flight is not None:
            in_flight.discard(delivery.id)
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


class DeliveryWorker:
    """The worker inside a server process: delivers until stopped, woken by ``wake``
    (the change feed calls it when a transaction commits a change) or every
    ``webhook_poll_seconds`` (retries come due without a notification)."""

    def __init__(
        self,
        engine: AsyncEngine,
        settings: Settings,
        render: Render | None = None,
        metrics: WebhookMetrics | None = None,
        resolver: Resolver = resolve,
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.render = render
        self.metrics = metrics
        self.resolver = resolver
        self.in_flight: set[int] = set()
        self._wake = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._deliver(), name="webhook-worker")
        log.info("webhook_worker_started")

    def wake(self, _payload: object = None) -> None:
        self._wake.set()

    async def _deliver(self) -> None:
        async with webhook_client(self.settings, self.resolver) as client:
            while not self._stopping:
                # Cleared before claiming: a change committed meanwhile wakes the next wait.
                self._wake.clear()
                try:
                    attempted = await deliver_due(
                        self.engine,
                        client,
                        self.settings,
                        self.render,
                        self.metrics,
                        self.in_flight,
                    )
                except (SQLAlchemyError, OSError) as error:  # the database is away: retry later
                    log.warning("webhook_worker_error", error=f"{type(error).__name__}: {error}")
                    attempted = 0
                except Exception:  # a bug must not stop every delivery of the process
                    log.exception("webhook_worker_failed")
                    attempted = 0
                if attempted == 0 and not self._stopping:
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(self.settings.webhook_poll_seconds):
                            await self._wake.wait()

    async def stop(self) -> None:
        """Claim nothing more; let the batch in flight be sent and recorded, for at most
        an attempt's timeout and a margin. Past that, the deliveries still in flight are
        released (due again at once, same ``webhook-id``) and the worker is cancelled."""
        if self._task is None:
            return
        self._stopping = True
        self._wake.set()
        grace = self.settings.webhook_timeout_seconds + STOP_MARGIN_SECONDS
        try:
            await asyncio.wait_for(asyncio.shield(self._task), grace)
        except TimeoutError:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            if self.in_flight:
                async with self.engine.begin() as connection:
                    await connection.execute(_RELEASE, {"ids": sorted(self.in_flight)})
                log.warning("webhook_worker_released", deliveries=len(self.in_flight))
        log.info("webhook_worker_stopped")


async def run(
    engine: AsyncEngine, settings: Settings, render: Render | None = None, *, once: bool = False
) -> int:
    """Deliver until cancelled (``once``: until nothing is due); the deliveries attempted."""
    total = 0
    async with webhook_client(settings) as client:
        while True:
            attempted = await deliver_due(engine, client, settings, render)
            total += attempted
            if attempted == 0:
                if once:
                    return total
                # Polling when idle: nothing is lost between two polls, only delayed.
                await asyncio.sleep(settings.webhook_poll_seconds)
