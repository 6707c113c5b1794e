"""Team: who owns products, initiatives and KPIs."""

from __future__ import annotations

from datetime import datetime

import strawberry

from auth.scopes import Scope
from domain import models
from schema.types import inputs
from schema.types.audit import AuditEvent
from schema.types.enums import TeamKind
from schema.types.fields import edge_connection
from schema.types.node import CREATED_AT, UPDATED_AT, VERSION, Node, global_id, of_model
from schema.types.refs import InitiativeRef, KpiRef, ProductRef


@strawberry.type(description="A team of the organisation: business, technology or both.")
class Team(Node):
    id: strawberry.ID = global_id("Team")
    is_type_of = of_model(models.Team)

    key: str = strawberry.field(description="Unique, immutable short key, e.g. `PAYMENTS-ENG`.")
    name: str = strawberry.field(description="Display name.")
    kind: TeamKind = strawberry.field(description="Business, technology or cross-functional.")
    description: str | None = strawberry.field(description="What the team does.")
    version: int = strawberry.field(description=VERSION)
    created_at: datetime = strawberry.field(description=CREATED_AT)
    updated_at: datetime = strawberry.field(description=UPDATED_AT)

    products = edge_connection(
        "team.products",
        ProductRef,
        inputs.ProductFilter,
        inputs.ProductOrder,
        "Products this team owns, as business or technology owner.",
    )
    initiatives = edge_connection(
        "team.initiatives",
        InitiativeRef,
        inputs.InitiativeFilter,
        inputs.InitiativeOrder,
        "Initiatives this team owns.",
    )
    kpis = edge_connection(
        "team.kpis", KpiRef, inputs.KpiFilter, inputs.KpiOrder, "KPIs this team owns."
    )

    history = edge_connection(
        "Team.history",
        AuditEvent,
        inputs.AuditEventFilter,
        inputs.AuditEventOrder,
        "Changes of this team, oldest first by default.",
        Scope.AUDIT_READ,
    )
