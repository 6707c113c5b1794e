"""External references: other systems' IDs and URLs for products, initiatives,
technical constraints and KPIs (``domain.models.external_refs``).

No change-notification trigger of its own: every change of a reference bumps its
object's version in the same statement's transaction, and the object's table already
notifies.

Revision ID: 0012
Revises: 0011
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | Sequence[str] | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OWNERS = {
    "Product": ("product_id", "products"),
    "Initiative": ("initiative_id", "initiatives"),
    "TechnicalConstraint": ("constraint_id", "technical_constraints"),
    "Kpi": ("kpi_id", "kpis"),
}


def upgrade() -> None:
    one_owner = " AND ".join(
        f"((entity_type = '{name}') = ({column} IS NOT NULL))"
        for name, (column, _) in OWNERS.items()
    )
    op.create_table(
        "external_refs",
        sa.Column("entity_type", sa.String(length=32), nullable=False),
        *(sa.Column(column, sa.BigInteger(), nullable=True) for column, _ in OWNERS.values()),
        sa.Column(
            "entity_id",
            sa.BigInteger(),
            sa.Computed(
                "coalesce(product_id, initiative_id, constraint_id, kpi_id)", persisted=True
            ),
            nullable=False,
        ),
        sa.Column("system", sa.String(length=32), nullable=False),
        sa.Column("external_id", sa.String(length=200), nullable=False),
        sa.Column("url", sa.String(length=2000), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.CheckConstraint(one_owner, name=op.f("ck_external_refs_one_owner")),
        sa.CheckConstraint(
            "system ~ '^[a-z][a-z0-9_.-]{0,31}$'", name=op.f("ck_external_refs_system_format")
        ),
        sa.CheckConstraint(
            "length(external_id) > 0", name=op.f("ck_external_refs_external_id_not_empty")
        ),
        sa.CheckConstraint(
            "url IS NULL OR url ~ '^https?://'", name=op.f("ck_external_refs_url_scheme")
        ),
        *(
            sa.ForeignKeyConstraint(
                [column],
                [f"{table}.id"],
                name=op.f(f"fk_external_refs_{column}_{table}"),
                ondelete="CASCADE",
            )
            for column, table in OWNERS.values()
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_external_refs")),
        sa.UniqueConstraint(
            "entity_type", "entity_id", "system", name=op.f("uq_external_refs_system")
        ),
        sa.UniqueConstraint(
            "entity_type", "system", "external_id", name=op.f("uq_external_refs_external_id")
        ),
    )
    # Compiled answers hold `externalRefs` and the response cache keeps them: a write here
    # must empty every replica's cache like any other table's (migration 0006's function).
    op.execute(
        "CREATE TRIGGER portfolio_changes AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE"
        " ON external_refs FOR EACH STATEMENT EXECUTE FUNCTION portfolio_notify_change()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER portfolio_changes ON external_refs")
    op.drop_table("external_refs")
