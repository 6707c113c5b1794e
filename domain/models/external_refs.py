"""External references: the IDs and URLs other tools (Jira, ServiceNow, a monitoring
system) give the same product, initiative, constraint or KPI.

One table for the four types, with one foreign key column per type (exactly one set):
real foreign keys, and one index answers both lookups, "the references of these
objects" and "the object with this reference". ``entity_id`` (generated) is whichever
key is set, so that both lookups are one index scan on ``(entity_type, ...)``.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Computed,
    DateTime,
    ForeignKey,
    String,
    UniqueConstraint,
    func,
)
from sqlalchemy.orm import Mapped, mapped_column

from domain.models.base import Base, IdMixin

# GraphQL type -> the foreign key column that points at its table.
OWNER_COLUMNS = {
    "Product": "product_id",
    "Initiative": "initiative_id",
    "TechnicalConstraint": "constraint_id",
    "Kpi": "kpi_id",
}
SYSTEM_PATTERN = "^[a-z][a-z0-9_.-]{0,31}$"
MAX_EXTERNAL_ID = 200
MAX_URL = 2000


def _owner_matches_type() -> str:
    return " AND ".join(
        f"((entity_type = '{name}') = ({column} IS NOT NULL))"
        for name, column in OWNER_COLUMNS.items()
    )


class ExternalRef(IdMixin, Base):
    """One object's ID (and URL) in another system."""

    __tablename__ = "external_refs"

    entity_type: Mapped[str] = mapped_column(String(32))
    product_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("products.id", ondelete="CASCADE")
    )
    initiative_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("initiatives.id", ondelete="CASCADE")
    )
    constraint_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("technical_constraints.id", ondelete="CASCADE")
    )
    kpi_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("kpis.id", ondelete="CASCADE")
    )
    entity_id: Mapped[int] = mapped_column(
        BigInteger,
        Computed("coalesce(product_id, initiative_id, constraint_id, kpi_id)", persisted=True),
    )
    system: Mapped[str] = mapped_column(String(32))
    external_id: Mapped[str] = mapped_column(String(MAX_EXTERNAL_ID))
    url: Mapped[str | None] = mapped_column(String(MAX_URL))
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )

    __table_args__ = (
        # One reference per system per object (a Jira issue is one issue), and one object
        # per reference and type: an upsert by reference finds at most one.
        UniqueConstraint("entity_type", "entity_id", "system", name="uq_external_refs_system"),
        UniqueConstraint(
            "entity_type", "system", "external_id", name="uq_external_refs_external_id"
        ),
        CheckConstraint(_owner_matches_type(), name="one_owner"),
        CheckConstraint(f"system ~ '{SYSTEM_PATTERN}'", name="system_format"),
        CheckConstraint("length(external_id) > 0", name="external_id_not_empty"),
        CheckConstraint("url IS NULL OR url ~ '^https?://'", name="url_scheme"),
    )
