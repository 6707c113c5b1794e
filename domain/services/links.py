"""Links between entities (many-to-many). Linking twice or unlinking what is not
linked is a no-op, so integrations can safely retry."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Table, delete, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from domain.models import AuditAction, constraint_initiatives, constraint_products, initiative_kpis
from domain.models import initiative_products as initiative_products_table
from domain.services import audit, specs, writes
from domain.services.writes import Actor, EntitySpec


@dataclass(frozen=True)
class LinkSpec:
    """A link table between an owner (whose audit trail records the link) and a target."""

    table: Table
    owner: EntitySpec
    owner_column: str
    target: EntitySpec
    target_column: str


INITIATIVE_PRODUCT = LinkSpec(
    initiative_products_table, specs.INITIATIVE, "initiative_id", specs.PRODUCT, "product_id"
)
CONSTRAINT_PRODUCT = LinkSpec(
    constraint_products, specs.CONSTRAINT, "constraint_id", specs.PRODUCT, "product_id"
)
CONSTRAINT_INITIATIVE = LinkSpec(
    constraint_initiatives, specs.CONSTRAINT, "constraint_id", specs.INITIATIVE, "initiative_id"
)
INITIATIVE_KPI = LinkSpec(initiative_kpis, specs.INITIATIVE, "initiative_id", specs.KPI, "kpi_id")


async def _both(
    session: AsyncSession, link: LinkSpec, owner_id: int, target_id: int
) -> tuple[Any, Any]:
    errors = []
    found = []
    for spec, entity_id, field in (
        (link.owner, owner_id, link.owner_column),
        (link.target, target_id, link.target_column),
    ):
        entity = await session.scalar(
            select(spec.model).where(spec.model.id == entity_id, spec.model.archived_at.is_(None))
        )
        if entity is None:
            errors.append(writes.UserError(field, "NOT_FOUND", f"No {spec.name} with this ID."))
        found.append(entity)
    if errors:
        raise writes.Refused(*errors)
    return found[0], found[1]


async def link(
    session: AsyncSession, actor: Actor, spec: LinkSpec, owner_id: int, target_id: int
) -> tuple[Any, Any]:
    owner, target = await _both(session, spec, owner_id, target_id)
    inserted = await session.execute(
        insert(spec.table)
        .values({spec.owner_column: owner_id, spec.target_column: target_id})
        .on_conflict_do_nothing()
        .returning(spec.table.c[spec.owner_column])
    )
    if inserted.first() is not None:
        await _audit(session, actor, spec, owner, target, AuditAction.LINK)
    return owner, target


async def unlink(
    session: AsyncSession, actor: Actor, spec: LinkSpec, owner_id: int, target_id: int
) -> tuple[Any, Any]:
    owner, target = await _both(session, spec, owner_id, target_id)
    deleted = await session.execute(
        delete(spec.table)
        .where(
            spec.table.c[spec.owner_column] == owner_id,
            spec.table.c[spec.target_column] == target_id,
        )
        .returning(spec.table.c[spec.owner_column])
    )
    if deleted.first() is not None:
        await _audit(session, actor, spec, owner, target, AuditAction.UNLINK)
    return owner, target


async def _audit(
    session: AsyncSession,
    actor: Actor,
    spec: LinkSpec,
    owner: Any,
    target: Any,
    action: AuditAction,
) -> None:
    linked = {
        "type": spec.target.name,
        "id": target.id,
        spec.target.label_field: getattr(target, spec.target.label_field),
    }
    await audit.record(session, actor, spec.owner.name, owner.id, action, {"target": linked})
