"""The built-in authorization server, driven by a real OAuth client (authlib's httpx
client) against the running ASGI app."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
from authlib.common.security import generate_token
from authlib.integrations.base_client import OAuthError
from authlib.integrations.httpx_client import AsyncOAuth2Client
from joserfc import jwt
from joserfc.jwk import KeySet
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from starlette.applications import Starlette

from api.app import assemble_app
from auth.passwords import hash_secret
from domain import models
from tests.conftest import settings_for

BASE = "http://test"
TOKEN_URL = f"{BASE}/oauth/token"
REDIRECT = "http://127.0.0.1:9999/callback"
PASSWORD = "correct horse battery staple"


@pytest.fixture
def server(engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]) -> Starlette:
    return assemble_app(
        settings_for(environment="production", issuer=BASE, login_max_failures=3),
        engine,
        sessions,
    )


@pytest.fixture
async def accounts(db: AsyncSession) -> dict[str, Any]:
    """A service client, a public frontend client and a viewer user."""
    service = models.OAuthClient(
        client_id="svc",
        name="KPI pipeline",
        secret_hash=hash_secret("svc-secret"),
        grant_types=["client_credentials"],
        scopes=["portfolio:read", "kpis:ingest"],
    )
    frontend = models.OAuthClient(
        client_id="board",
        name="Roadmap board",
        grant_types=["authorization_code", "refresh_token"],
        scopes=["portfolio:read", "finance:read"],
        redirect_uris=[REDIRECT],
    )
    user = models.User(
        email="ada@example.com", display_name="Ada", password_hash=hash_secret(PASSWORD)
    )
    db.add_all([service, frontend, user])
    await db.flush()
    viewer = await db.scalar(select(models.Role.id).where(models.Role.name == "viewer"))
    db.add(models.RoleGrant(user_id=user.id, role_id=viewer))
    await db.commit()
    return {"service": service, "frontend": frontend, "user": user}


def oauth_client(app: Starlette, **kwargs: Any) -> AsyncOAuth2Client:
    return AsyncOAuth2Client(transport=httpx.ASGITransport(app=app), base_url=BASE, **kwargs)


def browser(app: Starlette) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE)


async def sign_in(
    app: Starlette, url: str, password: str = PASSWORD, decision: str = "allow"
) -> httpx.Response:
    """Drive the login form like a browser: GET it, keep the cookie, POST it back."""
    async with browser(app) as client:
        page = await client.get(url)
        assert page.status_code == 200, page.text
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert csrf is not None
        return await client.post(
            url,
            data={
                "csrf_token": csrf.group(1),
                "email": "ada@example.com",
                "password": password,
                "decision": decision,
            },
        )


async def authorize(
    app: Starlette, scope: str = "portfolio:read finance:read"
) -> tuple[AsyncOAuth2Client, dict[str, Any]]:
    client = oauth_client(
        app, client_id="board", redirect_uri=REDIRECT, scope=scope, code_challenge_method="S256"
    )
    verifier = generate_token(48)
    url, state = client.create_authorization_url(f"{BASE}/oauth/authorize", code_verifier=verifier)
    redirected = await sign_in(app, url)
    assert redirected.status_code == 303, redirected.text
    location = redirected.headers["location"]
    assert parse_qs(urlparse(location).query)["state"] == [state]
    token = await client.fetch_token(
        TOKEN_URL, authorization_response=location, code_verifier=verifier
    )
    return client, token


async def graphql(client: httpx.AsyncClient, query: str) -> httpx.Response:
    return await client.post("/graphql", json={"query": query})


async def test_client_credentials_then_graphql(server: Starlette, accounts: dict[str, Any]) -> None:
    async with oauth_client(server, client_id="svc", client_secret="svc-secret") as client:
        token = await client.fetch_token(
            TOKEN_URL, grant_type="client_credentials", scope="portfolio:read"
        )
        assert token["token_type"] == "Bearer" and token["scope"] == "portfolio:read"
        assert "refresh_token" not in token
        response = await graphql(client, "{ viewer { scopes } products(first: 1) { totalCount } }")
    assert response.status_code == 200
    assert response.json()["data"]["viewer"]["scopes"] == ["portfolio:read"]


async def test_client_authentication_failures(
    server: Starlette, accounts: dict[str, Any], db: AsyncSession
) -> None:
    async with browser(server) as client:
        wrong = await client.post(
            "/oauth/token", data={"grant_type": "client_credentials"}, auth=("svc", "nope")
        )
        assert wrong.status_code == 401
        assert wrong.json() == {
            "error": "invalid_client",
            "error_description": "Client authentication failed.",
        }
        assert wrong.headers["www-authenticate"] == 'Basic realm="portfolio-graph"'
        assert wrong.headers["cache-control"] == "no-store"
        scope = await client.post(
            "/oauth/token",
            data={"grant_type": "client_credentials", "scope": "admin:users"},
            auth=("svc", "svc-secret"),
        )
        assert scope.json() == {
            "error": "invalid_scope",
            "error_description": "Not allowed: admin:users.",
        }
        grant = await client.post(
            "/oauth/token", data={"grant_type": "password"}, auth=("svc", "svc-secret")
        )
        assert grant.json()["error"] == "unsupported_grant_type"
        await db.execute(
            update(models.OAuthClient)
            .where(models.OAuthClient.client_id == "svc")
            .values(is_active=False)
        )
        await db.commit()
        disabled = await client.post(
            "/oauth/token", data={"grant_type": "client_credentials"}, auth=("svc", "svc-secret")
        )
        assert disabled.status_code == 401


async def test_authorization_code_with_pkce_and_role_bounded_scopes(
    server: Starlette, accounts: dict[str, Any]
) -> None:
    client, token = await authorize(server)
    # The viewer role has no finance:read: the token carries only what the roles allow.
    assert token["scope"] == "portfolio:read"
    assert "refresh_token" in token
    data = (await graphql(client, "{ viewer { user { email } scopes } }")).json()["data"]
    await client.aclose()
    assert data["viewer"] == {"user": {"email": "ada@example.com"}, "scopes": ["portfolio:read"]}


async def test_refresh_rotation_and_reuse_detection(
    server: Starlette, accounts: dict[str, Any]
) -> None:
    # authlib repeats the client's scope on refresh: ask only for what the roles grant
    # (a wider scope is refused with invalid_scope, RFC 6749 section 6).
    client, first = await authorize(server, scope="portfolio:read")
    second = await client.refresh_token(TOKEN_URL, refresh_token=first["refresh_token"])
    assert second["refresh_token"] != first["refresh_token"]
    with pytest.raises(OAuthError) as reused:
        await client.refresh_token(TOKEN_URL, refresh_token=first["refresh_token"])
    assert reused.value.error == "invalid_grant"
    assert reused.value.description == "This refresh token was already used."
    # The whole family is revoked: the newest token no longer works either.
    with pytest.raises(OAuthError) as revoked:
        await client.refresh_token(TOKEN_URL, refresh_token=second["refresh_token"])
    assert revoked.value.error == "invalid_grant"
    await client.aclose()


async def test_revocation_and_introspection(server: Starlette, accounts: dict[str, Any]) -> None:
    async with oauth_client(server, client_id="svc", client_secret="svc-secret") as client:
        token = await client.fetch_token(TOKEN_URL, grant_type="client_credentials")
        active = (
            await client.introspect_token(f"{BASE}/oauth/introspect", token=token["access_token"])
        ).json()
        assert active["active"] is True
        assert active["client_id"] == "svc" and active["sub"] == "svc"
        assert active["scope"] == "kpis:ingest portfolio:read"
        assert active["iss"] == BASE and active["token_type"] == "Bearer"
        garbage = (
            await client.introspect_token(f"{BASE}/oauth/introspect", token="garbage")
        ).json()
        assert garbage == {"active": False}

        revoked = await client.revoke_token(f"{BASE}/oauth/revoke", token=token["access_token"])
        assert revoked.status_code == 200
        after = await graphql(client, "{ viewer { scopes } }")
        assert after.status_code == 401
        assert 'error="invalid_token"' in after.headers["www-authenticate"]
        inactive = (
            await client.introspect_token(f"{BASE}/oauth/introspect", token=token["access_token"])
        ).json()
        assert inactive == {"active": False}
        unknown = await client.revoke_token(f"{BASE}/oauth/revoke", token="not-a-token")
        assert unknown.status_code == 200


async def test_metadata_and_jwks_verify_issued_tokens(
    server: Starlette, accounts: dict[str, Any]
) -> None:
    async with browser(server) as client:
        metadata = (await client.get("/.well-known/oauth-authorization-server")).json()
        assert metadata["issuer"] == BASE
        assert metadata["token_endpoint"] == f"{BASE}/oauth/token"
        assert metadata["code_challenge_methods_supported"] == ["S256"]
        assert "kpis:ingest" in metadata["scopes_supported"]
        assert (await client.get("/.well-known/openid-configuration")).json()[
            "jwks_uri"
        ] == f"{BASE}/.well-known/jwks.json"
        token = (
            await client.post(
                "/oauth/token",
                data={"grant_type": "client_credentials"},
                auth=("svc", "svc-secret"),
            )
        ).json()["access_token"]
        jwks = await client.get("/.well-known/jwks.json")
    assert jwks.headers["cache-control"] == "public, max-age=300"
    decoded = jwt.decode(token, KeySet.import_key_set(jwks.json()), algorithms=["RS256"])
    assert decoded.header["typ"] == "at+jwt"
    assert decoded.claims["client_id"] == "svc"


async def test_authorize_refuses_bad_requests(server: Starlette, accounts: dict[str, Any]) -> None:
    async with browser(server) as client:
        wrong_redirect = await client.get(
            "/oauth/authorize",
            params={
                "client_id": "board",
                "redirect_uri": "https://evil.example/cb",
                "response_type": "code",
            },
        )
        assert wrong_redirect.status_code == 400
        assert "location" not in wrong_redirect.headers
        plain = await client.get(
            "/oauth/authorize",
            params={
                "client_id": "board",
                "redirect_uri": REDIRECT,
                "response_type": "code",
                "code_challenge": "abc",
                "code_challenge_method": "plain",
                "state": "s1",
            },
        )
    assert plain.status_code == 303
    query = parse_qs(urlparse(plain.headers["location"]).query)
    assert query["error"] == ["invalid_request"]
    assert query["error_description"] == ["PKCE with code_challenge_method=S256 is required."]
    assert query["state"] == ["s1"]


async def test_csrf_and_login_throttling(
    server: Starlette, accounts: dict[str, Any], db: AsyncSession
) -> None:
    client = oauth_client(
        server,
        client_id="board",
        redirect_uri=REDIRECT,
        scope="portfolio:read",
        code_challenge_method="S256",
    )
    url, _ = client.create_authorization_url(
        f"{BASE}/oauth/authorize", code_verifier=generate_token(48)
    )
    async with browser(server) as plain:
        forged = await plain.post(
            url, data={"csrf_token": "forged", "email": "ada@example.com", "password": PASSWORD}
        )
    assert forged.status_code == 400
    assert "location" not in forged.headers
    for _ in range(3):
        failed = await sign_in(server, url, password="wrong password")
        assert failed.status_code == 401
        assert "Wrong e-mail or password." in failed.text
    throttled = await sign_in(server, url)  # even the right password is refused now
    assert throttled.status_code == 429
    assert "Too many failed sign-ins" in throttled.text
    rows = (await db.scalars(select(models.LoginThrottle))).all()
    assert {row.key for row in rows} >= {"account:ada@example.com"}
    assert max(row.failures for row in rows) == 3


async def test_codes_are_single_use_and_expire(
    server: Starlette, accounts: dict[str, Any], db: AsyncSession
) -> None:
    client = oauth_client(
        server,
        client_id="board",
        redirect_uri=REDIRECT,
        scope="portfolio:read",
        code_challenge_method="S256",
    )
    verifier = generate_token(48)
    url, _ = client.create_authorization_url(f"{BASE}/oauth/authorize", code_verifier=verifier)
    location = (await sign_in(server, url)).headers["location"]
    await client.fetch_token(TOKEN_URL, authorization_response=location, code_verifier=verifier)
    with pytest.raises(OAuthError) as reused:
        await client.fetch_token(TOKEN_URL, authorization_response=location, code_verifier=verifier)
    assert reused.value.description == "This authorization code was already used."

    url, _ = client.create_authorization_url(f"{BASE}/oauth/authorize", code_verifier=verifier)
    location = (await sign_in(server, url)).headers["location"]
    await db.execute(
        update(models.AuthorizationCode).values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
    )
    await db.commit()
    with pytest.raises(OAuthError) as expired:
        await client.fetch_token(TOKEN_URL, authorization_response=location, code_verifier=verifier)
    assert expired.value.description == "This authorization code has expired."

    url, _ = client.create_authorization_url(f"{BASE}/oauth/authorize", code_verifier=verifier)
    location = (await sign_in(server, url)).headers["location"]
    with pytest.raises(OAuthError) as wrong_verifier:
        await client.fetch_token(
            TOKEN_URL, authorization_response=location, code_verifier=generate_token(48)
        )
    assert wrong_verifier.value.description == "The PKCE code_verifier does not match."
    await client.aclose()


async def test_deny_redirects_with_access_denied(
    server: Starlette, accounts: dict[str, Any]
) -> None:
    client = oauth_client(
        server,
        client_id="board",
        redirect_uri=REDIRECT,
        scope="portfolio:read",
        code_challenge_method="S256",
    )
    url, state = client.create_authorization_url(
        f"{BASE}/oauth/authorize", code_verifier=generate_token(48)
    )
    denied = await sign_in(server, url, decision="deny")
    assert denied.status_code == 303
    assert parse_qs(urlparse(denied.headers["location"]).query) == {
        "error": ["access_denied"],
        "state": [state],
    }
    await client.aclose()


async def test_refresh_cannot_widen_scope(server: Starlette, accounts: dict[str, Any]) -> None:
    client, first = await authorize(server, scope="portfolio:read")
    async with browser(server) as plain:
        wider = await plain.post(
            "/oauth/token",
            data={
                "grant_type": "refresh_token",
                "client_id": "board",
                "refresh_token": first["refresh_token"],
                "scope": "portfolio:read finance:read",
            },
        )
    assert wider.status_code == 400
    assert wider.json() == {
        "error": "invalid_scope",
        "error_description": "Not allowed: finance:read.",
    }
    await client.aclose()
