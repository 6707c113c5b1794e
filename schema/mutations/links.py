"""Links between entities (many-to-many): link and unlink each pair. Repeating either
changes nothing (``domain.services.links``)."""

from __future__ import annotations

from typing import Annotated, Any

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession

from auth.scopes import Scope
from domain.services import links, lookups
from domain.services.lookups import Lookup
from domain.services.spelling import camel
from domain.services.writes import Actor, Refused
from domain.services.writes import UserError as ServiceError
from schema.mutations import inputs
from schema.mutations.common import WHAT_TO_LINK, decode_reference, linking, lookup_of, run
from schema.mutations.payloads import (
    ConstraintInitiativePayload,
    ConstraintProductPayload,
    InitiativeKpiPayload,
    InitiativeProductPayload,
)
from schema.permissions import guarded


def _named(data: Any, column: str, type_name: str) -> Lookup:
    """One end of a link: by global ID (``initiativeId``) or by lookup (``initiative``),
    exactly one."""
    field = column.removesuffix("_id")
    global_id, lookup = getattr(data, column), getattr(data, field)
    if (global_id is None) == (lookup is None):
        raise Refused(
            ServiceError(
                None,
                "INVALID",
                f"Name the {type_name} by `{camel(column)}` or by `{camel(field)}`: exactly one.",
            )
        )
    if global_id is not None:
        return Lookup(type_name, id=decode_reference(global_id, type_name, column))
    return lookup_of(lookup, type_name, field)


async def link_ids(session: AsyncSession, data: Any, spec: links.LinkSpec) -> tuple[int, int]:
    """The primary keys of the owner and the target a link input names."""
    found = await lookups.resolve(
        session,
        {
            spec.owner_column: _named(data, spec.owner_column, spec.owner.name),
            spec.target_column: _named(data, spec.target_column, spec.target.name),
        },
    )
    return found[spec.owner_column], found[spec.target_column]


async def linked(
    session: AsyncSession, actor: Actor, change: Any, spec: links.LinkSpec, data: Any
) -> Any:
    return await change(session, actor, spec, *await link_ids(session, data, spec))


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
            lambda session, actor: linked(
                session, actor, links.link, links.INITIATIVE_PRODUCT, input
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
            lambda session, actor: linked(
                session, actor, links.unlink, links.INITIATIVE_PRODUCT, input
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
            lambda session, actor: linked(
                session, actor, links.link, links.CONSTRAINT_PRODUCT, input
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
            lambda session, actor: linked(
                session, actor, links.unlink, links.CONSTRAINT_PRODUCT, input
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
            lambda session, actor: linked(
                session, actor, links.link, links.CONSTRAINT_INITIATIVE, input
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
            lambda session, actor: linked(
                session, actor, links.unlink, links.CONSTRAINT_INITIATIVE, input
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
            lambda session, actor: linked(session, actor, links.link, links.INITIATIVE_KPI, input),
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
            lambda session, actor: linked(
                session, actor, links.unlink, links.INITIATIVE_KPI, input
            ),
        )
        initiative, kpi = outcome.value or (None, None)
        return InitiativeKpiPayload(initiative=initiative, kpi=kpi, user_errors=outcome.errors)
