"""The bulk-ingest fast path: a well-formed batch skips per-item GraphQL coercion.

graphql-core coerces each of a batch's 10,000 measurements field by field, and
strawberry then builds a ``KpiMeasurementInput`` for each: four fifths of the server's
time for ``recordKpiMeasurements``. ``BulkIngest`` checks the raw JSON of each
measurements variable in one tight loop, under the same rules (exactly the five fields,
strings, finite numbers that a float holds, DateTime read as strawberry reads it). A
batch that passes becomes a ``Batch`` (by column) at once, reaches the resolver on the
root value, and graphql-core coerces an empty list in its place. Anything else (one
odd item, an unusual shape, over 10,000 items, a batch given as a literal) is left
untouched: the ordinary path answers it, with today's errors.

Only the coercion of the batch is skipped: validation, limits, rate limits, scopes,
the execution of the selection set and the one transaction per request are unchanged.
``COUNTERS`` tells which path answered (tests and debugging).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from math import isfinite
from typing import Any

from graphql import (
    FieldNode,
    ListTypeNode,
    NamedTypeNode,
    NonNullTypeNode,
    ObjectValueNode,
    OperationDefinitionNode,
    TypeNode,
    VariableNode,
    get_operation_ast,
)
from strawberry.extensions import SchemaExtension

from domain.services.measurements import MAX_BATCH, Batch, MeasurementIn
from schema.types.scalars import DATETIME, storable

FIELD = "recordKpiMeasurements"
BATCH_TYPE = "RecordKpiMeasurementsInput"
ITEM_TYPE = "KpiMeasurementInput"
FIELD_COUNT = 5  # kpiKey, observedAt, value, source, externalId
# graphql-core's Float takes an int only if the float holds it exactly.
MAX_EXACT_INT = 2**53

# The strings on which datetime.fromisoformat and strawberry's DateTime (dateutil's
# isoparse) agree: 'T', 1-6 fraction digits, Z or an offset of at most 23:59. Any
# other string goes to strawberry's own parser.
_COMMON_DATETIME = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,6})?"
    r"(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])?",
    re.ASCII,
).fullmatch
_parse_datetime = DATETIME.parse_value
assert _parse_datetime is not None


@dataclass
class Counters:
    """Batches the resolver took prevalidated, and batch variables left to GraphQL."""

    prevalidated: int = 0
    declined: int = 0


COUNTERS = Counters()


@dataclass(frozen=True)
class PrevalidatedBatches:
    """The root value of an operation with prevalidated batches, by the response key
    of the root field each feeds."""

    batches: dict[str, Batch] = field(default_factory=dict)


class BulkIngest(SchemaExtension):
    """Prevalidates the operation's measurement batches before graphql-core coerces
    its variables (see the module's docstring)."""

    async def on_execute(self) -> AsyncIterator[None]:
        execution = self.execution_context
        variables = execution.variables
        # Refused already (limits), a root value of the caller's, or nothing to do.
        if (
            execution.result is None
            and execution.root_value is None
            and isinstance(variables, dict)
        ):
            taken = _take_batches(execution.graphql_document, execution.operation_name, variables)
            if taken is not None:
                execution.variables, batches = taken
                execution.root_value = PrevalidatedBatches(batches)
                try:
                    yield
                finally:
                    # graphql-core's execution context is part of a reference cycle:
                    # what it holds waits for the collector's rare full pass, unless
                    # let go here.
                    batches.clear()
                return
        yield


def _take_batches(
    document: Any, operation_name: str | None, variables: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Batch]] | None:
    """The variables with each well-formed batch emptied, and the batches by the
    response key of the root field they feed; None if no batch passes."""
    operation = get_operation_ast(document, operation_name) if document is not None else None
    if not isinstance(operation, OperationDefinitionNode):
        return None
    roots = operation.selection_set.selections
    if not all(isinstance(node, FieldNode) for node in roots):
        return None  # fragments on the root: the ordinary path, rather than walk them
    # Root fields by the variable feeding their batch (the only place such variables fit).
    fed: dict[str, list[str]] = {}
    for node in roots:
        if (
            isinstance(node, FieldNode)
            and node.name.value == FIELD
            and (name := _batch_variable(node)) is not None
        ):
            fed.setdefault(name, []).append((node.alias or node.name).value)
    replaced = dict(variables)  # never the request's own dict
    batches: dict[str, Batch] = {}
    for definition in operation.variable_definitions or ():
        name = definition.variable.name.value
        kind = _declared(definition.type)
        if kind is None or name not in fed or name not in variables:
            continue
        raw = variables[name]
        stand_in: Any = [] if kind == ITEM_TYPE else {"measurements": []}
        if kind == BATCH_TYPE:
            # Only `measurements`: an `onConflict` (corrections) takes the ordinary path.
            raw = raw.get("measurements") if type(raw) is dict and len(raw) == 1 else None
        batch = prevalidate(raw)
        if batch is None:
            COUNTERS.declined += 1
            continue
        replaced[name] = stand_in
        batches.update(dict.fromkeys(fed[name], batch))
    return (replaced, batches) if batches else None


def _declared(node: TypeNode) -> str | None:
    """BATCH_TYPE or ITEM_TYPE for a variable declared ``RecordKpiMeasurementsInput!``
    or ``[KpiMeasurementInput!]!``; None for any other declaration (nullable ones
    included: defaults and nulls are left to graphql-core)."""
    if not isinstance(node, NonNullTypeNode):
        return None
    inner = node.type
    if isinstance(inner, NamedTypeNode) and inner.name.value == BATCH_TYPE:
        return BATCH_TYPE
    if (
        isinstance(inner, ListTypeNode)
        and isinstance(inner.type, NonNullTypeNode)
        and isinstance(inner.type.type, NamedTypeNode)
        and inner.type.type.name.value == ITEM_TYPE
    ):
        return ITEM_TYPE
    return None


def prevalidate(raw: Any) -> Batch | None:
    """The batch as graphql-core and strawberry would give it to the resolver, or None
    when any item is not plainly well formed (the ordinary path then decides)."""
    if type(raw) is not list or len(raw) > MAX_BATCH:
        return None
    batch = Batch([], [], [], [], [])
    kpi_keys, observed, values = batch.kpi_keys, batch.observed_at, batch.values
    sources, external_ids = batch.sources, batch.external_ids
    for item in raw:
        # Five entries, and each field below found (absent ones read as None and fail
        # their type check): exactly the five fields.
        if type(item) is not dict or len(item) != FIELD_COUNT:
            return None
        get = item.get
        kpi_key = get("kpiKey")
        observed_at = get("observedAt")
        value = get("value")
        source = get("source")
        external_id = get("externalId")
        if not (type(kpi_key) is str and type(source) is str and type(external_id) is str):
            return None
        if type(value) is float:
            if not isfinite(value):
                return None
        elif type(value) is int and -MAX_EXACT_INT <= value <= MAX_EXACT_INT:
            value = float(value)
        else:
            return None
        when = _datetime(observed_at)
        if when is None:
            return None
        kpi_keys.append(kpi_key)
        observed.append(when)
        values.append(value)
        sources.append(source)
        external_ids.append(external_id)
    return batch


def _datetime(raw: Any) -> datetime | None:
    """strawberry's DateTime of ``raw``, or None where it would refuse it."""
    if type(raw) is not str:
        return None
    if _COMMON_DATETIME(raw):
        try:
            parsed = datetime.fromisoformat(raw)
        except ValueError:
            pass  # e.g. 2026-02-30: strawberry's parser decides
        else:
            return parsed if storable(parsed) else None
    try:
        parsed = _parse_datetime(raw)  # type: ignore[misc]
    except Exception:
        return None
    return parsed if type(parsed) is datetime else None


def measurements_of(info: Any, given: Iterable[Any]) -> Batch:
    """The resolver's batch: prevalidated when ``BulkIngest`` took it, else converted
    from the strawberry input objects."""
    root = info.root_value
    if isinstance(root, PrevalidatedBatches):
        batch = root.batches.get(info.path.key)
        if batch is not None:
            COUNTERS.prevalidated += 1
            return batch
    return Batch.of(
        MeasurementIn(
            kpi_key=m.kpi_key,
            observed_at=m.observed_at,
            value=m.value,
            source=m.source,
            external_id=m.external_id,
        )
        for m in given
    )


def _batch_variable(node: FieldNode) -> str | None:
    """The variable the field's batch comes from: ``input: $batch`` or
    ``input: {measurements: $items}``."""
    for argument in node.arguments or ():
        if argument.name.value != "input":
            continue
        value = argument.value
        if isinstance(value, VariableNode):
            return value.name.value
        if isinstance(value, ObjectValueNode):
            for item in value.fields:
                if item.name.value == "measurements" and isinstance(item.value, VariableNode):
                    return item.value.name.value
    return None
