"""AuditEvent: one change in the audit trail."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

import strawberry
from strawberry.scalars import JSON

from domain import models
from schema.guards import AuditChanges
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


_PRESENTERS: dict[int, AuditChanges] = {}


def presenter(schema: strawberry.Schema) -> AuditChanges:
    """One per schema variant (they share their types): its tables are built once."""
    presenter = _PRESENTERS.get(id(schema))
    if presenter is None:
        presenter = _PRESENTERS[id(schema)] = AuditChanges(schema)
    return presenter


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

    @strawberry.field(
        description="For each changed field, by its GraphQL name, `{before, after}` (JSON "
        "values; references as global IDs); for links, the linked object (`target`, with its "
        "global ID); for measurement batches, how many were stored. Only the fields the caller "
        "could read on the object itself are included: e.g. `estimatedCost` needs "
        "`finance:read`, and anything of a `User` or `Role` needs `admin:users`."
    )
    def changes(self, root: strawberry.Parent[models.AuditEvent], info: strawberry.Info) -> JSON:
        shown = presenter(info.schema).present(
            root.entity_type, root.changes, info.context.principal.scopes
        )
        return cast(JSON, shown)

    actor_user_id: strawberry.ID | None = _actor("User", "actor_user_id")
    actor_client_id: strawberry.ID | None = _actor("OAuthClient", "actor_client_id")
