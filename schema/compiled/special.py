"""Fields with SQL of their own (scores with their explanations, what blocks an
initiative, a KPI's latest measurement, status and series), each built from the same
definitions the resolvers use (``domain.models.computed``, ``domain.services.reads``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from graphql import FieldNode
from sqlalchemy import JSON, DateTime, Text, cast, func, select

from auth import models as auth_models
from domain import models
from domain.errors import DomainError
from domain.models.computed import (
    constraint_blocks,
    is_stale,
    kpi_freshness,
    latest_first,
    status_of_latest,
)
from domain.services import reads
from schema.compiled import jsontext, presented
from schema.compiled.errors import invalid_field
from schema.compiled.selection import Invalid, Unsupported, response_key
from schema.compiled.values import global_id_of, json_float, optional_global_id

if TYPE_CHECKING:
    from schema.compiled.compiler import Compiler

Special = Callable[["Compiler", Any, FieldNode, Any, Any], Any]


def _score(score: str, explanation: str) -> Special:
    def compile_score(c: Compiler, alias: Any, node: FieldNode, definition: Any, field: Any) -> Any:
        pairs: list[tuple[str, Any]] = []
        for child in c.walk.fields("ScoreExplanation", node.selection_set):
            name = child.name.value
            value = {
                "score": json_float(getattr(alias, score)),
                "explanation": getattr(alias, explanation),
                "__typename": jsontext.string_constant("ScoreExplanation"),
            }.get(name)
            if value is None:
                raise Unsupported(name)
            pairs.append((response_key(child), value))
        return jsontext.json_object(pairs)

    return compile_score


def _blocked_by(c: Compiler, alias: Any, node: FieldNode, definition: Any, field: Any) -> Any:
    constraint = models.TechnicalConstraint
    return (
        select(
            jsontext.json_array(c.object("TechnicalConstraint", constraint, node), constraint.key)
        )
        .where(constraint_blocks(alias.id))
        .correlate(alias)
        .scalar_subquery()
    )


def external_refs(c: Compiler, node: FieldNode, entity_type: Any, entity_id: Any) -> Any:
    """An object's references as ``external_refs.refs_of`` reads them: ordered by system
    (``entity_type`` a name or a column: a feed event's object)."""
    ref = c.alias(models.ExternalRef)
    return (
        select(jsontext.json_array(c.object("ExternalRef", ref, node), ref.system))
        .select_from(ref)
        .where(ref.entity_type == entity_type, ref.entity_id == entity_id)
        .scalar_subquery()
    )


def _external_refs(entity_type: str) -> Special:
    """``externalRefs`` of a type's objects."""

    def compile_refs(c: Compiler, alias: Any, node: FieldNode, definition: Any, field: Any) -> Any:
        return external_refs(c, node, entity_type, alias.id)

    return compile_refs


def _latest(c: Compiler, alias: Any, node: FieldNode, definition: Any, field: Any) -> Any:
    measurement = c.alias(models.KpiMeasurement)
    return (
        select(c.object("KpiMeasurement", measurement, node))
        .select_from(measurement)
        .where(measurement.kpi_id == alias.id)
        .order_by(*latest_first(measurement))
        .limit(1)
        .correlate(alias)
        .scalar_subquery()
    )


def _latest_of(c: Compiler, alias: Any) -> Any:
    """The KPI's latest measurement (value, observation time), from one lookup per row
    shared by the fields using it."""

    return c.lateral(alias, "latest", _latest_lookup).c


def _latest_lookup(c: Compiler, alias: Any) -> Any:
    measurement = c.alias(models.KpiMeasurement)
    return (
        select(measurement.value, measurement.observed_at)
        .where(measurement.kpi_id == alias.id)
        .order_by(*latest_first(measurement))
        .limit(1)
    )


def _latest_value(c: Compiler, alias: Any, node: FieldNode, definition: Any, field: Any) -> Any:
    return json_float(_latest_of(c, alias).value)


def _status(c: Compiler, alias: Any, node: FieldNode, definition: Any, field: Any) -> Any:
    return c.adapt(alias, status_of_latest(_latest_of(c, alias).value))


def _freshness_of(c: Compiler, alias: Any) -> Any:
    return c.adapt(alias, kpi_freshness(_latest_of(c, alias).observed_at))


def _freshness(c: Compiler, alias: Any, node: FieldNode, definition: Any, field: Any) -> Any:
    return _freshness_of(c, alias)


def _is_stale(c: Compiler, alias: Any, node: FieldNode, definition: Any, field: Any) -> Any:
    return is_stale(_freshness_of(c, alias))


def _series(c: Compiler, alias: Any, node: FieldNode, definition: Any, field: Any) -> Any:
    args = c.arguments(definition, field, node)
    start, end, bucket = args["from_"], args["to"], reads.SeriesBucket(args["bucket"].value)
    try:
        reads.check_series_range(start, end, bucket)
    except DomainError as error:
        if any(c.parameter_use(node, (name,)) for name in ("from", "to", "bucket")):
            raise Invalid("invalid series") from None  # other values may be valid
        raise invalid_field(node, "invalid series", error) from None  # the resolver's error
    uses = [c.bound_use(node, (name,)) for name in ("from", "to")]
    if any(use is not None for use in uses):
        # One plan for every window: each request's, checked as the resolver checks it.
        def window(arguments: dict[str, Any]) -> list[Any]:
            chosen = reads.SeriesBucket(arguments["bucket"].value)
            reads.check_series_range(arguments["from"], arguments["to"], chosen)
            return [arguments["from"], arguments["to"]]

        instant = DateTime(timezone=True)
        start, end = c.computed(node, [(start, instant), (end, instant)], window)
    measurement = c.alias(models.KpiMeasurement)
    bucket_start = reads.bucket_expression(bucket, measurement.observed_at).label("bucket_start")
    children = c.walk.fields("KpiSeriesPoint", node.selection_set)
    selected = {child.name.value for child in children}
    aggregates = {
        "average": func.avg(measurement.value),
        "minimum": func.min(measurement.value),
        "maximum": func.max(measurement.value),
        "count": func.count(),
    }
    grouped = (
        select(  # only the aggregates selected: each costs PostgreSQL per measurement
            bucket_start,
            *(aggregate.label(name) for name, aggregate in aggregates.items() if name in selected),
        )
        .select_from(measurement)
        .where(
            measurement.kpi_id == alias.id,
            measurement.observed_at >= start,
            measurement.observed_at < end,
        )
        .group_by(bucket_start)
        .correlate(alias)
        .subquery()
    )
    pairs: list[tuple[str, Any]] = []
    for child in children:
        name = child.name.value
        if name == "bucketStart":
            # A bucket starts on a whole second (date_bin from a whole-second origin by
            # whole days, or the start of a month), so PostgreSQL's own JSON form is
            # Python's: no fraction to pad.
            value: Any = func.to_json(grouped.c.bucket_start, type_=JSON)
        elif name == "count":
            value = grouped.c.count
        elif name in aggregates:
            value = json_float(grouped.c[name])
        elif name == "__typename":
            value = jsontext.string_constant("KpiSeriesPoint")
        else:
            raise Unsupported(name)
        pairs.append((response_key(child), value))
    point = jsontext.json_object(pairs)
    return (
        select(jsontext.json_array(point, grouped.c.bucket_start))
        .select_from(grouped)
        .correlate(alias)
        .scalar_subquery()
    )


def _trend(c: Compiler, alias: Any, node: FieldNode, definition: Any, field: Any) -> Any:
    """``reads.trend_columns``: the SQL the resolver runs, inlined per KPI row."""
    window_days = c.arguments(definition, field, node)["window_days"]
    try:
        reads.check_trend_window(window_days)
    except DomainError as error:
        if c.parameter_use(node, ("windowDays",)):
            raise Invalid("invalid trend window") from None  # other values may be valid
        raise invalid_field(node, "invalid trend window", error) from None
    # One subquery per KPI row and trend: both averages in one pass, from the latest
    # measurement's time that `status` and `latestValue` share (one lookup per row).
    latest_at = _latest_of(c, alias).observed_at
    windows = reads.trend_windows(alias.id, window_days, latest_at).subquery("windows")
    columns = reads.trend_columns(windows.c, cast(alias.direction, Text))
    values = {
        "windowDays": jsontext.constant(str(int(window_days))),
        "currentAverage": json_float(columns.current_average),
        "previousAverage": json_float(columns.previous_average),
        "change": json_float(columns.change),
        "changePercent": json_float(columns.change_percent),
        "direction": jsontext.plain_string(columns.direction),
        "__typename": jsontext.string_constant("KpiTrend"),
    }
    pairs: list[tuple[str, Any]] = []
    for child in c.walk.fields("KpiTrend", node.selection_set):
        name = child.name.value
        if name not in values:
            raise Unsupported(f"KpiTrend.{name}")
        pairs.append((response_key(child), values[name]))
    return (
        select(jsontext.json_object(pairs)).select_from(windows).correlate(alias).scalar_subquery()
    )


def _entity_id(c: Compiler, alias: Any, node: FieldNode, definition: Any, field: Any) -> Any:
    return global_id_of(alias.entity_type, alias.entity_id)


def _changes(c: Compiler, alias: Any, node: FieldNode, definition: Any, field: Any) -> Any:
    """Stored as written (column names, primary keys), presented per caller after the
    statement (``schema.compiled.presented``), by the rule the resolver uses."""
    return presented.changes(alias.entity_type, alias.changes)


def _actor(type_name: str, attribute: str) -> Special:
    def compile_actor(c: Compiler, alias: Any, node: FieldNode, definition: Any, field: Any) -> Any:
        return optional_global_id(type_name, getattr(alias, attribute))

    return compile_actor


def _roles(c: Compiler, alias: Any, node: FieldNode, definition: Any, field: Any) -> Any:
    """``identity.user_roles``: the roles granted, by name (archived ones too)."""
    role = c.alias(auth_models.Role)
    grant = auth_models.RoleGrant
    return (
        select(jsontext.json_array(c.object("Role", role, node), role.name))
        .select_from(role)
        .join(grant, grant.role_id == role.id)
        .where(grant.user_id == alias.id)
        .correlate(alias)
        .scalar_subquery()
    )


def _is_confidential(c: Compiler, alias: Any, node: FieldNode, definition: Any, field: Any) -> Any:
    return alias.secret_hash.isnot(None)


def _estimated_cost(c: Compiler, alias: Any, node: FieldNode, definition: Any, field: Any) -> Any:
    return cast(alias.estimated_cost, Text)


SPECIAL: dict[tuple[str, str], Special] = {
    ("Initiative", "rice"): _score("rice_score", "rice_explanation"),
    ("Initiative", "wsjf"): _score("wsjf_score", "wsjf_explanation"),
    ("Initiative", "blockedBy"): _blocked_by,
    ("Initiative", "estimatedCost"): _estimated_cost,
    **{
        (type_name, "externalRefs"): _external_refs(type_name)
        for type_name in ("Product", "Initiative", "TechnicalConstraint", "Kpi")
    },
    ("Kpi", "latest"): _latest,
    ("Kpi", "latestValue"): _latest_value,
    ("Kpi", "status"): _status,
    ("Kpi", "freshness"): _freshness,
    ("Kpi", "isStale"): _is_stale,
    ("Kpi", "series"): _series,
    ("Kpi", "trend"): _trend,
    ("AuditEvent", "entityId"): _entity_id,
    ("AuditEvent", "changes"): _changes,
    ("AuditEvent", "actorUserId"): _actor("User", "actor_user_id"),
    ("AuditEvent", "actorClientId"): _actor("OAuthClient", "actor_client_id"),
    ("User", "roles"): _roles,
    ("OAuthClient", "isConfidential"): _is_confidential,
}
