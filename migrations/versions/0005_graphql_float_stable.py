"""graphql_float is STABLE, so the planner really inlines it.

0004 declared it IMMUTABLE, but its body calls ``to_json``, which is STABLE, and
PostgreSQL never inlines an IMMUTABLE SQL function whose body is not: every float of
a compiled read paid a full SQL-function call (the KPI series statement spent ~40 % of
its time there). STABLE is also the truth: ``to_json`` depends on session settings.

Revision ID: 0005
Revises: 0004
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("ALTER FUNCTION graphql_float(double precision) STABLE")


def downgrade() -> None:
    op.execute("ALTER FUNCTION graphql_float(double precision) IMMUTABLE")
