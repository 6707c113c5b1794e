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
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects.postgresql import TSVECTOR
from sqlalchemy.orm import Mapped, mapped_column

from domain.models.base import Base, IdMixin, VersionedMixin, pg_enum
from domain.models.enums import KpiDirection, KpiImportance
from domain.models.portfolio import KEY_PATTERN, _search_document

# A KPI's expected measurement interval: daily unless said otherwise, one minute to a year.
DEFAULT_EXPECTED_INTERVAL_SECONDS = 86_400
MIN_EXPECTED_INTERVAL_SECONDS = 60
MAX_EXPECTED_INTERVAL_SECONDS = 366 * 86_400


class Kpi(VersionedMixin, Base):
    __tablename__ = "kpis"

    if TYPE_CHECKING:  # attached as SQL expressions by domain.models.computed
        latest_value: Mapped[float | None]
        status: Mapped[str]
        freshness: Mapped[str]
        is_stale: Mapped[bool]

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
    # The level beside each prose: what a dashboard sorts and filters by (null: unrated).
    it_importance_level: Mapped[KpiImportance | None] = mapped_column(
        pg_enum(KpiImportance, "kpi_importance")
    )
    product_importance_level: Mapped[KpiImportance | None] = mapped_column(
        pg_enum(KpiImportance, "kpi_importance")
    )
    # How often a measurement is expected; a latest one older than this is stale.
    expected_interval_seconds: Mapped[int] = mapped_column(
        Integer, default=DEFAULT_EXPECTED_INTERVAL_SECONDS, server_default="86400"
    )
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
        CheckConstraint(
            f"expected_interval_seconds BETWEEN {MIN_EXPECTED_INTERVAL_SECONDS} "
            f"AND {MAX_EXPECTED_INTERVAL_SECONDS}",
            name="expected_interval_range",
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
