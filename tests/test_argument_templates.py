"""The compiled path's arguments from a template (``schema.compiled.binding.Site``):
for every request, the same arguments graphql-core's ``get_argument_values`` coerces,
whatever values the variables carry (given, null, missing, of every filter field), or
the template declines and graphql-core coerces them."""

from __future__ import annotations

import random
from typing import Any

from graphql import (
    FieldNode,
    GraphQLList,
    GraphQLNonNull,
    GraphQLSchema,
    ListTypeNode,
    NonNullTypeNode,
    OperationDefinitionNode,
    get_named_type,
    get_nullable_type,
    is_enum_type,
    is_list_type,
    parse,
)
from graphql.execution.values import VariableValues, get_argument_values, get_variable_values

from schema.build import schema_for
from schema.compiled.binding import Site
from tests.conftest import settings_for

SCHEMA: GraphQLSchema = schema_for(settings_for())._schema

# Variables in every kind of place: a whole filter, each field of one, a list item, a
# variable used twice, non-null arguments and constants beside them.
DOCUMENTS = [
    """query ($severities: [ConstraintSeverity!], $statuses: [ConstraintStatus!],
        $categories: [ConstraintCategory!], $search: String, $from: Date) {
      technicalConstraints(first: 50, filter: {severities: $severities,
          statuses: $statuses, categories: $categories, search: $search, dueFrom: $from}) {
        totalCount
      }
    }""",
    """query ($filter: InitiativeFilter, $first: Int) {
      initiatives(first: $first, filter: $filter) { totalCount }
    }""",
    """query ($status: InitiativeStatus!, $blocked: Boolean, $key: String!) {
      initiatives(filter: {statuses: [$status, IDEA], isBlocked: $blocked, keys: [$key, $key]}) {
        totalCount
      }
    }""",
    """query ($top: Boolean, $search: String) {
      initiatives(last: 3, filter: {topLevel: $top, search: $search, isBlocked: $top}) {
        totalCount
      }
    }""",
]


def _field(document: str) -> tuple[Any, FieldNode, OperationDefinitionNode]:
    operation = parse(document).definitions[0]
    assert isinstance(operation, OperationDefinitionNode)
    node = operation.selection_set.selections[0]
    assert isinstance(node, FieldNode)
    query_type = SCHEMA.query_type
    assert query_type is not None
    return query_type.fields[node.name.value], node, operation


def _value(type_: Any, rng: random.Random, depth: int = 0) -> Any:
    """A random JSON value for an input type: often valid, sometimes null or wrong."""
    roll = rng.random()
    if roll < 0.15:
        return None
    if roll < 0.2:
        return rng.choice([7, "x", [], {}])  # often of the wrong kind
    nullable = get_nullable_type(type_)
    if is_list_type(nullable):
        return [_value(nullable.of_type, rng, depth + 1) for _ in range(rng.randint(0, 3))]
    named = get_named_type(type_)
    if is_enum_type(named):
        return rng.choice(list(named.values))
    if hasattr(named, "fields") and depth < 2:
        fields = list(named.fields.items())
        chosen = rng.sample(fields, rng.randint(0, min(4, len(fields))))
        return {name: _value(one.type, rng, depth + 1) for name, one in chosen}
    return {
        "String": lambda: rng.choice(["risk", "a b", "", "x" * 40]),
        "Boolean": lambda: rng.random() < 0.5,
        "Int": lambda: rng.randint(-2, 120),
        "Date": lambda: rng.choice(["2026-01-31", "2026-13-01", "yesterday"]),
        "ID": lambda: rng.choice(["SW5pdGlhdGl2ZTox", "bm9wZQ=="]),
    }.get(named.name, lambda: None)()


def test_templated_arguments_are_graphql_cores_for_random_values() -> None:
    rng = random.Random(41)
    templated = 0
    for document in DOCUMENTS:
        definition, node, operation = _field(document)
        site = Site(definition, node)
        definitions = operation.variable_definitions or ()
        for _ in range(300):
            raw: dict[str, Any] = {}
            for variable in definitions:
                if rng.random() < 0.85:  # otherwise not given at all
                    variable_type = SCHEMA.get_type(_named(variable.type))
                    raw[variable.variable.name.value] = _value(
                        _wrapped(variable.type, variable_type), rng
                    )
            coerced = get_variable_values(SCHEMA, definitions, raw)
            if isinstance(coerced, list):
                continue  # refused values never reach a site: strawberry answers them
            expected = _arguments_or_error(definition, node, coerced)
            shape = site._shape
            before = shape.template if shape is not None else None
            try:
                found: Any = site.arguments(coerced)
            except Exception as error:
                found = ("error", type(error), str(error))
            assert found == expected, (document, raw)
            if before is not None and site._shape is not None and site._shape.of(coerced):
                templated += 1
    # Most requests with every variable given are answered from the templates.
    assert templated > 300


def _arguments_or_error(definition: Any, node: FieldNode, coerced: VariableValues) -> Any:
    try:
        return get_argument_values(definition, node, coerced)
    except Exception as error:
        return ("error", type(error), str(error))


def _named(type_node: Any) -> str:
    while not hasattr(type_node, "name"):
        type_node = type_node.type
    return str(type_node.name.value)


def _wrapped(type_node: Any, named: Any) -> Any:
    """The input type a variable definition's type node spells, for ``_value``."""
    if isinstance(type_node, NonNullTypeNode):
        return GraphQLNonNull(_wrapped(type_node.type, named))
    if isinstance(type_node, ListTypeNode):
        return GraphQLList(_wrapped(type_node.type, named))
    return named
