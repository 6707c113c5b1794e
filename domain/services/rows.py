"""The statements of the write path, in SQLAlchemy Core, and the entities built from
their rows.

Each statement is built once per model and set of written columns (kept in a bounded cache)
and returns the row as the read path would load it: every column the model loads, and
its computed fields (``domain.models.computed``) evaluated over the written values. The
row becomes the entity the mutation's payload is resolved from (``adopt``), without the
ORM's unit of work: no flush, no refresh, no second read.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache, lru_cache
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    ColumnElement,
    Date,
    Enum,
    Float,
    FromClause,
    Integer,
    Numeric,
    Row,
    Select,
    String,
    Table,
    Text,
    bindparam,
    case,
    cast,
    delete,
    func,
    literal,
    or_,
    select,
    type_coerce,
    union_all,
    update,
)
from sqlalchemy.dialects.postgresql import DOUBLE_PRECISION, JSONB, insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.sql import visitors
from sqlalchemy.sql.annotation import _deep_deannotate
from sqlalchemy.sql.elements import BindParameter, ClauseList, Grouping
from sqlalchemy.sql.util import ClauseAdapter
from sqlalchemy.sql.visitors import ExternallyTraversible

from domain.models import AuditEvent

# The audit event's columns, bound as e_<column> beside the entity's v_<column>.
AUDIT_COLUMNS = (
    "actor_user_id",
    "actor_client_id",
    "entity_type",
    "entity_id",
    "action",
    "changes",
)


def _loaded(model: Any) -> list[tuple[str, ColumnElement[Any]]]:
    """(attribute, Core expression) of everything the model loads: columns and computed
    fields, deferred ones (the search document) left out."""
    return [
        (prop.key, _fixed_lists(_deep_deannotate(prop.columns[0])))
        for prop in model.__mapper__.column_attrs
        if not prop.deferred
    ]


def _fixed_lists(expression: ColumnElement[Any]) -> ColumnElement[Any]:
    """``status IN (OPEN, MITIGATING)`` with one parameter per value: an expanding IN
    (the default) is rendered anew at every execution, ~0.1 ms per statement."""

    def replace(element: ExternallyTraversible, **kw: Any) -> ExternallyTraversible | None:
        if isinstance(element, BindParameter) and element.expanding:
            values = element.value or ()
            return Grouping(ClauseList(*(literal(v, element.type) for v in values)))
        return None

    options: dict[str, Any] = {}
    return visitors.replacement_traverse(expression, options, replace)


def _stored(model: Any) -> list[Any]:
    """The table's columns the model loads (a RETURNING list)."""
    table = model.__table__
    return [
        expression
        for _, expression in _loaded(model)
        if isinstance(expression, Column) and expression.table is table
    ]


def _over(model: Any, source: FromClause) -> list[ColumnElement[Any]]:
    """What the model loads, evaluated over ``source`` (a written row): its columns read
    from it, its computed fields rewritten to refer to it."""
    adapter = ClauseAdapter(source)
    return [adapter.traverse(expression).label(key) for key, expression in _loaded(model)]


@cache
def read_statement(model: Any, now: bool, lock: bool) -> Select[Any]:
    table = model.__table__
    columns = [expression.label(key) for key, expression in _loaded(model)]
    if now:
        columns.append(func.now().label("now"))
    statement = select(*columns).where(
        table.c.id == bindparam("row_id"), table.c.archived_at.is_(None)
    )
    return statement.with_for_update(key_share=True) if lock else statement


async def active(session: AsyncSession, model: Any, entity_id: int) -> Row[Any] | None:
    """The active row (not locked), or None."""
    connection = await session.connection()
    statement = read_statement(model, False, False)
    return (await connection.execute(statement, {"row_id": entity_id})).first()


async def locked(
    session: AsyncSession, model: Any, entity_id: int, *, now: bool
) -> Row[Any] | None:
    """The active row, locked FOR NO KEY UPDATE, or None."""
    connection = await session.connection()
    result = await connection.execute(read_statement(model, now, True), {"row_id": entity_id})
    return result.first()


def _event() -> Any:
    """The audit event's INSERT, its values bound (``audit.values``)."""
    return insert(AuditEvent).values({name: bindparam(f"e_{name}") for name in AUDIT_COLUMNS})


# Bounded: a caller choosing which fields to send chooses among many column sets.
@lru_cache(maxsize=256)
def _write_statement(model: Any, names: tuple[str, ...]) -> Select[Any]:
    table = model.__table__
    written = (
        update(table)
        .where(table.c.id == bindparam("row_id"))
        .values(
            {name: bindparam(f"v_{name}") for name in names}
            | {"version": table.c.version + 1, "updated_at": func.now()}
        )
        .returning(*_stored(model))
        .cte("written")
    )
    # Unreferenced, but run: PostgreSQL executes every data-modifying WITH, once.
    return select(*_over(model, written)).add_cte(_event().cte("event"))


async def write(
    session: AsyncSession,
    model: Any,
    entity_id: int,
    values: Mapping[str, Any],
    event: Mapping[str, Any],
) -> Row[Any]:
    """One statement: set ``values`` on the (locked) row, bump its version, insert the
    audit ``event`` and return the row as stored."""
    names = tuple(sorted(values))
    parameters = {"row_id": entity_id, **{f"v_{name}": values[name] for name in names}}
    parameters |= {f"e_{name}": event[name] for name in AUDIT_COLUMNS}
    connection = await session.connection()
    result = await connection.execute(_write_statement(model, names), parameters)
    return result.one()


# Bounded, as ``_write_statement``.
@lru_cache(maxsize=256)
def fold_statement(model: Any, names: tuple[str, ...], fields: tuple[str, ...]) -> Select[Any]:
    table = model.__table__
    kept = (*fields, "version")  # what the row held: returned as ``before_<name>``
    # The row read and locked first (a subquery's FOR NO KEY UPDATE: under concurrent
    # writers, its values are the row's latest, which the UPDATE then changes).
    prior = (
        select(table.c.id, *(table.c[name] for name in kept))
        .where(table.c.id == bindparam("row_id"), table.c.archived_at.is_(None))
        .with_for_update(key_share=True)
        .subquery("prior")
    )
    given = {name: bindparam(f"v_{name}", type_=table.c[name].type) for name in names}
    expected = bindparam("expected_version", type_=Integer)
    written = (
        update(table)
        .where(
            table.c.id == prior.c.id,
            or_(expected.is_(None), prior.c.version == expected),
            or_(*(prior.c[name].is_distinct_from(value) for name, value in given.items())),
        )
        .values({**given, "version": table.c.version + 1, "updated_at": func.now()})
        .returning(
            *_stored(model),
            *(
                type_coerce(prior.c[name], table.c[name].type).label(f"before_{name}")
                for name in kept
            ),
        )
        .cte("written")
    )
    was = {name: written.c[f"before_{name}"] for name in kept}
    after = bindparam("after", type_=JSONB)
    changes: ColumnElement[Any] = func.jsonb_build_object(
        "version",
        func.jsonb_build_object("before", was["version"], "after", written.c.version),
    )
    for name, value in given.items():
        before = as_json(table.c[name], was[name])
        assert before is not None, name  # ``foldable`` said so
        entry = func.jsonb_build_object(
            name,
            func.jsonb_build_object("before", before, "after", after.op("->")(literal(name))),
        )
        changed = case((was[name].is_distinct_from(value), entry), else_=func.jsonb_build_object())
        changes = changes.op("||", return_type=JSONB)(changed)
    columns = AuditEvent.__table__.c
    event: dict[str, ColumnElement[Any]] = {
        name: bindparam(f"e_{name}", type_=columns[name].type) for name in AUDIT_COLUMNS
    }
    event |= {"entity_id": written.c.id, "changes": changes}
    audited = insert(AuditEvent).from_select(
        list(AUDIT_COLUMNS), select(*(event[name] for name in AUDIT_COLUMNS)).select_from(written)
    )
    return select(*_over(model, written), *was.values()).add_cte(audited.cte("event"))


@lru_cache(maxsize=256)
def foldable(model: Any, names: tuple[str, ...]) -> bool:
    """Whether a change of these columns can be written by ``write_changed``: each one's
    audit value can be computed by PostgreSQL exactly as Python computes it."""
    columns = model.__table__.c
    return all(as_json(columns[name], columns[name]) is not None for name in names)


async def write_changed(
    session: AsyncSession,
    model: Any,
    entity_id: int,
    expected_version: int | None,
    values: Mapping[str, Any],
    fields: tuple[str, ...],
    event: Mapping[str, Any],
) -> Row[Any] | None:
    """One statement: lock the active row; if it is at ``expected_version`` (when given)
    and any of ``values`` differs from what it holds, set them, bump its version and
    insert the audit event (``event``'s columns; its ``changes`` are the fields that
    differed, before and after, and the version's, computed here, with "after" as
    ``event["changes"]`` gives it). Returns the row as stored, with what it held before
    as ``before_<field>`` (``fields`` and ``version``); None when nothing was written:
    missing, archived, at another version, or no value differs."""
    names, parameters = fold_parameters(entity_id, expected_version, values, event)
    connection = await session.connection()
    result = await connection.execute(fold_statement(model, names, fields), parameters)
    return result.first()


def fold_parameters(
    entity_id: int,
    expected_version: int | None,
    values: Mapping[str, Any],
    event: Mapping[str, Any],
) -> tuple[tuple[str, ...], dict[str, Any]]:
    """The written column names (``fold_statement``'s key) and the statement's values."""
    names = tuple(sorted(values))
    parameters = {
        "row_id": entity_id,
        "expected_version": expected_version,
        "after": event["changes"],
        **{f"v_{name}": values[name] for name in names},
    }
    parameters |= {f"e_{name}": event[name] for name in AUDIT_COLUMNS if name not in FOLDED}
    return names, parameters


# The event's columns ``write_changed`` computes itself.
FOLDED = frozenset({"entity_id", "changes"})


def as_json(column: Column[Any], value: ColumnElement[Any]) -> ColumnElement[Any] | None:
    """``value`` of ``column`` as ``audit.to_json`` renders it, computed by PostgreSQL, or
    None for a type whose rendering could differ (timestamps: PostgreSQL drops trailing
    zeros of the fraction, Python does not). Text, integers, booleans and dates render
    alike; enums by their value (ours are named as they are spelled); exact decimals as
    their text, inexact ones (``asdecimal=False``, read as floats) as float8, whose
    shortest round-tripping text is what Python's ``repr`` gives."""
    kind = column.type
    if isinstance(kind, Enum):
        members = kind.enum_class.__members__.items() if kind.enum_class else ()
        if not all(name == member.value for name, member in members):
            return None
        return func.to_jsonb(cast(value, String))
    if isinstance(kind, Numeric | Float):
        return func.to_jsonb(cast(value, Text if kind.asdecimal else DOUBLE_PRECISION))
    if isinstance(kind, String | Integer | Boolean | Date):
        return func.to_jsonb(value)
    return None


@lru_cache(maxsize=256)
def _insert_statement(model: Any, names: tuple[str, ...], if_absent: str | None) -> Select[Any]:
    table = model.__table__
    inserted = insert(table).values({name: bindparam(f"v_{name}") for name in names})
    if if_absent is not None:
        inserted = inserted.on_conflict_do_nothing(index_elements=[if_absent])
    created = inserted.returning(*_stored(model)).cte("created")
    return select(*_over(model, created))


async def insert_row(
    session: AsyncSession, model: Any, values: Mapping[str, Any], *, if_absent: str | None = None
) -> Row[Any] | None:
    """One statement: insert the row and return it as stored. With ``if_absent`` (a
    unique column), nothing is inserted and None returned when a row already holds that
    value (PostgreSQL waits for a transaction inserting it to end first: a race of two
    inserts of one key yields one row)."""
    names = tuple(sorted(values))
    connection = await session.connection()
    result = await connection.execute(
        _insert_statement(model, names, if_absent), {f"v_{name}": values[name] for name in names}
    )
    return result.one() if if_absent is None else result.first()


@cache
def _audit_statement() -> Any:
    return _event()


async def insert_event(session: AsyncSession, event: Mapping[str, Any]) -> None:
    connection = await session.connection()
    await connection.execute(
        _audit_statement(), {f"e_{name}": event[name] for name in AUDIT_COLUMNS}
    )


@cache
def _link_statement(
    table: Table, owner: str, target: str, remove: bool, ends: tuple[Table, Table]
) -> Any:
    """Link (or unlink) a pair and, when that changed anything, bump both ends' version
    and ``updatedAt`` (their links are part of them: a sync reading ``updatedSince`` must
    see both) and record the change in both ends' audit trails, each event with its end's
    version change (``asOf`` replays it): one statement. Returns the ends' new
    (version, updated_at), or no row when nothing changed."""
    values: dict[str, Any] = {owner: bindparam("owner_id"), target: bindparam("target_id")}
    if remove:
        changed: Any = delete(table).where(
            table.c[owner] == bindparam("owner_id"), table.c[target] == bindparam("target_id")
        )
    else:
        changed = insert(table).values(values).on_conflict_do_nothing()
    done = changed.returning(table.c[owner]).cte("done")
    bumped = [
        update(end)
        .where(end.c.id == bindparam(parameter), select(done).exists())
        .values(version=end.c.version + 1, updated_at=func.now())
        .returning(end.c.id, end.c.version, end.c.updated_at)
        .cte(f"bumped_{index}")
        for index, (end, parameter) in enumerate(zip(ends, ("owner_id", "target_id"), strict=True))
    ]
    columns = AuditEvent.__table__.c

    def event(prefix: str, end: Any) -> Select[Any]:
        """The end's event: the bound columns ``<prefix>_<column>``, its own id, and the
        bound changes with the end's version change added."""
        version = func.jsonb_build_object(
            "version", func.jsonb_build_object("before", end.c.version - 1, "after", end.c.version)
        )
        bound: dict[str, ColumnElement[Any]] = {
            name: bindparam(f"{prefix}_{name}", type_=columns[name].type) for name in AUDIT_COLUMNS
        }
        bound["entity_id"] = end.c.id
        bound["changes"] = bound["changes"].op("||")(version)
        return select(*(bound[name] for name in AUDIT_COLUMNS)).select_from(end)

    both = union_all(event("e", bumped[0]), event("t", bumped[1]))
    audited = insert(AuditEvent).from_select(list(AUDIT_COLUMNS), both).cte("audited")
    return (
        select(
            bumped[0].c.version.label("owner_version"),
            bumped[0].c.updated_at.label("owner_updated_at"),
            bumped[1].c.version.label("target_version"),
            bumped[1].c.updated_at.label("target_updated_at"),
        )
        .select_from(bumped[0].join(bumped[1], literal(True)))
        .add_cte(audited)
    )


async def link(
    session: AsyncSession,
    table: Table,
    pair: tuple[str, str],
    ids: tuple[int, int],
    events: tuple[Mapping[str, Any], Mapping[str, Any]],
    *,
    remove: bool,
    ends: tuple[Table, Table],
) -> Row[Any] | None:
    """Link or unlink ``ids`` in ``table`` (columns ``pair``; ``ends``, the tables they
    refer to); both ends are bumped and their ``events`` (owner's, target's) recorded
    only when a row was inserted or deleted. Returns the ends' new versions and
    ``updatedAt`` then, else None."""
    parameters: dict[str, Any] = {"owner_id": ids[0], "target_id": ids[1]}
    for prefix, event in zip(("e", "t"), events, strict=True):
        parameters |= {f"{prefix}_{name}": event[name] for name in AUDIT_COLUMNS}
    connection = await session.connection()
    result = await connection.execute(_link_statement(table, *pair, remove, ends), parameters)
    return result.first()


async def existing(session: AsyncSession, wanted: Mapping[str, tuple[Any, int]]) -> dict[str, bool]:
    """For each name, whether ``(model, id)`` is an active row: one statement for all."""
    probes = [
        select(literal(True))
        .where(model.id == pk, model.archived_at.is_(None))
        .exists()
        .label(name)
        for name, (model, pk) in wanted.items()
    ]
    connection = await session.connection()
    row = (await connection.execute(select(*probes))).one()
    return dict(row._mapping)


def detached(model: Any, row: Row[Any]) -> Any:
    """An entity holding ``row``, outside any session (an answer, never written back)."""
    entity = model.__mapper__.class_manager.new_instance()
    for key, value in row._mapping.items():
        if key in model.__mapper__.attrs:
            set_committed_value(entity, key, value)
    return entity


def adopt(session: AsyncSession, model: Any, row: Row[Any]) -> Any:
    """The entity as ``row`` says it is now, in the session: the session's own copy
    brought up to date (a later read in the request must not see the old values), or a
    new one, which the caller may change further and flush (``writes.bump_version``)."""
    mapper = model.__mapper__
    identity = mapper.identity_key_from_primary_key((row.id,))
    entity = session.sync_session.identity_map.get(identity)
    if entity is not None:
        for key, value in row._mapping.items():
            if key in mapper.attrs:
                set_committed_value(entity, key, value)
        return entity
    entity = detached(model, row)
    make_transient_to_detached(entity)
    session.add(entity)
    return entity
