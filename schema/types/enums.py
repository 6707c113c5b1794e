"""The domain's enums exposed to GraphQL, each value described."""

from __future__ import annotations

from enum import Enum
from typing import Any

import strawberry

from domain import models
from domain.services.reads import SeriesBucket as _SeriesBucket
from domain.services.reads import TrendDirection as _TrendDirection


def _expose(enum_cls: type[Enum], description: str, values: dict[str, str]) -> Any:
    """Register an api enum with strawberry, describing the type and every value."""
    missing = {m.name for m in enum_cls} - values.keys()
    if missing:
        raise ValueError(f"{enum_cls.__name__}: undocumented values {sorted(missing)}")
    exposed = strawberry.enum(enum_cls, description=description)
    for value in exposed.__strawberry_definition__.values:  # type: ignore[attr-defined]
        value.description = values[value.name]
    return exposed


TeamKind = _expose(
    models.TeamKind,
    "What a team is mainly responsible for.",
    {
        "BUSINESS": "Owns outcomes for customers and the business (product management, sales).",
        "TECHNOLOGY": "Builds and runs systems (engineering, platform, SRE).",
        "CROSS_FUNCTIONAL": "Mixes business and technology people around one mission.",
    },
)
LifecycleStage = _expose(
    models.LifecycleStage,
    "Where a product is in its life.",
    {
        "IDEA": "Being explored; not yet built.",
        "DEVELOPMENT": "Being built; not generally available.",
        "GROWTH": "Live and growing its use.",
        "MATURE": "Live, stable, optimised for cost and reliability.",
        "SUNSET": "Being retired.",
    },
)
InitiativeStatus = _expose(
    models.InitiativeStatus,
    "Where an initiative is on the roadmap: PROPOSED → APPROVED → IN_PROGRESS → DONE, "
    "or CANCELLED.",
    {
        "PROPOSED": "Suggested, not yet approved.",
        "APPROVED": "Approved and waiting to start.",
        "IN_PROGRESS": "Being worked on; impossible while blocked by a constraint.",
        "DONE": "Delivered.",
        "CANCELLED": "Stopped before delivery.",
    },
)
ConstraintCategory = _expose(
    models.ConstraintCategory,
    "The kind of technical limit a constraint expresses.",
    {
        "SECURITY": "Protection against attacks and data exposure.",
        "COMPLIANCE": "Regulation and standards the product must satisfy (PCI DSS, SOC 2).",
        "SCALABILITY": "Growth in users, data or traffic the systems must absorb.",
        "PERFORMANCE": "Speed and latency the systems must reach.",
        "ARCHITECTURE": "Structural decisions and their consequences.",
        "INFRASTRUCTURE": "Hosting, networks and platforms.",
        "DATA": "Data quality, ownership, residency and retention.",
        "LEGAL": "Contracts, licences and liability.",
        "OTHER": "Anything else.",
    },
)
ConstraintSeverity = _expose(
    models.ConstraintSeverity,
    "How hard a constraint limits delivery, from BLOCKER (stops work) to LOW.",
    {
        "BLOCKER": "Stops affected initiatives from starting while OPEN or MITIGATING.",
        "HIGH": "Serious; must be planned for.",
        "MEDIUM": "Noticeable; should be planned for.",
        "LOW": "Minor.",
    },
)
ConstraintStatus = _expose(
    models.ConstraintStatus,
    "Where a constraint stands.",
    {
        "OPEN": "Known and not yet addressed.",
        "MITIGATING": "Being addressed; still in force.",
        "RESOLVED": "Addressed; no longer limits anything.",
        "ACCEPTED": "Risk accepted; no longer blocks.",
    },
)
KpiDirection = _expose(
    models.KpiDirection,
    "Which way a KPI improves.",
    {
        "HIGHER_IS_BETTER": "Larger values are better (uptime, adoption).",
        "LOWER_IS_BETTER": "Smaller values are better (load time, incident rate).",
    },
)
KpiStatus = _expose(
    models.KpiStatus,
    "How a KPI's latest value compares with its target and thresholds, along its direction; "
    "the first that holds wins: CRITICAL, WARNING, ON_TARGET, OFF_TARGET (NO_DATA without a "
    "value). Whether the value is recent is `Kpi.freshness`, not the status.",
    {
        "ON_TARGET": "Meets the target (at it or better), or there is no target, and is better "
        "than the warning threshold. Changed meaning: until OFF_TARGET existed, any value "
        "better than the warning threshold was ON_TARGET, even one missing the target.",
        "OFF_TARGET": "Misses the target but is better than the warning threshold.",
        "WARNING": "At or beyond the warning threshold, not the critical one.",
        "CRITICAL": "At or beyond the critical threshold.",
        "NO_DATA": "No measurement yet.",
    },
)
KpiFreshness = _expose(
    models.KpiFreshness,
    "Whether a KPI's latest measurement is as recent as its expected interval "
    "(`expectedIntervalSeconds`), by the database's clock.",
    {
        "FRESH": "The latest measurement is no older than the expected interval.",
        "STALE": "The latest measurement is older than the expected interval: its status "
        "describes the past.",
        "NO_DATA": "No measurement yet.",
    },
)
KpiImportance = _expose(
    models.KpiImportance,
    "How much a KPI matters to one side (IT or product); ascending order puts CRITICAL first.",
    {
        "CRITICAL": "The side's core commitments fail when it does (an SLO, revenue).",
        "HIGH": "Directly drives the side's decisions and daily work.",
        "MEDIUM": "One input among several to the side's decisions.",
        "INDIRECT": "Matters to the side only through its effects on the other side.",
    },
)
SeriesBucket = _expose(
    _SeriesBucket,
    "Width of the time buckets of a KPI series.",
    {
        "HOUR": "One hour.",
        "DAY": "One day (UTC).",
        "WEEK": "One week, starting on Monday (UTC).",
        "MONTH": "One calendar month (UTC).",
    },
)
TrendDirection = _expose(
    _TrendDirection,
    "Whether a KPI is getting better, taking its direction into account.",
    {
        "IMPROVING": "The recent average is better than the one before.",
        "WORSENING": "The recent average is worse than the one before.",
        "STABLE": "The averages differ by less than 1%.",
        "NO_DATA": "One of the two windows has no measurement.",
    },
)


AuditAction = _expose(
    models.AuditAction,
    "What kind of change an audit event records.",
    {
        "CREATE": "The object was created.",
        "UPDATE": "Fields of the object changed (status changes included).",
        "ARCHIVE": "The object was archived.",
        "LINK": "The object was linked to another.",
        "UNLINK": "The object was unlinked from another.",
        "RECORD": "Measurements of a KPI were recorded.",
    },
)


@strawberry.enum(description="Sort direction.")
class OrderDirection(Enum):
    ASC = strawberry.enum_value("ASC", description="Ascending: A to Z, oldest first, lowest first.")
    DESC = strawberry.enum_value(
        "DESC", description="Descending: Z to A, newest first, highest first."
    )
