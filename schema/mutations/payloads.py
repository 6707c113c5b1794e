"""Payload types: the entity (when there is one) and the user errors; the admin ones
live beside their mutations (``schema/mutations/admin.py``)."""

from __future__ import annotations

import strawberry

from schema.mutations.common import UserError
from schema.types.constraint import TechnicalConstraint
from schema.types.glossary import GlossaryTerm
from schema.types.initiative import Initiative
from schema.types.kpi import Kpi
from schema.types.product import Product
from schema.types.team import Team

# What every payload says of its fields.
ERRORS = "Why it was refused; empty on success."


def after_change(type_name: str) -> str:
    return (
        f"The {type_name} after the change; on CONFLICT, as currently stored; otherwise "
        "null when refused."
    )


def of_a_mutation(type_name: str) -> str:
    return f"Result of a mutation of a {type_name}."


LINKED = "Result of linking or unlinking two entities."


@strawberry.type(description=of_a_mutation("Team"))
class TeamPayload:
    team: Team | None = strawberry.field(description=after_change("Team"))
    user_errors: list[UserError] = strawberry.field(description=ERRORS)


@strawberry.type(description=of_a_mutation("Product"))
class ProductPayload:
    product: Product | None = strawberry.field(description=after_change("Product"))
    user_errors: list[UserError] = strawberry.field(description=ERRORS)


@strawberry.type(description=of_a_mutation("Initiative"))
class InitiativePayload:
    initiative: Initiative | None = strawberry.field(description=after_change("Initiative"))
    user_errors: list[UserError] = strawberry.field(description=ERRORS)


@strawberry.type(description=of_a_mutation("TechnicalConstraint"))
class TechnicalConstraintPayload:
    technical_constraint: TechnicalConstraint | None = strawberry.field(
        description=after_change("TechnicalConstraint")
    )
    user_errors: list[UserError] = strawberry.field(description=ERRORS)


@strawberry.type(description=of_a_mutation("Kpi"))
class KpiPayload:
    kpi: Kpi | None = strawberry.field(description=after_change("Kpi"))
    user_errors: list[UserError] = strawberry.field(description=ERRORS)


@strawberry.type(description=of_a_mutation("GlossaryTerm"))
class GlossaryTermPayload:
    glossary_term: GlossaryTerm | None = strawberry.field(description=after_change("GlossaryTerm"))
    user_errors: list[UserError] = strawberry.field(description=ERRORS)


@strawberry.type(description=LINKED)
class InitiativeProductPayload:
    user_errors: list[UserError] = strawberry.field(description=ERRORS)
    initiative: Initiative | None = strawberry.field(description="The Initiative.")
    product: Product | None = strawberry.field(description="The Product.")


@strawberry.type(description=LINKED)
class ConstraintProductPayload:
    user_errors: list[UserError] = strawberry.field(description=ERRORS)
    technical_constraint: TechnicalConstraint | None = strawberry.field(
        description="The TechnicalConstraint."
    )
    product: Product | None = strawberry.field(description="The Product.")


@strawberry.type(description=LINKED)
class ConstraintInitiativePayload:
    user_errors: list[UserError] = strawberry.field(description=ERRORS)
    technical_constraint: TechnicalConstraint | None = strawberry.field(
        description="The TechnicalConstraint."
    )
    initiative: Initiative | None = strawberry.field(description="The Initiative.")


@strawberry.type(description=LINKED)
class InitiativeKpiPayload:
    user_errors: list[UserError] = strawberry.field(description=ERRORS)
    initiative: Initiative | None = strawberry.field(description="The Initiative.")
    kpi: Kpi | None = strawberry.field(description="The Kpi.")
