"""KPIs: an expected measurement interval (freshness) and importance levels.

``expected_interval_seconds`` says how often a KPI is measured (daily by default, one
minute to a year); a KPI whose latest measurement is older is stale. The importance of a
KPI to IT and to product, until now only prose (``it_relevance``,
``product_relevance``), gains a level beside it (``kpi_importance``, most important
first) that lists can filter and sort by; existing KPIs are unrated (null).

``Kpi.status`` itself is computed, not stored: its new meaning (the target counts, and a
value missing it is OFF_TARGET) needs no change here.

Revision ID: 0010
Revises: 0009
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

IMPORTANCE = postgresql.ENUM("CRITICAL", "HIGH", "MEDIUM", "INDIRECT", name="kpi_importance")


def upgrade() -> None:
    IMPORTANCE.create(op.get_bind())
    enum = postgresql.ENUM(name="kpi_importance", create_type=False)
    op.add_column("kpis", sa.Column("it_importance_level", enum, nullable=True))
    op.add_column("kpis", sa.Column("product_importance_level", enum, nullable=True))
    op.add_column(
        "kpis",
        sa.Column(
            "expected_interval_seconds", sa.Integer(), server_default="86400", nullable=False
        ),
    )
    op.create_check_constraint(
        op.f("ck_kpis_expected_interval_range"),
        "kpis",
        "expected_interval_seconds BETWEEN 60 AND 31622400",
    )


def downgrade() -> None:
    op.drop_constraint(op.f("ck_kpis_expected_interval_range"), "kpis", type_="check")
    op.drop_column("kpis", "expected_interval_seconds")
    op.drop_column("kpis", "product_importance_level")
    op.drop_column("kpis", "it_importance_level")
    IMPORTANCE.drop(op.get_bind())
