"""Enumerations of the domain, stored as PostgreSQL enum types."""

from __future__ import annotations

from enum import StrEnum


class TeamKind(StrEnum):
    BUSINESS = "BUSINESS"
    TECHNOLOGY = "TECHNOLOGY"
    CROSS_FUNCTIONAL = "CROSS_FUNCTIONAL"


class LifecycleStage(StrEnum):
    IDEA = "IDEA"
    DEVELOPMENT = "DEVELOPMENT"
    GROWTH = "GROWTH"
    MATURE = "MATURE"
    SUNSET = "SUNSET"


class InitiativeStatus(StrEnum):
    PROPOSED = "PROPOSED"
    APPROVED = "APPROVED"
    IN_PROGRESS = "IN_PROGRESS"
    DONE = "DONE"
    CANCELLED = "CANCELLED"


class ConstraintCategory(StrEnum):
    SECURITY = "SECURITY"
    COMPLIANCE = "COMPLIANCE"
    SCALABILITY = "SCALABILITY"
    PERFORMANCE = "PERFORMANCE"
    ARCHITECTURE = "ARCHITECTURE"
    INFRASTRUCTURE = "INFRASTRUCTURE"
    DATA = "DATA"
    LEGAL = "LEGAL"
    OTHER = "OTHER"


class ConstraintSeverity(StrEnum):
    BLOCKER = "BLOCKER"
    HIGH = "HIGH"
    MEDIUM = "MEDIUM"
    LOW = "LOW"


class ConstraintStatus(StrEnum):
    OPEN = "OPEN"
    MITIGATING = "MITIGATING"
    RESOLVED = "RESOLVED"
    ACCEPTED = "ACCEPTED"


class KpiDirection(StrEnum):
    HIGHER_IS_BETTER = "HIGHER_IS_BETTER"
    LOWER_IS_BETTER = "LOWER_IS_BETTER"


class KpiStatus(StrEnum):
    """The latest value against target and thresholds (``computed.kpi_status``)."""

    ON_TARGET = "ON_TARGET"
    OFF_TARGET = "OFF_TARGET"  # misses the target, not yet at the warning threshold
    WARNING = "WARNING"
    CRITICAL = "CRITICAL"
    NO_DATA = "NO_DATA"


class KpiFreshness(StrEnum):
    """Whether the latest measurement is as recent as the KPI's expected interval."""

    FRESH = "FRESH"
    STALE = "STALE"
    NO_DATA = "NO_DATA"


class KpiImportance(StrEnum):
    """How much a KPI matters to one side (IT or product), most important first: the
    declaration order is the PostgreSQL enum's, and so the sort order."""

    CRITICAL = "CRITICAL"
    HIGH = "HIGH"
    MEDIUM = "MEDIUM"
    INDIRECT = "INDIRECT"


class AuditAction(StrEnum):
    CREATE = "CREATE"
    UPDATE = "UPDATE"
    ARCHIVE = "ARCHIVE"
    LINK = "LINK"
    UNLINK = "UNLINK"
    RECORD = "RECORD"  # a batch of KPI measurements


# Constraint states in which a BLOCKER still blocks initiatives.
ACTIVE_CONSTRAINT_STATUSES = (ConstraintStatus.OPEN, ConstraintStatus.MITIGATING)
