"""A list's filter as SQL conditions on its rows: the service's own filter
(``domain.services.filters``), with the fields given as parameter variables bound.

The SQL of a bound field is the service's, found by asking its filter for that field
alone: the conditions it adds to the filter's empty form. Its values are the bind
values that change with the field's value (found by asking twice, with two values); an
``IN`` list becomes ``= ANY($n)``, and a boolean, whose two values write two different
conditions, ``($n AND when true) OR (NOT $n AND when false)``. Each request computes the
values the same way from its own field value (``schema.compiled.binding``), and the
whole filter is checked by the service first (its ``check``, without building SQL), as
the resolvers' is.

Asking the service again for each new value builds its SQL; two kinds of field are
computed directly instead, once probing showed the service writes them so: a list of
enum members it binds as given (``column IN (values)``: their names), and a search text
it binds as ``filters.search_query`` writes it. A request's value of any other kind, or
any other field, is asked for as before.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Hashable
from datetime import date, datetime, timedelta
from enum import Enum
from functools import cache
from typing import TYPE_CHECKING, Any

from graphql import FieldNode
from sqlalchemy import Boolean, Text, all_, and_, any_, cast, not_, or_, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import asyncpg as postgresql_asyncpg
from sqlalchemy.sql import operators, visitors
from sqlalchemy.sql.elements import BinaryExpression, BindParameter, BooleanClauseList

from domain.caches import ByteLRU, held_bytes
from domain.errors import DomainError
from domain.services.filters import search_query
from schema.compiled.selection import Invalid, Unsupported

if TYPE_CHECKING:
    from schema.compiled.compiler import Compiler

_DIALECT = postgresql_asyncpg.dialect()


def conditions_of(
    c: Compiler, node: FieldNode, filter_type: Any, given: Any, model: Any, alias: Any
) -> list[Any]:
    """The conditions of the filter ``given`` (a GraphQL filter input, or None) on the
    rows of ``alias``."""
    try:
        query_filter = (given or filter_type()).to_filter()
        query_filter.check()  # the service's checks (ranges, search words)
    except DomainError:
        raise Invalid("invalid arguments") from None
    bound: list[Any] = []
    computed_directly = False
    if given is not None:
        for graphql_name, python_name in _input_fields(c, filter_type):
            use = c.parameter_use(node, ("filter", graphql_name))
            if use is None:
                continue
            if graphql_name == "keys":
                query_filter, clause = _keys(c, node, query_filter, alias)
            else:
                value = getattr(given, python_name)
                if value == []:  # its shape says empty: the plan may write it
                    c.mark_bound(use)
                    continue
                found = _field(c, node, filter_type, model, (graphql_name, python_name), value)
                if found is None:
                    continue  # left unbound: planning fails with NotBound
                clause, touched, direct = found
                computed_directly |= direct
                empty = filter_type().to_filter()
                query_filter = dataclasses.replace(
                    query_filter, **{name: getattr(empty, name) for name in touched}
                )
            c.mark_bound(use)
            bound.append(c.adapt(alias, clause))
        given_fields = sum(
            getattr(given, name) is not None for _, name in _input_fields(c, filter_type)
        )
        if bound and (given_fields > 1 or computed_directly):
            # A field asked of the service for each value is checked by it (below); what
            # needs the whole filter is a check across fields (a range's ends), or of a
            # field computed without asking.
            names = _input_fields(c, filter_type)
            c.check(node, lambda arguments: _checked(arguments, filter_type, model, names))
    statement = query_filter.apply(select(model))
    whereclause = statement.whereclause
    return ([c.adapt(alias, whereclause)] if whereclause is not None else []) + bound


def _keys(c: Compiler, node: FieldNode, query_filter: Any, alias: Any) -> tuple[Any, Any]:
    """key IN (...) as key = ANY($n): one parameter whatever the number of keys, bound as
    the variable's value itself (``parameters.STRINGS``)."""
    keys = list(query_filter.keys)
    parameter = c.parameter(node, ("filter", "keys"), keys, ARRAY(Text))
    clause = alias.key == any_(cast(parameter, ARRAY(Text)))
    # Adapted again by the caller: the alias's own column is left as it is.
    return dataclasses.replace(query_filter, keys=None), clause


def _checked(
    arguments: dict[str, Any], filter_type: Any, model: Any, names: tuple[tuple[str, str], ...]
) -> None:
    """The whole filter of a request (as GraphQL coerced it), checked by the service
    (without building its SQL): raises what it refuses."""
    given = arguments["filter"]
    fields = {python: given[graphql] for graphql, python in names if given.get(graphql) is not None}
    filter_type(**fields).to_filter().check()


@cache
def _input_fields_of(filter_type: Any, converter: Any) -> tuple[tuple[str, str], ...]:
    definition = filter_type.__strawberry_definition__
    return tuple(
        (converter.get_graphql_name(field), field.python_name) for field in definition.fields
    )


def _input_fields(c: Compiler, filter_type: Any) -> tuple[tuple[str, str], ...]:
    """(GraphQL name, Python name) of each field of a filter input."""
    return _input_fields_of(filter_type, c.schema.config.name_converter)


def _field(
    c: Compiler,
    node: FieldNode,
    filter_type: Any,
    model: Any,
    names: tuple[str, str],
    value: Any,
) -> tuple[Any, set[str], bool] | None:
    """The bound SQL of one filter field (its GraphQL and Python names), the service
    filter's fields it sets, and whether its values are computed without asking the
    service (``_direct``); None if it cannot be bound (its value is then inlined, keyed
    by value). Each request's value is read as GraphQL coerced it (enum members, dates):
    what strawberry's input would hold."""
    graphql_name, name = names
    try:
        touched, when = _probe(filter_type, model, name, value)
        if isinstance(value, bool):
            _, other = _probe(filter_type, model, name, not value)
            when_true, when_false = (when, other) if value else (other, when)
            (parameter,) = c.computed(
                node, [(value, Boolean)], lambda a: [bool(a["filter"][graphql_name])]
            )
            return (
                or_(
                    and_(parameter, *when_true) if when_true else parameter,
                    and_(not_(parameter), *when_false) if when_false else not_(parameter),
                ),
                touched,
                False,
            )
        changed = _changed(value)
        if changed is None:
            return None
        _, other = _probe(filter_type, model, name, changed)
    except (DomainError, TypeError, ValueError, AttributeError):
        return None
    planned = _bind_values(when)
    ours = _varying(planned, _bind_values(other))
    if not ours:
        return None
    direct = _direct([(value, planned), (changed, _bind_values(other))])
    # What does not vary between two values is the service's own constant, written into
    # the statement: a request whose value writes another is not this plan's.
    fixed = {p: (one.expanding, one.value) for p, one in enumerate(planned) if p not in ours}
    count = len(planned)

    def compute(value: Any) -> list[Any]:
        _, conditions = _probe(filter_type, model, name, value)
        found = _bind_values(conditions)
        if len(found) != count or any(
            (found[p].expanding, found[p].value) != constant for p, constant in fixed.items()
        ):
            raise Unsupported("another statement")
        return [_sql_value(found[p]) for p in ours]

    # Dashboards send the same few values again: each is worked out once. A value the
    # direct form takes is not kept: it costs less than keeping it would (a board
    # whose filters vary per request found few of its values kept).
    remembered: ByteLRU[Hashable, list[Any]] = ByteLRU(REMEMBERED_VALUES_BYTES)

    def extract(arguments: dict[str, Any]) -> list[Any]:
        value = arguments["filter"][graphql_name]
        if direct is not None:
            found_directly = direct(value)
            if found_directly is not None:
                return found_directly
        key = _hashable(value)
        found = remembered.get(key) if key is not None else None
        if found is None:
            found = compute(value)
            if key is not None:
                remembered.put(key, found, held_bytes(key) + held_bytes(found))
        return found

    parameters = c.computed(node, [(one.value, one.type) for one in ours.values()], extract)
    replacements = {
        id(one): (one, parameter) for one, parameter in zip(ours.values(), parameters, strict=True)
    }
    clause = _replaced(and_(*when) if len(when) > 1 else when[0], replacements)
    return clause, touched, direct is not None


Direct = Callable[[Any], list[Any] | None]


def _direct(probes: list[tuple[Any, list[BindParameter[Any]]]]) -> Direct | None:
    """A field's values computed without asking the service, if every probe (a value,
    and the bind values the service wrote for that field alone) shows it writes a
    single bind value: a non-empty list of one enum's members as given (``IN``), or the
    search text as ``search_query`` writes it. The function returns None for a value of
    another kind (an empty list: the service is asked)."""
    if any(len(bound) != 1 for _, bound in probes):
        return None
    parameter = probes[0][1][0]
    process = parameter.type._cached_bind_processor(_DIALECT)
    first = probes[0][0]
    if isinstance(first, list) and first and isinstance(first[0], Enum):
        members = type(first[0])
        if all(
            one.expanding and _same_members(given, one.value, members) for given, (one,) in probes
        ):

            def enum_list(value: Any) -> list[Any] | None:
                if not (isinstance(value, list) and _same_members(value, value, members)):
                    return None
                return [[process(item) if process else item for item in value]]

            return enum_list
        return None
    if isinstance(first, str):
        try:
            if all(
                not one.expanding and isinstance(given, str) and one.value == search_query(given)
                for given, (one,) in probes
            ):

                def search(value: Any) -> list[Any] | None:
                    if not isinstance(value, str):
                        return None
                    query = search_query(value)
                    return [process(query) if process else query]

                return search
        except DomainError:
            return None
    return None


def _same_members(given: Any, bound: Any, members: type[Enum]) -> bool:
    """``bound`` is the non-empty list ``given``, item for item, members of ``members``."""
    items = list(bound) if isinstance(bound, list | tuple) else None
    return (
        items is not None
        and len(items) == len(given) > 0
        and all(
            type(one) is members and one is other for one, other in zip(given, items, strict=True)
        )
    )


# Values remembered per bound filter field, with what they bind (short texts and lists),
# bounded by what they hold (``held_bytes``); the plan cache counts it per site.
REMEMBERED_VALUES_BYTES = 16 * 1024
_SHORT = 256


def _hashable(value: Any) -> Hashable | None:
    """A key for a field's value, or None for one not worth remembering (a long text)."""
    if isinstance(value, list | tuple):
        if len(value) > _SHORT or not all(isinstance(item, Hashable) for item in value):
            return None
        return (type(value[0]) if value else None, tuple(value))
    if isinstance(value, str) and len(value) > _SHORT:
        return None
    return (type(value), value) if isinstance(value, Hashable) else None


@cache
def _empty(filter_type: Any, model: Any) -> tuple[Any, list[Any]]:
    """The service's empty filter, and its conditions (those of every list)."""
    empty = filter_type().to_filter()
    return empty, _parts(empty.apply(select(model)).whereclause)


def _probe(filter_type: Any, model: Any, name: str, value: Any) -> tuple[set[str], list[Any]]:
    """The service filter's fields set by this input field alone, and the conditions
    they add to the empty filter's."""
    empty, base = _empty(filter_type, model)
    alone = filter_type(**{name: value}).to_filter()
    touched = {
        field.name
        for field in dataclasses.fields(alone)
        if getattr(alone, field.name) != getattr(empty, field.name)
    }
    added = [
        clause
        for clause in _parts(alone.apply(select(model)).whereclause)
        if not any(clause.compare(other) for other in base)
    ]
    if not added:
        raise ValueError("no condition")
    return touched, added


def _parts(clause: Any) -> list[Any]:
    if clause is None:
        return []
    if isinstance(clause, BooleanClauseList) and clause.operator is operators.and_:
        return list(clause.clauses)
    return [clause]


def _bind_values(conditions: list[Any]) -> list[BindParameter[Any]]:
    found: list[BindParameter[Any]] = []
    for condition in conditions:
        visitors.traverse(condition, {}, {"bindparam": found.append})
    return found


def _varying(
    first: list[BindParameter[Any]], second: list[BindParameter[Any]]
) -> dict[int, BindParameter[Any]]:
    """Position -> bind value of those that change with the field's value (the others
    are the service's constants)."""
    if [p.expanding for p in first] != [p.expanding for p in second]:
        return {}
    return {
        position: one
        for position, (one, two) in enumerate(zip(first, second, strict=True))
        if one.value != two.value
    }


def _changed(value: Any) -> Any:
    """Another value of the same shape (for finding which bind values vary)."""
    if isinstance(value, list | tuple):
        return [*value, value[0]] if value else None
    if isinstance(value, str):
        return value[:-1] + ("y" if value[-1:] != "y" else "z")
    if isinstance(value, int):
        return value + 1
    if isinstance(value, datetime):
        return value + timedelta(
            seconds=1 if value < datetime.max.replace(tzinfo=value.tzinfo) else -1
        )
    if isinstance(value, date):
        return value + timedelta(days=1 if value < date.max else -1)
    return None


def _replaced(clause: Any, replacements: dict[int, tuple[Any, Any]]) -> Any:
    """``clause`` with the varying bind values replaced by parameters; ``x IN (list)``
    becomes ``x = ANY(CAST($n AS type[]))``."""

    def replace(element: Any, **_: Any) -> Any:
        if isinstance(element, BinaryExpression) and isinstance(element.right, BindParameter):
            found = replacements.get(id(element.right))
            if found is not None and found[0].expanding:
                array = cast(found[1], ARRAY(found[0].type))
                if element.operator is operators.in_op:
                    return element.left == any_(array)
                if element.operator is operators.not_in_op:
                    return element.left != all_(array)
                raise Unsupported("list operator")
        if isinstance(element, BindParameter):
            found = replacements.get(id(element))
            if found is not None:
                if found[0].expanding:
                    raise Unsupported("list outside IN")
                return found[1]
        return None

    return visitors.replacement_traverse(clause, {}, replace)


def _sql_value(parameter: BindParameter[Any]) -> Any:
    """A bind value as the driver takes it (an enum's name), as SQLAlchemy would send it."""
    process = parameter.type._cached_bind_processor(_DIALECT)
    if parameter.expanding:
        return [process(item) if process else item for item in parameter.value or ()]
    return process(parameter.value) if process else parameter.value
