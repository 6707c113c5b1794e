"""SQLAlchemy models. Importing this package registers every table and computed field."""

from domain.models import computed  # noqa: F401  (attaches computed columns)
from domain.models.base import Base
from domain.models.enums import (
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
from domain.models.identity import (
    AuditEvent,
    AuthorizationCode,
    LoginThrottle,
    OAuthClient,
    PersistedQuery,
    RefreshToken,
    RevokedAccessToken,
    Role,
    RoleGrant,
    SigningKey,
    User,
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

__all__ = [
    "AuditAction",
    "AuditEvent",
    "AuthorizationCode",
    "PersistedQuery",
    "LoginThrottle",
    "RefreshToken",
    "RevokedAccessToken",
    "SigningKey",
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
    "OAuthClient",
    "Product",
    "Role",
    "RoleGrant",
    "Team",
    "TeamKind",
    "TechnicalConstraint",
    "User",
    "constraint_initiatives",
    "constraint_products",
    "initiative_kpis",
    "initiative_products",
]
