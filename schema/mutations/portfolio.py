"""The portfolio's entity mutations: create, update and archive each entity, and move
initiatives and constraints between statuses. One resolver each, calling its service
(``domain.services.writes``, ``domain.services.status``) in ``run``'s savepoint."""

from __future__ import annotations

from typing import Annotated

import strawberry

from auth.scopes import Scope
from domain.services import specs, status, writes
from schema.mutations import inputs
from schema.mutations.common import (
    WHAT_TO_DO,
    archiving,
    changing,
    creating,
    entity_id,
    given_values,
    run,
)
from schema.mutations.payloads import (
    GlossaryTermPayload,
    InitiativePayload,
    KpiPayload,
    ProductPayload,
    TeamPayload,
    TechnicalConstraintPayload,
)
from schema.permissions import guarded

# References each input carries as global IDs: field -> the type they must name.
PRODUCT_REFS = {"business_owner_team_id": "Team", "technology_owner_team_id": "Team"}
INITIATIVE_REFS = {"parent_id": "Initiative", "owner_team_id": "Team"}
KPI_REFS = {"product_id": "Product", "owner_team_id": "Team"}
NO_REFS: dict[str, str] = {}


@strawberry.type(description="Changes to the portfolio: products, roadmap, constraints, KPIs.")
class EntityMutation:
    @strawberry.mutation(name="createTeam", **guarded(creating("Team"), Scope.PRODUCTS_WRITE))
    async def create_team(
        self, info: strawberry.Info, input: Annotated[inputs.CreateTeamInput, WHAT_TO_DO]
    ) -> TeamPayload | None:
        outcome = await run(
            info,
            lambda session, actor: writes.create(
                session, actor, specs.TEAM, given_values(input, NO_REFS)
            ),
        )
        return TeamPayload(team=outcome.value, user_errors=outcome.errors)

    @strawberry.mutation(name="updateTeam", **guarded(changing("Team"), Scope.PRODUCTS_WRITE))
    async def update_team(
        self, info: strawberry.Info, input: Annotated[inputs.UpdateTeamInput, WHAT_TO_DO]
    ) -> TeamPayload | None:
        outcome = await run(
            info,
            lambda session, actor: writes.update(
                session,
                actor,
                specs.TEAM,
                entity_id(input, "Team"),
                input.expected_version,
                given_values(input, NO_REFS),
            ),
        )
        return TeamPayload(team=outcome.value, user_errors=outcome.errors)

    @strawberry.mutation(name="archiveTeam", **guarded(archiving("Team"), Scope.PRODUCTS_WRITE))
    async def archive_team(
        self, info: strawberry.Info, input: Annotated[inputs.ArchiveInput, WHAT_TO_DO]
    ) -> TeamPayload | None:
        outcome = await run(
            info,
            lambda session, actor: writes.archive(
                session, actor, specs.TEAM, entity_id(input, "Team"), input.expected_version
            ),
        )
        return TeamPayload(team=outcome.value, user_errors=outcome.errors)

    @strawberry.mutation(name="createProduct", **guarded(creating("Product"), Scope.PRODUCTS_WRITE))
    async def create_product(
        self, info: strawberry.Info, input: Annotated[inputs.CreateProductInput, WHAT_TO_DO]
    ) -> ProductPayload | None:
        outcome = await run(
            info,
            lambda session, actor: writes.create(
                session, actor, specs.PRODUCT, given_values(input, PRODUCT_REFS)
            ),
        )
        return ProductPayload(product=outcome.value, user_errors=outcome.errors)

    @strawberry.mutation(name="updateProduct", **guarded(changing("Product"), Scope.PRODUCTS_WRITE))
    async def update_product(
        self, info: strawberry.Info, input: Annotated[inputs.UpdateProductInput, WHAT_TO_DO]
    ) -> ProductPayload | None:
        outcome = await run(
            info,
            lambda session, actor: writes.update(
                session,
                actor,
                specs.PRODUCT,
                entity_id(input, "Product"),
                input.expected_version,
                given_values(input, PRODUCT_REFS),
            ),
        )
        return ProductPayload(product=outcome.value, user_errors=outcome.errors)

    @strawberry.mutation(
        name="archiveProduct", **guarded(archiving("Product"), Scope.PRODUCTS_WRITE)
    )
    async def archive_product(
        self, info: strawberry.Info, input: Annotated[inputs.ArchiveInput, WHAT_TO_DO]
    ) -> ProductPayload | None:
        outcome = await run(
            info,
            lambda session, actor: writes.archive(
                session, actor, specs.PRODUCT, entity_id(input, "Product"), input.expected_version
            ),
        )
        return ProductPayload(product=outcome.value, user_errors=outcome.errors)

    @strawberry.mutation(
        name="createInitiative", **guarded(creating("Initiative"), Scope.INITIATIVES_WRITE)
    )
    async def create_initiative(
        self, info: strawberry.Info, input: Annotated[inputs.CreateInitiativeInput, WHAT_TO_DO]
    ) -> InitiativePayload | None:
        outcome = await run(
            info,
            lambda session, actor: writes.create(
                session, actor, specs.INITIATIVE, given_values(input, INITIATIVE_REFS)
            ),
        )
        return InitiativePayload(initiative=outcome.value, user_errors=outcome.errors)

    @strawberry.mutation(
        name="updateInitiative", **guarded(changing("Initiative"), Scope.INITIATIVES_WRITE)
    )
    async def update_initiative(
        self, info: strawberry.Info, input: Annotated[inputs.UpdateInitiativeInput, WHAT_TO_DO]
    ) -> InitiativePayload | None:
        outcome = await run(
            info,
            lambda session, actor: writes.update(
                session,
                actor,
                specs.INITIATIVE,
                entity_id(input, "Initiative"),
                input.expected_version,
                given_values(input, INITIATIVE_REFS),
            ),
        )
        return InitiativePayload(initiative=outcome.value, user_errors=outcome.errors)

    @strawberry.mutation(
        name="archiveInitiative", **guarded(archiving("Initiative"), Scope.INITIATIVES_WRITE)
    )
    async def archive_initiative(
        self, info: strawberry.Info, input: Annotated[inputs.ArchiveInput, WHAT_TO_DO]
    ) -> InitiativePayload | None:
        outcome = await run(
            info,
            lambda session, actor: writes.archive(
                session,
                actor,
                specs.INITIATIVE,
                entity_id(input, "Initiative"),
                input.expected_version,
            ),
        )
        return InitiativePayload(initiative=outcome.value, user_errors=outcome.errors)

    @strawberry.mutation(
        name="createTechnicalConstraint",
        **guarded(creating("TechnicalConstraint"), Scope.CONSTRAINTS_WRITE),
    )
    async def create_technical_constraint(
        self,
        info: strawberry.Info,
        input: Annotated[inputs.CreateTechnicalConstraintInput, WHAT_TO_DO],
    ) -> TechnicalConstraintPayload | None:
        outcome = await run(
            info,
            lambda session, actor: writes.create(
                session, actor, specs.CONSTRAINT, given_values(input, NO_REFS)
            ),
        )
        return TechnicalConstraintPayload(
            technical_constraint=outcome.value, user_errors=outcome.errors
        )

    @strawberry.mutation(
        name="updateTechnicalConstraint",
        **guarded(changing("TechnicalConstraint"), Scope.CONSTRAINTS_WRITE),
    )
    async def update_technical_constraint(
        self,
        info: strawberry.Info,
        input: Annotated[inputs.UpdateTechnicalConstraintInput, WHAT_TO_DO],
    ) -> TechnicalConstraintPayload | None:
        outcome = await run(
            info,
            lambda session, actor: writes.update(
                session,
                actor,
                specs.CONSTRAINT,
                entity_id(input, "TechnicalConstraint"),
                input.expected_version,
                given_values(input, NO_REFS),
            ),
        )
        return TechnicalConstraintPayload(
            technical_constraint=outcome.value, user_errors=outcome.errors
        )

    @strawberry.mutation(
        name="archiveTechnicalConstraint",
        **guarded(archiving("TechnicalConstraint"), Scope.CONSTRAINTS_WRITE),
    )
    async def archive_technical_constraint(
        self, info: strawberry.Info, input: Annotated[inputs.ArchiveInput, WHAT_TO_DO]
    ) -> TechnicalConstraintPayload | None:
        outcome = await run(
            info,
            lambda session, actor: writes.archive(
                session,
                actor,
                specs.CONSTRAINT,
                entity_id(input, "TechnicalConstraint"),
                input.expected_version,
            ),
        )
        return TechnicalConstraintPayload(
            technical_constraint=outcome.value, user_errors=outcome.errors
        )

    @strawberry.mutation(name="createKpi", **guarded(creating("Kpi"), Scope.KPIS_WRITE))
    async def create_kpi(
        self, info: strawberry.Info, input: Annotated[inputs.CreateKpiInput, WHAT_TO_DO]
    ) -> KpiPayload | None:
        outcome = await run(
            info,
            lambda session, actor: writes.create(
                session, actor, specs.KPI, given_values(input, KPI_REFS)
            ),
        )
        return KpiPayload(kpi=outcome.value, user_errors=outcome.errors)

    @strawberry.mutation(name="updateKpi", **guarded(changing("Kpi"), Scope.KPIS_WRITE))
    async def update_kpi(
        self, info: strawberry.Info, input: Annotated[inputs.UpdateKpiInput, WHAT_TO_DO]
    ) -> KpiPayload | None:
        outcome = await run(
            info,
            lambda session, actor: writes.update(
                session,
                actor,
                specs.KPI,
                entity_id(input, "Kpi"),
                input.expected_version,
                given_values(input, KPI_REFS),
            ),
        )
        return KpiPayload(kpi=outcome.value, user_errors=outcome.errors)

    @strawberry.mutation(name="archiveKpi", **guarded(archiving("Kpi"), Scope.KPIS_WRITE))
    async def archive_kpi(
        self, info: strawberry.Info, input: Annotated[inputs.ArchiveInput, WHAT_TO_DO]
    ) -> KpiPayload | None:
        outcome = await run(
            info,
            lambda session, actor: writes.archive(
                session, actor, specs.KPI, entity_id(input, "Kpi"), input.expected_version
            ),
        )
        return KpiPayload(kpi=outcome.value, user_errors=outcome.errors)

    @strawberry.mutation(
        name="createGlossaryTerm", **guarded(creating("GlossaryTerm"), Scope.GLOSSARY_WRITE)
    )
    async def create_glossary_term(
        self, info: strawberry.Info, input: Annotated[inputs.CreateGlossaryTermInput, WHAT_TO_DO]
    ) -> GlossaryTermPayload | None:
        outcome = await run(
            info,
            lambda session, actor: writes.create(
                session, actor, specs.GLOSSARY_TERM, given_values(input, NO_REFS)
            ),
        )
        return GlossaryTermPayload(glossary_term=outcome.value, user_errors=outcome.errors)

    @strawberry.mutation(
        name="updateGlossaryTerm", **guarded(changing("GlossaryTerm"), Scope.GLOSSARY_WRITE)
    )
    async def update_glossary_term(
        self, info: strawberry.Info, input: Annotated[inputs.UpdateGlossaryTermInput, WHAT_TO_DO]
    ) -> GlossaryTermPayload | None:
        outcome = await run(
            info,
            lambda session, actor: writes.update(
                session,
                actor,
                specs.GLOSSARY_TERM,
                entity_id(input, "GlossaryTerm"),
                input.expected_version,
                given_values(input, NO_REFS),
            ),
        )
        return GlossaryTermPayload(glossary_term=outcome.value, user_errors=outcome.errors)

    @strawberry.mutation(
        name="archiveGlossaryTerm", **guarded(archiving("GlossaryTerm"), Scope.GLOSSARY_WRITE)
    )
    async def archive_glossary_term(
        self, info: strawberry.Info, input: Annotated[inputs.ArchiveInput, WHAT_TO_DO]
    ) -> GlossaryTermPayload | None:
        outcome = await run(
            info,
            lambda session, actor: writes.archive(
                session,
                actor,
                specs.GLOSSARY_TERM,
                entity_id(input, "GlossaryTerm"),
                input.expected_version,
            ),
        )
        return GlossaryTermPayload(glossary_term=outcome.value, user_errors=outcome.errors)


@strawberry.type(description="Status changes of initiatives and technical constraints.")
class StatusMutation:
    @strawberry.mutation(
        name="setInitiativeStatus",
        **guarded(
            "Move an initiative to another status. IN_PROGRESS is refused with BLOCKED, naming "
            "the constraints, while an OPEN or MITIGATING BLOCKER applies to it or its products.",
            Scope.INITIATIVES_WRITE,
        ),
    )
    async def set_initiative_status(
        self, info: strawberry.Info, input: Annotated[inputs.SetInitiativeStatusInput, WHAT_TO_DO]
    ) -> InitiativePayload | None:
        outcome = await run(
            info,
            lambda session, actor: status.set_initiative_status(
                session, actor, entity_id(input, "Initiative"), input.status, input.expected_version
            ),
        )
        return InitiativePayload(initiative=outcome.value, user_errors=outcome.errors)

    @strawberry.mutation(
        name="setConstraintStatus",
        **guarded(
            "Move a technical constraint to another status (RESOLVED or ACCEPTED lifts a blocker).",
            Scope.CONSTRAINTS_WRITE,
        ),
    )
    async def set_constraint_status(
        self, info: strawberry.Info, input: Annotated[inputs.SetConstraintStatusInput, WHAT_TO_DO]
    ) -> TechnicalConstraintPayload | None:
        outcome = await run(
            info,
            lambda session, actor: status.set_constraint_status(
                session,
                actor,
                entity_id(input, "TechnicalConstraint"),
                input.status,
                input.expected_version,
            ),
        )
        return TechnicalConstraintPayload(
            technical_constraint=outcome.value, user_errors=outcome.errors
        )
