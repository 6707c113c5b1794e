"""The change feed's position of each audit event, and measurement deletes.

Every portfolio change already writes an audit event in its own transaction
(``domain.services.audit``), so the feed reads the audit trail rather than keep a log
of its own. An event's ``id`` is taken at insert, not at commit: a reader paging by id
alone would pass over the events of a transaction that commits after a later one, and
never see them. So each event also records its writing transaction
(``pg_current_xact_id()``, stored as a bigint), and the feed serves, in
``(transaction_id, id)`` order, only events of transactions older than the oldest one
still running (``pg_snapshot_xmin(pg_current_snapshot())``): those are all finished,
and no transaction that starts later can take a smaller id. See
``domain.services.feed``.

Rows written before this revision take the migration's own transaction id: they keep
their id order, ahead of everything written afterwards.

``audit_action`` gains ``DELETE`` for measurements deleted by ``deleteKpiMeasurements``.

Revision ID: 0011
Revises: 0010
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | Sequence[str] | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "audit_events",
        sa.Column(
            "transaction_id",
            sa.BigInteger(),
            server_default=sa.text("(pg_current_xact_id())::text::bigint"),
            nullable=False,
        ),
    )
    op.create_index("ix_audit_events_feed", "audit_events", ["transaction_id", "id"])
    # Usable from the next transaction on (PostgreSQL >= 12 allows it in a transaction).
    op.execute("ALTER TYPE audit_action ADD VALUE IF NOT EXISTS 'DELETE'")


def downgrade() -> None:
    op.execute("DELETE FROM audit_events WHERE action = 'DELETE'")
    # An enum value cannot be dropped: the type is rebuilt without it.
    op.execute("ALTER TYPE audit_action RENAME TO audit_action_old")
    op.execute(
        "CREATE TYPE audit_action AS ENUM "
        "('CREATE', 'UPDATE', 'ARCHIVE', 'LINK', 'UNLINK', 'RECORD')"
    )
    op.execute(
        "ALTER TABLE audit_events ALTER COLUMN action TYPE audit_action"
        " USING action::text::audit_action"
    )
    op.execute("DROP TYPE audit_action_old")
    op.drop_index("ix_audit_events_feed", table_name="audit_events")
    op.drop_column("audit_events", "transaction_id")
