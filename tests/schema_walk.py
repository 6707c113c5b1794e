"""Queries generated over the whole read schema, not over a hand-kept list of fields.

``QueryWalker`` walks the GraphQL schema itself from ``Query``: every object type,
interface (with inline fragments on its implementations), connection, lookup and
edge is reachable, so a field added tomorrow is generated tomorrow. Arguments are
filled from ``Arguments``: known IDs and keys for lookups, small pages, enums and
booleans at random; a field whose required argument cannot be filled is skipped.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from graphql import (
    GraphQLArgument,
    GraphQLEnumType,
    GraphQLField,
    GraphQLInputObjectType,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLSchema,
    GraphQLUnionType,
    get_named_type,
    is_leaf_type,
)
from graphql.pyutils import Undefined


@dataclass
class Arguments:
    """Values the walker may give arguments: IDs, keys by lookup field, and instants."""

    ids: list[str] = field(default_factory=list)
    keys: dict[str, list[str]] = field(default_factory=dict)  # lookup field -> keys
    instants: list[str] = field(default_factory=lambda: ["2099-01-01T00:00:00Z"])


class QueryWalker:
    def __init__(
        self,
        schema: GraphQLSchema,
        rng: random.Random,
        arguments: Arguments,
        *,
        max_depth: int = 4,
        max_fields: int = 4,
        skip: frozenset[str] = frozenset(),
    ) -> None:
        self.schema = schema
        self.rng = rng
        self.arguments = arguments
        self.max_depth = max_depth
        self.max_fields = max_fields
        self.skip = skip  # root fields left out

    def document(self, roots: int = 2) -> str:
        query = self.schema.query_type
        assert query is not None
        roots_allowed = [(n, d) for n, d in query.fields.items() if n not in self.skip]
        chosen = self._pick(roots_allowed, roots)
        parts = [self._field(name, definition, 1) for name, definition in chosen]
        return "{ " + " ".join(part for part in parts if part) + " }" if any(parts) else ""

    # ------------------------------------------------------------------ selections

    def _pick(self, items: Sequence[tuple[str, GraphQLField]], most: int) -> list[Any]:
        return self.rng.sample(list(items), k=min(len(items), self.rng.randint(1, most)))

    def _selection(self, graphql_type: GraphQLOutputType, depth: int) -> str | None:
        named = get_named_type(graphql_type)
        if is_leaf_type(named):
            return ""
        if depth > self.max_depth:
            return None
        if isinstance(named, GraphQLInterfaceType | GraphQLUnionType):
            possible = list(self.schema.get_possible_types(named))
            parts = ["__typename"]
            for implementation in self.rng.sample(possible, k=min(2, len(possible))):
                inner = self._object(implementation, depth)
                if inner:
                    parts.append(f"... on {implementation.name} {{ {inner} }}")
            return "{ " + " ".join(parts) + " }"
        assert isinstance(named, GraphQLObjectType)
        inner = self._object(named, depth)
        return "{ " + inner + " }" if inner else None

    def _object(self, graphql_type: GraphQLObjectType, depth: int) -> str:
        """Every leaf of the type (leaves are cheap, and each may hold a value worth
        seeing), and a sample of its object fields."""
        fields = list(graphql_type.fields.items())
        leaves = [(n, d) for n, d in fields if is_leaf_type(get_named_type(d.type))]
        objects = [(n, d) for n, d in fields if not is_leaf_type(get_named_type(d.type))]
        chosen = leaves + (self._pick(objects, self.max_fields) if objects else [])
        parts = [self._field(name, definition, depth + 1) for name, definition in chosen]
        return " ".join(part for part in parts if part) or "__typename"

    def _field(self, name: str, definition: GraphQLField, depth: int) -> str | None:
        if name.startswith("__"):
            return None
        arguments: list[str] = []
        for argument_name, argument in definition.args.items():
            if argument_name == "last" and any(a.startswith("first:") for a in arguments):
                continue  # a page is counted from one end
            value = self._argument(name, argument_name, argument)
            if value is None:
                if _required(argument):
                    return None
                continue
            arguments.append(f"{argument_name}: {value}")
        selection = self._selection(definition.type, depth)
        if selection is None:
            return None
        written = f"{name}({', '.join(arguments)})" if arguments else name
        return f"{written} {selection}".strip()

    # ------------------------------------------------------------------ arguments

    def _argument(self, field_name: str, name: str, argument: GraphQLArgument) -> str | None:
        required = _required(argument)
        if not required and self.rng.random() < 0.6:
            return None
        graphql_type = (
            argument.type.of_type if isinstance(argument.type, GraphQLNonNull) else argument.type
        )
        named = get_named_type(graphql_type)
        known = self.arguments
        if name == "id" and known.ids:
            return _string(self.rng.choice(known.ids))
        if name == "ids" and known.ids:
            return "[" + ", ".join(_string(i) for i in self.rng.sample(known.ids, k=3)) + "]"
        if name == "key":
            keys = known.keys.get(field_name)
            return _string(self.rng.choice(keys)) if keys else None
        if name in {"first", "last"}:
            return str(self.rng.randint(1, 4))
        if named.name == "DateTime":
            return _string(self.rng.choice(known.instants))
        if isinstance(named, GraphQLEnumType):
            value = self.rng.choice(list(named.values))
            return f"[{value}]" if isinstance(graphql_type, GraphQLList) else value
        if named.name == "Boolean":
            return self.rng.choice(["true", "false"])
        if isinstance(named, GraphQLInputObjectType) or not required:
            return None  # filters, orderings, cursors, free text: left to other tests
        return None


def _required(argument: GraphQLArgument) -> bool:
    return isinstance(argument.type, GraphQLNonNull) and argument.default_value is Undefined


def _string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
