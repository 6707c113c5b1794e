"""OAuth protocol details (issue #16, finding 11): redirect URIs with a fragment,
access tokens of a refresh-token family revoked for reuse, and who may introspect
which token."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from authlib.integrations.base_client import OAuthError
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.applications import Starlette

from auth.passwords import hash_secret
from domain import models
from tests import test_authorization_server as oauth
from tests.conftest import GraphQL
from tests.fixtures.auth import ALL_SCOPES

# The authorization server's fixtures: a production app, a service "svc", a public
# frontend "board" with refresh tokens, and the user ada (role viewer).
server = oauth.server
accounts = oauth.accounts

ERRORS = "userErrors { field code message }"
FRAGMENT = "https://app.example/callback#section"
INTROSPECT = "/oauth/introspect"


def fragment_refused(uri: str = FRAGMENT) -> dict[str, str]:
    return {
        "field": "redirectUris",
        "code": "INVALID",
        "message": f"Redirect URI {uri!r} must not contain a fragment (#).",
    }


async def test_registration_refuses_a_redirect_uri_with_a_fragment(caller: Any) -> None:
    admin: GraphQL = await caller(ALL_SCOPES)
    created = await admin.data(
        f"""mutation($uris: [String!]!) {{ createOAuthClient(input: {{name: "SPA",
              confidential: false, grantTypes: ["authorization_code"],
              scopes: ["portfolio:read"], redirectUris: $uris}}) {{ client {{ id }} {ERRORS} }} }}""",
        {"uris": [FRAGMENT]},
    )
    assert created["createOAuthClient"] == {"client": None, "userErrors": [fragment_refused()]}

    good = await admin.data(
        f"""mutation {{ createOAuthClient(input: {{name: "SPA", confidential: false,
              grantTypes: ["authorization_code"], scopes: ["portfolio:read"],
              redirectUris: ["https://app.example/callback"]}}) {{ client {{ id }} {ERRORS} }} }}"""
    )
    client_id = good["createOAuthClient"]["client"]["id"]
    updated = await admin.data(
        f"""mutation($id: ID!, $uris: [String!]!) {{ updateOAuthClient(input: {{id: $id,
              redirectUris: $uris}}) {{ client {{ redirectUris }} {ERRORS} }} }}""",
        {"id": client_id, "uris": ["https://app.example/callback", "https://app.example/#x"]},
    )
    assert updated["updateOAuthClient"] == {
        "client": None,
        "userErrors": [fragment_refused("https://app.example/#x")],
    }


async def test_authorize_refuses_a_registered_redirect_uri_with_a_fragment(
    server: Starlette, db: AsyncSession
) -> None:
    """A client registered before the rule (written to the table directly): the code is
    never sent to that address."""
    db.add(
        models.OAuthClient(
            client_id="legacy",
            name="Legacy SPA",
            grant_types=["authorization_code"],
            scopes=["portfolio:read"],
            redirect_uris=[FRAGMENT],
        )
    )
    await db.commit()
    async with oauth.browser(server) as browser:
        page = await browser.get(
            "/oauth/authorize",
            params={
                "client_id": "legacy",
                "redirect_uri": FRAGMENT,
                "response_type": "code",
                "code_challenge": "x" * 43,
                "code_challenge_method": "S256",
                "state": "s1",
            },
        )
    assert page.status_code == 400
    assert "location" not in page.headers
    assert (
        "Redirect URI &#x27;https://app.example/callback#section&#x27; must not contain a "
        "fragment (#)." in page.text
    )


@pytest.mark.parametrize("where", ["client_id", "redirect_uri", "state", "email"])
async def test_authorize_refuses_a_nul_in_any_parameter(server: Starlette, where: str) -> None:
    """PostgreSQL cannot hold NUL in text: a client looked up by it failed in the database
    (an internal error). Query and form alike, before any lookup."""
    params = {
        "client_id": "board",
        "redirect_uri": "http://127.0.0.1:9999/callback",
        "response_type": "code",
        "code_challenge": "x" * 43,
        "code_challenge_method": "S256",
        "state": "s1",
    }
    form = {"email": "ada@example.com", "password": "p" * 12}
    if where in params:
        params[where] = "a\x00b"
    else:
        form[where] = "a\x00b@example.com"
    async with oauth.browser(server) as browser:
        pages = [await browser.get("/oauth/authorize", params=params)]
        if where == "email":
            pages = [await browser.post("/oauth/authorize", params=params, data=form)]
    for page in pages:
        assert page.status_code == 400
        assert "location" not in page.headers
        assert "A parameter contains a NUL character." in page.text


async def viewer(app: Starlette, access_token: str) -> httpx.Response:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url=oauth.BASE,
        headers={"Authorization": f"Bearer {access_token}"},
    ) as client:
        return await client.post("/graphql", json={"query": "{ viewer { scopes } }"})


async def test_access_tokens_die_with_their_refresh_family(
    server: Starlette, accounts: dict[str, Any]
) -> None:
    client, first = await oauth.authorize(server, scope="portfolio:read")
    second = await client.refresh_token(oauth.TOKEN_URL, refresh_token=first["refresh_token"])
    for token in (first, second):
        served = await viewer(server, token["access_token"])
        assert served.status_code == 200, served.text
    # Another sign-in of the same user: a family of its own.
    other_client, other = await oauth.authorize(server, scope="portfolio:read")

    with pytest.raises(OAuthError) as reused:
        await client.refresh_token(oauth.TOKEN_URL, refresh_token=first["refresh_token"])
    assert reused.value.description == "This refresh token was already used."
    for token in (first, second):
        refused = await viewer(server, token["access_token"])
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"] == (
            'Bearer realm="portfolio-graph", error="invalid_token", '
            'error_description="The token has been revoked."'
        )
        assert refused.json()["errors"] == [
            {"message": "The token has been revoked.", "extensions": {"code": "UNAUTHENTICATED"}}
        ]
    assert (await viewer(server, other["access_token"])).status_code == 200
    await client.aclose()
    await other_client.aclose()


async def test_revoking_a_refresh_token_ends_its_access_tokens(
    server: Starlette, accounts: dict[str, Any]
) -> None:
    """RFC 7009 §2.1: revoking the grant's refresh token also ends the access tokens
    minted from it; a client credentials token has no family and is unaffected."""
    client, signed_in = await oauth.authorize(server, scope="portfolio:read")
    await client.aclose()
    service = await client_token(server, ("svc", "svc-secret"))
    async with oauth.browser(server) as browser:
        revoked = await browser.post(
            "/oauth/revoke", data={"client_id": "board", "token": signed_in["refresh_token"]}
        )
    assert revoked.status_code == 200
    refused = await viewer(server, signed_in["access_token"])
    assert refused.status_code == 401
    assert refused.json()["errors"][0]["message"] == "The token has been revoked."
    assert (await viewer(server, service)).status_code == 200


@pytest.fixture
async def more_clients(db: AsyncSession, accounts: dict[str, Any]) -> None:
    """Another service, and a resource server allowed to introspect every token."""
    db.add_all(
        [
            models.OAuthClient(
                client_id="svc2",
                name="Other service",
                secret_hash=hash_secret("svc2-secret"),
                grant_types=["client_credentials"],
                scopes=["portfolio:read"],
            ),
            models.OAuthClient(
                client_id="gateway",
                name="API gateway",
                secret_hash=hash_secret("gateway-secret"),
                grant_types=["client_credentials"],
                scopes=["tokens:introspect"],
            ),
        ]
    )
    await db.commit()


async def introspect(app: Starlette, who: tuple[str, str], token: str) -> dict[str, Any]:
    async with oauth.browser(app) as client:
        response = await client.post(INTROSPECT, data={"token": token}, auth=who)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body: dict[str, Any] = response.json()
    return body


async def client_token(app: Starlette, who: tuple[str, str]) -> str:
    async with oauth.browser(app) as client:
        response = await client.post(
            "/oauth/token", data={"grant_type": "client_credentials"}, auth=who
        )
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


async def test_introspection_answers_only_for_the_callers_own_tokens(
    server: Starlette, more_clients: None
) -> None:
    svc, svc2, gateway = (
        ("svc", "svc-secret"),
        ("svc2", "svc2-secret"),
        ("gateway", "gateway-secret"),
    )
    own = await client_token(server, svc)
    foreign = await client_token(server, svc2)
    board, signed_in = await oauth.authorize(server, scope="portfolio:read")
    await board.aclose()

    mine = await introspect(server, svc, own)
    assert mine["active"] is True and mine["client_id"] == "svc"
    # Another client's access token, or a frontend's refresh token: nothing is told.
    assert await introspect(server, svc, foreign) == {"active": False}
    assert await introspect(server, svc, signed_in["access_token"]) == {"active": False}
    assert await introspect(server, svc, signed_in["refresh_token"]) == {"active": False}

    # A resource server (tokens:introspect) is told about every token presented to it.
    seen = await introspect(server, gateway, foreign)
    assert seen["active"] is True and seen["client_id"] == "svc2"
    assert seen["scope"] == "portfolio:read"
    user = await introspect(server, gateway, signed_in["access_token"])
    assert user["active"] is True and user["username"] == "ada@example.com"
    refresh = await introspect(server, gateway, signed_in["refresh_token"])
    assert refresh["active"] is True and refresh["token_type"] == "refresh_token"
