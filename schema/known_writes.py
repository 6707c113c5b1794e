"""The known-mutation path: a JSON POST of an entity update (``update<Entity>``, the only
root field) whose document strawberry's path parsed, validated and measured before runs
without strawberry's execution and without an ORM session. The view (``schema.view``)
tries it after the known reads; whenever it declines (``None``), strawberry's path
answers, with the exact errors. It declines whatever it cannot vouch for: a caller
without the field's scopes, variables that do not coerce, an input naming objects by key
or reference, rules that need the stored row or refuse, an unchanged row, any failed
statement, a payload field that is not a column of the row. A missing, archived or
stale row is refused here, as ``writes.lock`` refuses it.

What it runs is the service's: the same input conversion (graphql-core's coercion, the
input built as strawberry builds it, then ``portfolio.plain_update``), the same rules
and one statement
(``domain.services.direct_writes``: lock, update, audit event, returning the row), the
same cost charge, in a transaction of its own on a pooled connection: BEGIN, the
statement, COMMIT. The payload is built from the returned row as strawberry would
serialise it (the schema's own scalar and enum serialisers). After the commit the
response cache is dropped; a failed commit is answered 503, as the endpoint does."""

from __future__ import annotations

import contextlib
from collections.abc import Hashable
from dataclasses import MISSING, dataclass
from typing import Any

import asyncpg
import structlog
from graphql import (
    FieldNode,
    GraphQLEnumType,
    GraphQLError,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLScalarType,
    OperationDefinitionNode,
    OperationType,
    Undefined,
    get_named_type,
    get_nullable_type,
    parse,
)
from graphql.execution.values import coerce_variable_values, get_argument_values
from strawberry.permission import PermissionExtension
from strawberry.relay import GlobalID
from strawberry.scalars import is_scalar
from strawberry.types import ExecutionResult
from strawberry.types.base import StrawberryMaybe, StrawberryOptional
from strawberry.types.enum import StrawberryEnumDefinition, has_enum_definition

from domain.caches import ByteLRU, text_bytes
from domain.errors import DomainError
from domain.services import direct_writes
from domain.services.writes import Refused
from schema.ids import encode_id
from schema.known import KnownPath
from schema.limits import cost_extension, known_measurement
from schema.limits.cost import Measurement, actual_cost
from schema.mutations.common import actor_of, to_user_error
from schema.mutations.portfolio import UPDATES, plain_update

log = structlog.get_logger(__name__)

# How strawberry's schema points from a GraphQL definition back to its own.
_DEFINITION = "strawberry-definition"
# A payload field is built as: the type's name, a global ID, or a value of the row.
_TYPENAME, _ID, _VALUE = "typename", "id", "value"

DOCUMENT_CACHE_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class _Mutation:
    """An update mutation as the schema declares it."""

    name: str
    spec: Any
    references: dict[str, str]
    field: Any  # GraphQLField
    argument: Any  # strawberry's argument (the input type)
    scopes: tuple[str, ...]
    payload: GraphQLObjectType
    entity: str  # the payload's field holding the entity
    entity_type: GraphQLObjectType
    entity_scopes: tuple[str, ...]  # what reading that field needs
    # The input's fields as (GraphQL name, Python name, a scalar or an enum), and the
    # implicit None of those without a default (``strawberry.types.arguments``).
    fields: tuple[tuple[str, str, bool], ...]
    defaults: dict[str, None]


@dataclass(frozen=True)
class _Known:
    """A document this path answers: its operation, root field and payload plan."""

    mutation: _Mutation
    operation: OperationDefinitionNode
    field: FieldNode
    key: str  # the root field's response key
    # (response key, field name) of the payload; the entity's (response key, kind, name,
    # GraphQL type) for ``_entity``
    payload: tuple[tuple[str, str], ...]
    entity: tuple[tuple[str, str, str, Any], ...]
    errors: tuple[tuple[str, str, str, Any], ...]  # of each user error, as ``entity``

    @property
    def scopes(self) -> tuple[str, ...]:
        """What the caller needs for this path to answer: the mutation's scopes, and
        the entity field's when it is selected (if not held, strawberry's path answers
        with the field's FORBIDDEN)."""
        if any(name == self.mutation.entity for _, name in self.payload):
            return self.mutation.scopes + self.mutation.entity_scopes
        return self.mutation.scopes


class Written:
    """A known update, committed: its result and the operation's name."""

    __slots__ = ("operation_name", "result")

    def __init__(self, result: ExecutionResult, operation_name: str | None) -> None:
        self.result, self.operation_name = result, operation_name


class CommitFailed(Exception):
    """The statement ran but its COMMIT failed: nothing was done; the caller hears 503."""


@dataclass(eq=False)
class KnownUpdates(KnownPath):
    def __post_init__(self) -> None:
        self.mutations = _mutations(self.schema)
        self._documents: ByteLRU[Hashable, _Known | None] = ByteLRU(DOCUMENT_CACHE_BYTES)
        self._measured: ByteLRU[Hashable, Measurement] = ByteLRU(DOCUMENT_CACHE_BYTES)
        self.answered = 0  # updates this path wrote (tests)

    async def answer(
        self, principal: Any, request: Any, rate_limit_key: str, state: dict[str, Any]
    ) -> Written | None:
        """The committed answer of a known update, or None: strawberry's path answers
        (charging nothing more when this path charged already: ``state["budget"]``).
        Raises ``CommitFailed``."""
        query, operation_name, variables = request.query, request.operation_name, request.variables
        candidates = self.candidates(request)
        if candidates is None or not any(name in query for name in self.mutations):
            # Never run by strawberry's path (not parsed, validated, measured), or names
            # no update: a read none of whose cost goes to parsing it here.
            return None
        known = self._known(query, operation_name)
        if known is None or not principal.has(*known.scopes):
            return None  # a refused scope: its error, status and challenge are the path's
        measured = self._measured.get((query, operation_name))
        if measured is None:
            measured = known_measurement(query, operation_name, variables, candidates)
            if measured is not None:
                # Its cost depends on no variable (no list argument is selected): once.
                self._measured.put((query, operation_name), measured, text_bytes(query) + 200)
        if measured is None or not self.within_limits(measured):
            return None
        given = self._input(known, variables or {})
        if given is None:
            return None
        budget = await self.rate_limiter.charge(rate_limit_key, max(measured.cost, 1))
        state["budget"] = budget  # charged once, whichever path answers
        if not budget.allowed:
            return None
        written = await self._write(known, principal, *given)
        if written is None:
            return None
        data, wrote = written
        self.answered += 1
        if wrote:
            self.responses.invalidate()  # committed: no answer read before may be served
        cost = cost_extension(self.settings, measured.cost, actual_cost(data), budget)
        result = ExecutionResult(data=data, errors=None, extensions={"cost": cost})
        return Written(result, measured.operation_name)

    def _known(self, query: str, operation_name: str | None) -> _Known | None:
        key = (query, operation_name)
        found = self._documents.get(key)
        if found is None and key not in self._documents:
            found = _analyse(self.mutations, query, operation_name)
            self._documents.put(key, found, text_bytes(query, operation_name) + 500)
        return found

    def _input(
        self, known: _Known, variables: dict[str, Any]
    ) -> tuple[int, int | None, dict[str, Any]] | None:
        """The target's primary key, the expected version and the values to write,
        converted as strawberry's path converts them; None for anything that path would
        refuse or report."""
        mutation = known.mutation
        try:
            coerced = coerce_variable_values(
                self.schema._schema, known.operation.variable_definitions or (), variables, _raise
            )
            if isinstance(coerced, list):
                return None
            arguments = get_argument_values(mutation.field, known.field, coerced)
            data = _converted(mutation, arguments["input"])
            if data is None:
                return None
            planned = plain_update(mutation.spec, data, mutation.references)
        except (GraphQLError, Refused, DomainError, KeyError, TypeError, ValueError):
            return None
        if planned is None:
            return None
        return planned[0], data.expected_version, planned[1]

    async def _write(
        self,
        known: _Known,
        principal: Any,
        entity_id: int,
        expected_version: int | None,
        values: dict[str, Any],
    ) -> tuple[dict[str, Any], bool] | None:
        """BEGIN, the statement, the payload from its row, COMMIT: the data and True. A
        refusal (missing, stale) is rolled back, as strawberry's path discards a refused
        lone mutation: its data and False. None (rolled back) when that path must answer."""
        async with self.reads() as driver:
            transaction = driver.transaction()
            await transaction.start()
            data: dict[str, Any] | None = None
            wrote = False
            try:
                written = await direct_writes.update(
                    driver,
                    actor_of(principal),
                    known.mutation.spec,
                    entity_id,
                    expected_version,
                    values,
                )
                if isinstance(written, Refused):
                    errors = [to_user_error(error) for error in written.errors]
                    data = {known.key: _payload(known, written.current, errors)}
                elif written is not None:
                    data, wrote = {known.key: _payload(known, written, [])}, True
            except _DECLINED:
                pass  # a unique value taken, a deadlock, a lost connection: the path's
            if not wrote:
                # A lost connection is not handed out again (``read_connections``).
                with contextlib.suppress(*_FAILED):
                    await transaction.rollback()
                return None if data is None else (data, False)
            try:
                await transaction.commit()
            except _FAILED as error:
                log.warning("database_unavailable", error=type(error).__name__)
                raise CommitFailed() from error
            assert data is not None  # it wrote: its payload was built
            return data, True


# What the statement may raise for strawberry's path to answer instead, and what the
# connection may raise at all.
class _Unserialisable(Exception):
    """A value of the row that graphql-core would not serialise: its error is the path's."""


_FAILED = (asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError, OSError)
_DECLINED = (*_FAILED, _Unserialisable)


def _raise(error: GraphQLError) -> None:
    raise error


def _mutations(schema: Any) -> dict[str, _Mutation]:
    """Every entity update mutation (``portfolio.UPDATES``), as the schema declares it."""
    root = schema._schema.mutation_type
    found: dict[str, _Mutation] = {}
    for name, (spec, references) in UPDATES.items():
        field = root.fields[name]
        definition = field.extensions[_DEFINITION]
        payload = get_named_type(field.type)
        assert isinstance(payload, GraphQLObjectType), name
        entities = [key for key in payload.fields if key != "userErrors"]
        entity_type = get_named_type(payload.fields[entities[0]].type)
        assert len(entities) == 1 and isinstance(entity_type, GraphQLObjectType), name
        input_type = definition.arguments[0].type
        fields = input_type.__strawberry_definition__.fields
        found[name] = _Mutation(
            fields=tuple(
                (
                    schema.config.name_converter.from_field(field),
                    field.python_name,
                    _leaf(field.type, schema.schema_converter.scalar_registry),
                )
                for field in fields
            ),
            defaults={
                field.python_name: None
                for field in fields
                if field.default is MISSING and field.default_factory is MISSING
            },
            name=name,
            spec=spec,
            references=references,
            field=field,
            argument=definition.arguments[0],
            scopes=_scopes(definition),
            payload=payload,
            entity=entities[0],
            entity_type=entity_type,
            entity_scopes=_scopes(payload.fields[entities[0]].extensions.get(_DEFINITION)),
        )
    return found


def _leaf(kind: Any, scalar_registry: Any) -> bool:
    """Whether strawberry passes an input value of this type on as graphql-core coerced
    it: a scalar or an enum, maybe optional (not a list, an input object, a GlobalID)."""
    if isinstance(kind, StrawberryMaybe) or kind is GlobalID:
        return False
    if isinstance(kind, StrawberryOptional):
        kind = kind.of_type
    return (
        is_scalar(kind, scalar_registry)
        or isinstance(kind, StrawberryEnumDefinition)
        or has_enum_definition(kind)
    )


def _converted(mutation: _Mutation, value: dict[str, Any]) -> Any:
    """The input as strawberry's ``convert_argument`` builds it, for one whose fields are
    all scalars, enums or null; None for anything else (strawberry's path converts it)."""
    kwargs: dict[str, Any] = dict(mutation.defaults)
    for graphql_name, python_name, leaf in mutation.fields:
        if graphql_name in value:
            given = value[graphql_name]
            if not leaf and given is not None:
                return None
            kwargs[python_name] = given
    return mutation.argument.type(**kwargs)


def _scopes(definition: Any) -> tuple[str, ...]:
    """The scopes the field's declaration requires (``permissions.guarded``)."""
    return tuple(
        scope
        for extension in definition.extensions
        if isinstance(extension, PermissionExtension)
        for permission in extension.permissions
        for scope in getattr(permission, "scopes", ())
    )


def _analyse(
    mutations: dict[str, _Mutation], query: str, operation_name: str | None
) -> _Known | None:
    """The plan of a document this path can answer, or None: one mutation operation, no
    directives or fragments, one root field that is an entity update taking ``input``,
    and a payload of plain fields (the entity's columns, its ID, type names)."""
    try:
        document = parse(query, no_location=True)
    except GraphQLError:
        return None
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if len(operations) != len(document.definitions):
        return None  # fragments
    chosen = [
        o
        for o in operations
        if operation_name is None or (o.name is not None and o.name.value == operation_name)
    ]
    if len(chosen) != 1 or (operation_name is None and len(operations) != 1):
        return None
    operation = chosen[0]
    roots = operation.selection_set.selections
    if operation.operation != OperationType.MUTATION or operation.directives or len(roots) != 1:
        return None
    root = roots[0]
    if not isinstance(root, FieldNode) or root.directives or root.selection_set is None:
        return None
    mutation = mutations.get(root.name.value)
    if mutation is None or [a.name.value for a in root.arguments or ()] != ["input"]:
        return None
    payload: list[tuple[str, str]] = []
    entity: tuple[tuple[str, str, str, Any], ...] | None = ()
    errors: tuple[tuple[str, str, str, Any], ...] | None = ()
    error_type = get_named_type(mutation.payload.fields["userErrors"].type)
    for node in _plain(root.selection_set.selections):
        if node is None:
            return None
        name = node.name.value
        if name == mutation.entity and node.selection_set is not None and not entity:
            entity = _entity_plan(mutation.entity_type, node.selection_set.selections)
        elif name == "userErrors" and node.selection_set is not None and not errors:
            errors = _entity_plan(error_type, node.selection_set.selections)
        elif name != "__typename":
            return None
        if entity is None or errors is None:
            return None
        payload.append((_response_key(node), name))
    keys = [key for key, _ in payload]
    if len(set(keys)) != len(keys) or entity is None or errors is None:
        return None  # merged selections: strawberry's path
    return _Known(mutation, operation, root, _response_key(root), tuple(payload), entity, errors)


def _plain(selections: Any) -> list[FieldNode | None]:
    """Fields without directives or arguments (None in place of anything else)."""
    return [
        node if isinstance(node, FieldNode) and not node.directives and not node.arguments else None
        for node in selections
    ]


def _entity_plan(
    entity_type: GraphQLObjectType, selections: Any
) -> tuple[tuple[str, str, str, Any], ...] | None:
    """(response key, kind, name, GraphQL type) of each field selected on the entity:
    its type name, its global ID, or a column of its row read by strawberry's default
    resolver (no resolver of its own, no scope of its own, a scalar or an enum)."""
    planned: list[tuple[str, str, str, Any]] = []
    for node in _plain(selections):
        if node is None or node.selection_set is not None:
            return None
        name = node.name.value
        key = _response_key(node)
        if name == "__typename":
            planned.append((key, _TYPENAME, entity_type.name, None))
            continue
        field = entity_type.fields.get(name)
        definition = field.extensions.get(_DEFINITION) if field is not None else None
        if definition is None:
            return None
        if definition.metadata.get("global_id") == entity_type.name:
            planned.append((key, _ID, entity_type.name, None))
            continue
        kind = get_nullable_type(field.type)
        if (
            definition.base_resolver is not None
            or definition.extensions
            or not isinstance(kind, GraphQLScalarType | GraphQLEnumType)
        ):
            return None
        planned.append((key, _VALUE, definition.python_name, field.type))
    keys = [entry[0] for entry in planned]
    return tuple(planned) if len(set(keys)) == len(keys) else None


def _response_key(node: FieldNode) -> str:
    return node.alias.value if node.alias else node.name.value


def _payload(known: _Known, row: dict[str, Any] | None, errors: list[Any]) -> dict[str, Any]:
    """The payload, from the row (None: no entity) and the user errors, as graphql-core
    completes it (the schema's serialisers); raises ``_Unserialisable`` where it would
    fail."""
    payload: dict[str, Any] = {}
    for key, name in known.payload:
        if name == "__typename":
            payload[key] = known.mutation.payload.name
        elif name == "userErrors":
            payload[key] = [_entity(known.errors, vars(error)) for error in errors]
        else:
            payload[key] = None if row is None else _entity(known.entity, row)
    return payload


def _entity(plan: tuple[tuple[str, str, str, Any], ...], row: dict[str, Any]) -> dict[str, Any]:
    entity: dict[str, Any] = {}
    for key, kind, name, graphql_type in plan:
        if kind == _TYPENAME:
            entity[key] = name
        elif kind == _ID:
            entity[key] = encode_id(name, row["id"])
        else:
            value = row[name]
            if value is None:
                if isinstance(graphql_type, GraphQLNonNull):
                    raise _Unserialisable(name)
                entity[key] = None
                continue
            serialised = get_nullable_type(graphql_type).serialize(value)
            if serialised is None or serialised is Undefined:
                raise _Unserialisable(name)
            entity[key] = serialised
    return entity
