"""Who is calling, and with which effective scopes.

Effective scopes = the token's scopes ∩ what the caller may have: for a user,
the scopes of the roles granted to them; for a service (client credentials), the
scopes registered for its client. Disabled users and clients, and tokens issued
before their revocation marker, are refused at the next request.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import exists, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from api.models import OAuthClient, RevokedAccessToken, Role, RoleGrant, User
from auth.scopes import READ_SCOPES
from auth.tokens import AccessClaims, InvalidToken


@dataclass(frozen=True)
class Principal:
    scopes: frozenset[str] = field(default_factory=frozenset)
    user_id: int | None = None
    client_id: str | None = None
    # Primary key of the OAuth client row, for the audit trail.
    client_pk: int | None = None
    authenticated: bool = False

    def has(self, *required: str) -> bool:
        return set(required) <= self.scopes


def anonymous_principal(*, development: bool, configured: list[str] | None) -> Principal:
    """Unauthenticated callers: the configured scopes, else every read scope in
    development and nothing in production."""
    if configured is not None:
        return Principal(scopes=frozenset(configured))
    return Principal(scopes=frozenset(s.value for s in READ_SCOPES) if development else frozenset())


def _revoked_after(marker: datetime | None, issued_at: int) -> bool:
    return marker is not None and marker.timestamp() >= issued_at


async def resolve_principal(session: AsyncSession, claims: AccessClaims) -> Principal:
    if claims.jti is not None and await session.scalar(
        select(exists().where(RevokedAccessToken.jti == claims.jti))
    ):
        raise InvalidToken("The token has been revoked.")
    if claims.external is not None:
        return await _external(session, claims)

    client = await session.scalar(
        select(OAuthClient).where(OAuthClient.client_id == (claims.client_id or claims.subject))
    )
    if client is None or not client.is_active or client.archived_at is not None:
        raise InvalidToken("The client of this token is disabled.")
    if _revoked_after(client.tokens_valid_after, claims.issued_at):
        raise InvalidToken("The token has been revoked.")

    user_id = claims.user_id
    if user_id is None:
        allowed = frozenset(client.scopes)
    else:
        user = await session.get(User, user_id)
        if user is None or not user.is_active or user.archived_at is not None:
            raise InvalidToken("The user of this token is disabled.")
        if _revoked_after(user.tokens_valid_after, claims.issued_at):
            raise InvalidToken("The token has been revoked.")
        # The authorization server only grants a client the scopes registered for it;
        # here the user's roles bound what the token may do.
        allowed = await _role_scopes(
            session, select(RoleGrant.role_id).where(RoleGrant.user_id == user_id)
        )
    return Principal(
        scopes=claims.scopes & allowed,
        user_id=user_id,
        client_id=client.client_id,
        client_pk=client.id,
        authenticated=True,
    )


async def _external(session: AsyncSession, claims: AccessClaims) -> Principal:
    """External users get the local roles their groups map to, plus roles granted to
    the local account with the same e-mail, if any (a disabled account refuses)."""
    config = claims.external
    assert config is not None
    groups = claims.raw.get(config.roles_claim) or []
    if isinstance(groups, str):
        groups = groups.split()
    role_names = {config.role_mapping[g] for g in groups if g in config.role_mapping}
    allowed = await _role_scopes(session, select(Role.id).where(Role.name.in_(role_names)))
    user_id = None
    email = claims.raw.get(config.email_claim)
    if isinstance(email, str):
        user = await session.scalar(select(User).where(func.lower(User.email) == email.lower()))
        if user is not None:
            if not user.is_active or user.archived_at is not None:
                raise InvalidToken("The user of this token is disabled.")
            user_id = user.id
            allowed |= await _role_scopes(
                session, select(RoleGrant.role_id).where(RoleGrant.user_id == user.id)
            )
    return Principal(
        scopes=claims.scopes & allowed,
        user_id=user_id,
        client_id=claims.client_id,
        authenticated=True,
    )


async def _role_scopes(session: AsyncSession, role_ids: object) -> frozenset[str]:
    rows = await session.scalars(
        select(func.unnest(Role.scopes)).where(Role.id.in_(role_ids), Role.archived_at.is_(None))  # type: ignore[arg-type]
    )
    return frozenset(rows)
