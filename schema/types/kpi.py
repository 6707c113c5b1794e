"""Kpi and KpiMeasurement: what business and technology both watch."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import strawberry

from auth.scopes import Scope
from domain import models
from domain.services import reads
from schema.permissions import guarded
from schema.types import filters
from schema.types.audit import AuditEvent
from schema.types.enums import (
    KpiDirection,
    KpiFreshness,
    KpiImportance,
    KpiStatus,
    SeriesBucket,
    TrendDirection,
)
from schema.types.fields import by_id_reference, edge_connection
from schema.types.node import CREATED_AT, UPDATED_AT, VERSION, Node, global_id, of_model
from schema.types.refs import InitiativeRef, KpiRef, ProductRef, TeamRef


@strawberry.type(description="One observed value of a KPI.")
class KpiMeasurement(Node):
    id: strawberry.ID = global_id("KpiMeasurement")
    is_type_of = of_model(models.KpiMeasurement)

    observed_at: datetime = strawberry.field(description="When the value was observed.")
    value: float = strawberry.field(description="The observed value, in the KPI's unit.")
    source: str = strawberry.field(description="The system that sent it, e.g. `datadog`.")
    external_id: str = strawberry.field(
        description="The sender's ID; (source, externalId) is unique, so re-sending is a no-op."
    )
    kpi = by_id_reference(models.Kpi, "kpi_id", KpiRef, "The KPI this measures.")


@strawberry.type(description="Measurements of one time bucket, aggregated in the database.")
class KpiSeriesPoint:
    bucket_start: datetime = strawberry.field(description="Start of the bucket (UTC).")
    average: float = strawberry.field(description="Mean of the values in the bucket.")
    minimum: float = strawberry.field(description="Smallest value in the bucket.")
    maximum: float = strawberry.field(description="Largest value in the bucket.")
    count: int = strawberry.field(description="Number of measurements in the bucket.")


@strawberry.type(
    description="The average of the last window (ending at the latest measurement) against the "
    "window before it."
)
class KpiTrend:
    window_days: int = strawberry.field(description="Length of each window in days.")
    current_average: float | None = strawberry.field(description="Average of the last window.")
    previous_average: float | None = strawberry.field(description="Average of the window before.")
    change: float | None = strawberry.field(description="currentAverage − previousAverage.")
    change_percent: float | None = strawberry.field(
        description="The change as a percentage of previousAverage."
    )
    direction: TrendDirection = strawberry.field(
        description="Improving or worsening, taking the KPI's direction into account."
    )


@strawberry.type(
    description="A key performance indicator shared by business and technology, with why each "
    "side cares."
)
class Kpi(Node):
    id: strawberry.ID = global_id("Kpi")
    is_type_of = of_model(models.Kpi)

    key: str = strawberry.field(description="Unique key, e.g. `PAY-UPTIME`.")
    name: str = strawberry.field(description="Display name.")
    description: str | None = strawberry.field(description="What is measured, and how.")
    unit: str = strawberry.field(description="Unit of the values, e.g. `%` or `ms`.")
    direction: KpiDirection = strawberry.field(description="Which way is better.")
    target: float | None = strawberry.field(description="The value aimed for.")
    warning_threshold: float | None = strawberry.field(
        description="At or beyond this value (in the bad direction) the KPI is WARNING."
    )
    critical_threshold: float | None = strawberry.field(
        description="At or beyond this value (in the bad direction) the KPI is CRITICAL."
    )
    it_relevance: str = strawberry.field(description="Why it matters to IT.")
    product_relevance: str = strawberry.field(description="Why it matters to product.")
    it_importance_level: KpiImportance | None = strawberry.field(
        description="How much it matters to IT, as a level beside `itRelevance`; null if "
        "unrated. Lists filter and sort by it."
    )
    product_importance_level: KpiImportance | None = strawberry.field(
        description="How much it matters to product, as a level beside `productRelevance`; "
        "null if unrated. Lists filter and sort by it."
    )
    expected_interval_seconds: int = strawberry.field(
        description="How often a measurement is expected, in seconds (60 to 31,622,400; a "
        "day unless set): a latest measurement older than this makes the KPI stale."
    )
    latest_value: float | None = strawberry.field(description="Value of the latest measurement.")
    status: KpiStatus = strawberry.field(
        description="Latest value against target and thresholds: ON_TARGET, OFF_TARGET (misses "
        "the target, better than warning), WARNING, CRITICAL or NO_DATA. ON_TARGET now means "
        "the target is met; it says nothing of how recent the value is (see `freshness`)."
    )
    freshness: KpiFreshness = strawberry.field(
        description="FRESH, STALE (the latest measurement is older than "
        "`expectedIntervalSeconds`, by the database's clock) or NO_DATA."
    )
    is_stale: bool = strawberry.field(
        description="True when the latest measurement is older than `expectedIntervalSeconds` "
        "or there is none: `freshness` is not FRESH."
    )
    version: int = strawberry.field(description=VERSION)
    created_at: datetime = strawberry.field(description=CREATED_AT)
    updated_at: datetime = strawberry.field(description=UPDATED_AT)

    @strawberry.field(
        **guarded("The latest measurement; null when there is none.", Scope.PORTFOLIO_READ)
    )
    async def latest(self, info: strawberry.Info) -> KpiMeasurement | None:
        return await info.context.latest_measurement().load(self.id)

    @strawberry.field(description="Whether the KPI is improving over a window of days.")
    async def trend(
        self,
        info: strawberry.Info,
        window_days: Annotated[
            int, strawberry.argument(description="Window length in days, 1 to 366.")
        ] = 30,
    ) -> KpiTrend:
        reads.check_trend_window(window_days)
        trend = await info.context.trend().load((self.id, window_days))
        return KpiTrend(
            window_days=trend.window_days,
            current_average=trend.current_average,
            previous_average=trend.previous_average,
            change=trend.change,
            change_percent=trend.change_percent,
            direction=trend.direction,
        )

    @strawberry.field(
        description="Measurements between `from` (inclusive) and `to` (exclusive), aggregated per "
        "bucket in the database; empty buckets are left out."
    )
    async def series(
        self,
        info: strawberry.Info,
        from_: Annotated[
            datetime, strawberry.argument(name="from", description="Start, inclusive.")
        ],
        to: Annotated[datetime, strawberry.argument(description="End, exclusive.")],
        bucket: Annotated[
            SeriesBucket, strawberry.argument(description="Bucket width; DAY by default.")
        ] = reads.SeriesBucket.DAY,
    ) -> list[KpiSeriesPoint]:
        reads.check_series_range(from_, to, bucket)
        points = await info.context.series().load((self.id, from_, to, bucket))
        return [
            KpiSeriesPoint(
                bucket_start=p.bucket_start,
                average=p.average,
                minimum=p.minimum,
                maximum=p.maximum,
                count=p.count,
            )
            for p in points
        ]

    product = by_id_reference(models.Product, "product_id", ProductRef, "The product it measures.")
    owner_team = by_id_reference(models.Team, "owner_team_id", TeamRef, "The team that owns it.")
    measurements = edge_connection(
        "kpi.measurements",
        KpiMeasurement,
        filters.KpiMeasurementFilter,
        filters.KpiMeasurementOrder,
        "Its measurements; filter by time range.",
    )
    initiatives = edge_connection(
        "kpi.initiatives",
        InitiativeRef,
        filters.InitiativeFilter,
        filters.InitiativeOrder,
        "Initiatives that aim to move it.",
    )

    history = edge_connection(
        "Kpi.history",
        AuditEvent,
        filters.AuditEventFilter,
        filters.AuditEventOrder,
        "Changes of this KPI (including measurement batches), oldest first by default.",
        Scope.AUDIT_READ,
    )
