"""External references as stored: read them per object, find an object by one, and
write them (``domain.models.external_refs``). The rules a reference must follow are
``rules.external_ref_rules``; writing them with their object's version and audit event
is ``domain.services.sync``."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, and_, delete, exists, or_, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from domain.models import ExternalRef
from domain.models.external_refs import OWNER_COLUMNS


@dataclass(frozen=True)
class RefIn:
    """A reference as a caller gives it."""

    system: str
    external_id: str
    url: str | None = None


def as_json(refs: Iterable[Any]) -> list[dict[str, Any]]:
    """References as the audit trail records them, ordered by system."""
    return [
        {"system": r.system, "externalId": r.external_id, "url": r.url}
        for r in sorted(refs, key=lambda r: r.system)
    ]


def merged(current: Sequence[Any], given: Sequence[RefIn], removed: Sequence[str]) -> list[RefIn]:
    """The references after setting ``given`` (one per system: a system's reference is
    replaced) and removing the systems ``removed``."""
    by_system: dict[str, RefIn] = {r.system: RefIn(r.system, r.external_id, r.url) for r in current}
    for system in removed:
        by_system.pop(system, None)
    for ref in given:
        by_system[ref.system] = ref
    return sorted(by_system.values(), key=lambda r: r.system)


def matches(entity_type: str, id_column: Any, system: Any, external_id: Any) -> ColumnElement[bool]:
    """An object (``id_column``) has this reference: for filters and lookups."""
    return exists().where(
        ExternalRef.entity_type == entity_type,
        ExternalRef.entity_id == id_column,
        ExternalRef.system == system,
        ExternalRef.external_id == external_id,
    )


async def refs_of(
    session: AsyncSession, entity_type: str, ids: Sequence[int]
) -> dict[int, list[RefIn]]:
    """Each object's references, ordered by system: one statement for all. Values, not
    ORM objects: a reference changed later in the request is read afresh."""
    found = await session.execute(
        select(ExternalRef.entity_id, ExternalRef.system, ExternalRef.external_id, ExternalRef.url)
        .where(ExternalRef.entity_type == entity_type, ExternalRef.entity_id.in_(ids))
        .order_by(ExternalRef.entity_id, ExternalRef.system)
    )
    refs: dict[int, list[RefIn]] = defaultdict(list)
    for entity_id, system, external_id, url in found:
        refs[entity_id].append(RefIn(system, external_id, url))
    return refs


async def active_owner(
    session: AsyncSession, model: Any, entity_type: str, system: str, external_id: str
) -> int | None:
    """The active object of ``model`` with this reference, or None."""
    return await session.scalar(
        select(model.id).where(
            matches(entity_type, model.id, system, external_id), model.archived_at.is_(None)
        )
    )


async def owners_of(
    session: AsyncSession, entity_type: str, pairs: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], int]:
    """The object (archived ones included) holding each (system, externalId): one
    statement for all."""
    if not pairs:
        return {}
    wanted = [
        and_(ExternalRef.system == system, ExternalRef.external_id == external_id)
        for system, external_id in pairs
    ]
    result = await session.execute(
        select(ExternalRef.system, ExternalRef.external_id, ExternalRef.entity_id).where(
            ExternalRef.entity_type == entity_type, or_(*wanted)
        )
    )
    return {(system, external_id): owner for system, external_id, owner in result}


async def replace(
    session: AsyncSession,
    entity_type: str,
    entity_id: int,
    before: Sequence[Any],
    after: Sequence[RefIn],
) -> None:
    """Make the object's references ``after`` (they were ``before``): the systems no
    longer referenced deleted, the others inserted or changed, one statement each."""
    gone = {r.system for r in before} - {r.system for r in after}
    if gone:
        await session.execute(
            delete(ExternalRef).where(
                ExternalRef.entity_type == entity_type,
                ExternalRef.entity_id == entity_id,
                ExternalRef.system.in_(gone),
            )
        )
    old = {(r.system, r.external_id, r.url) for r in before}
    written = [r for r in after if (r.system, r.external_id, r.url) not in old]
    if not written:
        return
    owner = OWNER_COLUMNS[entity_type]
    statement = insert(ExternalRef).values(
        [
            {
                "entity_type": entity_type,
                owner: entity_id,
                "system": r.system,
                "external_id": r.external_id,
                "url": r.url,
            }
            for r in written
        ]
    )
    statement = statement.on_conflict_do_update(
        constraint="uq_external_refs_system",
        set_={"external_id": statement.excluded.external_id, "url": statement.excluded.url},
    )
    await session.execute(statement)
