"""Batched reads: every function answers for many parents in one statement.

These are what the per-request dataloaders call; none of them knows GraphQL.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, TypeVar

from sqlalchemy import (
    ColumnElement,
    Double,
    Numeric,
    Select,
    Text,
    case,
    cast,
    func,
    literal_column,
    null,
    or_,
    select,
    true,
)
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from domain.errors import InvalidInput
from domain.models import (
    AuditEvent,
    Initiative,
    Kpi,
    KpiMeasurement,
    Product,
    Team,
    TechnicalConstraint,
    constraint_initiatives,
    constraint_products,
    initiative_kpis,
    initiative_products,
)
from domain.models.computed import constraint_blocks
from domain.services.pagination import Ordering, Page, PageRequest, fetch_pages

T = TypeVar("T")


def active(model: Any) -> ColumnElement[bool]:
    """Rows not archived (rows that cannot be archived are always active)."""
    archived_at = getattr(model, "archived_at", None)
    return archived_at.is_(None) if archived_at is not None else true()


async def by_ids(session: AsyncSession, model: type[T], ids: Sequence[int]) -> dict[int, T]:
    """Active (not archived) rows by primary key."""
    result = await session.scalars(
        select(model).where(model.id.in_(ids), active(model))  # type: ignore[attr-defined]
    )
    return {row.id: row for row in result}  # type: ignore[attr-defined]


async def by_keys(
    session: AsyncSession, model: type[T], column: Any, keys: Sequence[str]
) -> dict[str, T]:
    result = await session.scalars(select(model).where(column.in_(keys), active(model)))
    return {getattr(row, column.key): row for row in result}


@dataclass(frozen=True)
class Edge:
    """A one-to-many or many-to-many edge: the child model, the parent key and the join."""

    model: Any
    parent_key: Any  # the parent key column
    join: tuple[Any, ColumnElement[bool]] | None = None
    condition: ColumnElement[bool] | None = None

    def statement(self, parent_ids: Sequence[Hashable]) -> Any:
        statement = select(self.model)
        if self.join is not None:
            statement = statement.join(*self.join)
        if self.condition is not None:
            statement = statement.where(self.condition)
        return statement.where(self.parent_key.in_(parent_ids))


def _via(link: Any, child_column: str, child: Any, parent_column: str, model: Any) -> Edge:
    return Edge(
        model=model,
        parent_key=link.c[parent_column],
        join=(link, link.c[child_column] == child.id),
    )


EDGES: dict[str, Edge] = {
    "product.initiatives": _via(
        initiative_products, "initiative_id", Initiative, "product_id", Initiative
    ),
    "product.constraints": _via(
        constraint_products, "constraint_id", TechnicalConstraint, "product_id", TechnicalConstraint
    ),
    "product.kpis": Edge(Kpi, Kpi.product_id),
    "initiative.products": _via(
        initiative_products, "product_id", Product, "initiative_id", Product
    ),
    "initiative.children": Edge(Initiative, Initiative.parent_id),
    "initiative.constraints": _via(
        constraint_initiatives,
        "constraint_id",
        TechnicalConstraint,
        "initiative_id",
        TechnicalConstraint,
    ),
    "initiative.kpis": _via(initiative_kpis, "kpi_id", Kpi, "initiative_id", Kpi),
    "constraint.products": _via(
        constraint_products, "product_id", Product, "constraint_id", Product
    ),
    "constraint.initiatives": _via(
        constraint_initiatives, "initiative_id", Initiative, "constraint_id", Initiative
    ),
    "kpi.measurements": Edge(KpiMeasurement, KpiMeasurement.kpi_id),
    "kpi.initiatives": _via(initiative_kpis, "initiative_id", Initiative, "kpi_id", Initiative),
    "team.products": Edge(
        Product,
        Team.id,
        (
            Team,
            or_(
                Product.business_owner_team_id == Team.id,
                Product.technology_owner_team_id == Team.id,
            ),
        ),
    ),
    "team.initiatives": Edge(Initiative, Initiative.owner_team_id),
    "team.kpis": Edge(Kpi, Kpi.owner_team_id),
    **{
        f"{entity}.history": Edge(
            AuditEvent, AuditEvent.entity_id, condition=AuditEvent.entity_type == entity
        )
        for entity in (
            "Team",
            "Product",
            "Initiative",
            "TechnicalConstraint",
            "Kpi",
            "GlossaryTerm",
        )
    },
}


async def edge_pages(
    session: AsyncSession,
    edge: Edge,
    parent_ids: Sequence[Hashable],
    *,
    filter: Any,
    ordering: Ordering,
    page: PageRequest,
) -> dict[Hashable, Page[Any]]:
    statement = filter.apply(edge.statement(parent_ids))
    return await fetch_pages(
        session,
        statement,
        entity=edge.model,
        id_column=edge.model.id,
        ordering=ordering,
        page=page,
        partition=edge.parent_key,
        parents=parent_ids,
    )


async def root_page(
    session: AsyncSession, model: Any, *, filter: Any, ordering: Ordering, page: PageRequest
) -> Page[Any]:
    pages = await fetch_pages(
        session,
        filter.apply(select(model)),
        entity=model,
        id_column=model.id,
        ordering=ordering,
        page=page,
    )
    return pages[None]


async def blocking_constraints(
    session: AsyncSession, initiative_ids: Sequence[int]
) -> dict[int, list[TechnicalConstraint]]:
    """The constraints that block each initiative (the rule of ``Initiative.is_blocked``)."""
    initiative = select(Initiative.id).where(Initiative.id.in_(initiative_ids)).subquery()
    result = await session.execute(
        select(initiative.c.id, TechnicalConstraint)
        .join(TechnicalConstraint, constraint_blocks(initiative.c.id))
        .order_by(initiative.c.id, TechnicalConstraint.key)
    )
    blocked: dict[int, list[TechnicalConstraint]] = defaultdict(list)
    for initiative_id, constraint in result:
        blocked[initiative_id].append(constraint)
    return blocked


async def latest_measurements(
    session: AsyncSession, kpi_ids: Sequence[int]
) -> dict[int, KpiMeasurement]:
    """The latest measurement per KPI (same tie-break as ``Kpi.latest_value``)."""
    result = await session.scalars(
        select(KpiMeasurement)
        .where(KpiMeasurement.kpi_id.in_(kpi_ids))
        .ext(distinct_on(KpiMeasurement.kpi_id))
        .order_by(
            KpiMeasurement.kpi_id, KpiMeasurement.observed_at.desc(), KpiMeasurement.id.desc()
        )
    )
    return {m.kpi_id: m for m in result}


class SeriesBucket(StrEnum):
    HOUR = "HOUR"
    DAY = "DAY"
    WEEK = "WEEK"
    MONTH = "MONTH"


# Weeks start on Monday: date_bin needs an origin, 2001-01-01 was one.
_BUCKET_ORIGIN: ColumnElement[datetime] = literal_column("TIMESTAMPTZ '2001-01-01 00:00:00+00'")
_BUCKET_STRIDE = {
    SeriesBucket.HOUR: "1 hour",
    SeriesBucket.DAY: "1 day",
    SeriesBucket.WEEK: "7 days",
}
MAX_SERIES_POINTS = 10_000
_BUCKET_WIDTH = {
    SeriesBucket.HOUR: timedelta(hours=1),
    SeriesBucket.DAY: timedelta(days=1),
    SeriesBucket.WEEK: timedelta(days=7),
    SeriesBucket.MONTH: timedelta(days=28),
}


def check_series_range(start: datetime, end: datetime, bucket: SeriesBucket) -> None:
    """A series needs an ordered, time-zone-aware range of at most MAX_SERIES_POINTS buckets."""
    if start.tzinfo is None or end.tzinfo is None:
        raise InvalidInput("`from` and `to` need a time zone offset.", field="from")
    if end <= start:
        raise InvalidInput("`to` must be after `from`.", field="to")
    if (end - start) / _BUCKET_WIDTH[bucket] > MAX_SERIES_POINTS:
        raise InvalidInput(
            f"At most {MAX_SERIES_POINTS} buckets per series: widen `bucket` or shorten the range.",
            field="bucket",
        )


@dataclass(frozen=True)
class SeriesPoint:
    kpi_id: int
    bucket_start: datetime
    average: float
    minimum: float
    maximum: float
    count: int


def bucket_expression(bucket: SeriesBucket, column: Any) -> ColumnElement[datetime]:
    if bucket is SeriesBucket.MONTH:
        return func.date_trunc("month", column, "UTC")
    return func.date_bin(
        literal_column(f"INTERVAL '{_BUCKET_STRIDE[bucket]}'"), column, _BUCKET_ORIGIN
    )


async def series(
    session: AsyncSession,
    kpi_ids: Sequence[int],
    start: datetime,
    end: datetime,
    bucket: SeriesBucket,
) -> dict[int, list[SeriesPoint]]:
    """Measurements aggregated per time bucket in SQL, for many KPIs at once."""
    bucket_start = bucket_expression(bucket, KpiMeasurement.observed_at).label("bucket_start")
    result = await session.execute(
        select(
            KpiMeasurement.kpi_id,
            bucket_start,
            func.avg(KpiMeasurement.value),
            func.min(KpiMeasurement.value),
            func.max(KpiMeasurement.value),
            func.count(),
        )
        .where(
            KpiMeasurement.kpi_id.in_(kpi_ids),
            KpiMeasurement.observed_at >= start,
            KpiMeasurement.observed_at < end,
        )
        .group_by(KpiMeasurement.kpi_id, bucket_start)
        .order_by(KpiMeasurement.kpi_id, bucket_start)
    )
    points: dict[int, list[SeriesPoint]] = defaultdict(list)
    for kpi_id, start_at, avg, low, high, count in result:
        points[kpi_id].append(SeriesPoint(kpi_id, start_at, float(avg), low, high, count))
    return points


class TrendDirection(StrEnum):
    IMPROVING = "IMPROVING"
    WORSENING = "WORSENING"
    STABLE = "STABLE"
    NO_DATA = "NO_DATA"


@dataclass(frozen=True)
class Trend:
    window_days: int
    current_average: float | None
    previous_average: float | None
    change: float | None
    change_percent: float | None
    direction: TrendDirection


# A relative change below this share of the previous average counts as stable.
STABLE_THRESHOLD = 0.01


@dataclass(frozen=True)
class TrendColumns:
    """A KPI's trend over windows of ``window_days``, as SQL on a row joined to its
    ``trend_windows``: the one definition the resolvers run and the compiled path
    inlines, so both answer alike (rounding and all)."""

    current_average: ColumnElement[Any]
    previous_average: ColumnElement[Any]
    change: ColumnElement[Any]
    change_percent: ColumnElement[Any]
    direction: ColumnElement[str]


MAX_TREND_WINDOW_DAYS = 366


def check_trend_window(window_days: int) -> None:
    if not 1 <= window_days <= MAX_TREND_WINDOW_DAYS:
        raise InvalidInput(
            f"`windowDays` must be between 1 and {MAX_TREND_WINDOW_DAYS}; got {window_days}.",
            field="windowDays",
        )


def trend_windows(kpi_id: Any, window_days: int, latest_at: Any = None) -> Select[Any]:
    """The averages (``current``, ``previous``) of the window of ``window_days`` ending at
    the KPI's latest measurement and of the window before: one row, from one pass over
    the two windows' measurements. ``latest_at``: the latest measurement's time where
    the caller's row holds it already (the compiled path's lookup shared with `status`
    and `latestValue`); else it is looked up here. The columns of ``trend_columns`` read
    these outputs and never aggregate again."""
    window = timedelta(days=window_days)
    m = aliased(KpiMeasurement)
    own: tuple[Any, ...]
    if latest_at is None:
        last = aliased(KpiMeasurement)
        # Correlated explicitly: two levels down, the KPI's row is not the enclosing
        # SELECT's, and auto-correlation would take the maximum over every KPI.
        latest = (
            select(func.max(last.observed_at).label("at"))
            .where(last.kpi_id == kpi_id)
            .correlate_except(last)
            .subquery("latest")
        )
        at, own = latest.c.at, (m, latest)
        rows = select().select_from(latest).join(m, m.observed_at > at - 2 * window)
    else:
        at, own = latest_at, (m,)
        rows = select().select_from(m).where(m.observed_at > at - 2 * window)
    # observed_at is never NULL: outside the current window is the previous one. No
    # latest measurement (NULL): no row passes, both averages are NULL.
    recent = m.observed_at > at - window
    return (
        rows.add_columns(
            cast(func.avg(m.value).filter(recent), Double).label("current"),
            cast(func.avg(m.value).filter(~recent), Double).label("previous"),
        )
        .where(m.kpi_id == kpi_id)
        .correlate_except(*own)
    )


def trend_columns(windows: Any, kpi_direction: Any) -> TrendColumns:
    """The trend from ``windows`` (the columns of ``trend_windows``) on a row holding the
    KPI's direction: a relative change under ``STABLE_THRESHOLD`` of the previous average
    is STABLE."""
    current, previous = windows.current, windows.previous
    delta = current - previous

    def rounded(value: Any, digits: int) -> Any:
        return cast(func.round(cast(value, Numeric), digits), Double)

    relative = case((previous != 0, func.abs(delta) / func.abs(previous)), else_=func.abs(delta))
    better = case((kpi_direction == "HIGHER_IS_BETTER", delta > 0), else_=delta < 0)
    direction = case(
        (or_(current.is_(None), previous.is_(None)), TrendDirection.NO_DATA.value),
        (relative < STABLE_THRESHOLD, TrendDirection.STABLE.value),
        (better, TrendDirection.IMPROVING.value),
        else_=TrendDirection.WORSENING.value,
    )
    return TrendColumns(
        current_average=rounded(current, 4),
        previous_average=rounded(previous, 4),
        change=rounded(delta, 4),
        change_percent=case(
            (previous != 0, rounded(delta / func.abs(previous) * 100, 2)), else_=null()
        ),
        direction=direction,
    )


async def trends(
    session: AsyncSession, kpi_ids: Sequence[int], window_days: int
) -> dict[int, Trend]:
    """The trend of each KPI (``trend_windows``, ``trend_columns``); NO_DATA for an
    unknown id."""
    windows = trend_windows(Kpi.id, window_days).lateral("windows")
    columns = trend_columns(windows.c, cast(Kpi.direction, Text))
    result = await session.execute(
        select(
            Kpi.id,
            columns.current_average,
            columns.previous_average,
            columns.change,
            columns.change_percent,
            columns.direction,
        )
        .select_from(Kpi)
        .join(windows, true())
        .where(Kpi.id.in_(kpi_ids))
    )
    found = {
        kpi_id: Trend(window_days, current, previous, change, percent, TrendDirection(verdict))
        for kpi_id, current, previous, change, percent, verdict in result
    }
    empty = Trend(window_days, None, None, None, None, TrendDirection.NO_DATA)
    return {kpi_id: found.get(kpi_id, empty) for kpi_id in kpi_ids}
