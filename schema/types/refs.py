"""Lazy references between the entity types, which point at each other."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import strawberry

if TYPE_CHECKING:
    from schema.types.constraint import TechnicalConstraint
    from schema.types.initiative import Initiative
    from schema.types.kpi import Kpi, KpiMeasurement
    from schema.types.product import Product
    from schema.types.team import Team

TeamRef = Annotated["Team", strawberry.lazy("schema.types.team")]
ProductRef = Annotated["Product", strawberry.lazy("schema.types.product")]
InitiativeRef = Annotated["Initiative", strawberry.lazy("schema.types.initiative")]
ConstraintRef = Annotated["TechnicalConstraint", strawberry.lazy("schema.types.constraint")]
KpiRef = Annotated["Kpi", strawberry.lazy("schema.types.kpi")]
MeasurementRef = Annotated["KpiMeasurement", strawberry.lazy("schema.types.kpi")]
