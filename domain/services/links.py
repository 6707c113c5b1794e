"""Links between entities (many-to-many). Linking twice or unlinking what is not
linked is a no-op, so integrations can safely retry.

A link that changes anything bumps both ends' ``version`` and ``updatedAt``, and both
ends' audit trails record it (with their version change): the links are part of each end (``Initiative.products``, ``Product.initiatives``), so a sync reading
``updatedSince`` sees both, and a client updating either end with the ``expectedVersion``
it read before the link gets CONFLICT. A link itself takes no ``expectedVersion``: it
only adds or removes a pair, and is idempotent."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Row, Table
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from domain.models import AuditAction, constraint_initiatives, constraint_products, initiative_kpis
from domain.models import initiative_products as initiative_products_table
from domain.services import audit, blocking, rows, specs, writes
from domain.services.writes import Actor, EntitySpec


@dataclass(frozen=True)
class LinkSpec:
    """A link table between an owner and a target (both audit trails record a link)."""

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
) -> tuple[Row[Any], Row[Any]]:
    """Both ends, active, read as the payload shows them; NOT_FOUND for each missing."""
    errors = []
    found: list[Row[Any]] = []
    for spec, entity_id, field in (
        (link.owner, owner_id, link.owner_column),
        (link.target, target_id, link.target_column),
    ):
        row = await rows.active(session, spec.model, entity_id)
        if row is None:
            errors.append(writes.UserError(field, "NOT_FOUND", f"No {spec.name} with this ID."))
        else:
            found.append(row)
    if errors:
        raise writes.Refused(*errors)
    return found[0], found[1]


async def link(
    session: AsyncSession, actor: Actor, spec: LinkSpec, owner_id: int, target_id: int
) -> tuple[Any, Any]:
    return await _change(session, actor, spec, owner_id, target_id, remove=False)


async def unlink(
    session: AsyncSession, actor: Actor, spec: LinkSpec, owner_id: int, target_id: int
) -> tuple[Any, Any]:
    return await _change(session, actor, spec, owner_id, target_id, remove=True)


async def _change(
    session: AsyncSession,
    actor: Actor,
    spec: LinkSpec,
    owner_id: int,
    target_id: int,
    *,
    remove: bool,
) -> tuple[Any, Any]:
    """Both ends read, then one statement links (or unlinks) them and, when that changed
    anything, bumps both and records it in both ends' audit trails."""
    owner, target = await _both(session, spec, owner_id, target_id)
    linked = {
        "type": spec.target.name,
        "id": target.id,
        spec.target.label_field: getattr(target, spec.target.label_field),
    }
    # The target's trail records the link too, naming the owner as its other end.
    other_end = {
        "type": spec.owner.name,
        "id": owner.id,
        spec.owner.label_field: getattr(owner, spec.owner.label_field),
    }
    action = AuditAction.UNLINK if remove else AuditAction.LINK
    events = (
        audit.values(actor, spec.owner.name, owner.id, action, {"target": linked}),
        audit.values(actor, spec.target.name, target.id, action, {"target": other_end}),
    )
    bumped = await rows.link(
        session,
        spec.table,
        (spec.owner_column, spec.target_column),
        (owner_id, target_id),
        events,
        remove=remove,
        ends=(spec.owner.model.__table__, spec.target.model.__table__),
    )
    ends = (
        rows.adopt(session, spec.owner.model, owner),
        rows.adopt(session, spec.target.model, target),
    )
    if bumped is not None:
        for entity, side in zip(ends, ("owner", "target"), strict=True):
            set_committed_value(entity, "version", getattr(bumped, f"{side}_version"))
            set_committed_value(entity, "updated_at", getattr(bumped, f"{side}_updated_at"))
        if spec is CONSTRAINT_PRODUCT and blocking.active_blocker(
            owner.severity, owner.status, None
        ):
            # The product's initiatives gained or lost a blocker.
            await blocking.bump_initiatives_of_product(
                session, target_id, actor.user_id, actor.client_id
            )
    return ends
