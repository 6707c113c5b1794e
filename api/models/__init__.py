"""SQLAlchemy models of the domain. Importing this package registers the domain's tables
and computed fields; identity and access (users, roles, clients, tokens) are
``auth.models``, on the same metadata."""

from api.models import computed  # noqa: E402,F401  (attaches computed columns)
from api.models.base import Base
from api.models.enums import (
    AuditAction,
    ConstraintCategory,
    ConstraintSeverity,
    ConstraintStatus,
    InitiativeStatus,
    KpiDirection,
    KpiStatus,
    LifecycleStage,
    TeamKind,
)
from api.models.kpi import GlossaryTerm, Kpi, KpiMeasurement
from api.models.portfolio import (
    Initiative,
    Product,
    Team,
    TechnicalConstraint,
    constraint_initiatives,
    constraint_products,
    initiative_kpis,
    initiative_products,
)
from api.models.records import AuditEvent, PersistedQuery

__all__ = [
    "AuditAction",
    "AuditEvent",
    "PersistedQuery",
    "Base",
    "ConstraintCategory",
    "ConstraintSeverity",
    "ConstraintStatus",
    "GlossaryTerm",
    "Initiative",
    "InitiativeStatus",
    "Kpi",
    "KpiDirection",
    "KpiMeasurement",
    "KpiStatus",
    "LifecycleStage",
    "Product",
    "Team",
    "TeamKind",
    "TechnicalConstraint",
    "constraint_initiatives",
    "constraint_products",
    "initiative_kpis",
    "initiative_products",
]
