"""Users, roles and OAuth clients: the administration behind `admin:*` scopes.

Secrets never reach the audit trail: passwords and client secrets are stored as
argon2 hashes and left out of every audited field list.

Nobody grants what they do not hold: a client or a role may carry, and a grant may
give, only scopes the acting principal holds (``Actor.scopes``, its effective
scopes). The same goes for managing an account that holds more than the actor: its
secret, password or e-mail would hand the actor that account's scopes. Every path
(GraphQL mutations, the command line) goes through the functions below, so the rule
lives here once.
"""

from __future__ import annotations

import asyncio
import re
import secrets
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from auth.models import OAuthClient, Role, RoleGrant, User
from auth.oauth.clients import redirect_uri_problem
from auth.passwords import hash_secret_off_loop, verify_secret_off_loop
from auth.principal_cache import principals_changed
from auth.scopes import Scope
from domain.models import AuditAction
from domain.services import audit, writes
from domain.services.writes import Actor, EntitySpec, Refused, UserError

GRANT_TYPES = ("client_credentials", "authorization_code", "refresh_token")
MIN_PASSWORD_LENGTH = 12
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_ROLE_NAME = re.compile(r"^[a-z][a-z0-9-]{1,63}$")
KNOWN_SCOPES = frozenset(s.value for s in Scope)

# The command line runs with the database's credentials, that is as the operator, who
# could write any row directly: it acts with every scope.
OPERATOR = Actor(scopes=KNOWN_SCOPES)


def _not_held(actor: Actor, scopes: Iterable[str]) -> list[str]:
    # Unknown scopes are left to the validators, which call them INVALID.
    return sorted((set(scopes) & KNOWN_SCOPES) - actor.scopes)


def _require_granting(actor: Actor, scopes: Iterable[str]) -> None:
    """Refuse to give out (in a client or a role) scopes the actor does not hold."""
    missing = _not_held(actor, scopes)
    if missing:
        raise Refused(
            UserError(
                "scopes",
                "FORBIDDEN",
                f"You cannot grant scopes you do not hold: {', '.join(missing)}.",
            )
        )


def _require_holding(actor: Actor, scopes: Iterable[str], field: str, what: str) -> None:
    """Refuse to act on something (``what``) that carries more than the actor holds."""
    missing = _not_held(actor, scopes)
    if missing:
        raise Refused(
            UserError(
                field,
                "FORBIDDEN",
                f"{what} carries scopes you do not hold: {', '.join(missing)}.",
            )
        )


def _unknown_scopes(field: str, scopes: Any) -> list[UserError]:
    unknown = sorted(set(scopes or ()) - KNOWN_SCOPES)
    if not unknown:
        return []
    return [UserError(field, "INVALID", f"Unknown scopes: {', '.join(unknown)}.")]


async def _user_rules(
    session: AsyncSession, state: Mapping[str, Any], entity: Any
) -> list[UserError]:
    errors = []
    if not _EMAIL.match(state.get("email") or ""):
        errors.append(UserError("email", "INVALID", "`email` is not an e-mail address."))
    if not (state.get("display_name") or "").strip():
        errors.append(UserError("display_name", "INVALID", "`displayName` must not be blank."))
    return errors


async def _role_rules(
    session: AsyncSession, state: Mapping[str, Any], entity: Any
) -> list[UserError]:
    errors = _unknown_scopes("scopes", state.get("scopes"))
    if not _ROLE_NAME.match(state.get("name") or ""):
        errors.append(
            UserError(
                "name",
                "INVALID",
                "`name` must be 2 to 64 lower-case letters, digits or dashes, starting with a "
                "letter.",
            )
        )
    return errors


async def _client_rules(
    session: AsyncSession, state: Mapping[str, Any], entity: Any
) -> list[UserError]:
    errors = _unknown_scopes("scopes", state.get("scopes"))
    if not (state.get("name") or "").strip():
        errors.append(UserError("name", "INVALID", "`name` must not be blank."))
    unknown = sorted(set(state.get("grant_types") or ()) - set(GRANT_TYPES))
    if unknown:
        errors.append(
            UserError("grant_types", "INVALID", f"Unknown grant types: {', '.join(unknown)}.")
        )
    for uri in state.get("redirect_uris") or ():
        problem = redirect_uri_problem(uri)
        if problem:
            errors.append(UserError("redirect_uris", "INVALID", problem))
    if "authorization_code" in (state.get("grant_types") or ()) and not state.get("redirect_uris"):
        errors.append(
            UserError(
                "redirect_uris", "INVALID", "The authorization code grant needs a redirect URI."
            )
        )
    return errors


USER = EntitySpec(
    User, "User", ("email", "display_name"), label_field="email", validate=_user_rules
)
ROLE = EntitySpec(
    Role, "Role", ("name", "description", "scopes"), label_field="name", validate=_role_rules
)
CLIENT = EntitySpec(
    OAuthClient,
    "OAuthClient",
    ("client_id", "name", "grant_types", "scopes", "redirect_uris"),
    label_field="client_id",
    validate=_client_rules,
)


def _check_password(password: str | None) -> None:
    if password is not None and len(password) < MIN_PASSWORD_LENGTH:
        raise Refused(
            UserError(
                "password",
                "INVALID",
                f"`password` must have at least {MIN_PASSWORD_LENGTH} characters.",
            )
        )


async def create_user(
    session: AsyncSession,
    actor: Actor,
    *,
    email: str,
    display_name: str,
    password: str | None,
    roles: list[str],
) -> User:
    _check_password(password)
    principals_changed(session)  # an e-mail an external issuer's tokens may map to
    user: User = await writes.create(
        session, actor, USER, {"email": email.strip().lower(), "display_name": display_name}
    )
    if password is not None:
        user.password_hash = await hash_secret_off_loop(password)
        await session.flush()  # before grant_role re-reads the row
    for role in roles:
        await grant_role(session, actor, user.id, role)
    return user


async def _user_scopes(session: AsyncSession, user_id: int) -> set[str]:
    """The scopes of the roles granted to a user."""
    rows = await session.scalars(
        select(Role.scopes)
        .join(RoleGrant, RoleGrant.role_id == Role.id)
        .where(RoleGrant.user_id == user_id, Role.archived_at.is_(None))
    )
    return {scope for scopes in rows for scope in scopes}


async def _require_holding_user(session: AsyncSession, actor: Actor, user: User) -> None:
    """Whoever sets a user's password or e-mail can sign in as them: only an actor holding
    every scope of that user may."""
    scopes = await _user_scopes(session, user.id)
    _require_holding(actor, scopes, "id", f"User {user.email}")


async def update_user(
    session: AsyncSession,
    actor: Actor,
    user_id: int,
    expected_version: int | None,
    changes: dict[str, Any],
) -> User:
    user: User = await writes.load_for_update(session, USER, user_id, expected_version)
    await _require_holding_user(session, actor, user)
    principals_changed(session)  # the e-mail external tokens map by
    updated: User = await writes.update(session, actor, USER, user_id, expected_version, changes)
    return updated


async def set_password(session: AsyncSession, actor: Actor, user_id: int, password: str) -> User:
    _check_password(password)
    user: User = await writes.load_for_update(session, USER, user_id, None)
    await _require_holding_user(session, actor, user)
    user.password_hash = await hash_secret_off_loop(password)
    # A new password ends every session opened with the old one.
    user.tokens_valid_after = datetime.now(UTC)
    principals_changed(session)
    await writes.bump_version(session, USER, user)
    await audit.record(session, actor, "User", user.id, AuditAction.UPDATE, {"password": "changed"})
    return user


async def set_user_active(session: AsyncSession, actor: Actor, user_id: int, active: bool) -> User:
    return await _set_active(session, actor, USER, user_id, active)


async def set_client_active(
    session: AsyncSession, actor: Actor, client_id: int, active: bool
) -> OAuthClient:
    return await _set_active(session, actor, CLIENT, client_id, active)


async def _set_active(
    session: AsyncSession, actor: Actor, spec: EntitySpec, entity_id: int, active: bool
) -> Any:
    """Disabling takes effect at the caller's next request: tokens issued before now fail."""
    entity = await writes.load_for_update(session, spec, entity_id, None)
    if entity.is_active == active:
        return entity
    entity.is_active = active
    if not active:
        entity.tokens_valid_after = datetime.now(UTC)
    principals_changed(session)
    await writes.bump_version(session, spec, entity)
    await audit.record(
        session,
        actor,
        spec.name,
        entity.id,
        AuditAction.UPDATE,
        audit.diff(
            {"is_active": not active},
            {"is_active": active},
            version=(entity.version - 1, entity.version),
        ),
    )
    return entity


async def _role(session: AsyncSession, name: str) -> Role:
    role = await session.scalar(select(Role).where(Role.name == name, Role.archived_at.is_(None)))
    if role is None:
        raise Refused(UserError("role", "NOT_FOUND", f"No role named {name!r}."))
    return role


async def create_role(session: AsyncSession, actor: Actor, values: dict[str, Any]) -> Role:
    _require_granting(actor, values.get("scopes") or ())
    principals_changed(session)  # external issuers' groups may map to its name
    role: Role = await writes.create(session, actor, ROLE, values)
    return role


async def update_role(
    session: AsyncSession,
    actor: Actor,
    role_id: int,
    expected_version: int | None,
    changes: dict[str, Any],
) -> Role:
    # A role that carries more than the actor stays out of its reach (its users would
    # feel any change), and the new scopes must be held too.
    updated: Role = await _update_scoped(
        session, actor, ROLE, role_id, expected_version, changes, lambda r: f"Role {r.name!r}"
    )
    return updated


async def _update_scoped(
    session: AsyncSession,
    actor: Actor,
    spec: EntitySpec,
    entity_id: int,
    expected_version: int | None,
    changes: dict[str, Any],
    describe: Callable[[Any], str],
) -> Any:
    """Update a role or client, which carry scopes: only an actor holding all of them,
    and any new ones, may."""
    entity = await writes.load_for_update(session, spec, entity_id, expected_version)
    _require_holding(actor, entity.scopes, "id", describe(entity))
    if changes.get("scopes") is not None:
        _require_granting(actor, changes["scopes"])
    principals_changed(session)  # its scopes bound its users' (or its own) tokens
    return await writes.update(session, actor, spec, entity_id, expected_version, changes)


async def grant_role(session: AsyncSession, actor: Actor, user_id: int, role: str) -> User:
    user: User = await writes.load_for_update(session, USER, user_id, None)
    found = await _role(session, role)
    _require_holding(actor, found.scopes, "role", f"Role {role!r}")
    granted = await session.execute(
        insert(RoleGrant)
        .values(user_id=user_id, role_id=found.id)
        .on_conflict_do_nothing()
        .returning(RoleGrant.id)
    )
    if granted.first() is not None:
        principals_changed(session)
        await audit.record(session, actor, "User", user_id, AuditAction.LINK, {"role": role})
    return user


async def revoke_role(session: AsyncSession, actor: Actor, user_id: int, role: str) -> User:
    user: User = await writes.load_for_update(session, USER, user_id, None)
    role_id = (await _role(session, role)).id
    removed = await session.execute(
        delete(RoleGrant)
        .where(RoleGrant.user_id == user_id, RoleGrant.role_id == role_id)
        .returning(RoleGrant.id)
    )
    if removed.first() is not None:
        principals_changed(session)
        await audit.record(session, actor, "User", user_id, AuditAction.UNLINK, {"role": role})
    return user


async def create_client(
    session: AsyncSession,
    actor: Actor,
    *,
    name: str,
    grant_types: list[str],
    scopes: list[str],
    redirect_uris: list[str],
    confidential: bool,
) -> tuple[OAuthClient, str | None]:
    """Register a client; returns it with its secret, shown this once (only a hash is kept)."""
    if "client_credentials" in grant_types and not confidential:
        raise Refused(
            UserError(
                "grant_types", "INVALID", "Only confidential clients may use client_credentials."
            )
        )
    _require_granting(actor, scopes)
    client: OAuthClient = await writes.create(
        session,
        actor,
        CLIENT,
        {
            "client_id": f"pg_{secrets.token_urlsafe(12)}",
            "name": name,
            "grant_types": grant_types,
            "scopes": scopes,
            "redirect_uris": redirect_uris,
        },
    )
    secret = None
    if confidential:
        secret = secrets.token_urlsafe(32)
        client.secret_hash = await hash_secret_off_loop(secret)
        await session.flush()
    return client, secret


async def update_client(
    session: AsyncSession,
    actor: Actor,
    client_id: int,
    expected_version: int | None,
    changes: dict[str, Any],
) -> OAuthClient:
    # A client that carries more than the actor stays out of its reach: a new redirect
    # URI or grant type would hand the actor that client's tokens.
    updated: OAuthClient = await _update_scoped(
        session,
        actor,
        CLIENT,
        client_id,
        expected_version,
        changes,
        lambda c: f"OAuthClient {c.client_id}",
    )
    return updated


async def rotate_client_secret(
    session: AsyncSession, actor: Actor, client_id: int
) -> tuple[OAuthClient, str]:
    client: OAuthClient = await writes.load_for_update(session, CLIENT, client_id, None)
    # The new secret is the client's tokens: only for an actor holding all it carries.
    _require_holding(actor, client.scopes, "id", f"OAuthClient {client.client_id}")
    if client.secret_hash is None:
        raise Refused(UserError("id", "INVALID", "A public client has no secret to rotate."))
    secret = secrets.token_urlsafe(32)
    client.secret_hash = await hash_secret_off_loop(secret)
    await writes.bump_version(session, CLIENT, client)
    await audit.record(
        session, actor, "OAuthClient", client.id, AuditAction.UPDATE, {"secret": "rotated"}
    )
    return client, secret


async def user_roles(session: AsyncSession, user_ids: list[int]) -> dict[int, list[Role]]:
    rows = await session.execute(
        select(RoleGrant.user_id, Role)
        .join(Role, Role.id == RoleGrant.role_id)
        .where(RoleGrant.user_id.in_(user_ids))
        .order_by(Role.name)
    )
    found: dict[int, list[Role]] = {}
    for user_id, role in rows:
        found.setdefault(user_id, []).append(role)
    return found


DEMO_CLIENT_ID = "demo"


DEMO_SECRET_FILE = "demo-client-secret"


async def demo_client(session: AsyncSession, data_dir: Path) -> str:
    """The demo's service client, with every scope; returns its secret.

    The secret is kept in ``data_dir`` (readable by its owner only), so the `curl` line
    `serve --demo` prints, and any script built on it, works after a restart. A new
    secret is made when there is none yet, or when the one kept no longer matches the
    database's (another database, or the client's secret was rotated)."""
    kept = data_dir / DEMO_SECRET_FILE
    client = await session.scalar(
        select(OAuthClient).where(OAuthClient.client_id == DEMO_CLIENT_ID)
    )
    secret = await asyncio.to_thread(_read_kept, kept)
    if secret and client is not None and await verify_secret_off_loop(client.secret_hash, secret):
        return secret
    secret = secrets.token_urlsafe(24)
    if client is None:
        client = OAuthClient(
            client_id=DEMO_CLIENT_ID,
            name="Demo explorer",
            grant_types=["client_credentials"],
            scopes=sorted(KNOWN_SCOPES),
        )
        session.add(client)
    client.secret_hash = await hash_secret_off_loop(secret)
    await session.flush()
    await asyncio.to_thread(_keep, kept, secret)
    return secret


def _read_kept(kept: Path) -> str:
    return kept.read_text().strip() if kept.is_file() else ""


def _keep(kept: Path, secret: str) -> None:
    kept.parent.mkdir(parents=True, exist_ok=True)
    kept.touch(mode=0o600)
    kept.chmod(0o600)  # touch keeps the mode of a file that was there
    kept.write_text(secret + "\n")


DASHBOARD_CLIENT_ID = "dashboard"
# What the dashboard reads; a user gets only those their roles allow (no finance:read:
# no cost column).
DASHBOARD_SCOPES = ("finance:read", "portfolio:read")


async def dashboard_client(
    session: AsyncSession, actor: Actor, redirect_uris: Iterable[str]
) -> OAuthClient:
    """The dashboard's public client (authorization code + PKCE, rotating refresh tokens,
    no secret), created when missing; ``redirect_uris`` (the page's address on each
    origin it is served from) are added to those it has. Audited, and checked as every
    client is: an address the authorization endpoint would not redirect to is refused."""
    wanted = list(dict.fromkeys(redirect_uris))
    client = await session.scalar(
        select(OAuthClient).where(OAuthClient.client_id == DASHBOARD_CLIENT_ID)
    )
    if client is None:
        _require_granting(actor, DASHBOARD_SCOPES)
        created: OAuthClient = await writes.create(
            session,
            actor,
            CLIENT,
            {
                "client_id": DASHBOARD_CLIENT_ID,
                "name": "KPI dashboard",
                "grant_types": ["authorization_code", "refresh_token"],
                "scopes": list(DASHBOARD_SCOPES),
                "redirect_uris": wanted,
            },
        )
        return created
    added = [uri for uri in wanted if uri not in client.redirect_uris]
    return await update_client(
        session, actor, client.id, None, {"redirect_uris": [*client.redirect_uris, *added]}
    )
