"""A plan's coercion of variables of enums and scalars (``binding._LeafCoercion``)
answers as graphql-core's does, for every such input type of the schema, in lists and
non-null or not, over generated values, valid and not."""

from __future__ import annotations

import random
from typing import Any

from graphql import (
    GraphQLInputType,
    GraphQLList,
    GraphQLNonNull,
    is_enum_type,
    is_leaf_type,
    parse,
)
from graphql.execution.values import coerce_input_value, get_variable_values
from graphql.pyutils import Undefined

from schema.build import schema
from schema.compiled.binding import _LeafCoercion

GRAPHQL = schema._schema
LEAVES = sorted(
    (t for name, t in GRAPHQL.type_map.items() if is_leaf_type(t) and not name.startswith("__")),
    key=lambda t: t.name,
)
CASES = 3000


def _wrapped(rng: random.Random, leaf: Any) -> GraphQLInputType:
    """The leaf in up to two lists, each level non-null or not."""
    type_: Any = leaf
    for _ in range(rng.choice((0, 1, 1, 2))):
        if rng.random() < 0.5:
            type_ = GraphQLNonNull(type_)
        type_ = GraphQLList(type_)
    if rng.random() < 0.5:
        type_ = GraphQLNonNull(type_)
    return type_


def _value(rng: random.Random, leaf: Any, depth: int = 0) -> Any:
    """A value a client could send in JSON: often valid for the leaf, often not."""
    choice = rng.random()
    if choice < 0.3 and depth < 3:
        return [_value(rng, leaf, depth + 1) for _ in range(rng.randint(0, 4))]
    if choice < 0.4:
        return None
    if is_enum_type(leaf) and choice < 0.8:
        names = list(leaf.values)
        return rng.choice(names) if rng.random() < 0.8 else rng.choice(names).lower()
    return rng.choice(
        [
            "text",
            "",
            "2026-12-03",
            "2026-12-03T10:00:00Z",
            "not a date",
            0,
            -3,
            2**40,
            1.5,
            True,
            False,
            {"a": 1},
            "12.50",
        ]
    )


def test_it_coerces_as_graphql_core_for_generated_types_and_values() -> None:
    rng = random.Random(20261203)
    compared = refused = 0
    coercions: dict[str, _LeafCoercion] = {}
    for _ in range(CASES):
        leaf = rng.choice(LEAVES)
        type_ = _wrapped(rng, leaf)
        value = _value(rng, leaf)
        # One coercion per type, reused: what it remembers of names must not change
        # later answers.
        made = coercions.get(str(type_)) or _LeafCoercion.of(type_)
        assert made is not None, type_
        coercion = coercions.setdefault(str(type_), made)
        expected = coerce_input_value(value, type_)
        for _ in range(2):
            found = coercion(value)
            assert (found is Undefined) == (expected is Undefined), (type_, value)
            assert found == expected, (type_, value)
        compared += 1
        refused += expected is Undefined
    # The cases were not all refusals, nor all accepted.
    assert CASES // 10 < refused < compared - CASES // 10


def test_a_value_it_refuses_is_one_graphql_core_reports() -> None:
    """What the plan then does: get_variable_values's errors decline the request."""
    document = parse("query Q($c: [ConstraintCategory!]!) { __typename }")
    (definition,) = document.definitions[0].variable_definitions  # type: ignore[attr-defined]
    category: Any = GRAPHQL.get_type("ConstraintCategory")
    coercion = _LeafCoercion.of(category)
    listed_type = GraphQLNonNull(GraphQLList(GraphQLNonNull(category)))
    listed = _LeafCoercion.of(listed_type)
    assert coercion is not None and listed is not None
    members = [coercion("SECURITY"), coercion("DATA")]
    assert [member.name for member in members] == ["SECURITY", "DATA"]
    assert listed(["SECURITY", "DATA"]) == members
    assert coerce_input_value(["SECURITY", "DATA"], listed_type) == members
    for bad in (["SECURITY", "security"], ["DATA", None], None, [1]):
        assert listed(bad) is Undefined
        errors = get_variable_values(GRAPHQL, [definition], {"c": bad})
        assert isinstance(errors, list) and errors, bad
        assert errors[0].message.startswith("Variable '$c' ")
    # A single value stands for a list of one, as GraphQL reads it.
    assert listed("DATA") == [coercion("DATA")]


def test_input_objects_are_left_to_graphql_core() -> None:
    filter_type: Any = GRAPHQL.get_type("InitiativeFilter")
    assert _LeafCoercion.of(filter_type) is None
    assert _LeafCoercion.of(GraphQLList(filter_type)) is None
