"""Tokens of an external OpenID provider get a local account's roles by e-mail only when
the issuer is configured for it and the token says the address is verified. A fake
provider serves discovery and its JWKS over HTTP (ASGI); tokens are real signed JWTs."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from api.app import assemble_app
from auth.external import ExternalIssuers
from domain.settings import ExternalIssuer
from tests.conftest import GraphQL, make_client, settings_for
from tests.fixtures.auth import user_with_roles

ISSUER = "https://login.example.org"
KEY = RSAKey.generate_key(2048, parameters={"kid": "ext-1"}, private=True)
VIEWER = "{ viewer { scopes user { email } } }"

Ask = Callable[..., Awaitable[dict[str, Any]]]


def provider() -> Starlette:
    async def discovery(request: Request) -> JSONResponse:
        return JSONResponse({"issuer": ISSUER, "jwks_uri": f"{ISSUER}/keys"})

    async def jwks(request: Request) -> JSONResponse:
        return JSONResponse({"keys": [KEY.as_dict(private=False)]})

    return Starlette(
        routes=[Route("/.well-known/openid-configuration", discovery), Route("/keys", jwks)]
    )


def bearer(**claims: Any) -> dict[str, str]:
    now = int(time.time())
    body = {
        "iss": ISSUER,
        "sub": "ext-user",
        "aud": "portfolio-graph",
        "iat": now,
        "exp": now + 300,
        "scope": "portfolio:read finance:read admin:users",
        **claims,
    }
    return {"Authorization": f"Bearer {jwt.encode({'alg': 'RS256', 'kid': KEY.kid}, body, KEY)}"}


@pytest.fixture
async def ask(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> AsyncIterator[Ask]:
    """``await ask(map_roles_by_email=..., **claims)``: the viewer as the API sees a token
    of the external issuer, configured so, with those claims."""
    clients: list[httpx.AsyncClient] = []

    async def run(*, map_roles_by_email: bool | None = None, **claims: Any) -> dict[str, Any]:
        config = ExternalIssuer(issuer=ISSUER, role_mapping={"pg-viewers": "viewer"})
        if map_roles_by_email is not None:  # else the default
            config = config.model_copy(update={"map_roles_by_email": map_roles_by_email})
        app = assemble_app(
            settings_for(environment="production", external_issuers=[config]), engine, sessions
        )
        http = httpx.AsyncClient(transport=httpx.ASGITransport(app=provider()))
        app.state.auth.external = app.state.auth.tokens.external = ExternalIssuers([config], http)
        client = make_client(engine, sessions, app=app, headers=bearer(**claims))
        clients.extend([client, http])
        viewer: dict[str, Any] = (await GraphQL(client).data(VIEWER))["viewer"]
        return viewer

    yield run
    for client in clients:
        await client.aclose()


async def admin_email(db: AsyncSession) -> str:
    user = await user_with_roles(db, "admin")
    await db.commit()
    return user.email


async def test_an_admins_email_gives_nothing_by_default(ask: Ask, db: AsyncSession) -> None:
    email = await admin_email(db)
    viewer = await ask(email=email, email_verified=True)
    assert viewer == {"scopes": [], "user": None}


async def test_mapping_needs_a_verified_email(ask: Ask, db: AsyncSession) -> None:
    email = await admin_email(db)
    for claims in ({}, {"email_verified": False}, {"email_verified": "true"}):
        viewer = await ask(map_roles_by_email=True, email=email, **claims)
        assert viewer == {"scopes": [], "user": None}, claims


async def test_an_issuer_allowed_to_map_by_email_with_a_verified_address(
    ask: Ask, db: AsyncSession
) -> None:
    email = await admin_email(db)
    viewer = await ask(map_roles_by_email=True, email=email.upper(), email_verified=True)
    # The token's scopes within the admin's roles.
    assert viewer == {
        "scopes": ["admin:users", "finance:read", "portfolio:read"],
        "user": {"email": email},
    }
    explicit_off = await ask(map_roles_by_email=False, email=email, email_verified=True)
    assert explicit_off == {"scopes": [], "user": None}


async def test_groups_map_whatever_the_email(ask: Ask, db: AsyncSession) -> None:
    email = await admin_email(db)
    viewer = await ask(email=email, email_verified=True, groups=["pg-viewers"])
    assert viewer == {"scopes": ["portfolio:read"], "user": None}
