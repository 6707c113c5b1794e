"""Webhook endpoints and a transactional outbox of deliveries.

A trigger on each portfolio table inserts, per changed row and per active endpoint that
asked for the event, a ``webhook_deliveries`` row, in the writing transaction itself:
a rolled-back change leaves no delivery, a committed one cannot be lost, whoever wrote
(the API, the CLI, psql). The body is fixed at that moment (Standard Webhooks' shape:
``type``, ``timestamp``, ``data``) so every retry sends the same bytes under the same id.
``data`` names the row by its GraphQL type and global id, never its fields; an endpoint
with a GraphQL ``query`` has its body rendered from it by the worker before the first
attempt (``schema.webhook_payloads``, with its owner's scopes) and stored (``rendered``).

With no active endpoint for the event the trigger costs one probe per statement. The
built-in ``admin`` role gains the new ``admin:webhooks`` scope.

Revision ID: 0009
Revises: 0008
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# table -> (event type prefix, GraphQL type); must match domain.webhooks.events.
TABLES = {
    "products": ("product", "Product"),
    "initiatives": ("initiative", "Initiative"),
    "technical_constraints": ("constraint", "TechnicalConstraint"),
    "kpis": ("kpi", "Kpi"),
    "kpi_measurements": ("measurement", "KpiMeasurement"),
}
EVENTS = {"INSERT": "NEW", "UPDATE": "NEW", "DELETE": "OLD"}


def upgrade() -> None:
    op.create_table(
        "webhook_endpoints",
        sa.Column("owner_user_id", sa.BigInteger(), nullable=True),
        sa.Column("owner_client_id", sa.BigInteger(), nullable=True),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("event_types", postgresql.ARRAY(sa.String(length=64)), nullable=False),
        sa.Column("secret", sa.Text(), nullable=False),
        sa.Column("query", sa.Text(), nullable=True),
        sa.Column("previous_secret", sa.Text(), nullable=True),
        sa.Column("previous_secret_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("is_active", sa.Boolean(), server_default="true", nullable=False),
        sa.Column("consecutive_failures", sa.Integer(), server_default="0", nullable=False),
        sa.Column("disabled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.CheckConstraint(
            "(owner_user_id IS NULL) <> (owner_client_id IS NULL)",
            name=op.f("ck_webhook_endpoints_one_owner"),
        ),
        sa.ForeignKeyConstraint(
            ["owner_client_id"],
            ["oauth_clients.id"],
            name=op.f("fk_webhook_endpoints_owner_client_id_oauth_clients"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["owner_user_id"],
            ["users.id"],
            name=op.f("fk_webhook_endpoints_owner_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_endpoints")),
    )
    op.create_index(
        op.f("ix_webhook_endpoints_owner_client_id"), "webhook_endpoints", ["owner_client_id"]
    )
    op.create_index(
        op.f("ix_webhook_endpoints_owner_user_id"), "webhook_endpoints", ["owner_user_id"]
    )
    op.create_table(
        "webhook_deliveries",
        sa.Column("message_id", sa.String(length=64), nullable=False),
        sa.Column("endpoint_id", sa.BigInteger(), nullable=False),
        sa.Column("event_type", sa.String(length=64), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("rendered", sa.Boolean(), server_default="false", nullable=False),
        sa.Column("status", sa.String(length=16), server_default="pending", nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column(
            "next_attempt_at",
            sa.DateTime(timezone=True),
            server_default=sa.func.now(),
            nullable=False,
        ),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.CheckConstraint(
            "status IN ('pending', 'delivered', 'failed')",
            name=op.f("ck_webhook_deliveries_status"),
        ),
        sa.ForeignKeyConstraint(
            ["endpoint_id"],
            ["webhook_endpoints.id"],
            name=op.f("fk_webhook_deliveries_endpoint_id_webhook_endpoints"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_deliveries")),
        sa.UniqueConstraint("message_id", name=op.f("uq_webhook_deliveries_message_id")),
    )
    op.create_index(
        op.f("ix_webhook_deliveries_endpoint_id"), "webhook_deliveries", ["endpoint_id"]
    )
    op.create_index(
        "ix_webhook_deliveries_due",
        "webhook_deliveries",
        ["next_attempt_at"],
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.create_table(
        "webhook_attempts",
        sa.Column("delivery_id", sa.BigInteger(), nullable=False),
        sa.Column(
            "attempted_at",
            sa.DateTime(timezone=True),
            server_default=sa.func.now(),
            nullable=False,
        ),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("latency_ms", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.ForeignKeyConstraint(
            ["delivery_id"],
            ["webhook_deliveries.id"],
            name=op.f("fk_webhook_attempts_delivery_id_webhook_deliveries"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_attempts")),
    )
    op.create_index(op.f("ix_webhook_attempts_delivery_id"), "webhook_attempts", ["delivery_id"])
    # TG_ARGV: the event type's prefix and the GraphQL type of the table's rows. The
    # transition table is always named changed_rows; every table here has an ``id``.
    op.execute(
        r"""
        CREATE FUNCTION portfolio_webhook_outbox() RETURNS trigger
        LANGUAGE plpgsql AS $$
        DECLARE
          event text := TG_ARGV[0] || '.' || CASE TG_OP WHEN 'INSERT' THEN 'created'
                                                        WHEN 'UPDATE' THEN 'updated'
                                                        ELSE 'deleted' END;
        BEGIN
          IF NOT EXISTS (SELECT 1 FROM webhook_endpoints
                          WHERE is_active AND event = ANY (event_types)) THEN
            RETURN NULL;
          END IF;
          INSERT INTO webhook_deliveries (message_id, endpoint_id, event_type, payload)
          SELECT 'msg_' || replace(gen_random_uuid()::text, '-', ''), e.id, event,
                 jsonb_build_object(
                   'type', event,
                   'timestamp', to_char(clock_timestamp() AT TIME ZONE 'UTC',
                                        'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
                   'data', jsonb_build_object(
                     '__typename', TG_ARGV[1],
                     'id', rtrim(translate(encode(convert_to(TG_ARGV[1] || ':' || r.id, 'UTF8'),
                                                  'base64'), E'+/\n', '-_'), '=')))::text
            FROM webhook_endpoints e CROSS JOIN changed_rows r
           WHERE e.is_active AND event = ANY (e.event_types)
           ORDER BY e.id, r.id;
          RETURN NULL;
        END
        $$
        """
    )
    for table, (prefix, type_name) in TABLES.items():
        for event, transition in EVENTS.items():
            op.execute(
                f"CREATE TRIGGER webhook_outbox_{event.lower()} AFTER {event} ON {table}"
                f" REFERENCING {transition} TABLE AS changed_rows FOR EACH STATEMENT"
                f" EXECUTE FUNCTION portfolio_webhook_outbox('{prefix}', '{type_name}')"
            )

    # The built-in admin role manages webhooks too.
    op.execute(
        "UPDATE roles SET scopes = array_append(scopes, 'admin:webhooks')"
        " WHERE name = 'admin' AND NOT 'admin:webhooks' = ANY (scopes)"
    )


def downgrade() -> None:
    op.execute("UPDATE roles SET scopes = array_remove(scopes, 'admin:webhooks')")
    for table in TABLES:
        for event in EVENTS:
            op.execute(f"DROP TRIGGER webhook_outbox_{event.lower()} ON {table}")
    op.execute("DROP FUNCTION portfolio_webhook_outbox()")
    op.drop_table("webhook_attempts")
    op.drop_table("webhook_deliveries")
    op.drop_table("webhook_endpoints")
