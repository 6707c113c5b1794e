"""AuditEvent: one change in the audit trail."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import strawberry
from strawberry.scalars import JSON

from api import models
from schema.ids import encode_id
from schema.types.enums import AuditAction
from schema.types.node import Node, global_id, of_model


def _entity(root: Any) -> strawberry.ID:
    return strawberry.ID(encode_id(root.entity_type, root.entity_id))


def _actor(kind: str, attribute: str) -> Any:
    def resolve(root: Any) -> strawberry.ID | None:
        value = getattr(root, attribute)
        return None if value is None else strawberry.ID(encode_id(kind, value))

    return strawberry.field(
        resolver=resolve, description=f"Global ID of the {kind} that made the change, if known."
    )


@strawberry.type(
    description="One change of the portfolio: who, what, when, and the values before and after."
)
class AuditEvent(Node):
    id: strawberry.ID = global_id("AuditEvent")
    is_type_of = of_model(models.AuditEvent)

    occurred_at: datetime = strawberry.field(
        description="When the change was committed (the transaction's time)."
    )
    action: AuditAction = strawberry.field(description="What kind of change.")
    entity_type: str = strawberry.field(description="GraphQL type of the changed object.")
    entity_id: strawberry.ID = strawberry.field(
        resolver=_entity, description="Global ID of the changed object."
    )
    changes: JSON = strawberry.field(
        description="For each changed field, `{before, after}` (JSON values); for links, the "
        "linked object; for measurement batches, how many were stored."
    )
    actor_user_id: strawberry.ID | None = _actor("User", "actor_user_id")
    actor_client_id: strawberry.ID | None = _actor("OAuthClient", "actor_client_id")
