"""TechnicalConstraint: a technical limit on what can ship."""

from __future__ import annotations

from datetime import date, datetime

import strawberry

from auth.scopes import Scope
from domain import models
from schema.types import filters
from schema.types.audit import AuditEvent
from schema.types.enums import ConstraintCategory, ConstraintSeverity, ConstraintStatus
from schema.types.external_ref import external_refs_field
from schema.types.fields import edge_connection
from schema.types.node import CREATED_AT, UPDATED_AT, VERSION, Node, global_id, of_model
from schema.types.refs import InitiativeRef, ProductRef


@strawberry.type(
    description="A technical limit (security, compliance, scalability, ...) on products and "
    "initiatives. An OPEN or MITIGATING BLOCKER blocks the initiatives it applies to."
)
class TechnicalConstraint(Node):
    id: strawberry.ID = global_id("TechnicalConstraint")
    is_type_of = of_model(models.TechnicalConstraint)

    key: str = strawberry.field(description="Unique, immutable short key, e.g. `SEC-3`.")
    title: str = strawberry.field(description="Short title.")
    description: str | None = strawberry.field(description="The limit, in detail.")
    category: ConstraintCategory = strawberry.field(description="Kind of limit.")
    severity: ConstraintSeverity = strawberry.field(description="How hard it limits delivery.")
    status: ConstraintStatus = strawberry.field(description="Where it stands.")
    mitigation_plan: str | None = strawberry.field(description="How it will be lifted.")
    due_date: date | None = strawberry.field(description="When the mitigation is due.")
    version: int = strawberry.field(description=VERSION)
    created_at: datetime = strawberry.field(description=CREATED_AT)
    updated_at: datetime = strawberry.field(description=UPDATED_AT)
    external_refs = external_refs_field("TechnicalConstraint")

    products = edge_connection(
        "constraint.products",
        ProductRef,
        filters.ProductFilter,
        filters.ProductOrder,
        "Products it applies to.",
    )
    initiatives = edge_connection(
        "constraint.initiatives",
        InitiativeRef,
        filters.InitiativeFilter,
        filters.InitiativeOrder,
        "Initiatives it applies to directly.",
    )

    history = edge_connection(
        "TechnicalConstraint.history",
        AuditEvent,
        filters.AuditEventFilter,
        filters.AuditEventOrder,
        "Changes of this constraint, oldest first by default.",
        Scope.AUDIT_READ,
    )
