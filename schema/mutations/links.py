"""Links between entities (many-to-many): link and unlink each pair. Repeating either
changes nothing (``domain.services.links``)."""

from __future__ import annotations

from typing import Annotated, Any

import strawberry

from auth.scopes import Scope
from domain.services import links
from schema.mutations import inputs
from schema.mutations.common import WHAT_TO_LINK, decode_reference, linking, run
from schema.mutations.payloads import (
    ConstraintInitiativePayload,
    ConstraintProductPayload,
    InitiativeKpiPayload,
    InitiativeProductPayload,
)
from schema.permissions import guarded


def link_ids(data: Any, spec: links.LinkSpec) -> tuple[int, int]:
    """The primary keys of the owner and the target a link input names."""
    owner = decode_reference(getattr(data, spec.owner_column), spec.owner.name, spec.owner_column)
    target = decode_reference(
        getattr(data, spec.target_column), spec.target.name, spec.target_column
    )
    return owner, target


@strawberry.type(description="Links between products, initiatives, constraints and KPIs.")
class LinkMutation:
    @strawberry.mutation(
        name="linkInitiativeProduct",
        **guarded(linking("Initiative", "Product"), Scope.INITIATIVES_WRITE),
    )
    async def link_initiative_product(
        self, info: strawberry.Info, input: Annotated[inputs.InitiativeProductInput, WHAT_TO_LINK]
    ) -> InitiativeProductPayload | None:
        outcome = await run(
            info,
            lambda session, actor: links.link(
                session, actor, links.INITIATIVE_PRODUCT, *link_ids(input, links.INITIATIVE_PRODUCT)
            ),
        )
        initiative, product = outcome.value or (None, None)
        return InitiativeProductPayload(
            initiative=initiative, product=product, user_errors=outcome.errors
        )

    @strawberry.mutation(
        name="unlinkInitiativeProduct",
        **guarded(linking("Initiative", "Product", remove=True), Scope.INITIATIVES_WRITE),
    )
    async def unlink_initiative_product(
        self, info: strawberry.Info, input: Annotated[inputs.InitiativeProductInput, WHAT_TO_LINK]
    ) -> InitiativeProductPayload | None:
        outcome = await run(
            info,
            lambda session, actor: links.unlink(
                session, actor, links.INITIATIVE_PRODUCT, *link_ids(input, links.INITIATIVE_PRODUCT)
            ),
        )
        initiative, product = outcome.value or (None, None)
        return InitiativeProductPayload(
            initiative=initiative, product=product, user_errors=outcome.errors
        )

    @strawberry.mutation(
        name="linkConstraintProduct",
        **guarded(linking("TechnicalConstraint", "Product"), Scope.CONSTRAINTS_WRITE),
    )
    async def link_constraint_product(
        self, info: strawberry.Info, input: Annotated[inputs.ConstraintProductInput, WHAT_TO_LINK]
    ) -> ConstraintProductPayload | None:
        outcome = await run(
            info,
            lambda session, actor: links.link(
                session, actor, links.CONSTRAINT_PRODUCT, *link_ids(input, links.CONSTRAINT_PRODUCT)
            ),
        )
        technical_constraint, product = outcome.value or (None, None)
        return ConstraintProductPayload(
            technical_constraint=technical_constraint, product=product, user_errors=outcome.errors
        )

    @strawberry.mutation(
        name="unlinkConstraintProduct",
        **guarded(linking("TechnicalConstraint", "Product", remove=True), Scope.CONSTRAINTS_WRITE),
    )
    async def unlink_constraint_product(
        self, info: strawberry.Info, input: Annotated[inputs.ConstraintProductInput, WHAT_TO_LINK]
    ) -> ConstraintProductPayload | None:
        outcome = await run(
            info,
            lambda session, actor: links.unlink(
                session, actor, links.CONSTRAINT_PRODUCT, *link_ids(input, links.CONSTRAINT_PRODUCT)
            ),
        )
        technical_constraint, product = outcome.value or (None, None)
        return ConstraintProductPayload(
            technical_constraint=technical_constraint, product=product, user_errors=outcome.errors
        )

    @strawberry.mutation(
        name="linkConstraintInitiative",
        **guarded(linking("TechnicalConstraint", "Initiative"), Scope.CONSTRAINTS_WRITE),
    )
    async def link_constraint_initiative(
        self,
        info: strawberry.Info,
        input: Annotated[inputs.ConstraintInitiativeInput, WHAT_TO_LINK],
    ) -> ConstraintInitiativePayload | None:
        outcome = await run(
            info,
            lambda session, actor: links.link(
                session,
                actor,
                links.CONSTRAINT_INITIATIVE,
                *link_ids(input, links.CONSTRAINT_INITIATIVE),
            ),
        )
        technical_constraint, initiative = outcome.value or (None, None)
        return ConstraintInitiativePayload(
            technical_constraint=technical_constraint,
            initiative=initiative,
            user_errors=outcome.errors,
        )

    @strawberry.mutation(
        name="unlinkConstraintInitiative",
        **guarded(
            linking("TechnicalConstraint", "Initiative", remove=True), Scope.CONSTRAINTS_WRITE
        ),
    )
    async def unlink_constraint_initiative(
        self,
        info: strawberry.Info,
        input: Annotated[inputs.ConstraintInitiativeInput, WHAT_TO_LINK],
    ) -> ConstraintInitiativePayload | None:
        outcome = await run(
            info,
            lambda session, actor: links.unlink(
                session,
                actor,
                links.CONSTRAINT_INITIATIVE,
                *link_ids(input, links.CONSTRAINT_INITIATIVE),
            ),
        )
        technical_constraint, initiative = outcome.value or (None, None)
        return ConstraintInitiativePayload(
            technical_constraint=technical_constraint,
            initiative=initiative,
            user_errors=outcome.errors,
        )

    @strawberry.mutation(
        name="linkInitiativeKpi", **guarded(linking("Initiative", "Kpi"), Scope.INITIATIVES_WRITE)
    )
    async def link_initiative_kpi(
        self, info: strawberry.Info, input: Annotated[inputs.InitiativeKpiInput, WHAT_TO_LINK]
    ) -> InitiativeKpiPayload | None:
        outcome = await run(
            info,
            lambda session, actor: links.link(
                session, actor, links.INITIATIVE_KPI, *link_ids(input, links.INITIATIVE_KPI)
            ),
        )
        initiative, kpi = outcome.value or (None, None)
        return InitiativeKpiPayload(initiative=initiative, kpi=kpi, user_errors=outcome.errors)

    @strawberry.mutation(
        name="unlinkInitiativeKpi",
        **guarded(linking("Initiative", "Kpi", remove=True), Scope.INITIATIVES_WRITE),
    )
    async def unlink_initiative_kpi(
        self, info: strawberry.Info, input: Annotated[inputs.InitiativeKpiInput, WHAT_TO_LINK]
    ) -> InitiativeKpiPayload | None:
        outcome = await run(
            info,
            lambda session, actor: links.unlink(
                session, actor, links.INITIATIVE_KPI, *link_ids(input, links.INITIATIVE_KPI)
            ),
        )
        initiative, kpi = outcome.value or (None, None)
        return InitiativeKpiPayload(initiative=initiative, kpi=kpi, user_errors=outcome.errors)
