"""Change notifications name the rows that changed: table, operation and ids.

0006 sends the table's name on every committed statement, enough to drop a cache but
not to tell a subscriber *which* initiative changed. Here the portfolio's tables send,
per statement, the ids of the rows it touched (for a link table both ends, for a
measurement its KPI too), read from the statement's transition table, as JSON:

    {"table": "initiatives", "op": "UPDATE", "rows": [[12], [15]]}

in chunks of at most 150 rows (a NOTIFY payload is limited to 8000 bytes). Ids only,
never data: a listener reads the rows it may show, with its caller's scopes.
``domain.events`` turns a payload into typed domain events, and names the columns of
each table's rows (``ROW_COLUMNS`` there must match ``TABLES`` here).

PostgreSQL allows a transition table only on a trigger of one event, so each table gets
three triggers (INSERT, UPDATE, DELETE); its ``portfolio_changes`` trigger (0006) stays
for TRUNCATE alone, with the table's name as before. Everything still arrives on
``portfolio_changes``, so the response cache keeps hearing every write.

Revision ID: 0008
Revises: 0007
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# table -> the columns of each row in the payload, in order.
TABLES = {
    "products": "id",
    "initiatives": "id",
    "technical_constraints": "id",
    "kpis": "id",
    "kpi_measurements": "id, kpi_id",
    "initiative_products": "initiative_id, product_id",
    "constraint_products": "constraint_id, product_id",
    "constraint_initiatives": "constraint_id, initiative_id",
    "initiative_kpis": "initiative_id, kpi_id",
}
EVENTS = {"INSERT": "NEW", "UPDATE": "NEW", "DELETE": "OLD"}
CHUNK_ROWS = 150


def upgrade() -> None:
    # TG_ARGV[0] is the column list; the transition table is always named changed_rows.
    op.execute(
        f"""
        CREATE FUNCTION portfolio_notify_rows() RETURNS trigger
        LANGUAGE plpgsql AS $$
        DECLARE
          chunk text;
        BEGIN
          FOR chunk IN EXECUTE format(
            'SELECT json_build_object(''table'', %L, ''op'', %L,'
            '                         ''rows'', json_agg(r.ids ORDER BY r.n))::text'
            '  FROM (SELECT json_build_array(%s) AS ids, row_number() OVER () - 1 AS n'
            '          FROM changed_rows) AS r'
            ' GROUP BY r.n / {CHUNK_ROWS}',
            TG_TABLE_NAME, TG_OP, TG_ARGV[0])
          LOOP
            PERFORM pg_notify('portfolio_changes', chunk);
          END LOOP;
          RETURN NULL;
        END
        $$
        """
    )
    for table, columns in TABLES.items():
        op.execute(f"DROP TRIGGER portfolio_changes ON {table}")
        op.execute(
            f"CREATE TRIGGER portfolio_changes AFTER TRUNCATE ON {table}"
            " FOR EACH STATEMENT EXECUTE FUNCTION portfolio_notify_change()"
        )
        for event, transition in EVENTS.items():
            op.execute(
                f"CREATE TRIGGER portfolio_changes_{event.lower()} AFTER {event} ON {table}"
                f" REFERENCING {transition} TABLE AS changed_rows FOR EACH STATEMENT"
                f" EXECUTE FUNCTION portfolio_notify_rows('{columns}')"
            )


def downgrade() -> None:
    for table in TABLES:
        for event in EVENTS:
            op.execute(f"DROP TRIGGER portfolio_changes_{event.lower()} ON {table}")
        op.execute(f"DROP TRIGGER portfolio_changes ON {table}")
        op.execute(
            f"CREATE TRIGGER portfolio_changes AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE"
            f" ON {table} FOR EACH STATEMENT EXECUTE FUNCTION portfolio_notify_change()"
        )
    op.execute("DROP FUNCTION portfolio_notify_rows()")
