"""Measurements remembered by operation and variables: a cost depends on nothing
else, so a document seen before is not measured again (and the fast path, which has
no parsed document, can find its measurement)."""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

from graphql import get_operation_ast

from domain.caches import ByteLRU, text_bytes
from schema.compiled.extension import execution_candidates, provided_operation_name
from schema.compiled.parameters import COSTED, Candidates, variables_key
from schema.limits.cost import Measurement, input_object_variables, query_cost
from schema.limits.documents import DOCUMENTS, document_key

# Both are keyed by callers' texts (documents, variables): bounded by bytes.
CACHE_BYTES = 16 * 1024 * 1024

# (document, operation) -> its input-object variables, which costs are not keyed by.
_IGNORED: ByteLRU[tuple[str | None, str | None], frozenset[str]] = ByteLRU(CACHE_BYTES)

_COSTS: ByteLRU[Hashable, Measurement | None] = ByteLRU(CACHE_BYTES)


def _key_bytes(key: Any) -> int:
    """The texts of a cost's key: (document, operation, (variables, shapes))."""
    variables, shapes = key[2]
    return text_bytes(key[0], key[1], variables) + 100 * len(shapes)


def _cost_key(
    query: str | None,
    operation_name: str | None,
    variables: Any,
    candidates: Candidates,
    plan_values: Hashable | None = None,
) -> Hashable:
    """A cost depends on the variables, except on input objects and on those bound as
    parameters (keys, IDs): only their shape counts. ``plan_values``: the variables'
    key a plan was found by (``variables_key`` of the same candidates), the cost's too
    when no input object and no `first`/`last` is among them."""
    ignored = _IGNORED.peek((query, operation_name))
    if ignored and isinstance(variables, dict):
        variables = {name: value for name, value in variables.items() if name not in ignored}
    elif plan_values is not None and not any(kind in COSTED for kind in candidates.values()):
        return (query, operation_name, plan_values)
    values = variables_key(variables, candidates, COSTED)  # first/last by value
    return None if values is None else (query, operation_name, values)


# (document, operation) -> (key of its parsed document in ``DOCUMENTS``, GraphQL schema)
# of operations measured: a known operation with a new `first` is measured again without
# being parsed again (while the document cache keeps it; nothing here keeps it alive).
_MEASURED: ByteLRU[tuple[str, str | None], tuple[tuple[str, Hashable], Any]] = ByteLRU(CACHE_BYTES)


def known_measurement(
    query: str | None,
    operation_name: str | None,
    variables: Any,
    candidates: Candidates,
    plan_values: Hashable | None = None,
) -> Measurement | None:
    """An operation measured before (with these variables, or with others and measured
    now) and within every limit; None if unknown. ``plan_values``: ``_cost_key``'s."""
    key = _cost_key(query, operation_name, variables, candidates, plan_values)
    if key is None:
        return None
    measured = _COSTS.peek(key)
    if measured is None and query is not None:
        known = _MEASURED.get((query, operation_name))
        entry = DOCUMENTS.peek(known[0]) if known is not None else None
        if known is not None and entry is not None:
            ignored = _IGNORED.peek((query, operation_name))
            measured = query_cost(known[1], entry.document, operation_name, variables, ignored)
            _COSTS.put(key, measured, _key_bytes(key) + 200)
    if measured is None or measured.introspection_refusal is not None:
        return None
    return measured


def cached_query_cost(execution: Any) -> Measurement | None:
    """``query_cost`` memoised by (document, operation, variables): it depends on nothing
    else."""
    operation_name = provided_operation_name(execution)
    ignored = _ignored_variables(execution, operation_name)
    key = _cost_key(
        execution.query, operation_name, execution.variables, execution_candidates(execution)
    )
    if key is not None and key in _COSTS:
        return _COSTS.get(key)
    measured = query_cost(
        execution.schema._schema,
        execution.graphql_document,
        execution.operation_name,
        execution.variables,
        ignored,
    )
    if key is not None:
        _COSTS.put(key, measured, _key_bytes(key) + 200)
    if measured is not None and isinstance(execution.query, str):
        parsed = document_key(execution.query, execution.parse_options)
        _MEASURED.put(
            (execution.query, operation_name),
            (parsed, execution.schema._schema),
            text_bytes(execution.query, operation_name) + 200,
        )
    return measured


def _ignored_variables(execution: Any, operation_name: str | None) -> frozenset[str]:
    """``input_object_variables`` of the execution's operation, memoised in ``_IGNORED``
    (which ``_cost_key`` reads, also for the fast path, which has no document)."""
    key = (execution.query, operation_name)
    ignored = _IGNORED.get(key)
    if ignored is None:
        operation = get_operation_ast(execution.graphql_document, execution.operation_name)
        definitions = operation.variable_definitions if operation is not None else None
        ignored = input_object_variables(execution.schema._schema, definitions or ())
        size = text_bytes(*key) + sum(text_bytes(name) + 100 for name in ignored)
        _IGNORED.put(key, ignored, size)
    return ignored
