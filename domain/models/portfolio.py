"""Teams, products, initiatives and technical constraints, with their link tables."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import TYPE_CHECKING

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    Computed,
    Date,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Table,
    Text,
)
from sqlalchemy.dialects.postgresql import TSVECTOR
from sqlalchemy.orm import Mapped, mapped_column

from domain.models.base import Base, VersionedMixin, pg_enum
from domain.models.enums import (
    ConstraintCategory,
    ConstraintSeverity,
    ConstraintStatus,
    InitiativeStatus,
    LifecycleStage,
    TeamKind,
)

KEY_PATTERN = "^[A-Z][A-Z0-9-]{1,31}$"


def _search_document(*columns: str) -> Computed:
    """A stored tsvector over the given columns, for indexed word-prefix search."""
    parts = " || ' ' || ".join(f"coalesce({c}, '')" for c in columns)
    return Computed(f"to_tsvector('simple'::regconfig, {parts})", persisted=True)


class Team(VersionedMixin, Base):
    __tablename__ = "teams"

    key: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[TeamKind] = mapped_column(pg_enum(TeamKind, "team_kind"), index=True)
    description: Mapped[str | None] = mapped_column(Text)
    search_document: Mapped[str] = mapped_column(
        TSVECTOR, _search_document("key", "name"), deferred=True, deferred_raiseload=True
    )

    __table_args__ = (
        CheckConstraint(f"key ~ '{KEY_PATTERN}'", name="key_format"),
        Index("ix_teams_search_document", "search_document", postgresql_using="gin"),
    )


class Product(VersionedMixin, Base):
    __tablename__ = "products"

    key: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    lifecycle_stage: Mapped[LifecycleStage] = mapped_column(
        pg_enum(LifecycleStage, "lifecycle_stage"), index=True
    )
    business_owner_team_id: Mapped[int | None] = mapped_column(
        ForeignKey("teams.id", ondelete="RESTRICT"), index=True
    )
    technology_owner_team_id: Mapped[int | None] = mapped_column(
        ForeignKey("teams.id", ondelete="RESTRICT"), index=True
    )
    search_document: Mapped[str] = mapped_column(
        TSVECTOR,
        _search_document("key", "name", "description"),
        deferred=True,
        deferred_raiseload=True,
    )

    __table_args__ = (
        CheckConstraint(f"key ~ '{KEY_PATTERN}'", name="key_format"),
        Index("ix_products_search_document", "search_document", postgresql_using="gin"),
    )


class Initiative(VersionedMixin, Base):
    __tablename__ = "initiatives"

    if TYPE_CHECKING:  # attached as SQL expressions by domain.models.computed
        rice_score: Mapped[float | None]
        rice_explanation: Mapped[str]
        wsjf_score: Mapped[float | None]
        wsjf_explanation: Mapped[str]
        is_blocked: Mapped[bool]

    key: Mapped[str] = mapped_column(String(32), unique=True)
    title: Mapped[str] = mapped_column(String(300))
    summary: Mapped[str | None] = mapped_column(Text)
    status: Mapped[InitiativeStatus] = mapped_column(
        pg_enum(InitiativeStatus, "initiative_status"), index=True
    )
    target_start: Mapped[date | None] = mapped_column(Date, index=True)
    target_end: Mapped[date | None] = mapped_column(Date, index=True)
    parent_id: Mapped[int | None] = mapped_column(
        ForeignKey("initiatives.id", ondelete="RESTRICT"), index=True
    )
    owner_team_id: Mapped[int | None] = mapped_column(
        ForeignKey("teams.id", ondelete="RESTRICT"), index=True
    )
    # RICE inputs: reach (people per period), impact (0.25..3), confidence (0..1), effort (> 0).
    reach: Mapped[int | None] = mapped_column(Integer)
    impact: Mapped[float | None] = mapped_column(Numeric(4, 2, asdecimal=False))
    confidence: Mapped[float | None] = mapped_column(Numeric(3, 2, asdecimal=False))
    effort: Mapped[float | None] = mapped_column(Numeric(8, 2, asdecimal=False))
    # WSJF inputs, on the usual 1..20 relative (Fibonacci-like) scale.
    business_value: Mapped[int | None] = mapped_column(Integer)
    time_criticality: Mapped[int | None] = mapped_column(Integer)
    risk_reduction: Mapped[int | None] = mapped_column(Integer)
    job_size: Mapped[int | None] = mapped_column(Integer)
    estimated_cost: Mapped[Decimal | None] = mapped_column(Numeric(14, 2))
    search_document: Mapped[str] = mapped_column(
        TSVECTOR,
        _search_document("key", "title", "summary"),
        deferred=True,
        deferred_raiseload=True,
    )

    __table_args__ = (
        CheckConstraint(f"key ~ '{KEY_PATTERN}'", name="key_format"),
        CheckConstraint(
            "target_start IS NULL OR target_end IS NULL OR target_end >= target_start",
            name="dates_ordered",
        ),
        CheckConstraint("parent_id IS NULL OR parent_id <> id", name="not_own_parent"),
        CheckConstraint("reach IS NULL OR reach >= 0", name="reach_non_negative"),
        CheckConstraint("impact IS NULL OR (impact > 0 AND impact <= 3)", name="impact_range"),
        CheckConstraint(
            "confidence IS NULL OR (confidence >= 0 AND confidence <= 1)", name="confidence_range"
        ),
        CheckConstraint("effort IS NULL OR effort > 0", name="effort_positive"),
        CheckConstraint(
            "business_value IS NULL OR business_value BETWEEN 1 AND 20", name="business_value_range"
        ),
        CheckConstraint(
            "time_criticality IS NULL OR time_criticality BETWEEN 1 AND 20",
            name="time_criticality_range",
        ),
        CheckConstraint(
            "risk_reduction IS NULL OR risk_reduction BETWEEN 1 AND 20", name="risk_reduction_range"
        ),
        CheckConstraint("job_size IS NULL OR job_size BETWEEN 1 AND 20", name="job_size_range"),
        CheckConstraint(
            "estimated_cost IS NULL OR estimated_cost >= 0", name="estimated_cost_non_negative"
        ),
        Index("ix_initiatives_search_document", "search_document", postgresql_using="gin"),
    )


class TechnicalConstraint(VersionedMixin, Base):
    __tablename__ = "technical_constraints"

    key: Mapped[str] = mapped_column(String(32), unique=True)
    title: Mapped[str] = mapped_column(String(300))
    description: Mapped[str | None] = mapped_column(Text)
    category: Mapped[ConstraintCategory] = mapped_column(
        pg_enum(ConstraintCategory, "constraint_category"), index=True
    )
    severity: Mapped[ConstraintSeverity] = mapped_column(
        pg_enum(ConstraintSeverity, "constraint_severity"), index=True
    )
    status: Mapped[ConstraintStatus] = mapped_column(
        pg_enum(ConstraintStatus, "constraint_status"), index=True
    )
    mitigation_plan: Mapped[str | None] = mapped_column(Text)
    due_date: Mapped[date | None] = mapped_column(Date, index=True)
    search_document: Mapped[str] = mapped_column(
        TSVECTOR,
        _search_document("key", "title", "description"),
        deferred=True,
        deferred_raiseload=True,
    )

    __table_args__ = (
        CheckConstraint(f"key ~ '{KEY_PATTERN}'", name="key_format"),
        Index(
            "ix_technical_constraints_search_document", "search_document", postgresql_using="gin"
        ),
    )


def _link_table(name: str, left: tuple[str, str], right: tuple[str, str]) -> Table:
    """A many-to-many link; the primary key serves lookups from the left, an index from the right."""
    left_column, left_target = left
    right_column, right_target = right
    return Table(
        name,
        Base.metadata,
        Column(
            left_column,
            BigInteger,
            ForeignKey(f"{left_target}.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        Column(
            right_column,
            BigInteger,
            ForeignKey(f"{right_target}.id", ondelete="CASCADE"),
            primary_key=True,
            index=True,
        ),
    )


initiative_products = _link_table(
    "initiative_products", ("initiative_id", "initiatives"), ("product_id", "products")
)
constraint_products = _link_table(
    "constraint_products", ("constraint_id", "technical_constraints"), ("product_id", "products")
)
constraint_initiatives = _link_table(
    "constraint_initiatives",
    ("constraint_id", "technical_constraints"),
    ("initiative_id", "initiatives"),
)
initiative_kpis = _link_table(
    "initiative_kpis", ("initiative_id", "initiatives"), ("kpi_id", "kpis")
)
