"""What the app counts for Prometheus: one registry per app, so tests and several apps
in a process do not collide."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from starlette.responses import Response

from domain.database import DriverPool


class Metrics:
    """One registry per app, so tests and several apps in a process do not collide."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = HTTPRequests(self.registry)
        self.errors = Counter(
            "portfolio_graphql_errors", "GraphQL errors by code.", ["code"], registry=self.registry
        )
        self.cost = Counter(
            "portfolio_query_cost_points", "Query cost points charged.", registry=self.registry
        )
        self.pool_in_use = Gauge(
            "portfolio_db_pool_checked_out", "Database connections in use.", registry=self.registry
        )
        self.pool_size = Gauge(
            "portfolio_db_pool_size", "Database connections open.", registry=self.registry
        )
        # The driver pool of known reads and updates (``domain.database.DriverPool``),
        # beside the engine's: its own connections, its own limit.
        self.read_pool_in_use = Gauge(
            "portfolio_db_read_pool_in_use",
            "Driver pool connections handed out (or opening, or closing).",
            registry=self.registry,
        )
        self.read_pool_idle = Gauge(
            "portfolio_db_read_pool_idle",
            "Driver pool connections open and idle.",
            registry=self.registry,
        )
        self.read_pool_size = Gauge(
            "portfolio_db_read_pool_size",
            "Driver pool connections that may be open at once.",
            registry=self.registry,
        )
        self.read_pool_waiting = Gauge(
            "portfolio_db_read_pool_waiting",
            "Known reads and updates waiting for a driver pool connection.",
            registry=self.registry,
        )
        self.large_requests_waiting = Gauge(
            "portfolio_large_requests_waiting",
            "Requests with a large body waiting for their turn.",
            registry=self.registry,
        )
        self.requests_in_flight = Gauge(
            "portfolio_requests_in_flight",
            "Requests admitted and not yet answered (health and metrics not counted).",
            registry=self.registry,
        )
        self.requests_waiting = Gauge(
            "portfolio_requests_waiting",
            "Requests waiting in line to be admitted.",
            registry=self.registry,
        )
        self.requests_shed = Counter(
            "portfolio_requests_shed",
            "Requests answered 503 OVERLOADED at once: every place and the line were taken.",
            registry=self.registry,
        )

        self.webhooks = WebhookMetrics(self.registry)

    def observe_read_pool(self, reads: Any) -> None:
        """The driver pool's state, at a scrape. An app whose reads run on its sessions'
        one connection (tests: ``BoundReads``) has no pool: nothing is set."""
        if isinstance(reads, DriverPool):
            self.read_pool_in_use.set(reads.in_use)
            self.read_pool_idle.set(reads.idle)
            self.read_pool_size.set(reads.size)
            self.read_pool_waiting.set(reads.waiting)

    def watch_response_cache(self, cache: Any) -> None:
        """Export the response cache's state at each scrape (nothing per request)."""
        self.registry.register(_ResponseCacheCollector(cache))

    def watch_subscriptions(self, hub: Any) -> None:
        """Export the subscriptions' state at each scrape (``schema.subscriptions.hub``)."""
        self.registry.register(_SubscriptionsCollector(hub))

    def render(self) -> Response:
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)


class WebhookMetrics:
    """The delivery worker's counts (``domain.webhooks.worker``), and the outbox's state,
    read from the database at each scrape (``observe_outbox``): a replica whose worker is
    off still reports the lag of the others."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.attempts = Counter(
            "portfolio_webhook_attempts",
            "Webhook attempts by outcome: delivered (2xx), retrying (failed, another attempt "
            "is due later) or failed (failed, its last attempt).",
            ["outcome"],
            registry=registry,
        )
        self.failures = Counter(
            "portfolio_webhook_failures",
            "Failed webhook attempts by reason: status (a non-2xx answer), network (no "
            "answer in time or no connection), refused (target not allowed), render "
            "(its query failed), secret (not to be opened with the configured keys).",
            ["reason"],
            registry=registry,
        )
        self.latency = Histogram(
            "portfolio_webhook_attempt_seconds",
            "Time from sending a webhook to its answer (or failure).",
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=registry,
        )
        self.disabled = Counter(
            "portfolio_webhook_endpoints_disabled",
            "Webhook endpoints this process disabled after repeated failures.",
            registry=registry,
        )
        self.outbox_lag = Gauge(
            "portfolio_webhook_outbox_lag_seconds",
            "Age of the oldest delivery due now and not yet sent (0 when none): how far the "
            "workers are behind.",
            registry=registry,
        )
        self.outbox_oldest = Gauge(
            "portfolio_webhook_outbox_oldest_seconds",
            "Age of the oldest undelivered event of an active endpoint, retries included.",
            registry=registry,
        )
        self.outbox_pending = Gauge(
            "portfolio_webhook_outbox_pending",
            "Deliveries waiting to be sent to active endpoints.",
            registry=registry,
        )
        self.endpoints_inactive = Gauge(
            "portfolio_webhook_endpoints_inactive",
            "Webhook endpoints disabled (after repeated failures) and not enabled again.",
            registry=registry,
        )

    def attempted(self, outcome: str, failure: str | None, seconds: float | None) -> None:
        self.attempts.labels(outcome).inc()
        if failure is not None:
            self.failures.labels(failure).inc()
        if seconds is not None:
            self.latency.observe(seconds)

    def observe_outbox(
        self, lag: float, oldest: float, pending: int, endpoints_inactive: int
    ) -> None:
        self.outbox_lag.set(lag)
        self.outbox_oldest.set(oldest)
        self.outbox_pending.set(pending)
        self.endpoints_inactive.set(endpoints_inactive)


class HTTPRequests(Collector):
    """Requests by path and status, and the time they took by path: counted in plain
    numbers (a request costs two lookups and a bisection) and exported at each scrape.
    prometheus_client's Counter and Histogram take a lock for each value they add to, on
    every request: the event loop is the only writer here."""

    BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

    def __init__(self, registry: CollectorRegistry) -> None:
        self._counts: dict[tuple[str, int], int] = {}
        # Per path: requests per bucket (the last: past every bound), then the sum.
        self._times: dict[str, tuple[list[int], list[float]]] = {}
        registry.register(self)

    def observe(self, path: str, status: int, seconds: float) -> None:
        counts = self._counts
        key = (path, status)
        counts[key] = counts.get(key, 0) + 1
        times = self._times.get(path)
        if times is None:
            times = self._times[path] = ([0] * (len(self.BUCKETS) + 1), [0.0])
        times[0][bisect_left(self.BUCKETS, seconds)] += 1  # the first bound >= seconds
        times[1][0] += seconds

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "portfolio_http_requests", "HTTP requests.", labels=["path", "status"]
        )
        for (path, status), count in self._counts.items():
            requests.add_metric([path, str(status)], count)
        yield requests
        latency = HistogramMetricFamily(
            "portfolio_http_request_seconds", "Time to answer a request.", labels=["path"]
        )
        for path, (counts, total) in self._times.items():
            cumulative, buckets = 0, []
            for bound, count in zip((*map(str, self.BUCKETS), "+Inf"), counts, strict=True):
                cumulative += count
                buckets.append((bound, cumulative))
            latency.add_metric([path], buckets, sum_value=total[0])
        yield latency


class _ResponseCacheCollector(Collector):
    def __init__(self, cache: Any) -> None:
        self.cache = cache

    def collect(self) -> Iterator[Metric]:
        cache = self.cache
        yield GaugeMetricFamily(
            "portfolio_response_cache_listening",
            "1 while the database's changes are heard, so answers may be kept.",
            value=int(cache.listening),
        )
        yield GaugeMetricFamily(
            "portfolio_response_cache_entries", "Answers kept.", value=len(cache)
        )
        yield GaugeMetricFamily(
            "portfolio_response_cache_chars",
            "Size of the answers kept: characters of JSON plus an estimate per answer.",
            value=cache.chars,
        )
        answers = CounterMetricFamily(
            "portfolio_response_cache_answers",
            "Known reads asked while answers may be kept, by whether memory answered.",
            labels=["result"],
        )
        answers.add_metric(["hit"], cache.hits)
        answers.add_metric(["miss"], cache.misses)
        yield answers


class _SubscriptionsCollector(Collector):
    def __init__(self, hub: Any) -> None:
        self.hub = hub

    def collect(self) -> Iterator[Metric]:
        hub = self.hub
        yield GaugeMetricFamily(
            "portfolio_subscriptions_open", "Subscriptions open.", value=len(hub.subscribers)
        )
        yield GaugeMetricFamily(
            "portfolio_subscription_connections",
            "WebSocket connections acknowledged.",
            value=len(hub.connections),
        )
        yield CounterMetricFamily(
            "portfolio_subscription_changes",
            "Notifications handed to subscribers (one per subscriber it concerned).",
            value=hub.handed,
        )
        yield CounterMetricFamily(
            "portfolio_subscribers_too_slow",
            "Subscribers disconnected because their queue overflowed (close code 4413).",
            value=hub.too_slow,
        )
