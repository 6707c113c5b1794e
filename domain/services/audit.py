"""The audit trail: who changed what and when, written in the changing transaction.

``changes`` maps each field to ``{"before": ..., "after": ...}`` in JSON form, so
the trail can be read by people and replayed backwards to rebuild an entity as
it was at any instant (``as_of``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from typing import TYPE_CHECKING, Any

from sqlalchemy import Column, literal, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.sql.util import find_tables

from domain.errors import InvalidInput
from domain.models import AuditAction, AuditEvent

if TYPE_CHECKING:
    from domain.services.writes import Actor


def to_json(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)  # money stays exact
    return value


def from_json(column: Column[Any], value: Any) -> Any:
    if value is None:
        return None
    python_type = column.type.python_type
    if issubclass(python_type, Enum):
        return python_type(value)
    if python_type is datetime:
        return datetime.fromisoformat(value)
    if python_type is date:
        return date.fromisoformat(value)
    if python_type is Decimal:
        return Decimal(value)
    return value


def created(entity: Any, fields: Iterable[str]) -> dict[str, Any]:
    return {name: {"before": None, "after": to_json(getattr(entity, name))} for name in fields}


def diff(
    before: Mapping[str, Any], after: Mapping[str, Any], *, version: tuple[int, int]
) -> dict[str, Any]:
    changes = {
        name: {"before": to_json(before.get(name)), "after": to_json(value)}
        for name, value in after.items()
    }
    changes["version"] = {"before": version[0], "after": version[1]}
    return changes


def event(
    actor: Actor, entity_type: str, entity_id: int, action: AuditAction, changes: dict[str, Any]
) -> AuditEvent:
    return AuditEvent(
        actor_user_id=actor.user_id,
        actor_client_id=actor.client_id,
        entity_type=entity_type,
        entity_id=entity_id,
        action=action,
        changes=changes,
    )


async def record(
    session: AsyncSession,
    actor: Actor,
    entity_type: str,
    entity_id: int,
    action: AuditAction,
    changes: dict[str, Any],
) -> None:
    session.add(event(actor, entity_type, entity_id, action, changes))
    await session.flush()


async def by_key_as_of(
    session: AsyncSession, model: Any, entity_type: str, column: Any, key: str, at: datetime
) -> Any:
    """The entity with this key as it was at ``at`` (archived ones included)."""
    if at.tzinfo is None:
        raise InvalidInput("`asOf` needs a time zone offset.", field="asOf")
    entity = await session.scalar(select(model).where(column == key))
    return None if entity is None else await as_of(session, model, entity_type, entity, at)


async def as_of(
    session: AsyncSession, model: Any, entity_type: str, entity: Any, at: datetime
) -> Any:
    """``entity`` as it was at ``at``: stored fields rebuilt by undoing later changes,
    computed fields evaluated by PostgreSQL over those values. None if it did not
    exist (or was archived) then."""
    if entity.created_at > at:
        return None
    table = model.__table__
    state = {c.key: getattr(entity, c.key) for c in table.columns if c.key != "search_document"}
    later = await session.scalars(
        select(AuditEvent)
        .where(
            AuditEvent.entity_type == entity_type,
            AuditEvent.entity_id == entity.id,
            AuditEvent.occurred_at > at,
        )
        .order_by(AuditEvent.id.desc())
    )
    for event in later:
        if event.action is AuditAction.CREATE:
            return None
        for name, change in event.changes.items():
            if name in state:
                state[name] = from_json(table.c[name], change["before"])
    if state["archived_at"] is not None:
        return None
    return await _detached(session, model, state, entity)


async def _detached(session: AsyncSession, model: Any, state: dict[str, Any], current: Any) -> Any:
    """A transient instance (never flushed) holding ``state``.

    Computed fields that depend only on the row itself (scores) are evaluated by
    PostgreSQL over the rebuilt values; those that read other tables (blocked)
    describe the present and are taken from ``current``.
    """
    table = model.__table__
    row_local: list[str] = []
    present: list[str] = []
    for prop in model.__mapper__.column_attrs:
        if all(isinstance(c, Column) for c in prop.columns):
            continue
        tables = {t for c in prop.columns for t in find_tables(c, include_crud=False)}
        (row_local if tables <= {table} else present).append(prop.key)
    computed: Any = ()
    if row_local:
        values = select(*(literal(v, table.c[k].type).label(k) for k, v in state.items()))
        row = aliased(model, values.subquery(), adapt_on_names=True)
        computed = (await session.execute(select(*(getattr(row, k) for k in row_local)))).one()
    snapshot = model()
    for key, value in [
        *state.items(),
        *zip(row_local, computed, strict=True),
        *((key, getattr(current, key)) for key in present),
    ]:
        set_committed_value(snapshot, key, value)
    return snapshot
