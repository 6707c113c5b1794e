"""Query cost, limits and rate limiting, checked before anything runs.

Cost: every object is 1 point, scalars are free; a connection is 1 point plus the
cost of one of its nodes times ``first``/``last`` (20 when absent); other lists
count 10 items. Introspection (``__schema``, ``__type``) reads no data: 1 point per
root field, but its lists may nest at most ``MAX_INTROSPECTION_LISTS`` deep (the
standard introspection query's ``types > fields > args``) and never inside themselves,
so that ``fields { type { fields { type ... }}}`` cannot multiply the work.
A query over the maximum cost is refused before any SQL runs, with its cost and
the limit in the error; the cost is then charged to the caller's budget.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import AsyncIterator, Collection, Hashable, Iterator
from functools import lru_cache
from typing import Any, NamedTuple

from graphql import (
    DocumentNode,
    ExecutionResult,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLInputObjectType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    VariableDefinitionNode,
    Visitor,
    get_named_type,
    get_operation_ast,
    is_leaf_type,
    type_from_ast,
    visit,
)
from graphql.execution.values import get_variable_values
from strawberry.extensions import SchemaExtension, ValidationCache

from api.services.pagination import DEFAULT_PAGE_SIZE
from schema.compiled.extension import execution_candidates, provided_operation_name
from schema.compiled.parameters import Candidates, variables_key
from schema.compiled.selection import Walk, response_key

LIST_ESTIMATE = 10
MAX_INTROSPECTION_LISTS = 3
INTROSPECTION_ROOTS = frozenset({"__schema", "__type"})


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
                size = len(args["ids"]) if "ids" in args else LIST_ESTIMATE
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


# (document, operation) -> its input-object variables, which costs are not keyed by.
_IGNORED: OrderedDict[tuple[str | None, str | None], frozenset[str]] = OrderedDict()


_COSTS: OrderedDict[Hashable, Measurement | None] = OrderedDict()
_COSTS_SIZE = 1024


def _cost_key(
    query: str | None, operation_name: str | None, variables: Any, candidates: Candidates
) -> Hashable:
    """A cost depends on the variables, except on input objects and on those bound as
    parameters (keys, IDs): only their shape counts."""
    ignored = _IGNORED.get((query, operation_name))
    if ignored and isinstance(variables, dict):
        variables = {name: value for name, value in variables.items() if name not in ignored}
    values = variables_key(variables, candidates)
    return None if values is None else (query, operation_name, values)


def known_measurement(
    query: str | None, operation_name: str | None, variables: Any, candidates: Candidates
) -> Measurement | None:
    """An operation measured before and within every limit; None if unknown."""
    key = _cost_key(query, operation_name, variables, candidates)
    measured = _COSTS.get(key) if key is not None else None
    if measured is None or measured.introspection_refusal is not None:
        return None
    return measured


def cost_extension(settings: Any, requested: int, actual: int, budget: Any) -> dict[str, Any]:
    """``extensions.cost`` of a response."""
    return {
        "requested": requested,
        "actual": actual,
        "limit": settings.max_query_cost,
        **({"remaining": budget.remaining, "budget": budget.limit} if budget is not None else {}),
    }


def cached_query_cost(execution: Any) -> Measurement | None:
    """``query_cost`` memoised by (document, operation, variables): it depends on nothing
    else."""
    operation_name = provided_operation_name(execution)
    ignored = _ignored_variables(execution, operation_name)
    key = _cost_key(
        execution.query, operation_name, execution.variables, execution_candidates(execution)
    )
    if key is not None and key in _COSTS:
        _COSTS.move_to_end(key)
        return _COSTS[key]
    measured = query_cost(
        execution.schema._schema,
        execution.graphql_document,
        execution.operation_name,
        execution.variables,
        ignored,
    )
    if key is not None:
        _COSTS[key] = measured
        while len(_COSTS) > _COSTS_SIZE:
            _COSTS.popitem(last=False)
    return measured


def _ignored_variables(execution: Any, operation_name: str | None) -> frozenset[str]:
    """``input_object_variables`` of the execution's operation, memoised in ``_IGNORED``
    (which ``_cost_key`` reads, also for the fast path, which has no document)."""
    key = (execution.query, operation_name)
    ignored = _IGNORED.get(key)
    if ignored is None:
        operation = get_operation_ast(execution.graphql_document, execution.operation_name)
        definitions = operation.variable_definitions if operation is not None else None
        ignored = _IGNORED[key] = input_object_variables(
            execution.schema._schema, definitions or ()
        )
        while len(_IGNORED) > _COSTS_SIZE:
            _IGNORED.popitem(last=False)
    return ignored


def actual_cost(data: Any) -> int:
    """Objects actually returned (connection wrappers and page info included)."""
    if isinstance(data, dict):
        return 1 + sum(actual_cost(value) for value in data.values())
    if isinstance(data, list):
        return sum(actual_cost(value) for value in data)
    return 0


def _refuse(message: str, code: str, **extensions: Any) -> ExecutionResult:
    return ExecutionResult(
        data=None, errors=[GraphQLError(message, extensions={"code": code, **extensions})]
    )


class QueryLimits(SchemaExtension):
    """Refuses too costly or too wide operations, charges the caller's budget and
    reports the cost in ``extensions.cost``."""

    async def on_execute(self) -> AsyncIterator[None]:
        execution = self.execution_context
        context = execution.context
        settings = context.settings
        measured = cached_query_cost(execution)
        context.operation_name = measured.operation_name if measured else None
        if measured is not None:
            cost, roots, introspection_refusal, _ = measured
            context.requested_cost = cost
            if cost > settings.max_query_cost:
                execution.result = _refuse(
                    f"This query costs {cost} points; the limit is {settings.max_query_cost}. "
                    "Ask for fewer items (first/last) or fewer nested connections.",
                    "QUERY_TOO_COSTLY",
                    cost=cost,
                    limit=settings.max_query_cost,
                )
            elif introspection_refusal is not None:
                execution.result = _refuse(introspection_refusal, "INTROSPECTION_TOO_DEEP")
            elif roots > settings.max_root_fields:
                execution.result = _refuse(
                    f"This operation selects {roots} root fields; the limit is "
                    f"{settings.max_root_fields}.",
                    "TOO_MANY_ROOT_FIELDS",
                )
            else:
                # Charged already if the fast path looked at this request first.
                budget = context.budget or await context.rate_limiter.charge(
                    context.rate_limit_key, max(cost, 1)
                )
                context.budget = budget
                if not budget.allowed:
                    context.response.status_code = 429
                    context.response.headers["Retry-After"] = str(budget.retry_after)
                    execution.result = _refuse(
                        f"Rate limit exceeded: {budget.remaining} of {budget.limit} points left "
                        f"in this window and this query costs {cost}. Retry after "
                        f"{budget.retry_after} seconds.",
                        "RATE_LIMITED",
                        retryAfter=budget.retry_after,
                    )
        yield
        result = execution.result
        if measured is not None and result is not None:
            budget = getattr(context, "budget", None)
            actual = getattr(context, "actual_cost", None)
            if actual is None:
                actual = actual_cost(result.data) if result.data else 0
            execution.extensions_results["cost"] = cost_extension(
                settings, measured.cost, actual, budget
            )


MAX_EXPANDED_FIELDS = 2000
MAX_DIRECTIVES = 50


def directive_count(document: DocumentNode) -> int:
    """Directives written in the document (skip/include and unknown ones alike)."""
    count = 0

    class Counter(Visitor):
        def enter_directive(self, *_: Any) -> None:
            nonlocal count
            count += 1

    visit(document, Counter())
    return count


def expanded_fields(document: DocumentNode) -> int:
    """How many fields the largest operation selects once every fragment is spread in
    place: linear in the document's size (each fragment is measured once), although
    the expansion itself may be exponential (fragments spreading others twice)."""
    fragments = {
        definition.name.value: definition
        for definition in document.definitions
        if isinstance(definition, FragmentDefinitionNode)
    }
    sizes: dict[str, int] = {}

    def size(selection_set: SelectionSetNode | None) -> int:
        total = 0
        for selection in selection_set.selections if selection_set else ():
            if isinstance(selection, FieldNode):
                total += 1 + size(selection.selection_set)
            elif isinstance(selection, InlineFragmentNode):
                total += size(selection.selection_set)
            elif isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                if name not in sizes:
                    sizes[name] = 0  # a cycle counts nothing here; validation reports it
                    fragment = fragments.get(name)
                    sizes[name] = size(fragment.selection_set) if fragment else 0
                total += sizes[name]
        return total

    return max(
        (
            size(definition.selection_set)
            for definition in document.definitions
            if isinstance(definition, OperationDefinitionNode)
        ),
        default=0,
    )


class BoundedValidationCache(ValidationCache):
    """Validation (cached), refused at once for a document whose fragments expand to
    more fields than any real query selects: validation and the limits walk the
    expansion, so a few hundred bytes of nested spreads would cost minutes of CPU."""

    def on_validate(self) -> Iterator[None]:
        execution = self.execution_context
        document = execution.graphql_document
        refusal = _size_refusal(document) if document is not None else None
        if refusal is None:
            yield from super().on_validate()
            return
        execution.pre_execution_errors = [refusal]
        yield


@lru_cache(maxsize=1024)  # by document, as the validation cache: once per document
def _size_refusal(document: DocumentNode) -> GraphQLError | None:
    fields = expanded_fields(document)
    if fields > MAX_EXPANDED_FIELDS:
        return GraphQLError(
            f"This document selects {fields} fields once its fragments are spread; "
            f"the limit is {MAX_EXPANDED_FIELDS}.",
            extensions={"code": "QUERY_TOO_LARGE", "limit": MAX_EXPANDED_FIELDS},
        )
    directives = directive_count(document)
    if directives > MAX_DIRECTIVES:
        return GraphQLError(
            f"This document uses {directives} directives; the limit is {MAX_DIRECTIVES}.",
            extensions={"code": "QUERY_TOO_LARGE", "limit": MAX_DIRECTIVES},
        )
    return None
