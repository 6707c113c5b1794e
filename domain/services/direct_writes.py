"""An entity update on a driver connection, outside any ORM session: the known-mutation
path's service (``schema.known_writes``). The same rules as ``writes.update`` (asked on
the input alone: ``writes.decided_by_input``) and the same one statement
(``rows.fold_statement``: lock, update, audit event, the row returned), rendered to SQL
text once per column set and run on asyncpg with SQLAlchemy's own bind and result
processing. A row missing, archived or at another version is refused as ``writes.lock``
refuses it. Whenever ``writes.update`` would take another road (the rules need the row
or refuse, the row holds the values already, a constraint's blocking changes) it
answers None, and the caller rolls back and lets the service run."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache, lru_cache
from types import SimpleNamespace
from typing import Any

from sqlalchemy.dialects.postgresql import asyncpg as postgresql_asyncpg

from domain.services import rows, writes
from domain.services.writes import UNREAD, Actor, EntitySpec, Refused

_DIALECT = postgresql_asyncpg.dialect()

# A parameter's value: given per request (its name) or fixed in the statement.
_Parameter = tuple[str, Any, Callable[[Any], Any] | None]


@dataclass
class RenderedWrite:
    """``rows.fold_statement`` as asyncpg runs it: its text, its parameters in ``$n``
    order, and how each returned column becomes the value SQLAlchemy would give (known
    once PostgreSQL said the columns' types: ``learn``)."""

    sql: str
    parameters: tuple[_Parameter, ...]
    types: tuple[tuple[str, Any], ...]
    columns: tuple[tuple[str, Callable[[Any], Any] | None], ...] | None = None

    async def learn(self, driver: Any) -> None:
        """The result processors, which SQLAlchemy picks by the column's type in
        PostgreSQL (a numeric read as a float): asked once, as SQLAlchemy does."""
        if self.columns is not None:
            return
        prepared = await driver.prepare(self.sql)
        oids = [attribute.type.oid for attribute in prepared.get_attributes()]
        self.columns = tuple(
            (key, kind._cached_result_processor(_DIALECT, oid))
            for (key, kind), oid in zip(self.types, oids, strict=True)
        )

    def arguments(self, given: Mapping[str, Any]) -> list[Any]:
        values = []
        for name, fixed, process in self.parameters:
            value = given[name] if fixed is _GIVEN else fixed
            values.append(process(value) if process is not None and fixed is _GIVEN else value)
        return values

    def row(self, record: Any) -> dict[str, Any]:
        assert self.columns is not None, "learn() first"
        return {
            key: process(value) if process is not None else value
            for (key, process), value in zip(self.columns, record, strict=True)
        }


_GIVEN: Any = object()


@lru_cache(maxsize=256)  # bounded as the statements it renders
def rendered(model: Any, names: tuple[str, ...], fields: tuple[str, ...]) -> RenderedWrite:
    return _rendered(rows.fold_statement(model, names, fields))


@cache
def _locked(model: Any) -> RenderedWrite:
    """``rows.locked``'s statement: the active row, locked, as ``writes.lock`` reads it."""
    return _rendered(rows.read_statement(model, False, True))


def _rendered(statement: Any) -> RenderedWrite:
    compiled: Any = statement.compile(dialect=_DIALECT)
    processors = compiled._bind_processors
    parameters: list[_Parameter] = []
    for name in compiled.positiontup:
        bound = compiled.binds[name]
        process = processors.get(name)
        if bound.callable is None and bound.value is None and not bound.literal_execute:
            parameters.append((name, _GIVEN, process))
        else:  # a literal of the statement: processed once, here
            value = bound.effective_value
            parameters.append((name, process(value) if process is not None else value, None))
    types = tuple((entry[0], entry[3]) for entry in compiled._result_columns)
    return RenderedWrite(compiled.string, tuple(parameters), types)


async def update(
    driver: Any,
    actor: Actor,
    spec: EntitySpec,
    entity_id: int,
    expected_version: int | None,
    changes: dict[str, Any],
) -> dict[str, Any] | Refused | None:
    """``writes.update``'s one statement on ``driver`` (in a transaction the caller
    owns): the row as stored after it (with ``before_<field>``); or, when it wrote nothing,
    why ``writes.lock`` refuses it (one statement more, as the service takes); or None
    when the service must answer instead. The caller rolls back unless a row came back."""
    if not await writes.decided_by_input(UNREAD, spec, changes):
        return None
    event = writes.update_event(actor, spec, entity_id, changes)
    names, parameters = rows.fold_parameters(entity_id, expected_version, changes, event)
    statement = rendered(spec.model, names, spec.fields)
    await statement.learn(driver)
    record = await driver.fetchrow(statement.sql, *statement.arguments(parameters))
    if record is None:
        return await _refused(driver, spec, entity_id, expected_version)
    row = statement.row(record)
    if writes.blocking_changed(spec, row, changes):
        return None  # its initiatives are bumped too: the service does it
    return row


async def _refused(
    driver: Any, spec: EntitySpec, entity_id: int, expected_version: int | None
) -> Refused | None:
    """Nothing was written: the row missing or archived, at another version, or holding
    the values already. The first two are refused as ``writes.lock`` refuses them (its
    ``current``: the row as stored, a mapping); the last is the service's to answer."""
    statement = _locked(spec.model)
    await statement.learn(driver)
    record = await driver.fetchrow(statement.sql, *statement.arguments({"row_id": entity_id}))
    row = None if record is None else statement.row(record)
    refusal = writes.refused_lock(
        spec, None if row is None else SimpleNamespace(**row), expected_version
    )
    if refusal is not None:
        refusal.current = row
    return refusal
