"""Users, roles, role grants, OAuth clients and the audit trail."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from api.models.base import Base, IdMixin, VersionedMixin, pg_enum
from api.models.enums import AuditAction


class User(VersionedMixin, Base):
    __tablename__ = "users"

    email: Mapped[str] = mapped_column(String(320), unique=True)
    display_name: Mapped[str] = mapped_column(String(200))
    password_hash: Mapped[str | None] = mapped_column(Text)
    is_active: Mapped[bool] = mapped_column(Boolean, server_default="true")
    # Tokens issued before this instant are refused (disable, password change).
    tokens_valid_after: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (CheckConstraint("position('@' in email) > 1", name="email_format"),)


class Role(VersionedMixin, Base):
    """A named set of scopes."""

    __tablename__ = "roles"

    name: Mapped[str] = mapped_column(String(64), unique=True)
    description: Mapped[str] = mapped_column(Text, server_default="")
    scopes: Mapped[list[str]] = mapped_column(ARRAY(String(64)), server_default="{}")


class RoleGrant(IdMixin, Base):
    __tablename__ = "role_grants"

    user_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    role_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("roles.id", ondelete="CASCADE"), index=True
    )
    granted_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )

    __table_args__ = (UniqueConstraint("user_id", "role_id"),)


class OAuthClient(VersionedMixin, Base):
    __tablename__ = "oauth_clients"

    client_id: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    secret_hash: Mapped[str | None] = mapped_column(Text)
    grant_types: Mapped[list[str]] = mapped_column(ARRAY(String(64)), server_default="{}")
    scopes: Mapped[list[str]] = mapped_column(ARRAY(String(64)), server_default="{}")
    redirect_uris: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default="{}")
    is_active: Mapped[bool] = mapped_column(Boolean, server_default="true")
    tokens_valid_after: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


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

    __table_args__ = (
        Index("ix_audit_events_entity", "entity_type", "entity_id", "occurred_at"),
        Index("ix_audit_events_occurred_at", "occurred_at"),
    )
