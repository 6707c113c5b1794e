"""What an operation costs, before anything runs.

Cost: every object is 1 point, scalars are free; a connection is 1 point plus the
cost of one of its nodes times ``first``/``last`` (20 when absent); other lists
count 10 items (``nodes`` and ``_entities`` as many as they are asked for). Introspection (``__schema``, ``__type``) reads no data: 1 point per
root field, but its lists may nest at most ``MAX_INTROSPECTION_LISTS`` deep (the
standard introspection query's ``types > fields > args``) and never inside themselves,
so that ``fields { type { fields { type ... }}}`` cannot multiply the work.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, NamedTuple

from graphql import (
    FieldNode,
    GraphQLError,
    GraphQLInputObjectType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    OperationDefinitionNode,
    VariableDefinitionNode,
    get_named_type,
    get_operation_ast,
    is_leaf_type,
    type_from_ast,
)
from graphql.execution.values import get_variable_values

from domain.services.pagination import DEFAULT_PAGE_SIZE
from schema.compiled.selection import Walk, response_key

LIST_ESTIMATE = 10
MAX_INTROSPECTION_LISTS = 3
INTROSPECTION_ROOTS = frozenset({"__schema", "__type"})
# Lists whose length is that of a list argument: `nodes(ids:)`, `_entities(representations:)`.
SIZED_BY = ("ids", "representations")


class Measurement(NamedTuple):
    cost: int
    root_fields: int
    # Why the introspection in it is refused (lists nested too deep, or repeated).
    introspection_refusal: str | None
    # The operation's own name (for logs), given or not in the request.
    operation_name: str | None = None


def _is_list(graphql_type: Any) -> bool:
    while isinstance(graphql_type, GraphQLNonNull):
        graphql_type = graphql_type.of_type
    return isinstance(graphql_type, GraphQLList)


class CostCalculator:
    def __init__(self, walk: Walk) -> None:
        self.walk = walk
        self.introspection_refusal: str | None = None

    def selection(self, type_name: str, node: Any, multiplier: int = 1) -> int:
        graphql_type, children = self._children(self.walk.schema.type_map[type_name], node)
        type_name = graphql_type.name
        total = 0
        for child in children:
            name = child.name.value
            if name == "__typename":
                continue
            definition = self.walk.schema.get_field(graphql_type, name)  # __schema, __type too
            assert definition is not None  # the document is valid
            if name in INTROSPECTION_ROOTS:
                total += 1
                self._introspection(get_named_type(definition.type), child, ())
                continue
            named = get_named_type(definition.type)
            if is_leaf_type(named):
                continue
            if named.name.endswith("Connection"):
                args = self.walk.arguments(definition, child)
                size = args.get("first") or args.get("last") or DEFAULT_PAGE_SIZE
                total += 1 + self.selection(named.name, child, max(0, int(size)))
            elif name in {"nodes", "edges"} and type_name.endswith(("Connection",)):
                total += multiplier * self._node(named.name, child)
            elif _is_list(definition.type):
                args = self.walk.arguments(definition, child)
                sized_by = next((args[name] for name in SIZED_BY if name in args), None)
                size = LIST_ESTIMATE if sized_by is None else len(sized_by)
                total += size * self._node(named.name, child)
            else:
                total += self._node(named.name, child)
        return total

    def _introspection(self, graphql_type: Any, node: FieldNode, path: tuple[str, ...]) -> None:
        """Checks the lists nested below an introspection field (types > fields > args)."""
        if self.introspection_refusal is not None or is_leaf_type(graphql_type):
            return
        for child in self.walk.fields(graphql_type.name, node.selection_set):
            name = child.name.value
            definition = self.walk.schema.get_field(graphql_type, name)
            assert definition is not None
            nested = path
            if _is_list(definition.type):
                nested = (*path, name)
                if name in path:
                    self.introspection_refusal = (
                        f"This introspection selects `{name}` inside `{name}` "
                        f"({' > '.join(nested)}); a list may appear once on a path."
                    )
                elif len(nested) > MAX_INTROSPECTION_LISTS:
                    self.introspection_refusal = (
                        f"This introspection nests {len(nested)} lists ({' > '.join(nested)}); "
                        f"at most {MAX_INTROSPECTION_LISTS} may nest, as in the standard "
                        "introspection query."
                    )
            self._introspection(get_named_type(definition.type), child, nested)

    def _node(self, type_name: str, node: FieldNode) -> int:
        if type_name.endswith("Edge"):
            return self.selection(type_name, node)
        return 1 + self.selection(type_name, node)

    def _children(self, graphql_type: Any, node: Any) -> tuple[Any, list[FieldNode]]:
        if isinstance(graphql_type, GraphQLObjectType):
            return graphql_type, self.walk.fields(graphql_type.name, node.selection_set)
        # An interface (Node): count the implementation selecting the most fields.
        best: tuple[Any, list[FieldNode]] = (graphql_type, [])
        for implementation in self.walk.schema.get_possible_types(graphql_type):
            fields = self.walk.fields(implementation.name, node.selection_set)
            if len(fields) > len(best[1]):
                best = (implementation, fields)
        return best


def query_cost(
    schema: GraphQLSchema,
    document: Any,
    operation_name: str | None,
    variables: Any,
    ignored: frozenset[str] | None = None,
) -> Measurement | None:
    """Cost, root fields and introspection depth of the operation, or None if it cannot
    be computed (variables that do not coerce: execution reports that)."""
    operation = get_operation_ast(document, operation_name)
    if not isinstance(operation, OperationDefinitionNode):
        return None
    definitions = operation.variable_definitions or ()
    # Input objects never change a cost (only first, last, ids, @skip and @include do):
    # a batch of 10,000 measurements is not coerced once more just to be measured.
    if ignored is None:
        ignored = input_object_variables(schema, definitions)
    try:
        return _measure(
            schema,
            document,
            operation,
            [d for d in definitions if d.variable.name.value not in ignored],
            variables,
        )
    except GraphQLError:  # a required argument took one of them: measure with all
        return _measure(schema, document, operation, list(definitions), variables)


def _measure(
    schema: GraphQLSchema,
    document: Any,
    operation: OperationDefinitionNode,
    definitions: list[VariableDefinitionNode],
    variables: Any,
) -> Measurement | None:
    coerced = get_variable_values(schema, definitions, variables or {})
    if isinstance(coerced, list):
        return None
    fragments = {d.name.value: d for d in document.definitions if d.kind == "fragment_definition"}
    walk = Walk(schema, fragments, coerced, strict=False)
    root = schema.get_root_type(operation.operation)
    assert root is not None
    roots = {response_key(node) for node in walk.fields(root.name, operation.selection_set)}
    calculator = CostCalculator(walk)
    cost = calculator.selection(root.name, operation)
    name = operation.name.value if operation.name else None
    return Measurement(cost, len(roots), calculator.introspection_refusal, name)


def input_object_variables(
    schema: GraphQLSchema, definitions: Collection[VariableDefinitionNode]
) -> frozenset[str]:
    names = set()
    for definition in definitions:
        declared = type_from_ast(schema, definition.type)
        if isinstance(get_named_type(declared), GraphQLInputObjectType):
            names.add(definition.variable.name.value)
    return frozenset(names)


def actual_cost(data: Any) -> int:
    """Objects actually returned (connection wrappers and page info included)."""
    if isinstance(data, dict):
        return 1 + sum(actual_cost(value) for value in data.values())
    if isinstance(data, list):
        return sum(actual_cost(value) for value in data)
    return 0
