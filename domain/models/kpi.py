"""KPIs, their measurements, and the glossary that gives business and tech one vocabulary."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    Double,
    ForeignKey,
    Index,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects.postgresql import TSVECTOR
from sqlalchemy.orm import Mapped, mapped_column

from domain.models.base import Base, IdMixin, VersionedMixin, pg_enum
from domain.models.enums import KpiDirection
from domain.models.portfolio import KEY_PATTERN, _search_document


class Kpi(VersionedMixin, Base):
    __tablename__ = "kpis"

    if TYPE_CHECKING:  # attached as SQL expressions by domain.models.computed
        latest_value: Mapped[float | None]
        status: Mapped[str]

    key: Mapped[str] = mapped_column(String(48), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    unit: Mapped[str] = mapped_column(String(32))
    direction: Mapped[KpiDirection] = mapped_column(pg_enum(KpiDirection, "kpi_direction"))
    target: Mapped[float | None] = mapped_column(Double)
    warning_threshold: Mapped[float | None] = mapped_column(Double)
    critical_threshold: Mapped[float | None] = mapped_column(Double)
    it_relevance: Mapped[str] = mapped_column(Text)
    product_relevance: Mapped[str] = mapped_column(Text)
    product_id: Mapped[int | None] = mapped_column(
        ForeignKey("products.id", ondelete="RESTRICT"), index=True
    )
    owner_team_id: Mapped[int | None] = mapped_column(
        ForeignKey("teams.id", ondelete="RESTRICT"), index=True
    )
    search_document: Mapped[str] = mapped_column(
        TSVECTOR, _search_document("key", "name"), deferred=True, deferred_raiseload=True
    )

    __table_args__ = (
        CheckConstraint("key ~ '^[A-Z][A-Z0-9_-]{1,47}$'", name="key_format"),
        # Thresholds are ordered along the direction: critical is worse than warning.
        CheckConstraint(
            "warning_threshold IS NULL OR critical_threshold IS NULL OR "
            "(direction = 'HIGHER_IS_BETTER' AND critical_threshold <= warning_threshold) OR "
            "(direction = 'LOWER_IS_BETTER' AND critical_threshold >= warning_threshold)",
            name="thresholds_ordered",
        ),
        Index("ix_kpis_search_document", "search_document", postgresql_using="gin"),
    )


class KpiMeasurement(IdMixin, Base):
    """An observation; immutable, so it carries no version."""

    __tablename__ = "kpi_measurements"

    kpi_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("kpis.id", ondelete="CASCADE"))
    observed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    value: Mapped[float] = mapped_column(Double)
    source: Mapped[str] = mapped_column(String(100))
    external_id: Mapped[str] = mapped_column(String(200))
    recorded_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )

    __table_args__ = (
        # Re-sending a measurement is a no-op, never a duplicate.
        UniqueConstraint("source", "external_id"),
        # Serves latest value, time-range connections and series: all per KPI by time.
        Index("ix_kpi_measurements_kpi_id_observed_at", "kpi_id", "observed_at", "id"),
        CheckConstraint("value = value", name="value_not_nan"),
    )


class GlossaryTerm(VersionedMixin, Base):
    __tablename__ = "glossary_terms"

    term: Mapped[str] = mapped_column(String(120), unique=True)
    definition: Mapped[str] = mapped_column(Text)
    business_meaning: Mapped[str | None] = mapped_column(Text)
    technical_meaning: Mapped[str | None] = mapped_column(Text)
    search_document: Mapped[str] = mapped_column(
        TSVECTOR, _search_document("term", "definition"), deferred=True, deferred_raiseload=True
    )

    __table_args__ = (
        CheckConstraint("length(btrim(term)) > 0", name="term_not_blank"),
        Index("ix_glossary_terms_search_document", "search_document", postgresql_using="gin"),
    )


__all__ = ["KEY_PATTERN", "GlossaryTerm", "Kpi", "KpiMeasurement"]
