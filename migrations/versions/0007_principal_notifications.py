"""Changes that can shrink what a token may do notify 'portfolio_principals'.

Each process remembers the principal of every token it has seen
(``auth.principal_cache``), so that a request with a token costs no statement more
than an anonymous one. It must forget them when a token, a refresh-token family
(``sid``), a user or a client is revoked or disabled, or roles and grants change, in
whichever process or tool (another replica, the CLI, psql) made the change. These
triggers tell every listening process when such a change commits (and never if it
rolls back); the payload is the table's name.

Left out on purpose: issuing and rotating refresh tokens (inserts, ``rotated_at``),
which happen at every sign-in and refresh and change no principal; only a refresh
token that becomes revoked notifies. Authorization codes, signing keys and the login
throttle hold nothing a principal is made of.

Revision ID: 0007
Revises: 0006
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Any write to these may change a principal (statement-level: one per statement).
EVERY_WRITE = ("users", "oauth_clients", "roles", "role_grants")


def upgrade() -> None:
    op.execute(
        """
        CREATE FUNCTION portfolio_notify_principals() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
          PERFORM pg_notify('portfolio_principals', TG_TABLE_NAME);
          RETURN NULL;
        END
        $$
        """
    )
    for table in EVERY_WRITE:
        op.execute(
            f"CREATE TRIGGER portfolio_principals AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE"
            f" ON {table} FOR EACH STATEMENT EXECUTE FUNCTION portfolio_notify_principals()"
        )
    op.execute(
        "CREATE TRIGGER portfolio_principals AFTER INSERT ON oauth_revoked_access_tokens"
        " FOR EACH STATEMENT EXECUTE FUNCTION portfolio_notify_principals()"
    )
    # Row-level, to look at the row; PostgreSQL sends one notification per transaction
    # for identical payloads, so revoking a whole family notifies once.
    op.execute(
        "CREATE TRIGGER portfolio_principals_revoked AFTER UPDATE OF revoked_at"
        " ON oauth_refresh_tokens FOR EACH ROW"
        " WHEN (OLD.revoked_at IS NULL AND NEW.revoked_at IS NOT NULL)"
        " EXECUTE FUNCTION portfolio_notify_principals()"
    )
    op.execute(
        "CREATE TRIGGER portfolio_principals_inserted_revoked AFTER INSERT"
        " ON oauth_refresh_tokens FOR EACH ROW WHEN (NEW.revoked_at IS NOT NULL)"
        " EXECUTE FUNCTION portfolio_notify_principals()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER portfolio_principals_inserted_revoked ON oauth_refresh_tokens")
    op.execute("DROP TRIGGER portfolio_principals_revoked ON oauth_refresh_tokens")
    op.execute("DROP TRIGGER portfolio_principals ON oauth_revoked_access_tokens")
    for table in EVERY_WRITE:
        op.execute(f"DROP TRIGGER portfolio_principals ON {table}")
    op.execute("DROP FUNCTION portfolio_notify_principals()")
