"""GlossaryTerm: the shared language of business and technology."""

from __future__ import annotations

from datetime import datetime

import strawberry

from auth.scopes import Scope
from domain import models
from schema.types import inputs
from schema.types.audit import AuditEvent
from schema.types.fields import edge_connection
from schema.types.node import CREATED_AT, UPDATED_AT, VERSION, Node, global_id, of_model


@strawberry.type(description="A term with what it means to the business and to technology.")
class GlossaryTerm(Node):
    id: strawberry.ID = global_id("GlossaryTerm")
    is_type_of = of_model(models.GlossaryTerm)

    term: str = strawberry.field(description="The term, unique.")
    definition: str = strawberry.field(description="A neutral definition.")
    business_meaning: str | None = strawberry.field(description="What it means to the business.")
    technical_meaning: str | None = strawberry.field(description="What it means to technology.")
    version: int = strawberry.field(description=VERSION)
    created_at: datetime = strawberry.field(description=CREATED_AT)
    updated_at: datetime = strawberry.field(description=UPDATED_AT)

    history = edge_connection(
        "GlossaryTerm.history",
        AuditEvent,
        inputs.AuditEventFilter,
        inputs.AuditEventOrder,
        "Changes of this term, oldest first by default.",
        Scope.AUDIT_READ,
    )
