"""Payload types: the entity (when there is one) and the user errors; the admin ones
live beside their mutations (``schema/mutations/admin.py``)."""

from __future__ import annotations

from typing import Any

import strawberry

from auth.scopes import Scope
from schema.mutations.common import UserError
from schema.permissions import scope_check, scoped_description
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


# A payload's entity is read like any other path to it, with ``portfolio:read``: a
# caller holding only a write scope changes it but is not shown it (nor, on CONFLICT,
# the row as stored).


def entity_description(description: str) -> str:
    return scoped_description(description, Scope.PORTFOLIO_READ)


def entity_guard() -> list[Any]:
    return scope_check(Scope.PORTFOLIO_READ)


@strawberry.type(description=of_a_mutation("Team"))
class TeamPayload:
    team: Team | None = strawberry.field(
        description=entity_description(after_change("Team")), extensions=entity_guard()
    )
    user_errors: list[UserError] = strawberry.field(description=ERRORS)


@strawberry.type(description=of_a_mutation("Product"))
class ProductPayload:
    product: Product | None = strawberry.field(
        description=entity_description(after_change("Product")), extensions=entity_guard()
    )
    user_errors: list[UserError] = strawberry.field(description=ERRORS)


@strawberry.type(description=of_a_mutation("Initiative"))
class InitiativePayload:
    initiative: Initiative | None = strawberry.field(
        description=entity_description(after_change("Initiative")), extensions=entity_guard()
    )
    user_errors: list[UserError] = strawberry.field(description=ERRORS)


@strawberry.type(description=of_a_mutation("TechnicalConstraint"))
class TechnicalConstraintPayload:
    technical_constraint: TechnicalConstraint | None = strawberry.field(
        description=entity_description(after_change("TechnicalConstraint")),
        extensions=entity_guard(),
    )
    user_errors: list[UserError] = strawberry.field(description=ERRORS)


@strawberry.type(description=of_a_mutation("Kpi"))
class KpiPayload:
    kpi: Kpi | None = strawberry.field(
        description=entity_description(after_change("Kpi")), extensions=entity_guard()
    )
    user_errors: list[UserError] = strawberry.field(description=ERRORS)


@strawberry.type(description=of_a_mutation("GlossaryTerm"))
class GlossaryTermPayload:
    glossary_term: GlossaryTerm | None = strawberry.field(
        description=entity_description(after_change("GlossaryTerm")), extensions=entity_guard()
    )
    user_errors: list[UserError] = strawberry.field(description=ERRORS)


@strawberry.type(description=LINKED)
class InitiativeProductPayload:
    user_errors: list[UserError] = strawberry.field(description=ERRORS)
    initiative: Initiative | None = strawberry.field(
        description=entity_description("The Initiative."), extensions=entity_guard()
    )
    product: Product | None = strawberry.field(
        description=entity_description("The Product."), extensions=entity_guard()
    )


@strawberry.type(description=LINKED)
class ConstraintProductPayload:
    user_errors: list[UserError] = strawberry.field(description=ERRORS)
    technical_constraint: TechnicalConstraint | None = strawberry.field(
        description=entity_description("The TechnicalConstraint."), extensions=entity_guard()
    )
    product: Product | None = strawberry.field(
        description=entity_description("The Product."), extensions=entity_guard()
    )


@strawberry.type(description=LINKED)
class ConstraintInitiativePayload:
    user_errors: list[UserError] = strawberry.field(description=ERRORS)
    technical_constraint: TechnicalConstraint | None = strawberry.field(
        description=entity_description("The TechnicalConstraint."), extensions=entity_guard()
    )
    initiative: Initiative | None = strawberry.field(
        description=entity_description("The Initiative."), extensions=entity_guard()
    )


@strawberry.type(description=LINKED)
class InitiativeKpiPayload:
    user_errors: list[UserError] = strawberry.field(description=ERRORS)
    initiative: Initiative | None = strawberry.field(
        description=entity_description("The Initiative."), extensions=entity_guard()
    )
    kpi: Kpi | None = strawberry.field(
        description=entity_description("The Kpi."), extensions=entity_guard()
    )
