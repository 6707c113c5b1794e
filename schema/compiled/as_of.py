"""``product(key:, asOf:)`` and ``initiative(key:, asOf:)``: the row as it was at an
instant, rebuilt in SQL as ``domain.services.audit.as_of`` rebuilds it in Python.

Each stored column takes the ``before`` of the earliest change of it after the instant
(undoing the later changes newest first ends there), converted as ``from_json``
converts it; no row if it was created after the instant (or by a later CREATE event),
or was archived then. The model is then aliased onto that rebuilt row, so the row's own
fields (stored and computed columns, references, scores) are compiled as on a stored
row, computed columns evaluated over the rebuilt values; what reads other tables (``isBlocked``,
nested lists, ``externalRefs``) describes the present, as the resolver's detached object
does, and is compiled over the stored row, joined by id.

The instant and the key are parameters named per lookup (``$asof0``...), filled per
request from the field's arguments: one plan serves every instant, and the alias is
built once per model and lookup number (the compiler memoises per alias)."""

from __future__ import annotations

from datetime import date, datetime
from enum import Enum
from functools import cache
from typing import TYPE_CHECKING, Any

from graphql import FieldNode
from sqlalchemy import (
    Boolean,
    Date,
    DateTime,
    Double,
    Numeric,
    Select,
    Text,
    and_,
    bindparam,
    case,
    cast,
    exists,
    select,
)
from sqlalchemy.orm import aliased
from sqlalchemy.sql.util import find_tables

from domain.models import AuditAction, AuditEvent
from schema.compiled import jsontext, objects
from schema.compiled.errors import Refused
from schema.compiled.parameters import PREFIX
from schema.compiled.selection import Invalid, Unsupported, response_key

if TYPE_CHECKING:
    from schema.compiled.compiler import Compiler

_INSTANT = DateTime(timezone=True)


def _names(number: int) -> tuple[str, str]:
    """The instant's and the key's parameters (``$`` and letters: no computed
    parameter's name, which is ``$`` and digits)."""
    return f"{PREFIX}$asof{number}", f"{PREFIX}$asofkey{number}"


def lookup(
    c: Compiler, type_name: str, node: FieldNode, model: Any, column: Any, at: datetime
) -> Select[Any]:
    if at.tzinfo is None:
        raise Invalid("asOf without a time zone")  # the resolver answers its error
    number = c.as_of_lookups
    c.as_of_lookups += 1
    names = _names(number)
    for argument in ("key", "asOf"):
        c.bound_use(node, (argument,))  # filled below, whatever its value

    def values(arguments: dict[str, Any]) -> dict[str, Any]:
        instant = arguments.get("asOf")
        if instant is None or instant.tzinfo is None:  # null: another plan (a lookup)
            raise Invalid("asOf without a time zone")
        return {names[0]: instant, names[1]: arguments["key"]}

    c.check_values(node, values)
    rebuilt = _rebuilt(model, type_name, column.key, number)
    present = c.alias(model)
    pairs = [
        (
            response_key(child),
            objects.field(
                c, type_name, rebuilt if _of_row(c, type_name, child, model) else present, child
            ),
        )
        for child in c.walk.fields(type_name, node.selection_set)
    ]
    statement = (
        select(jsontext.json_object(pairs))
        .select_from(rebuilt)
        .join(present, present.id == rebuilt.id)
    )
    statement = c.rows(c.rows(statement, rebuilt), present)
    return statement.where(rebuilt.archived_at.is_(None))


# Fields with SQL of their own that read the row's own columns only (or, like
# ``blockedBy``, take just its id, which the rebuilt row keeps).
_ROW_SPECIALS = frozenset({"rice", "wsjf", "estimatedCost", "blockedBy"})


def _of_row(c: Compiler, type_name: str, node: FieldNode, model: Any) -> bool:
    """Whether a field is read from the rebuilt row: its stored and row-local computed
    columns, its ID, its references and scores. The rest reads other tables (``isBlocked``
    reads constraints' ``status``; nested lists and ``externalRefs`` join by ``id``) and
    describes the present, as the resolver's detached object does (``audit._detached``):
    it is read from the stored row. The rebuilt row is aliased by column names
    (``adapt_on_names``), which would also rename another table's column of the same
    name: so those fields are never compiled over it."""
    name = node.name.value
    if name == "__typename":
        return True
    try:
        _, field = c.definition(type_name, node)
    except Refused:
        return True  # null over either row: ``objects.field`` writes its error
    meta = field.metadata or {}
    if "global_id" in meta or "reference" in meta or name in _ROW_SPECIALS:
        return True
    return field.base_resolver is None and field.python_name in _row_local(model)


@cache
def _row_local(model: Any) -> frozenset[str]:
    """Attributes computed from the row's own table only (``audit._detached``'s test)."""
    table = model.__table__
    return frozenset(
        prop.key
        for prop in model.__mapper__.column_attrs
        if {t for col in prop.columns for t in find_tables(col, include_crud=False)} <= {table}
    )


@cache
def _rebuilt(model: Any, type_name: str, key_column: str, number: int) -> Any:
    table = model.__table__
    current = table.alias(f"asof_current{number}")
    at_name, key_name = _names(number)
    at, key = bindparam(at_name, type_=_INSTANT), bindparam(key_name, type_=Text)
    event = AuditEvent.__table__.alias(f"asof_event{number}")
    later = and_(
        event.c.entity_type == type_name,
        event.c.entity_id == current.c.id,
        event.c.occurred_at > cast(at, _INSTANT),
    )
    columns = []
    for stored in table.columns:
        if stored.key == "search_document":  # not part of the state the resolver rebuilds
            columns.append(current.c[stored.key])
            continue
        change = (
            select(event.c.changes[stored.key])
            .where(later, event.c.changes.has_key(stored.key))
            .order_by(event.c.id)
            .limit(1)
            .scalar_subquery()
        )
        before = _from_json(stored, change["before"].astext)
        rebuilt = case((change.is_(None), current.c[stored.key]), else_=before)
        columns.append(rebuilt.label(stored.key))
    created_later = exists().where(later, event.c.action == AuditAction.CREATE)
    rows = (
        select(*columns)
        .where(
            current.c[key_column] == cast(key, Text),
            current.c.created_at <= cast(at, _INSTANT),
            ~created_later,
        )
        .subquery(f"asof{number}")
    )
    return aliased(model, rows, adapt_on_names=True, name=f"asof{number}")


def _from_json(column: Any, text: Any) -> Any:
    """``domain.services.audit.from_json`` in SQL, from the JSON value's text."""
    kind = column.type.python_type
    if issubclass(kind, Enum) or kind is int:
        return cast(text, column.type)
    if isinstance(column.type, Numeric):
        # Without the column's scale, as the resolver's Python value (and the literal
        # its computed columns are evaluated over) has none: 1.5, not 1.50.
        return cast(text, Numeric())
    if kind is datetime:
        return cast(text, _INSTANT)
    if kind is date:
        return cast(text, Date)
    if kind is float:
        return cast(text, Double)
    if kind is bool:
        return cast(text, Boolean)
    if kind is str:
        return text
    raise Unsupported(f"asOf of {column.key}")
