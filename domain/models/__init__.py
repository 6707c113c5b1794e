"""SQLAlchemy models of the domain. Importing this package registers the domain's tables
and computed fields; identity and access (users, roles, clients, tokens) are
``auth.models``, on the same metadata."""

from domain.models import computed  # noqa: F401  (attaches computed columns)
from domain.models.base import Base
from domain.models.enums import (
    AuditAction,
    ConstraintCategory,
    ConstraintSeverity,
    ConstraintStatus,
    InitiativeStatus,
    KpiDirection,
    KpiFreshness,
    KpiImportance,
    KpiStatus,
    LifecycleStage,
    TeamKind,
)
from domain.models.kpi import GlossaryTerm, Kpi, KpiMeasurement
from domain.models.portfolio import (
    Initiative,
    Product,
    Team,
    TechnicalConstraint,
    constraint_initiatives,
    constraint_products,
    initiative_kpis,
    initiative_products,
)
from domain.models.records import AuditEvent, PersistedQuery
from domain.models.webhooks import WebhookAttempt, WebhookDelivery, WebhookEndpoint

__all__ = [
    "AuditAction",
    "AuditEvent",
    "WebhookAttempt",
    "WebhookDelivery",
    "WebhookEndpoint",
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
    "KpiFreshness",
    "KpiImportance",
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
