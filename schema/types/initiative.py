"""Initiative: an item of the roadmap, from theme down to epic."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

import strawberry

from auth.scopes import Scope
from domain import models
from schema.permissions import guarded
from schema.types import filters
from schema.types.audit import AuditEvent
from schema.types.enums import InitiativeStatus
from schema.types.external_ref import external_refs_field
from schema.types.fields import by_id_reference, edge_connection
from schema.types.node import CREATED_AT, UPDATED_AT, VERSION, Node, global_id, of_model
from schema.types.refs import ConstraintRef, InitiativeRef, KpiRef, ProductRef, TeamRef


@strawberry.type(description="A score with the inputs it was computed from.")
class ScoreExplanation:
    score: float | None = strawberry.field(description="The score; null when an input is missing.")
    explanation: str = strawberry.field(
        description="The formula with the inputs filled in, or which inputs are missing."
    )


@strawberry.type(
    description="An item of the roadmap. Themes have no parent; epics hang below themes or epics."
)
class Initiative(Node):
    id: strawberry.ID = global_id("Initiative")
    is_type_of = of_model(models.Initiative)

    key: str = strawberry.field(description="Unique, immutable short key, e.g. `PAY-12`.")
    title: str = strawberry.field(description="Short title.")
    summary: str | None = strawberry.field(description="What and why, in a few sentences.")
    status: InitiativeStatus = strawberry.field(description="Where it is on the roadmap.")
    target_start: date | None = strawberry.field(description="Planned start.")
    target_end: date | None = strawberry.field(description="Planned end (not before the start).")
    reach: int | None = strawberry.field(description="RICE reach: people affected per quarter.")
    impact: float | None = strawberry.field(
        description="RICE impact: 0.25 (minimal) to 3 (massive)."
    )
    confidence: float | None = strawberry.field(description="RICE confidence, 0 to 1.")
    effort: float | None = strawberry.field(description="RICE effort in person-months (> 0).")
    business_value: int | None = strawberry.field(description="WSJF business value, 1 to 20.")
    time_criticality: int | None = strawberry.field(description="WSJF time criticality, 1 to 20.")
    risk_reduction: int | None = strawberry.field(
        description="WSJF risk reduction / opportunity enablement, 1 to 20."
    )
    job_size: int | None = strawberry.field(description="WSJF job size, 1 to 20.")
    rice_score: float | None = strawberry.field(
        description="reach × impact × confidence ÷ effort, rounded to 2 decimals; null when an "
        "input is missing."
    )
    wsjf_score: float | None = strawberry.field(
        description="(business value + time criticality + risk reduction) ÷ job size, rounded to "
        "2 decimals; null when an input is missing."
    )
    is_blocked: bool = strawberry.field(
        description="True while an OPEN or MITIGATING BLOCKER applies to it or to one of its "
        "products; it cannot move to IN_PROGRESS then."
    )
    version: int = strawberry.field(description=VERSION)
    created_at: datetime = strawberry.field(description=CREATED_AT)
    updated_at: datetime = strawberry.field(description=UPDATED_AT)
    external_refs = external_refs_field("Initiative")

    @strawberry.field(description="How `riceScore` was computed.")
    def rice(self) -> ScoreExplanation:
        return ScoreExplanation(score=self.rice_score, explanation=self.rice_explanation)  # type: ignore[attr-defined]

    @strawberry.field(description="How `wsjfScore` was computed.")
    def wsjf(self) -> ScoreExplanation:
        return ScoreExplanation(score=self.wsjf_score, explanation=self.wsjf_explanation)  # type: ignore[attr-defined]

    @strawberry.field(**guarded("Estimated cost in the company currency.", Scope.FINANCE_READ))
    def estimated_cost(self) -> Decimal | None:
        return self.estimated_cost

    @strawberry.field(
        **guarded(
            "The constraints that block it now: OPEN or MITIGATING BLOCKERs applied to it or to "
            "one of its products, by key.",
            Scope.PORTFOLIO_READ,
        )
    )
    async def blocked_by(self, info: strawberry.Info) -> list[ConstraintRef] | None:
        return await info.context.blocked_by().load(self.id)

    parent = by_id_reference(
        models.Initiative, "parent_id", InitiativeRef, "The theme or epic this belongs to."
    )
    owner_team = by_id_reference(models.Team, "owner_team_id", TeamRef, "The team that owns it.")
    children = edge_connection(
        "initiative.children",
        InitiativeRef,
        filters.InitiativeFilter,
        filters.InitiativeOrder,
        "Initiatives directly below this one.",
    )
    products = edge_connection(
        "initiative.products",
        ProductRef,
        filters.ProductFilter,
        filters.ProductOrder,
        "Products this initiative changes.",
    )
    constraints = edge_connection(
        "initiative.constraints",
        ConstraintRef,
        filters.TechnicalConstraintFilter,
        filters.TechnicalConstraintOrder,
        "Constraints applied directly to this initiative (see `blockedBy` for those inherited "
        "from its products).",
    )
    kpis = edge_connection(
        "initiative.kpis", KpiRef, filters.KpiFilter, filters.KpiOrder, "KPIs it aims to move."
    )

    history = edge_connection(
        "Initiative.history",
        AuditEvent,
        filters.AuditEventFilter,
        filters.AuditEventOrder,
        "Changes of this initiative, oldest first by default.",
        Scope.AUDIT_READ,
    )
