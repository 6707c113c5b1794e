"""Webhook endpoints and their transactional outbox (migration 0009).

A ``WebhookDelivery`` is written by a trigger in the same transaction as the change it
tells of, so a rolled-back change is never sent and a committed one never lost; the
delivery worker (``domain.webhooks.worker``) sends it, retrying under the same
``message_id``. Every attempt is logged in ``WebhookAttempt``.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from domain.models.base import Base, IdMixin


class WebhookEndpoint(IdMixin, Base):
    """Where to send which events, owned by a user or an OAuth client. ``secret`` is the
    Standard Webhooks signing secret (``whsec_`` + base64): HMAC needs it in clear, so it
    is kept, and shown to the owner only when it is created or rotated."""

    __tablename__ = "webhook_endpoints"

    owner_user_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    owner_client_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("oauth_clients.id", ondelete="CASCADE"), index=True
    )
    url: Mapped[str] = mapped_column(Text)
    event_types: Mapped[list[str]] = mapped_column(ARRAY(String(64)))
    secret: Mapped[str] = mapped_column(Text)
    # After a rotation, the old secret still signs (beside the new one) until it expires,
    # so receivers can switch without dropping deliveries.
    previous_secret: Mapped[str | None] = mapped_column(Text)
    previous_secret_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # A GraphQL query taking ``$id: ID!`` whose answer is the body's ``data``; null: the
    # changed row's type and global ID only.
    query: Mapped[str | None] = mapped_column(Text)
    is_active: Mapped[bool] = mapped_column(Boolean, server_default="true")
    consecutive_failures: Mapped[int] = mapped_column(Integer, server_default="0")
    disabled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )

    __table_args__ = (
        CheckConstraint("(owner_user_id IS NULL) <> (owner_client_id IS NULL)", name="one_owner"),
    )


class WebhookDelivery(IdMixin, Base):
    """One event for one endpoint. ``payload`` is the exact body sent, on every attempt."""

    __tablename__ = "webhook_deliveries"

    message_id: Mapped[str] = mapped_column(String(64), unique=True)
    endpoint_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("webhook_endpoints.id", ondelete="CASCADE"), index=True
    )
    event_type: Mapped[str] = mapped_column(String(64))
    payload: Mapped[str] = mapped_column(Text)
    # Whether ``payload`` was rendered from the endpoint's query (done before the first
    # attempt, so that every attempt sends the same body).
    rendered: Mapped[bool] = mapped_column(Boolean, server_default="false")
    status: Mapped[str] = mapped_column(String(16), server_default="pending")
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    next_attempt_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        CheckConstraint("status IN ('pending', 'delivered', 'failed')", name="status"),
        # The worker's claim reads only pending rows, oldest due first.
        Index(
            "ix_webhook_deliveries_due",
            "next_attempt_at",
            postgresql_where=text("status = 'pending'"),
        ),
    )


class WebhookAttempt(IdMixin, Base):
    """One POST of a delivery: its status code (None when no answer came) and latency."""

    __tablename__ = "webhook_attempts"

    delivery_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("webhook_deliveries.id", ondelete="CASCADE"), index=True
    )
    attempted_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )
    status_code: Mapped[int | None] = mapped_column(Integer)
    latency_ms: Mapped[int] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
