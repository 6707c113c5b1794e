"""Computed fields, each defined once as SQL and attached to its model.

Both read paths use these definitions: the resolvers load them as columns
(``column_property``), and a compiler of whole selections can embed the same
expressions. Nothing here is recomputed in Python.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    ColumnElement,
    Double,
    Numeric,
    String,
    and_,
    case,
    cast,
    exists,
    func,
    literal,
    or_,
    select,
)
from sqlalchemy.orm import InstrumentedAttribute, column_property

from domain.models.enums import (
    ACTIVE_CONSTRAINT_STATUSES,
    ConstraintSeverity,
    KpiDirection,
    KpiFreshness,
    KpiStatus,
)
from domain.models.kpi import Kpi, KpiMeasurement
from domain.models.portfolio import (
    Initiative,
    TechnicalConstraint,
    constraint_initiatives,
    constraint_products,
    initiative_products,
)

# A SQL expression: a mapped attribute or any column expression.
Expression = ColumnElement[Any] | InstrumentedAttribute[Any]


def _missing(*named: tuple[str, Expression]) -> ColumnElement[str]:
    return func.concat_ws(", ", *(case((col.is_(None), name)) for name, col in named))


def _score(numerator: Expression, denominator: Expression) -> ColumnElement[float]:
    return cast(func.round(cast(numerator, Numeric) / denominator, 2), Double)


# RICE = reach × impact × confidence ÷ effort; null when an input is missing.
_rice_inputs = (
    ("reach", Initiative.reach),
    ("impact", Initiative.impact),
    ("confidence", Initiative.confidence),
    ("effort", Initiative.effort),
)
_rice = _score(Initiative.reach * Initiative.impact * Initiative.confidence, Initiative.effort)
Initiative.rice_score = column_property(_rice)
Initiative.rice_explanation = column_property(
    case(
        (
            or_(*(col.is_(None) for _, col in _rice_inputs)),
            literal("Not scored: missing ", String) + _missing(*_rice_inputs),
        ),
        else_=func.format(
            "reach %s × impact %s × confidence %s ÷ effort %s = %s",
            Initiative.reach,
            Initiative.impact,
            Initiative.confidence,
            Initiative.effort,
            _rice,
        ),
    )
)

# WSJF = (business value + time criticality + risk reduction) ÷ job size.
_wsjf_inputs = (
    ("businessValue", Initiative.business_value),
    ("timeCriticality", Initiative.time_criticality),
    ("riskReduction", Initiative.risk_reduction),
    ("jobSize", Initiative.job_size),
)
_wsjf = _score(
    Initiative.business_value + Initiative.time_criticality + Initiative.risk_reduction,
    Initiative.job_size,
)
Initiative.wsjf_score = column_property(_wsjf)
Initiative.wsjf_explanation = column_property(
    case(
        (
            or_(*(col.is_(None) for _, col in _wsjf_inputs)),
            literal("Not scored: missing ", String) + _missing(*_wsjf_inputs),
        ),
        else_=func.format(
            "(business value %s + time criticality %s + risk reduction %s) ÷ job size %s = %s",
            Initiative.business_value,
            Initiative.time_criticality,
            Initiative.risk_reduction,
            Initiative.job_size,
            _wsjf,
        ),
    )
)


def _active_blocker(constraint: Any) -> ColumnElement[bool]:
    return and_(
        constraint.severity == ConstraintSeverity.BLOCKER,
        constraint.status.in_(ACTIVE_CONSTRAINT_STATUSES),
        constraint.archived_at.is_(None),
    )


def _applied_directly(initiative_id: Expression) -> Any:
    """Constraints applied to the initiative itself."""
    return (
        select(constraint_initiatives.c.constraint_id)
        .where(constraint_initiatives.c.initiative_id == initiative_id)
        .correlate_except(constraint_initiatives)
    )


def _applied_through_products(initiative_id: Expression) -> Any:
    """Constraints applied to one of the initiative's products."""
    return (
        select(constraint_products.c.constraint_id)
        .join(
            initiative_products,
            initiative_products.c.product_id == constraint_products.c.product_id,
        )
        .where(initiative_products.c.initiative_id == initiative_id)
        .correlate_except(constraint_products, initiative_products)
    )


def constraint_blocks(initiative_id: Expression) -> ColumnElement[bool]:
    """True for a TechnicalConstraint row that blocks the given initiative: an
    OPEN or MITIGATING BLOCKER applied to it or to one of its products."""
    return and_(
        _active_blocker(TechnicalConstraint),
        or_(
            TechnicalConstraint.id.in_(_applied_directly(initiative_id)),
            TechnicalConstraint.id.in_(_applied_through_products(initiative_id)),
        ),
    )


def _blocked(initiative_id: Expression) -> ColumnElement[bool]:
    """The same rule as ``constraint_blocks``, driven from the initiative's links (a
    few index probes per initiative) rather than from the constraints. The link
    tables are never correlated: an enclosing query may join them too."""
    direct = (
        exists()
        .select_from(
            constraint_initiatives.join(
                TechnicalConstraint,
                TechnicalConstraint.id == constraint_initiatives.c.constraint_id,
            )
        )
        .where(
            constraint_initiatives.c.initiative_id == initiative_id,
            _active_blocker(TechnicalConstraint),
        )
        .correlate_except(constraint_initiatives, TechnicalConstraint)
    )
    through_products = (
        exists()
        .select_from(
            initiative_products.join(
                constraint_products,
                constraint_products.c.product_id == initiative_products.c.product_id,
            ).join(
                TechnicalConstraint, TechnicalConstraint.id == constraint_products.c.constraint_id
            )
        )
        .where(
            initiative_products.c.initiative_id == initiative_id,
            _active_blocker(TechnicalConstraint),
        )
        .correlate_except(initiative_products, constraint_products, TechnicalConstraint)
    )
    return or_(direct, through_products)


Initiative.is_blocked = column_property(_blocked(Initiative.id))


def latest_first(measurement: Any) -> tuple[ColumnElement[Any], ...]:
    """The latest measurement wins by observation time, then by insertion order."""
    return (measurement.observed_at.desc(), measurement.id.desc())


def _latest(column: Expression) -> ColumnElement[Any]:
    return (
        select(column)
        .where(KpiMeasurement.kpi_id == Kpi.id)
        .order_by(*latest_first(KpiMeasurement))
        .limit(1)
        .correlate_except(KpiMeasurement)
        .scalar_subquery()
    )


def kpi_status(value: Expression) -> ColumnElement[str]:
    """The status of a value of the KPI: the one definition both read paths, the status
    filter and everything that reports a status use (docs/api.md has it as a table).

    Along the KPI's direction, the first that holds wins:

    - CRITICAL: at or beyond the critical threshold;
    - WARNING: at or beyond the warning threshold;
    - ON_TARGET: the target is met (at or better than it), or there is no target;
    - OFF_TARGET: anything else, i.e. missing the target but better than warning.

    A threshold or target left null never holds (SQL's NULL comparison is not true).
    """
    higher = Kpi.direction == KpiDirection.HIGHER_IS_BETTER
    lower = Kpi.direction == KpiDirection.LOWER_IS_BETTER

    def at_or_worse(limit: Expression) -> ColumnElement[bool]:
        return or_(and_(higher, value <= limit), and_(lower, value >= limit))

    def at_or_better(limit: Expression) -> ColumnElement[bool]:
        return or_(and_(higher, value >= limit), and_(lower, value <= limit))

    return case(
        (at_or_worse(Kpi.critical_threshold), KpiStatus.CRITICAL.value),
        (at_or_worse(Kpi.warning_threshold), KpiStatus.WARNING.value),
        (or_(Kpi.target.is_(None), at_or_better(Kpi.target)), KpiStatus.ON_TARGET.value),
        else_=KpiStatus.OFF_TARGET.value,
    )


def status_of_latest(value: Expression) -> ColumnElement[str]:
    """``Kpi.status`` from the latest value already looked up (NULL: no measurement;
    a measurement's value is never NULL)."""
    return case((value.is_(None), KpiStatus.NO_DATA.value), else_=kpi_status(value))


# The clock of staleness: the database's, the transaction's start (one instant for a whole
# request on the resolvers; one per statement on the compiled path's transaction-less fast
# path). A read that renders it is never kept in the response cache
# (``schema.compiled.extension.Plan.reads_clock``).
CLOCK = func.now


def kpi_freshness(observed_at: Expression) -> ColumnElement[str]:
    """FRESH while the KPI's latest measurement (observed at ``observed_at``) is no older
    than its expected interval, STALE once it is, NO_DATA without one."""
    interval = func.make_interval(0, 0, 0, 0, 0, 0, Kpi.expected_interval_seconds)
    return case(
        (observed_at.is_(None), KpiFreshness.NO_DATA.value),
        (CLOCK() - observed_at > interval, KpiFreshness.STALE.value),
        else_=KpiFreshness.FRESH.value,
    )


def is_stale(freshness: Expression) -> ColumnElement[bool]:
    """``isStale``: no data, or data older than the expected interval."""
    return freshness != KpiFreshness.FRESH.value


Kpi.latest_value = column_property(_latest(KpiMeasurement.value))
# One index probe per KPI; no measurement at all means NO_DATA. (The same rule as
# status_of_latest, with the status computed inside the probe so it is done once.)
Kpi.status = column_property(
    func.coalesce(_latest(kpi_status(KpiMeasurement.value)), KpiStatus.NO_DATA.value)
)
_freshness = func.coalesce(
    _latest(kpi_freshness(KpiMeasurement.observed_at)), KpiFreshness.NO_DATA.value
)
Kpi.freshness = column_property(_freshness)
Kpi.is_stale = column_property(is_stale(_freshness))
