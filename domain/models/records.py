"""The audit trail and the persisted GraphQL documents.

The audit trail's actor is a user and an OAuth client, referred to by table name
(``users.id``, ``oauth_clients.id``): their models belong to ``auth`` (``auth.models``),
which the domain does not import."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime, ForeignKey, Index, String, Text, func, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from domain.models.base import Base, IdMixin, pg_enum
from domain.models.enums import AuditAction


class AuditEvent(IdMixin, Base):
    """Who changed what and when; written in the same transaction as the change."""

    __tablename__ = "audit_events"

    occurred_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )
    actor_user_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    actor_client_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("oauth_clients.id", ondelete="SET NULL"), index=True
    )
    entity_type: Mapped[str] = mapped_column(String(64))
    entity_id: Mapped[int] = mapped_column(BigInteger)
    action: Mapped[AuditAction] = mapped_column(pg_enum(AuditAction, "audit_action"))
    changes: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default="{}")
    # The writing transaction: the change feed's position is (transaction_id, id), served
    # only once every older transaction has finished (domain.services.feed).
    transaction_id: Mapped[int] = mapped_column(
        BigInteger, nullable=False, server_default=text("(pg_current_xact_id())::text::bigint")
    )

    __table_args__ = (
        Index("ix_audit_events_entity", "entity_type", "entity_id", "occurred_at"),
        Index("ix_audit_events_occurred_at", "occurred_at"),
        Index("ix_audit_events_feed", "transaction_id", "id"),
    )


class PersistedQuery(Base):
    """A GraphQL document registered under its SHA-256, for persisted-query clients."""

    __tablename__ = "persisted_queries"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    document: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )
