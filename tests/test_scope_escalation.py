"""Nobody grants what they do not hold: clients, roles and grants carry only scopes the
acting principal holds, and an account that holds more than the actor stays out of its
reach (secret rotation, password, e-mail). Real tokens with limited scopes, over HTTP."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from authlib.integrations.base_client import OAuthError
from authlib.integrations.httpx_client import AsyncOAuth2Client
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.applications import Starlette

from auth import models
from auth.passwords import hash_secret, verify_secret
from schema.ids import encode_id
from tests.fixtures.auth import service_client, user_with_roles

ERRORS = "userErrors { field code message }"
CLIENT_ADMIN = ["admin:clients", "portfolio:read"]
USER_ADMIN = ["admin:users", "portfolio:read"]


def forbidden(field: str, message: str) -> list[dict[str, str]]:
    return [{"field": field, "code": "FORBIDDEN", "message": message}]


async def count(db: AsyncSession, model: Any, *where: Any) -> int:
    return await db.scalar(select(func.count()).select_from(model).where(*where)) or 0


async def fetch_token(app: Starlette, client_id: str, secret: str, scope: str) -> dict[str, Any]:
    async with AsyncOAuth2Client(
        transport=httpx.ASGITransport(app=app),
        base_url="http://test",
        client_id=client_id,
        client_secret=secret,
    ) as oauth:
        token: dict[str, Any] = await oauth.fetch_token(
            "http://test/oauth/token", grant_type="client_credentials", scope=scope
        )
        return token


async def mighty_client(db: AsyncSession) -> models.OAuthClient:
    """A confidential client carrying more than a client administrator holds."""
    client = models.OAuthClient(
        client_id="mighty",
        name="Mighty",
        secret_hash=hash_secret("mighty-secret"),
        grant_types=["client_credentials"],
        scopes=["portfolio:read", "admin:users", "finance:read"],
    )
    db.add(client)
    await db.commit()
    return client


CREATE_CLIENT = f"""mutation($scopes: [String!]!) {{ createOAuthClient(input: {{name: "Escalator",
      grantTypes: ["client_credentials"], scopes: $scopes}})
    {{ client {{ clientId scopes }} clientSecret {ERRORS} }} }}"""


async def test_a_client_admin_cannot_create_a_client_with_scopes_it_lacks(
    app: Starlette, caller: Any, db: AsyncSession
) -> None:
    api = await caller(CLIENT_ADMIN)
    refused = await api.data(
        CREATE_CLIENT, {"scopes": ["portfolio:read", "admin:users", "finance:read"]}
    )
    assert refused["createOAuthClient"] == {
        "client": None,
        "clientSecret": None,
        "userErrors": forbidden(
            "scopes", "You cannot grant scopes you do not hold: admin:users, finance:read."
        ),
    }
    # No row and no secret: there is no client to mint an escalated token for.
    assert await count(db, models.OAuthClient, models.OAuthClient.name == "Escalator") == 0

    # A subset is fine, and its token holds at most that subset.
    created = (await api.data(CREATE_CLIENT, {"scopes": ["portfolio:read"]}))["createOAuthClient"]
    assert created["userErrors"] == []
    client_id, secret = created["client"]["clientId"], created["clientSecret"]
    token = await fetch_token(app, client_id, secret, "portfolio:read")
    assert token["scope"] == "portfolio:read"
    with pytest.raises(OAuthError) as widened:
        await fetch_token(app, client_id, secret, "admin:users")
    assert widened.value.error == "invalid_scope"


async def test_a_client_admin_cannot_widen_a_client(caller: Any, db: AsyncSession) -> None:
    api = await caller(CLIENT_ADMIN)
    created = await api.data(CREATE_CLIENT, {"scopes": ["portfolio:read"]})
    client_id = created["createOAuthClient"]["client"]["clientId"]
    stored = await db.scalar(
        select(models.OAuthClient).where(models.OAuthClient.client_id == client_id)
    )
    assert stored is not None
    update = f"""mutation($id: ID!, $scopes: [String!]) {{ updateOAuthClient(input:
        {{id: $id, scopes: $scopes}}) {{ client {{ scopes }} {ERRORS} }} }}"""
    widened = await api.data(
        update, {"id": encode_id("OAuthClient", stored.id), "scopes": ["finance:read"]}
    )
    assert widened["updateOAuthClient"]["userErrors"] == forbidden(
        "scopes", "You cannot grant scopes you do not hold: finance:read."
    )
    await db.refresh(stored)
    assert (stored.scopes, stored.version) == (["portfolio:read"], 1)

    # A client carrying more than the caller cannot be touched at all: a redirect URI or
    # grant type of the caller's choosing would hand it that client's tokens.
    mighty = await mighty_client(db)
    hijack = await api.data(
        f"""mutation($id: ID!) {{ updateOAuthClient(input: {{id: $id,
              grantTypes: ["client_credentials", "authorization_code"],
              redirectUris: ["https://attacker.example/cb"]}}) {{ client {{ id }} {ERRORS} }} }}""",
        {"id": encode_id("OAuthClient", mighty.id)},
    )
    assert hijack["updateOAuthClient"]["userErrors"] == forbidden(
        "id", "OAuthClient mighty carries scopes you do not hold: admin:users, finance:read."
    )
    await db.refresh(mighty)
    assert (mighty.redirect_uris, mighty.version) == ([], 1)

    # Narrowing a client within what the caller holds works.
    own = await api.data(update, {"id": encode_id("OAuthClient", stored.id), "scopes": []})
    assert own["updateOAuthClient"] == {"client": {"scopes": []}, "userErrors": []}


async def test_a_client_admin_cannot_rotate_the_secret_of_a_mightier_client(
    app: Starlette, caller: Any, db: AsyncSession
) -> None:
    mighty = await mighty_client(db)
    api = await caller(CLIENT_ADMIN)
    rotate = f"""mutation($id: ID!) {{ rotateOAuthClientSecret(input: {{id: $id}})
        {{ clientSecret {ERRORS} }} }}"""
    refused = await api.data(rotate, {"id": encode_id("OAuthClient", mighty.id)})
    assert refused["rotateOAuthClientSecret"] == {
        "clientSecret": None,
        "userErrors": forbidden(
            "id", "OAuthClient mighty carries scopes you do not hold: admin:users, finance:read."
        ),
    }
    await db.refresh(mighty)
    assert verify_secret(mighty.secret_hash, "mighty-secret") and mighty.version == 1

    # The caller's own kind of client: rotated, and the new secret works.
    created = await api.data(CREATE_CLIENT, {"scopes": ["portfolio:read"]})
    client = created["createOAuthClient"]["client"]
    row = await db.scalar(
        select(models.OAuthClient).where(models.OAuthClient.client_id == client["clientId"])
    )
    assert row is not None
    rotated = await api.data(rotate, {"id": encode_id("OAuthClient", row.id)})
    secret = rotated["rotateOAuthClientSecret"]["clientSecret"]
    assert rotated["rotateOAuthClientSecret"]["userErrors"] == []
    token = await fetch_token(app, client["clientId"], secret, "portfolio:read")
    assert token["scope"] == "portfolio:read"


CREATE_ROLE = f"""mutation($scopes: [String!]!) {{ createRole(input: {{name: "sneaky",
      scopes: $scopes}}) {{ role {{ id name scopes }} {ERRORS} }} }}"""


async def test_a_user_admin_cannot_create_or_widen_a_role_beyond_its_scopes(
    caller: Any, db: AsyncSession
) -> None:
    api = await caller(USER_ADMIN)
    refused = await api.data(CREATE_ROLE, {"scopes": ["portfolio:read", "finance:read"]})
    assert refused["createRole"] == {
        "role": None,
        "userErrors": forbidden("scopes", "You cannot grant scopes you do not hold: finance:read."),
    }
    assert await count(db, models.Role, models.Role.name == "sneaky") == 0

    created = await api.data(CREATE_ROLE, {"scopes": ["portfolio:read", "admin:users"]})
    role = created["createRole"]["role"]
    assert created["createRole"]["userErrors"] == []
    assert role["scopes"] == ["portfolio:read", "admin:users"]

    update = f"""mutation($id: ID!, $scopes: [String!], $description: String) {{
        updateRole(input: {{id: $id, scopes: $scopes, description: $description}})
        {{ role {{ scopes description }} {ERRORS} }} }}"""
    widened = await api.data(update, {"id": role["id"], "scopes": ["admin:clients"]})
    assert widened["updateRole"]["userErrors"] == forbidden(
        "scopes", "You cannot grant scopes you do not hold: admin:clients."
    )
    stored = await db.scalar(select(models.Role).where(models.Role.name == "sneaky"))
    assert stored is not None and (stored.scopes, stored.version) == (
        ["portfolio:read", "admin:users"],
        1,
    )

    # The built-in admin role carries more than the caller: out of its reach.
    admin_role = await db.scalar(select(models.Role).where(models.Role.name == "admin"))
    assert admin_role is not None
    touched = await api.data(
        update, {"id": encode_id("Role", admin_role.id), "description": "mine now"}
    )
    assert touched["updateRole"]["userErrors"] == forbidden(
        "id",
        "Role 'admin' carries scopes you do not hold: admin:clients, admin:webhooks, audit:read, "
        "constraints:write, finance:read, glossary:write, initiatives:write, kpis:ingest, "
        "kpis:write, products:write.",
    )

    described = await api.data(update, {"id": role["id"], "description": "helpdesk"})
    assert described["updateRole"] == {
        "role": {"scopes": ["portfolio:read", "admin:users"], "description": "helpdesk"},
        "userErrors": [],
    }


async def test_a_user_admin_grants_only_roles_within_its_scopes(
    caller: Any, db: AsyncSession
) -> None:
    user = await user_with_roles(db, "viewer")
    api = await caller(USER_ADMIN)
    grant = f"""mutation($id: ID!, $role: String!) {{ grantRole(input: {{userId: $id, role: $role}})
        {{ user {{ roles {{ name }} }} {ERRORS} }} }}"""
    refused = await api.data(grant, {"id": encode_id("User", user.id), "role": "finance"})
    assert refused["grantRole"]["userErrors"] == forbidden(
        "role", "Role 'finance' carries scopes you do not hold: finance:read."
    )
    assert await count(db, models.RoleGrant, models.RoleGrant.user_id == user.id) == 1

    own = await api.data(CREATE_ROLE, {"scopes": ["portfolio:read"]})
    assert own["createRole"]["userErrors"] == []
    granted = await api.data(grant, {"id": encode_id("User", user.id), "role": "sneaky"})
    assert granted["grantRole"] == {
        "user": {"roles": [{"name": "sneaky"}, {"name": "viewer"}]},
        "userErrors": [],
    }


async def test_a_user_admin_cannot_create_a_user_with_a_mightier_role(
    caller: Any, db: AsyncSession
) -> None:
    api = await caller(USER_ADMIN)
    create = f"""mutation($roles: [String!]!) {{ createUser(input: {{email: "mole@example.com",
          displayName: "Mole", password: "correct horse battery", roles: $roles}})
        {{ user {{ email roles {{ name }} }} {ERRORS} }} }}"""
    refused = await api.data(create, {"roles": ["viewer", "admin"]})
    assert refused["createUser"]["user"] is None
    assert refused["createUser"]["userErrors"] == forbidden(
        "role",
        "Role 'admin' carries scopes you do not hold: admin:clients, admin:webhooks, audit:read, "
        "constraints:write, finance:read, glossary:write, initiatives:write, kpis:ingest, "
        "kpis:write, products:write.",
    )
    assert await count(db, models.User, models.User.email == "mole@example.com") == 0

    created = await api.data(create, {"roles": ["viewer"]})
    assert created["createUser"] == {
        "user": {"email": "mole@example.com", "roles": [{"name": "viewer"}]},
        "userErrors": [],
    }


async def test_a_user_admin_cannot_take_over_a_mightier_account(
    caller: Any, db: AsyncSession
) -> None:
    """Setting an admin's password or e-mail would let the caller sign in as them."""
    boss = await user_with_roles(db, "admin")
    boss_email, boss_hash = boss.email, boss.password_hash
    await db.commit()
    api = await caller(USER_ADMIN)
    message = (
        f"User {boss_email} carries scopes you do not hold: admin:clients, admin:webhooks, audit:read, "
        "constraints:write, finance:read, glossary:write, initiatives:write, kpis:ingest, "
        "kpis:write, products:write."
    )
    password = await api.data(
        f"""mutation($id: ID!) {{ setUserPassword(input: {{id: $id,
              password: "attacker chosen pass"}}) {{ user {{ id }} {ERRORS} }} }}""",
        {"id": encode_id("User", boss.id)},
    )
    assert password["setUserPassword"]["userErrors"] == forbidden("id", message)
    email = await api.data(
        f"""mutation($id: ID!) {{ updateUser(input: {{id: $id, email: "me@attacker.example"}})
            {{ user {{ id }} {ERRORS} }} }}""",
        {"id": encode_id("User", boss.id)},
    )
    assert email["updateUser"]["userErrors"] == forbidden("id", message)
    await db.refresh(boss)
    assert (boss.email, boss.password_hash, boss.version) == (boss_email, boss_hash, 1)

    # A viewer is within reach.
    viewer = await user_with_roles(db, "viewer")
    await db.commit()
    renamed = await api.data(
        f"""mutation($id: ID!) {{ updateUser(input: {{id: $id, email: "new@example.com"}})
            {{ user {{ email }} {ERRORS} }} }}""",
        {"id": encode_id("User", viewer.id)},
    )
    assert renamed["updateUser"] == {"user": {"email": "new@example.com"}, "userErrors": []}


async def test_the_limit_is_the_effective_scopes_not_the_roles(
    app: Starlette, caller: Any, db: AsyncSession
) -> None:
    """An admin user acting through a token scoped to admin:clients grants no more."""
    admin_user = await user_with_roles(db, "admin")
    await db.commit()
    api = await caller(["admin:clients"], user=admin_user)
    refused = await api.data(CREATE_CLIENT, {"scopes": ["portfolio:read"]})
    assert refused["createOAuthClient"]["userErrors"] == forbidden(
        "scopes", "You cannot grant scopes you do not hold: portfolio:read."
    )
    # A service client registered with fewer scopes than its token asks for: the same.
    narrow = await service_client(db, ["admin:clients"])
    await db.commit()
    token, _ = await app.state.auth.tokens.issue(
        client_id=narrow.client_id, user_id=None, scopes={"admin:clients", "finance:read"}
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://test",
        headers={"Authorization": f"Bearer {token}"},
    ) as http:
        response = await http.post(
            "/graphql", json={"query": CREATE_CLIENT, "variables": {"scopes": ["finance:read"]}}
        )
    assert response.json()["data"]["createOAuthClient"]["userErrors"] == forbidden(
        "scopes", "You cannot grant scopes you do not hold: finance:read."
    )
