"""Administration over GraphQL: users, roles, grants, OAuth clients, and the viewer."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from auth.passwords import verify_secret
from domain import models
from schema.ids import encode_id
from tests.conftest import GraphQL
from tests.fixtures.auth import ALL_SCOPES, bearer, user_with_roles
from tests.test_tokens import assert_invalid, post

ERRORS = "userErrors { field code message }"


async def admin(caller: Any) -> GraphQL:
    # Every scope: an administrator grants only what they hold (tests/test_scope_escalation.py).
    return await caller(ALL_SCOPES)


async def test_create_user_with_roles_and_list(caller: Any, db: AsyncSession) -> None:
    api = await admin(caller)
    created = await api.data(
        f"""mutation {{ createUser(input: {{email: "Ada@Example.com", displayName: "Ada",
              password: "correct horse battery", roles: ["viewer", "finance"]}})
            {{ user {{ id email isActive roles {{ name scopes }} }} {ERRORS} }} }}"""
    )
    user = created["createUser"]["user"]
    assert created["createUser"]["userErrors"] == []
    assert user["email"] == "ada@example.com"
    assert [r["name"] for r in user["roles"]] == ["finance", "viewer"]
    stored = await db.scalar(select(models.User).where(models.User.email == "ada@example.com"))
    assert stored is not None and verify_secret(stored.password_hash, "correct horse battery")
    listed = await api.data(
        '{ users(filter: {roles: ["finance"], search: "ada"}) { nodes { email } } }'
    )
    assert listed["users"]["nodes"] == [{"email": "ada@example.com"}]


async def test_user_input_errors(caller: Any) -> None:
    api = await admin(caller)
    result = await api.data(
        f"""mutation {{ createUser(input: {{email: "not-an-email", displayName: " ",
              password: "short", roles: []}}) {{ user {{ id }} {ERRORS} }} }}"""
    )
    assert result["createUser"] == {
        "user": None,
        "userErrors": [
            {
                "field": "password",
                "code": "INVALID",
                "message": "`password` must have at least 12 characters.",
            }
        ],
    }
    result = await api.data(
        f"""mutation {{ createUser(input: {{email: "not-an-email", displayName: " "}})
            {{ user {{ id }} {ERRORS} }} }}"""
    )
    assert {e["field"] for e in result["createUser"]["userErrors"]} == {"email", "displayName"}
    unknown_role = await api.data(
        f"""mutation {{ createUser(input: {{email: "x@example.com", displayName: "X",
              roles: ["wizard"]}}) {{ user {{ id }} {ERRORS} }} }}"""
    )
    assert unknown_role["createUser"]["userErrors"] == [
        {"field": "role", "code": "NOT_FOUND", "message": "No role named 'wizard'."}
    ]


async def test_disabling_a_user_ends_their_tokens(app: Any, caller: Any, db: AsyncSession) -> None:
    user = await user_with_roles(db, "admin")
    headers = await bearer(app, db, ["portfolio:read"], user=user)
    assert (await post(app, headers)).status_code == 200
    api = await admin(caller)
    result = await api.data(
        f"""mutation($id: ID!) {{ setUserActive(input: {{id: $id, active: false}})
            {{ user {{ isActive }} {ERRORS} }} }}""",
        {"id": encode_id("User", user.id)},
    )
    assert result["setUserActive"] == {"user": {"isActive": False}, "userErrors": []}
    assert_invalid(await post(app, headers), "The user of this token is disabled.")


async def test_grant_and_revoke_roles_change_effective_scopes(
    app: Any, caller: Any, db: AsyncSession
) -> None:
    user = await user_with_roles(db, "viewer")
    headers = await bearer(app, db, ["portfolio:read", "finance:read"], user=user)
    assert (await post(app, headers)).json()["data"]["viewer"]["scopes"] == ["portfolio:read"]
    api = await admin(caller)
    user_id = encode_id("User", user.id)
    for _ in range(2):  # granting twice is a no-op
        granted = await api.data(
            f"""mutation($id: ID!) {{ grantRole(input: {{userId: $id, role: "finance"}})
                {{ user {{ roles {{ name }} }} {ERRORS} }} }}""",
            {"id": user_id},
        )
        assert granted["grantRole"]["user"]["roles"] == [{"name": "finance"}, {"name": "viewer"}]
    scopes = (await post(app, headers)).json()["data"]["viewer"]["scopes"]
    assert scopes == ["finance:read", "portfolio:read"]
    await api.data(
        'mutation($id: ID!) { revokeRole(input: {userId: $id, role: "finance"}) { user { id } } }',
        {"id": user_id},
    )
    assert (await post(app, headers)).json()["data"]["viewer"]["scopes"] == ["portfolio:read"]


async def test_roles_are_validated(caller: Any) -> None:
    api = await admin(caller)
    result = await api.data(
        f"""mutation {{ createRole(input: {{name: "Bad Name", scopes: ["portfolio:read", "root"]}})
            {{ role {{ id }} {ERRORS} }} }}"""
    )
    assert result["createRole"]["userErrors"] == [
        {"field": "scopes", "code": "INVALID", "message": "Unknown scopes: root."},
        {
            "field": "name",
            "code": "INVALID",
            "message": "`name` must be 2 to 64 lower-case letters, digits or dashes, starting "
            "with a letter.",
        },
    ]
    built_in = await api.data("{ roles(first: 10) { nodes { name scopes } } }")
    names = [r["name"] for r in built_in["roles"]["nodes"]]
    assert names == sorted(
        ["admin", "engineering-lead", "finance", "integration", "product-manager", "viewer"]
    )


async def test_clients_secret_shown_once_rotated_and_disabled(
    caller: Any, db: AsyncSession
) -> None:
    api = await admin(caller)
    created = await api.data(
        f"""mutation {{ createOAuthClient(input: {{name: "Jira sync",
              grantTypes: ["client_credentials"], scopes: ["portfolio:read", "kpis:ingest"]}})
            {{ client {{ id clientId isConfidential isActive scopes }} clientSecret {ERRORS} }} }}"""
    )
    payload = created["createOAuthClient"]
    assert payload["userErrors"] == []
    client, secret = payload["client"], payload["clientSecret"]
    assert client["isConfidential"] is True and len(secret) >= 40
    stored = await db.scalar(
        select(models.OAuthClient).where(models.OAuthClient.client_id == client["clientId"])
    )
    assert stored is not None and stored.secret_hash != secret
    assert verify_secret(stored.secret_hash, secret)
    # The secret never appears in any read.
    listed = await api("{ oauthClients { nodes { clientId } } }")
    assert secret not in str(listed)

    rotated = await api.data(
        """mutation($id: ID!) { rotateOAuthClientSecret(input: {id: $id}) { clientSecret } }""",
        {"id": client["id"]},
    )
    new_secret = rotated["rotateOAuthClientSecret"]["clientSecret"]
    await db.refresh(stored)
    assert verify_secret(stored.secret_hash, new_secret)
    assert not verify_secret(stored.secret_hash, secret)

    disabled = await api.data(
        """mutation($id: ID!) { setOAuthClientActive(input: {id: $id, active: false})
           { client { isActive } } }""",
        {"id": client["id"]},
    )
    assert disabled["setOAuthClientActive"]["client"] == {"isActive": False}


async def test_client_registration_rules(caller: Any) -> None:
    api = await admin(caller)
    result = await api.data(
        f"""mutation {{ createOAuthClient(input: {{name: "SPA", confidential: false,
              grantTypes: ["client_credentials", "implicit"], scopes: ["portfolio:read"],
              redirectUris: ["http://evil.example/cb"]}}) {{ client {{ id }} {ERRORS} }} }}"""
    )
    assert result["createOAuthClient"]["userErrors"] == [
        {
            "field": "grantTypes",
            "code": "INVALID",
            "message": "Only confidential clients may use client_credentials.",
        }
    ]
    result = await api.data(
        f"""mutation {{ createOAuthClient(input: {{name: "SPA", confidential: false,
              grantTypes: ["authorization_code", "implicit"], scopes: ["portfolio:read"],
              redirectUris: ["http://evil.example/cb"]}}) {{ client {{ id }} {ERRORS} }} }}"""
    )
    assert result["createOAuthClient"]["userErrors"] == [
        {"field": "grantTypes", "code": "INVALID", "message": "Unknown grant types: implicit."},
        {
            "field": "redirectUris",
            "code": "INVALID",
            "message": "Redirect URI 'http://evil.example/cb' must use https (http only for "
            "localhost).",
        },
    ]


async def test_admin_fields_need_admin_scopes(caller: Any) -> None:
    reader = await caller(["portfolio:read"])
    body = await reader("{ users { totalCount } oauthClients { totalCount } viewer { scopes } }")
    assert body["data"] == {
        "users": None,
        "oauthClients": None,
        "viewer": {"scopes": ["portfolio:read"]},
    }
    assert sorted(e["extensions"]["requiredScopes"][0] for e in body["errors"]) == [
        "admin:clients",
        "admin:users",
    ]


async def test_viewer_of_a_user(app: Any, db: AsyncSession) -> None:
    user = await user_with_roles(db, "viewer")
    headers = await bearer(app, db, ["portfolio:read"], user=user)
    from tests.conftest import make_client

    async with make_client(None, None, app=app, headers=headers) as client:  # type: ignore[arg-type]
        data = await GraphQL(client).data(
            "{ viewer { authenticated scopes user { email } client { clientId } } }"
        )
    assert data["viewer"]["authenticated"] is True
    assert data["viewer"]["user"] == {"email": user.email}
    assert data["viewer"]["client"]["clientId"].startswith("test-client-")


async def test_roles_filtered_by_scope(caller: Any) -> None:
    api = await admin(caller)
    data = await api.data('{ roles(filter: {scope: "finance:read"}) { nodes { name } } }')
    assert [r["name"] for r in data["roles"]["nodes"]] == ["admin", "finance"]
