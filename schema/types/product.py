"""Product: what the portfolio is made of."""

from __future__ import annotations

from datetime import datetime

import strawberry

from auth.scopes import Scope
from domain import models
from schema.types import filters
from schema.types.audit import AuditEvent
from schema.types.enums import LifecycleStage
from schema.types.external_ref import external_refs_field
from schema.types.fields import by_id_reference, edge_connection
from schema.types.node import CREATED_AT, UPDATED_AT, VERSION, Node, global_id, of_model
from schema.types.refs import ConstraintRef, InitiativeRef, KpiRef, TeamRef


@strawberry.type(
    description="A product of the IT portfolio, owned by a business and a technology team."
)
class Product(Node):
    id: strawberry.ID = global_id("Product")
    is_type_of = of_model(models.Product)

    key: str = strawberry.field(description="Unique, immutable short key, e.g. `PAY`.")
    name: str = strawberry.field(description="Display name.")
    description: str | None = strawberry.field(description="What the product does, for whom.")
    lifecycle_stage: LifecycleStage = strawberry.field(
        description="Where the product is in its life."
    )
    version: int = strawberry.field(description=VERSION)
    created_at: datetime = strawberry.field(description=CREATED_AT)
    updated_at: datetime = strawberry.field(description=UPDATED_AT)
    external_refs = external_refs_field("Product")

    business_owner_team = by_id_reference(
        models.Team,
        "business_owner_team_id",
        TeamRef,
        "The team accountable for business outcomes.",
    )
    technology_owner_team = by_id_reference(
        models.Team, "technology_owner_team_id", TeamRef, "The team that builds and runs it."
    )
    initiatives = edge_connection(
        "product.initiatives",
        InitiativeRef,
        filters.InitiativeFilter,
        filters.InitiativeOrder,
        "Initiatives that change this product.",
    )
    constraints = edge_connection(
        "product.constraints",
        ConstraintRef,
        filters.TechnicalConstraintFilter,
        filters.TechnicalConstraintOrder,
        "Technical constraints that apply to this product (and so to its initiatives).",
    )
    kpis = edge_connection(
        "product.kpis",
        KpiRef,
        filters.KpiFilter,
        filters.KpiOrder,
        "KPIs that measure this product.",
    )

    history = edge_connection(
        "Product.history",
        AuditEvent,
        filters.AuditEventFilter,
        filters.AuditEventOrder,
        "Changes of this product, oldest first by default.",
        Scope.AUDIT_READ,
    )
