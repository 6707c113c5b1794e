"""graphql_float(double precision): a float as JSON the way GraphQL servers write it.

PostgreSQL writes the double 1500 as ``1500``; Python (and so the resolvers) as
``1500.0``. The compiled read path uses this function so both paths send the same
bytes. IMMUTABLE and in SQL, so the planner inlines it.

Revision ID: 0004
Revises: 0003
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        """
        CREATE FUNCTION graphql_float(value double precision) RETURNS json
        LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
            SELECT CASE
                WHEN value = trunc(value) AND abs(value) < 1e15
                    THEN (to_json(value)::text || '.0')::json
                ELSE to_json(value)
            END
        $$
        """
    )


def downgrade() -> None:
    op.execute("DROP FUNCTION graphql_float(double precision)")
