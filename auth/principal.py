"""Who is calling, and with which effective scopes.

Effective scopes = the token's scopes ∩ what the caller may have: for a user,
the scopes of the roles granted to them; for a service (client credentials), the
scopes registered for its client. Disabled users and clients, and tokens issued
before their revocation marker, are refused at the next request.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

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


# Who a token of ours speaks for, in one round trip: whether its jti or its refresh-token
# family was revoked, its client, its user and the scopes of the user's roles
# (role_scopes is empty without a user). $1 jti (or NULL), $2 client_id, $3 user id (or
# NULL), $4 family (or NULL; one probe of the family_id index).
_LOCAL = """
SELECT
  EXISTS (SELECT 1 FROM oauth_revoked_access_tokens WHERE jti = $1::varchar)
  OR EXISTS (SELECT 1 FROM oauth_refresh_tokens
             WHERE family_id = $4::varchar AND revoked_at IS NOT NULL) AS revoked,
  c.id AS client_pk, c.client_id, c.scopes AS client_scopes,
  (c.is_active AND c.archived_at IS NULL) AS client_enabled,
  c.tokens_valid_after AS client_valid_after,
  u.id AS user_id, (u.is_active AND u.archived_at IS NULL) AS user_enabled,
  u.tokens_valid_after AS user_valid_after,
  ARRAY(
    SELECT scope FROM roles r CROSS JOIN unnest(r.scopes) AS scope
    WHERE r.archived_at IS NULL
      AND r.id IN (SELECT g.role_id FROM role_grants g WHERE g.user_id = u.id)
  ) AS role_scopes
FROM (SELECT 1) AS one
LEFT JOIN oauth_clients c ON c.client_id = $2::varchar
LEFT JOIN users u ON u.id = $3::bigint
"""

# The same for an external issuer's token: the scopes of the local roles its groups
# map to ($2) and of the roles granted to the local account with its e-mail ($3, NULL
# unless the issuer may map by e-mail and the address is verified), if there is one.
# $1 jti (or NULL).
_EXTERNAL = """
SELECT
  EXISTS (SELECT 1 FROM oauth_revoked_access_tokens WHERE jti = $1::varchar) AS revoked,
  u.id AS user_id, (u.is_active AND u.archived_at IS NULL) AS user_enabled,
  ARRAY(
    SELECT scope FROM roles r CROSS JOIN unnest(r.scopes) AS scope
    WHERE r.archived_at IS NULL
      AND (r.name = ANY($2::varchar[])
           OR r.id IN (SELECT g.role_id FROM role_grants g WHERE g.user_id = u.id))
  ) AS role_scopes
FROM (SELECT 1) AS one
LEFT JOIN users u ON lower(u.email) = lower($3::varchar)
"""


async def resolve_principal(connection: Any, claims: AccessClaims) -> Principal:
    """The caller a verified token speaks for, looked up in one statement on an asyncpg
    connection (``domain.database.session_driver`` gives a session's). Raises InvalidToken when the
    token, its client or its user has been revoked or disabled."""
    if claims.external is not None:
        return await _external(connection, claims)
    row = await connection.fetchrow(
        _LOCAL, claims.jti, claims.client_id or claims.subject, claims.user_id, claims.family
    )
    if row["revoked"]:
        raise InvalidToken("The token has been revoked.")
    if row["client_pk"] is None or not row["client_enabled"]:
        raise InvalidToken("The client of this token is disabled.")
    if _revoked_after(row["client_valid_after"], claims.issued_at):
        raise InvalidToken("The token has been revoked.")
    if claims.user_id is None:
        allowed = frozenset(row["client_scopes"])
    else:
        if row["user_id"] is None or not row["user_enabled"]:
            raise InvalidToken("The user of this token is disabled.")
        if _revoked_after(row["user_valid_after"], claims.issued_at):
            raise InvalidToken("The token has been revoked.")
        # The authorization server only grants a client the scopes registered for it;
        # here the user's roles bound what the token may do.
        allowed = frozenset(row["role_scopes"])
    return Principal(
        scopes=claims.scopes & allowed,
        user_id=claims.user_id,
        client_id=row["client_id"],
        client_pk=row["client_pk"],
        authenticated=True,
    )


async def _external(connection: Any, claims: AccessClaims) -> Principal:
    """External users get the local roles their groups map to, plus, when the issuer is
    configured to map by e-mail (``map_roles_by_email``) and the token's ``email_verified``
    is true, the roles granted to the local account with the same e-mail, if any (a
    disabled account refuses). An unverified or unmapped e-mail links to no account:
    whoever can put an address in a token must not become its local owner."""
    config = claims.external
    assert config is not None
    groups = claims.raw.get(config.roles_claim) or []
    if isinstance(groups, str):
        groups = groups.split()
    role_names = sorted({config.role_mapping[g] for g in groups if g in config.role_mapping})
    email = claims.raw.get(config.email_claim)
    mapped = (
        config.map_roles_by_email
        and claims.raw.get("email_verified") is True
        and isinstance(email, str)
    )
    row = await connection.fetchrow(_EXTERNAL, claims.jti, role_names, email if mapped else None)
    if row["revoked"]:
        raise InvalidToken("The token has been revoked.")
    if row["user_id"] is not None and not row["user_enabled"]:
        raise InvalidToken("The user of this token is disabled.")
    return Principal(
        scopes=claims.scopes & frozenset(row["role_scopes"]),
        user_id=row["user_id"],
        client_id=claims.client_id,
        authenticated=True,
    )
