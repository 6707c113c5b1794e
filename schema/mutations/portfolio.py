"""The portfolio's entity mutations: create, update and archive each entity, and move
initiatives and constraints between statuses. One resolver each, calling its service
(``domain.services.writes``, ``domain.services.status``) in ``run``'s savepoint."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession

from auth.scopes import Scope
from domain.services import lookups, specs, status, sync, writes
from domain.services.lookups import Lookup
from domain.services.writes import Actor, EntitySpec
from schema.mutations import inputs
from schema.mutations.common import (
    WHAT_TO_DO,
    archiving,
    changing,
    creating,
    given_values,
    refs_given,
    run,
    target_id,
    target_of,
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

# References each input carries as global IDs: field -> the type they must name; and
# as lookups (by ID, key or external reference): field -> (the column, the type).
PRODUCT_REFS = {"business_owner_team_id": "Team", "technology_owner_team_id": "Team"}
INITIATIVE_REFS = {"parent_id": "Initiative", "owner_team_id": "Team"}
KPI_REFS = {"product_id": "Product", "owner_team_id": "Team"}
NO_REFS: dict[str, str] = {}
LOOKUPS: dict[str, dict[str, tuple[str, str]]] = {
    specs.PRODUCT.name: {
        "business_owner_team": ("business_owner_team_id", "Team"),
        "technology_owner_team": ("technology_owner_team_id", "Team"),
    },
    specs.INITIATIVE.name: {
        "parent": ("parent_id", "Initiative"),
        "owner_team": ("owner_team_id", "Team"),
    },
    specs.KPI.name: {"product": ("product_id", "Product"), "owner_team": ("owner_team_id", "Team")},
}

# Each entity's update mutation: its entity and the references its input carries as
# global IDs. The known-mutation path (``schema.known_writes``) answers these too.
UPDATES: dict[str, tuple[EntitySpec, dict[str, str]]] = {
    "updateTeam": (specs.TEAM, NO_REFS),
    "updateProduct": (specs.PRODUCT, PRODUCT_REFS),
    "updateInitiative": (specs.INITIATIVE, INITIATIVE_REFS),
    "updateTechnicalConstraint": (specs.CONSTRAINT, NO_REFS),
    "updateKpi": (specs.KPI, KPI_REFS),
    "updateGlossaryTerm": (specs.GLOSSARY_TERM, NO_REFS),
}


async def create(
    session: AsyncSession, actor: Actor, spec: EntitySpec, data: Any, references: dict[str, str]
) -> Any:
    given = given_values(data, references, LOOKUPS.get(spec.name), creating=True)
    values = await lookups.resolve_values(session, given)
    return await sync.create(session, actor, spec, values, refs_given(data))


async def update(
    session: AsyncSession, actor: Actor, spec: EntitySpec, data: Any, references: dict[str, str]
) -> Any:
    pk = await target_id(session, data, spec.name)
    given = given_values(data, references, LOOKUPS.get(spec.name))
    values = await lookups.resolve_values(session, given)
    return await sync.update(
        session, actor, spec, pk, data.expected_version, values, refs_given(data)
    )


def plain_update(spec: EntitySpec, data: Any, references: dict[str, str]) -> tuple[int, Any] | None:
    """What ``update`` computes before its service when that takes no statement: the
    target's primary key and the values given, for an input naming its object by `id`,
    naming no other object by key or reference, and setting no external references.
    None otherwise; raises ``Refused`` as ``update`` would."""
    target = target_of(data, spec.name)
    given = given_values(data, references, LOOKUPS.get(spec.name))
    if target.id is None or refs_given(data) or any(isinstance(v, Lookup) for v in given.values()):
        return None
    return target.id, given


def updating(name: str, data: Any) -> Callable[[AsyncSession, Actor], Awaitable[Any]]:
    """The work of the update mutation ``name`` (``UPDATES``) with its input."""
    spec, references = UPDATES[name]
    return lambda session, actor: update(session, actor, spec, data, references)


async def archive(session: AsyncSession, actor: Actor, spec: EntitySpec, data: Any) -> Any:
    pk = await target_id(session, data, spec.name)
    return await writes.archive(session, actor, spec, pk, data.expected_version)


async def set_status(
    session: AsyncSession, actor: Actor, change: Any, spec: EntitySpec, data: Any
) -> Any:
    pk = await target_id(session, data, spec.name)
    return await change(session, actor, pk, data.status, data.expected_version)


@strawberry.type(description="Changes to the portfolio: products, roadmap, constraints, KPIs.")
class EntityMutation:
    @strawberry.mutation(name="createTeam", **guarded(creating("Team"), Scope.PRODUCTS_WRITE))
    async def create_team(
        self, info: strawberry.Info, input: Annotated[inputs.CreateTeamInput, WHAT_TO_DO]
    ) -> TeamPayload | None:
        outcome = await run(
            info,
            lambda session, actor: create(session, actor, specs.TEAM, input, NO_REFS),
        )
        return TeamPayload(team=outcome.value, user_errors=outcome.errors)

    @strawberry.mutation(name="updateTeam", **guarded(changing("Team"), Scope.PRODUCTS_WRITE))
    async def update_team(
        self, info: strawberry.Info, input: Annotated[inputs.UpdateTeamInput, WHAT_TO_DO]
    ) -> TeamPayload | None:
        outcome = await run(
            info,
            updating("updateTeam", input),
        )
        return TeamPayload(team=outcome.value, user_errors=outcome.errors)

    @strawberry.mutation(name="archiveTeam", **guarded(archiving("Team"), Scope.PRODUCTS_WRITE))
    async def archive_team(
        self, info: strawberry.Info, input: Annotated[inputs.ArchiveInput, WHAT_TO_DO]
    ) -> TeamPayload | None:
        outcome = await run(
            info,
            lambda session, actor: archive(session, actor, specs.TEAM, input),
        )
        return TeamPayload(team=outcome.value, user_errors=outcome.errors)

    @strawberry.mutation(name="createProduct", **guarded(creating("Product"), Scope.PRODUCTS_WRITE))
    async def create_product(
        self, info: strawberry.Info, input: Annotated[inputs.CreateProductInput, WHAT_TO_DO]
    ) -> ProductPayload | None:
        outcome = await run(
            info,
            lambda session, actor: create(session, actor, specs.PRODUCT, input, PRODUCT_REFS),
        )
        return ProductPayload(product=outcome.value, user_errors=outcome.errors)

    @strawberry.mutation(name="updateProduct", **guarded(changing("Product"), Scope.PRODUCTS_WRITE))
    async def update_product(
        self, info: strawberry.Info, input: Annotated[inputs.UpdateProductInput, WHAT_TO_DO]
    ) -> ProductPayload | None:
        outcome = await run(
            info,
            updating("updateProduct", input),
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
            lambda session, actor: archive(session, actor, specs.PRODUCT, input),
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
            lambda session, actor: create(session, actor, specs.INITIATIVE, input, INITIATIVE_REFS),
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
            updating("updateInitiative", input),
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
            lambda session, actor: archive(session, actor, specs.INITIATIVE, input),
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
            lambda session, actor: create(session, actor, specs.CONSTRAINT, input, NO_REFS),
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
            updating("updateTechnicalConstraint", input),
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
            lambda session, actor: archive(session, actor, specs.CONSTRAINT, input),
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
            lambda session, actor: create(session, actor, specs.KPI, input, KPI_REFS),
        )
        return KpiPayload(kpi=outcome.value, user_errors=outcome.errors)

    @strawberry.mutation(name="updateKpi", **guarded(changing("Kpi"), Scope.KPIS_WRITE))
    async def update_kpi(
        self, info: strawberry.Info, input: Annotated[inputs.UpdateKpiInput, WHAT_TO_DO]
    ) -> KpiPayload | None:
        outcome = await run(
            info,
            updating("updateKpi", input),
        )
        return KpiPayload(kpi=outcome.value, user_errors=outcome.errors)

    @strawberry.mutation(name="archiveKpi", **guarded(archiving("Kpi"), Scope.KPIS_WRITE))
    async def archive_kpi(
        self, info: strawberry.Info, input: Annotated[inputs.ArchiveInput, WHAT_TO_DO]
    ) -> KpiPayload | None:
        outcome = await run(
            info,
            lambda session, actor: archive(session, actor, specs.KPI, input),
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
            lambda session, actor: create(session, actor, specs.GLOSSARY_TERM, input, NO_REFS),
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
            updating("updateGlossaryTerm", input),
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
            lambda session, actor: archive(session, actor, specs.GLOSSARY_TERM, input),
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
            lambda session, actor: set_status(
                session, actor, status.set_initiative_status, specs.INITIATIVE, input
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
            lambda session, actor: set_status(
                session, actor, status.set_constraint_status, specs.CONSTRAINT, input
            ),
        )
        return TechnicalConstraintPayload(
            technical_constraint=outcome.value, user_errors=outcome.errors
        )
