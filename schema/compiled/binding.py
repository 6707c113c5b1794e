"""The values a plan binds, computed per request: the plan's SQL has ``$n`` where a
variable's value goes, and ``Binder`` fills them in for each request's variables.

Most parameters are a variable's value as it is (a key, an ID, a cursor's text:
``parameters.bound_value``). Others are computed from the arguments of the field that
uses them, as the resolvers would get them: ``first: $n`` is checked by
``page_request`` (range, not with ``last``) and becomes ``LIMIT $n``; a filter field
given as a variable becomes the values of the SQL the service's filter writes for it
(an enum list, the words of a search, a date), the whole filter checked as the service
checks it (a range whose end is before its start). A value the resolvers refuse makes
the plan decline that request (``Declined``): the resolvers answer it, with their error.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any

import orjson
import strawberry
from graphql import (
    FieldNode,
    GraphQLEnumType,
    GraphQLError,
    GraphQLInputType,
    GraphQLSchema,
    ListValueNode,
    ObjectValueNode,
    VariableDefinitionNode,
    VariableNode,
    Visitor,
    get_nullable_type,
    is_input_object_type,
    is_leaf_type,
    is_list_type,
    is_non_null_type,
    visit,
)
from graphql.execution.values import (
    VariableValues,
    VariableValueSource,
    coerce_input_value,
    get_argument_values,
    get_variable_signature,
    get_variable_values,
)
from graphql.pyutils import Undefined, is_iterable

from domain.caches import ByteLRU, held_bytes
from domain.errors import DomainError
from schema.compiled.parameters import PREFIX, bound_value
from schema.compiled.selection import Unsupported


class Declined(Exception):
    """This request's values are not served by the plan: the resolvers answer it."""


# From a field's arguments, the values of the parameters it binds: a function of those
# arguments alone (no clock, no caller beyond the plan's scopes), so that ``Binder``
# may keep what it computed for the values of a request seen before.
Extract = Callable[[dict[str, Any]], Mapping[str, Any]]

# Computed values kept per plan, for the variables' values of its latest requests (a
# dashboard polls one window, a pagination walk goes over the same pages), and the
# longest text of those variables' values kept as a key. What is kept is bounded by
# the memory it holds (``held_bytes``), not by its count alone: the values are the
# callers', and a list of a thousand empty lists is 3 KB of JSON but 60 KB in Python.
# The plan cache counts these budgets in each plan's size (``extension._plan_bytes``).
MAX_REMEMBERED_KEY = 512
# Parameters computed for whole combinations of values: about 40 of a constraint
# board's (four filter lists and a search text, ~1.5 KB each as counted).
REMEMBERED_BINDINGS_BYTES = 64 * 1024
# One variable's values as GraphQL coerced them (its sources beside them): about 40
# of a board's enum lists (~750 B each as counted).
REMEMBERED_VALUE_BYTES = 32 * 1024


@dataclass
class Site:
    """A field whose parameters are computed from its arguments, as GraphQL coerces them
    (enum members, dates, instants: what strawberry's inputs hold)."""

    definition: Any  # GraphQL field
    node: FieldNode
    extracts: list[Extract] = field(default_factory=list)
    _shape: _Arguments | None = field(default=None, init=False, repr=False)

    def arguments(self, coerced: VariableValues) -> dict[str, Any]:
        """The field's arguments, as ``get_argument_values`` coerces them."""
        if self._shape is None:
            self._shape = _Arguments(self.definition, self.node)
        found = self._shape.of(coerced)
        if found is None:
            found = get_argument_values(self.definition, self.node, coerced)
            self._shape.learn(coerced)
        return found


class _Probe:
    """Stands for a variable's value while a field's arguments are coerced once."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name


class _Arguments:
    """A field's arguments as GraphQL coerces them, from a template: coerced once with
    each variable standing in for its value (``_Probe``), then per request the template
    with the values put in. graphql-core's coercion of a filter's literal (a walk over
    the literal and the input types) was an eighth of a board's CPU for combinations of
    values not seen before; the template takes a quarter of that. A variable's coerced value goes into an argument literal as it is (GraphQL
    checks nothing more of it), so the template answers alike whenever each variable
    is given, and null only where null may stand; for anything else (a variable not
    given, so a default applies; null where it may not; a literal of another shape)
    ``of`` declines and graphql-core coerces."""

    def __init__(self, definition: Any, node: FieldNode) -> None:
        self.definition = definition
        self.node = node
        # Variable -> whether every place it stands may hold null, and its places.
        self.nullable: dict[str, bool] = {}
        self.uses: dict[str, int] = {}
        self.usable = _places(definition, node, self.nullable, self.uses)
        self.template: dict[str, Any] | None = None

    def of(self, coerced: VariableValues) -> dict[str, Any] | None:
        if self.template is None:
            return None
        values = coerced.coerced
        for name, nullable in self.nullable.items():
            if name not in values or (values[name] is None and not nullable):
                return None
        filled: dict[str, Any] = _filled(self.template, values)
        return filled

    def learn(self, coerced: VariableValues) -> None:
        """Makes the template, the first time a request gives every variable."""
        if not self.usable or self.template is not None:
            return
        if any(name not in coerced.coerced for name in self.nullable):
            return
        probes = {name: _Probe(name) for name in self.nullable}
        standing = VariableValues(coerced.sources, {**coerced.coerced, **probes})
        self.usable = False  # one try
        try:
            template = get_argument_values(self.definition, self.node, standing)
        except GraphQLError:
            return
        counted: dict[str, int] = {}
        if _count_probes(template, counted) and counted == self.uses:
            self.template = template


def _filled(template: Any, values: dict[str, Any]) -> Any:
    """The template with each probe's variable value in its place; dicts and lists
    copied, so that no request's arguments share a container with another's."""
    if isinstance(template, _Probe):
        return values[template.name]
    if type(template) is dict:
        return {key: _filled(value, values) for key, value in template.items()}
    if type(template) is list:
        return [_filled(value, values) for value in template]
    return template


def _count_probes(template: Any, counted: dict[str, int]) -> bool:
    """Counts the probes in plain dicts and lists; False if the template holds any
    other container (an input's ``out_type``), which ``_filled`` would not look into."""
    if isinstance(template, _Probe):
        counted[template.name] = counted.get(template.name, 0) + 1
        return True
    if type(template) is dict:
        return all(_count_probes(value, counted) for value in template.values())
    if type(template) is list:
        return all(_count_probes(value, counted) for value in template)
    return isinstance(template, _LEAVES)


# What a template may hold besides dicts, lists and probes: values no request changes.
_LEAVES = (str, int, float, bool, type(None), Enum, date, datetime, Decimal)


def _places(
    definition: Any, node: FieldNode, nullable: dict[str, bool], uses: dict[str, int]
) -> bool:
    """Fills in, for each variable in a field's argument literals, whether every place
    it stands may hold null, and how many places it has; False where a literal has a
    shape the template does not follow (a one-of input, a value of another kind than
    its type)."""

    def walk(value: Any, type_: Any) -> bool:
        if isinstance(value, VariableNode):
            name = value.name.value
            nullable[name] = nullable.get(name, True) and not is_non_null_type(type_)
            uses[name] = uses.get(name, 0) + 1
            return True
        named = get_nullable_type(type_)
        if isinstance(value, ObjectValueNode):
            if not is_input_object_type(named) or getattr(named, "is_one_of", False):
                return False
            return all(
                f.name.value in named.fields and walk(f.value, named.fields[f.name.value].type)
                for f in value.fields
            )
        if isinstance(value, ListValueNode):
            return is_list_type(named) and all(walk(item, named.of_type) for item in value.values)
        return True  # a literal without variables

    for argument in node.arguments or ():
        argument_definition = definition.args.get(argument.name.value)
        if argument_definition is None or not walk(argument.value, argument_definition.type):
            return False
    return True


@dataclass
class Binder:
    """Everything a plan needs to bind a request's values."""

    schema: strawberry.Schema
    variable_definitions: tuple[VariableDefinitionNode, ...]
    direct: dict[str, str] = field(default_factory=dict)  # variable -> kind, bound as it is
    sites: list[Site] = field(default_factory=list)
    # Computed parameters (``parameters.COMPUTED``): their shape alone does not say a value
    # is valid, so each is coerced per request even where no site reads it (a root field
    # the caller's scopes refuse), as strawberry's path coerces every variable first.
    computed: tuple[str, ...] = ()
    # The variables the sites' arguments use, and only their definitions: the others
    # (a key bound as it is) are not coerced again per request.
    used: tuple[str, ...] = field(init=False)
    used_definitions: tuple[VariableDefinitionNode, ...] = field(init=False)
    _remembered: ByteLRU[str, dict[str, Any]] = field(init=False, repr=False)
    # Variable -> its values' texts -> the value GraphQL coerced from each (and its source).
    _coerced_values: dict[str, ByteLRU[str, tuple[Any, Any]]] = field(init=False, repr=False)
    # Variable -> its signature and coercion, for those of enums and scalars (in lists).
    _leaves: dict[str, tuple[Any, _LeafCoercion]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        finder = _Variables()
        finder.names.update(self.computed)
        for site in self.sites:
            for argument in site.node.arguments or ():
                visit(argument, finder)
        self.used = tuple(sorted(finder.names))
        self.used_definitions = tuple(
            d for d in self.variable_definitions if d.variable.name.value in finder.names
        )
        self._remembered = ByteLRU(REMEMBERED_BINDINGS_BYTES)
        self._coerced_values = {}
        self._leaves = {}
        graphql_schema: GraphQLSchema = self.schema._schema
        for definition in self.used_definitions:
            signature = get_variable_signature(graphql_schema, definition)
            if isinstance(signature, GraphQLError):
                continue  # strawberry's path reports it
            coercion = _LeafCoercion.of(signature.type)
            if coercion is not None:
                self._leaves[signature.name] = (signature, coercion)

    @property
    def remembered_bytes(self) -> int:
        """The most the values it remembers may hold (what the plan cache counts)."""
        if not (self.sites or self.used):
            return 0
        kept_one_by_one = len(self.used_definitions) - len(self._leaves)
        return REMEMBERED_BINDINGS_BYTES + kept_one_by_one * REMEMBERED_VALUE_BYTES

    def values(self, variables: Any) -> dict[str, Any]:
        """Parameter name -> value for this request; ``Declined`` if the plan does not
        serve these values."""
        raw = variables if isinstance(variables, dict) else {}
        found = {PREFIX + name: bound_value(kind, raw[name]) for name, kind in self.direct.items()}
        if self.sites or self.used:
            found.update(self._computed_once(raw))
        return found

    def _computed_once(self, raw: dict[str, Any]) -> dict[str, Any]:
        """``_computed``, kept for the values of the variables it reads (a value it
        declines is worked out again: the resolvers answer those)."""
        key = self._key(raw)
        if key is not None:
            found = self._remembered.get(key)
            if found is not None:
                return found
        found = self._computed(raw)
        if key is not None:
            self._remembered.put(key, found, held_bytes(key) + held_bytes(found))
        return found

    def _key(self, raw: dict[str, Any]) -> str | None:
        """The values of the variables the sites read, as text (omitted and null apart),
        or None if not worth keeping."""
        try:
            text = orjson.dumps(
                [(name, raw[name]) if name in raw else (name,) for name in self.used],
                option=orjson.OPT_SORT_KEYS,
            ).decode()
        except TypeError:
            return None
        return text if len(text) <= MAX_REMEMBERED_KEY else None

    def _coerced(self, raw: dict[str, Any]) -> VariableValues:
        """The used variables as GraphQL coerces them. Each variable is coerced on its
        own (its type and value alone decide): one of enums and scalars by
        ``_LeafCoercion``; one holding input objects is taken as it was coerced before
        if this plan saw its value, and only the others go through graphql-core."""
        sources: dict[str, Any] = {}
        coerced: dict[str, Any] = {}
        keys: dict[str, str] = {}
        missing = []
        for definition in self.used_definitions:
            name = definition.variable.name.value
            leaf = self._leaves.get(name)
            if leaf is not None and name in raw:
                value = leaf[1](raw[name])
                if value is not Undefined:
                    sources[name] = VariableValueSource(leaf[0], raw[name])
                    coerced[name] = value
                    continue
            key = _value_key(raw[name]) if name in raw else None
            values = self._coerced_values.get(name)
            kept = values.get(key) if key is not None and values is not None else None
            if kept is not None:
                sources[name], coerced[name] = kept
                continue
            missing.append(definition)
            if key is not None:
                keys[name] = key
        if missing:
            graphql_schema: GraphQLSchema = self.schema._schema
            found = get_variable_values(graphql_schema, missing, raw)
            if isinstance(found, list):
                raise Declined("variables")  # strawberry reports them
            for name, key in keys.items():
                values = self._coerced_values.get(name)
                if values is None:
                    values = self._coerced_values[name] = ByteLRU(REMEMBERED_VALUE_BYTES)
                kept = (found.sources[name], found.coerced[name])
                # The source holds the raw value: it counts beside the coerced one.
                values.put(key, kept, held_bytes(key) + held_bytes(raw[name]) + held_bytes(kept[1]))
            sources.update(found.sources)
            coerced.update(found.coerced)
        return VariableValues(sources, coerced)

    def _computed(self, raw: dict[str, Any]) -> dict[str, Any]:
        coerced = self._coerced(raw)
        found: dict[str, Any] = {}
        for site in self.sites:
            try:
                arguments = site.arguments(coerced)
                for extract in site.extracts:
                    found.update(extract(arguments))
            except (DomainError, Unsupported, GraphQLError, ValueError, TypeError) as refused:
                raise Declined(str(refused)) from None
        return found


class _LeafCoercion:
    """A variable's value as graphql-core coerces it, for a type of enums or scalars,
    in lists or not (``[ConstraintCategory!]``, ``String``): Undefined where graphql-core
    would refuse it (and reports why). An enum's member is looked up by its name, each
    name coerced once: graphql-core's walk took ~2.4 µs per item of a list, a new
    combination of a board's categories ~18 µs."""

    __slots__ = ("_type", "_item", "_nullable", "_names")

    def __init__(self, type_: GraphQLInputType, item: _LeafCoercion | None) -> None:
        self._nullable = not is_non_null_type(type_)
        self._type: Any = get_nullable_type(type_)
        self._item = item  # of a list
        self._names: dict[str, Any] = {}  # of an enum: name -> member

    @classmethod
    def of(cls, type_: GraphQLInputType) -> _LeafCoercion | None:
        """None for a type that holds input objects (their fields have defaults)."""
        named = get_nullable_type(type_)
        if is_list_type(named):
            item = cls.of(named.of_type)
            return None if item is None else cls(type_, item)
        return cls(type_, None) if is_leaf_type(named) else None

    def __call__(self, value: Any) -> Any:
        if value is None:
            return None if self._nullable else Undefined
        item = self._item
        if item is not None:
            if not is_iterable(value):
                found = item(value)  # a list of one, as GraphQL reads a single value
                return Undefined if found is Undefined else [found]
            coerced = [item(one) for one in value]
            return Undefined if any(one is Undefined for one in coerced) else coerced
        if isinstance(self._type, GraphQLEnumType) and type(value) is str:
            member = self._names.get(value, Undefined)
            if member is not Undefined:
                return member
            member = coerce_input_value(value, self._type)
            if member is not Undefined and len(self._names) < len(self._type.values):
                self._names[value] = member
            return member
        return coerce_input_value(value, self._type)


def _value_key(value: Any) -> str | None:
    """A variable's value as text, if short enough to keep."""
    try:
        text = orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
    except TypeError:
        return None
    return text if len(text) <= MAX_REMEMBERED_KEY else None


class _Variables(Visitor):
    """The names of the variables used in what it visits."""

    def __init__(self) -> None:
        super().__init__()
        self.names: set[str] = set()

    def enter_variable(self, node: VariableNode, *_: Any) -> None:
        self.names.add(node.name.value)
