"""Initiatives whose blocking changed get a new version and ``updatedAt``.

Whether an initiative is blocked (``isBlocked``, ``blockedBy``) is computed from the
constraints applied to it or to its products (``domain.models.computed``); it changes
without the initiative's row being written when a constraint starts or stops being an
active blocker (its status, severity, archive) or an active blocker is linked to or
unlinked from one of its products. Those initiatives are bumped here, each with an
UPDATE event holding its version change, so that ``updatedSince``, the change feed and
``expectedVersion`` all see the change. (A link to the initiative itself bumps it as
one end of the link: ``domain.services.links``.)
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from domain.models import ConstraintSeverity, ConstraintStatus
from domain.models.enums import ACTIVE_CONSTRAINT_STATUSES

_BUMP = """
WITH bumped AS (
    UPDATE initiatives i SET version = i.version + 1, updated_at = now()
    WHERE i.archived_at IS NULL AND i.id IN ({affected})
    RETURNING i.id, i.version
)
INSERT INTO audit_events
    (actor_user_id, actor_client_id, entity_type, entity_id, action, changes)
SELECT CAST(:user_id AS bigint), CAST(:client_id AS bigint), 'Initiative', id, 'UPDATE',
    jsonb_build_object('version', jsonb_build_object('before', version - 1, 'after', version))
FROM bumped ORDER BY id
"""
# Initiatives a constraint applies to: directly, or through one of their products.
_OF_CONSTRAINT = text(
    _BUMP.format(
        affected="SELECT initiative_id FROM constraint_initiatives WHERE constraint_id = :id "
        "UNION SELECT ip.initiative_id FROM initiative_products ip "
        "JOIN constraint_products cp ON cp.product_id = ip.product_id "
        "WHERE cp.constraint_id = :id"
    )
)
_OF_PRODUCT = text(
    _BUMP.format(affected="SELECT initiative_id FROM initiative_products WHERE product_id = :id")
)


def active_blocker(
    severity: ConstraintSeverity, status: ConstraintStatus, archived_at: datetime | None
) -> bool:
    """The rule of ``computed._active_blocker``, on one constraint's values."""
    return (
        severity is ConstraintSeverity.BLOCKER
        and status in ACTIVE_CONSTRAINT_STATUSES
        and archived_at is None
    )


async def bump_initiatives_of_constraint(
    session: AsyncSession, constraint_id: int, user_id: int | None, client_id: int | None
) -> None:
    """After a constraint started or stopped being an active blocker."""
    await session.execute(
        _OF_CONSTRAINT, {"id": constraint_id, "user_id": user_id, "client_id": client_id}
    )


async def bump_initiatives_of_product(
    session: AsyncSession, product_id: int, user_id: int | None, client_id: int | None
) -> None:
    """After an active blocker was linked to or unlinked from the product."""
    await session.execute(
        _OF_PRODUCT, {"id": product_id, "user_id": user_id, "client_id": client_id}
    )
