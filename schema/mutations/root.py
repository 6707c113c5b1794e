"""The root Mutation type."""

from __future__ import annotations

from typing import Annotated

import strawberry

from auth.scopes import Scope
from domain.services import links, measurements, specs, status
from schema.mutations import bulk, entities, inputs
from schema.mutations.admin import AdminMutation
from schema.mutations.common import UserError, decode_reference, run
from schema.mutations.payloads import entity_payload, link_payload
from schema.types.constraint import TechnicalConstraint
from schema.types.glossary import GlossaryTerm
from schema.types.initiative import Initiative
from schema.types.kpi import Kpi
from schema.types.product import Product
from schema.types.team import Team

TeamPayload = entity_payload("Team", Team, "team")
ProductPayload = entity_payload("Product", Product, "product")
InitiativePayload = entity_payload("Initiative", Initiative, "initiative")
TechnicalConstraintPayload = entity_payload(
    "TechnicalConstraint", TechnicalConstraint, "technical_constraint"
)
KpiPayload = entity_payload("Kpi", Kpi, "kpi")
GlossaryTermPayload = entity_payload("GlossaryTerm", GlossaryTerm, "glossary_term")

InitiativeProductPayload = link_payload(
    "InitiativeProduct", {"initiative": ("Initiative", Initiative), "product": ("Product", Product)}
)
ConstraintProductPayload = link_payload(
    "ConstraintProduct",
    {
        "technical_constraint": ("TechnicalConstraint", TechnicalConstraint),
        "product": ("Product", Product),
    },
)
ConstraintInitiativePayload = link_payload(
    "ConstraintInitiative",
    {
        "technical_constraint": ("TechnicalConstraint", TechnicalConstraint),
        "initiative": ("Initiative", Initiative),
    },
)
InitiativeKpiPayload = link_payload(
    "InitiativeKpi", {"initiative": ("Initiative", Initiative), "kpi": ("Kpi", Kpi)}
)

PRODUCT_REFS = {"business_owner_team_id": "Team", "technology_owner_team_id": "Team"}
INITIATIVE_REFS = {"parent_id": "Initiative", "owner_team_id": "Team"}
KPI_REFS = {"product_id": "Product", "owner_team_id": "Team"}


@strawberry.type(description="The result of recording a batch of KPI measurements.")
class RecordKpiMeasurementsPayload:
    received: int = strawberry.field(description="Measurements in the call.")
    inserted: int = strawberry.field(description="New measurements stored.")
    duplicates: int = strawberry.field(
        description="Valid measurements already stored under the same (source, externalId)."
    )
    rejected: int = strawberry.field(description="Measurements refused; see userErrors.")
    user_errors: list[UserError] = strawberry.field(
        description="One entry per problem, with the index of the measurement in `field`."
    )


@strawberry.type(description="Changes to the portfolio: products, roadmap, constraints, KPIs.")
class PortfolioMutation:
    create_team = entities.create(
        specs.TEAM, inputs.CreateTeamInput, TeamPayload, "team", Scope.PRODUCTS_WRITE
    )
    update_team = entities.update(
        specs.TEAM, inputs.UpdateTeamInput, TeamPayload, "team", Scope.PRODUCTS_WRITE
    )
    archive_team = entities.archive(
        specs.TEAM, inputs.ArchiveInput, TeamPayload, "team", Scope.PRODUCTS_WRITE
    )
    create_product = entities.create(
        specs.PRODUCT,
        inputs.CreateProductInput,
        ProductPayload,
        "product",
        Scope.PRODUCTS_WRITE,
        PRODUCT_REFS,
    )
    update_product = entities.update(
        specs.PRODUCT,
        inputs.UpdateProductInput,
        ProductPayload,
        "product",
        Scope.PRODUCTS_WRITE,
        PRODUCT_REFS,
    )
    archive_product = entities.archive(
        specs.PRODUCT, inputs.ArchiveInput, ProductPayload, "product", Scope.PRODUCTS_WRITE
    )
    create_initiative = entities.create(
        specs.INITIATIVE,
        inputs.CreateInitiativeInput,
        InitiativePayload,
        "initiative",
        Scope.INITIATIVES_WRITE,
        INITIATIVE_REFS,
    )
    update_initiative = entities.update(
        specs.INITIATIVE,
        inputs.UpdateInitiativeInput,
        InitiativePayload,
        "initiative",
        Scope.INITIATIVES_WRITE,
        INITIATIVE_REFS,
    )
    archive_initiative = entities.archive(
        specs.INITIATIVE,
        inputs.ArchiveInput,
        InitiativePayload,
        "initiative",
        Scope.INITIATIVES_WRITE,
    )
    create_technical_constraint = entities.create(
        specs.CONSTRAINT,
        inputs.CreateTechnicalConstraintInput,
        TechnicalConstraintPayload,
        "technical_constraint",
        Scope.CONSTRAINTS_WRITE,
    )
    update_technical_constraint = entities.update(
        specs.CONSTRAINT,
        inputs.UpdateTechnicalConstraintInput,
        TechnicalConstraintPayload,
        "technical_constraint",
        Scope.CONSTRAINTS_WRITE,
    )
    archive_technical_constraint = entities.archive(
        specs.CONSTRAINT,
        inputs.ArchiveInput,
        TechnicalConstraintPayload,
        "technical_constraint",
        Scope.CONSTRAINTS_WRITE,
    )
    create_kpi = entities.create(
        specs.KPI, inputs.CreateKpiInput, KpiPayload, "kpi", Scope.KPIS_WRITE, KPI_REFS
    )
    update_kpi = entities.update(
        specs.KPI, inputs.UpdateKpiInput, KpiPayload, "kpi", Scope.KPIS_WRITE, KPI_REFS
    )
    archive_kpi = entities.archive(
        specs.KPI, inputs.ArchiveInput, KpiPayload, "kpi", Scope.KPIS_WRITE
    )
    create_glossary_term = entities.create(
        specs.GLOSSARY_TERM,
        inputs.CreateGlossaryTermInput,
        GlossaryTermPayload,
        "glossary_term",
        Scope.GLOSSARY_WRITE,
    )
    update_glossary_term = entities.update(
        specs.GLOSSARY_TERM,
        inputs.UpdateGlossaryTermInput,
        GlossaryTermPayload,
        "glossary_term",
        Scope.GLOSSARY_WRITE,
    )
    archive_glossary_term = entities.archive(
        specs.GLOSSARY_TERM,
        inputs.ArchiveInput,
        GlossaryTermPayload,
        "glossary_term",
        Scope.GLOSSARY_WRITE,
    )

    link_initiative_product, unlink_initiative_product = entities.link_pair(
        links.INITIATIVE_PRODUCT,
        inputs.InitiativeProductInput,
        InitiativeProductPayload,
        ("initiative", "product"),
        Scope.INITIATIVES_WRITE,
    )
    link_constraint_product, unlink_constraint_product = entities.link_pair(
        links.CONSTRAINT_PRODUCT,
        inputs.ConstraintProductInput,
        ConstraintProductPayload,
        ("technical_constraint", "product"),
        Scope.CONSTRAINTS_WRITE,
    )
    link_constraint_initiative, unlink_constraint_initiative = entities.link_pair(
        links.CONSTRAINT_INITIATIVE,
        inputs.ConstraintInitiativeInput,
        ConstraintInitiativePayload,
        ("technical_constraint", "initiative"),
        Scope.CONSTRAINTS_WRITE,
    )
    link_initiative_kpi, unlink_initiative_kpi = entities.link_pair(
        links.INITIATIVE_KPI,
        inputs.InitiativeKpiInput,
        InitiativeKpiPayload,
        ("initiative", "kpi"),
        Scope.INITIATIVES_WRITE,
    )

    set_initiative_status = entities.mutation_field(
        inputs.SetInitiativeStatusInput,
        InitiativePayload,
        "initiative",
        "Move an initiative to another status. IN_PROGRESS is refused with BLOCKED, naming "
        "the constraints, while an OPEN or MITIGATING BLOCKER applies to it or its products.",
        Scope.INITIATIVES_WRITE,
        lambda s, actor, i: status.set_initiative_status(
            s, actor, decode_reference(i.id, "Initiative", "id"), i.status, i.expected_version
        ),
    )
    set_constraint_status = entities.mutation_field(
        inputs.SetConstraintStatusInput,
        TechnicalConstraintPayload,
        "technical_constraint",
        "Move a technical constraint to another status (RESOLVED or ACCEPTED lifts a blocker).",
        Scope.CONSTRAINTS_WRITE,
        lambda s, actor, i: status.set_constraint_status(
            s,
            actor,
            decode_reference(i.id, "TechnicalConstraint", "id"),
            i.status,
            i.expected_version,
        ),
    )

    @strawberry.mutation(
        **entities.guarded(
            "Record up to 10,000 KPI measurements at once. Idempotent by (source, externalId): "
            "re-sending is counted as a duplicate, never stored twice. Invalid items are reported "
            "in userErrors; the valid ones are stored.",
            Scope.KPIS_INGEST,
        )
    )
    async def record_kpi_measurements(
        self,
        info: strawberry.Info,
        input: Annotated[
            inputs.RecordKpiMeasurementsInput, strawberry.argument(description="The batch.")
        ],
    ) -> RecordKpiMeasurementsPayload | None:
        # Already a column batch when BulkIngest prevalidated it (the common case).
        items = bulk.measurements_of(info, input.measurements)
        outcome = await run(info, lambda session, actor: measurements.record(session, actor, items))
        result = outcome.value or measurements.IngestResult(
            received=len(items), rejected=len(items)
        )
        return RecordKpiMeasurementsPayload(
            received=result.received,
            inserted=result.inserted,
            duplicates=result.duplicates,
            rejected=result.rejected,
            user_errors=outcome.errors + [entities.to_user_error(e) for e in result.errors],
        )


@strawberry.type(description="Changes to the portfolio graph. Each mutation is all or nothing.")
class Mutation(PortfolioMutation, AdminMutation):
    pass
