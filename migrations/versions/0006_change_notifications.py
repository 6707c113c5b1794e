"""Every write to the data that reads can return notifies 'portfolio_changes'.

A statement-level trigger on each table calls ``pg_notify`` with the table's name.
PostgreSQL delivers the notification when the writing transaction commits (and never
if it rolls back), to every server listening: each drops the answers it cached. This
covers every writer — this API on any replica, the CLI, a migration, psql.

Left out: ``alembic_version`` and ``login_throttle`` (written on every login attempt;
no read returns it). A test checks that every other table has the trigger, so a table
added later must get it too.

Revision ID: 0006
Revises: 0005
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = (
    "audit_events",
    "constraint_initiatives",
    "constraint_products",
    "glossary_terms",
    "initiative_kpis",
    "initiative_products",
    "initiatives",
    "kpi_measurements",
    "kpis",
    "oauth_authorization_codes",
    "oauth_clients",
    "oauth_refresh_tokens",
    "oauth_revoked_access_tokens",
    "persisted_queries",
    "products",
    "role_grants",
    "roles",
    "signing_keys",
    "teams",
    "technical_constraints",
    "users",
)


def upgrade() -> None:
    op.execute(
        """
        CREATE FUNCTION portfolio_notify_change() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
          PERFORM pg_notify('portfolio_changes', TG_TABLE_NAME);
          RETURN NULL;
        END
        $$
        """
    )
    for table in TABLES:
        op.execute(
            f"CREATE TRIGGER portfolio_changes AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE"
            f" ON {table} FOR EACH STATEMENT EXECUTE FUNCTION portfolio_notify_change()"
        )


def downgrade() -> None:
    for table in TABLES:
        op.execute(f"DROP TRIGGER portfolio_changes ON {table}")
    op.execute("DROP FUNCTION portfolio_notify_change()")
