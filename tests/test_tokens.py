"""Bearer tokens at the resource server: what is accepted, what is refused and why."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from auth.external import ExternalIssuers
from auth.tokens import VERIFIED_FOR_SECONDS, InvalidToken, TokenService
from domain import models
from domain.settings import ExternalIssuer
from tests.conftest import GraphQL, make_client, settings_for
from tests.fixtures.auth import bearer, service_client, user_with_roles

QUERY = "{ viewer { authenticated scopes } products(first: 1) { totalCount } }"


async def post(app: Starlette, headers: dict[str, str]) -> httpx.Response:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test", headers=headers
    ) as client:
        return await client.post("/graphql", json={"query": QUERY})


def assert_invalid(response: httpx.Response, description: str) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"] == (
        f'Bearer realm="portfolio-graph", error="invalid_token", error_description="{description}"'
    )
    assert response.json() == {
        "errors": [{"message": description, "extensions": {"code": "UNAUTHENTICATED"}}]
    }


def claims_for(app: Starlette, client_id: str, **overrides: Any) -> dict[str, Any]:
    settings = app.state.settings
    now = int(time.time())
    return {
        "iss": settings.issuer,
        "sub": client_id,
        "aud": settings.audience,
        "client_id": client_id,
        "scope": "portfolio:read",
        "iat": now,
        "nbf": now,
        "exp": now + 300,
        "jti": f"jti-{now}-{client_id}",
        **overrides,
    }


async def signed(app: Starlette, claims: dict[str, Any], **header: Any) -> str:
    key = await app.state.auth.keys.signing_key()
    return jwt.encode({"alg": "RS256", "kid": key.kid, "typ": "at+jwt", **header}, claims, key.key)


async def test_a_valid_service_token_reads(app: Starlette, db: AsyncSession) -> None:
    response = await post(app, await bearer(app, db, ["portfolio:read", "finance:read"]))
    assert response.status_code == 200
    data = response.json()["data"]
    assert data["viewer"] == {"authenticated": True, "scopes": ["finance:read", "portfolio:read"]}
    assert data["products"]["totalCount"] >= 1


async def test_effective_scopes_are_token_scopes_within_the_client_registration(
    app: Starlette, db: AsyncSession
) -> None:
    client = await service_client(db, scopes=["portfolio:read"])
    await db.commit()
    token, _ = await app.state.auth.tokens.issue(
        client_id=client.client_id, user_id=None, scopes={"portfolio:read", "admin:users"}
    )
    response = await post(app, {"Authorization": f"Bearer {token}"})
    assert response.json()["data"]["viewer"]["scopes"] == ["portfolio:read"]


async def test_user_scopes_are_bounded_by_roles(app: Starlette, db: AsyncSession) -> None:
    user = await user_with_roles(db, "viewer")
    response = await post(app, await bearer(app, db, ["portfolio:read", "finance:read"], user=user))
    assert response.json()["data"]["viewer"]["scopes"] == ["portfolio:read"]


@pytest.mark.parametrize(
    ("overrides", "description"),
    [
        ({"exp": int(time.time()) - 120}, "The token has expired."),
        ({"aud": "someone-else"}, "The token's claims are not valid here."),
        ({"nbf": int(time.time()) + 3600}, "The token's claims are not valid here."),
    ],
)
async def test_claims_are_checked(
    app: Starlette, db: AsyncSession, overrides: dict[str, Any], description: str
) -> None:
    client = await service_client(db)
    await db.commit()
    token = await signed(app, claims_for(app, client.client_id, **overrides))
    assert_invalid(await post(app, {"Authorization": f"Bearer {token}"}), description)


async def test_small_clock_skew_is_tolerated(app: Starlette, db: AsyncSession) -> None:
    client = await service_client(db)
    await db.commit()
    token = await signed(app, claims_for(app, client.client_id, exp=int(time.time()) - 10))
    assert (await post(app, {"Authorization": f"Bearer {token}"})).status_code == 200


async def test_wrong_issuer(app: Starlette, db: AsyncSession) -> None:
    client = await service_client(db)
    await db.commit()
    token = await signed(app, claims_for(app, client.client_id, iss="https://evil.example"))
    assert_invalid(
        await post(app, {"Authorization": f"Bearer {token}"}),
        "The token was not issued by a trusted issuer.",
    )


async def test_tampered_payload(app: Starlette, db: AsyncSession) -> None:
    token = (await bearer(app, db, ["portfolio:read"]))["Authorization"].split()[1]
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["scope"] = "portfolio:read admin:users"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    assert_invalid(
        await post(app, {"Authorization": f"Bearer {header}.{forged}.{signature}"}),
        "The token's signature is invalid.",
    )


async def test_alg_none_is_refused(app: Starlette, db: AsyncSession) -> None:
    client = await service_client(db)
    await db.commit()

    def b64(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")

    token = f"{b64({'alg': 'none', 'typ': 'at+jwt'})}.{b64(claims_for(app, client.client_id))}."
    assert_invalid(
        await post(app, {"Authorization": f"Bearer {token}"}),
        "The token's signing algorithm is not accepted.",
    )


async def test_hs256_signed_with_the_public_key_is_refused(
    app: Starlette, db: AsyncSession
) -> None:
    client = await service_client(db)
    await db.commit()
    await app.state.auth.keys.signing_key()  # make sure a key exists
    public = (await app.state.auth.keys.jwks())["keys"][0]
    pem = RSAKey.import_key(public).as_pem(private=False)

    def b64(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    # The classic confusion attack: HMAC keyed with the server's public key.
    signing_input = ".".join(
        b64(json.dumps(part).encode())
        for part in (
            {"alg": "HS256", "kid": public["kid"], "typ": "at+jwt"},
            claims_for(app, client.client_id),
        )
    )
    mac = hmac.new(pem, signing_input.encode(), hashlib.sha256).digest()
    token = f"{signing_input}.{b64(mac)}"
    assert_invalid(
        await post(app, {"Authorization": f"Bearer {token}"}),
        "The token's signing algorithm is not accepted.",
    )


async def test_id_token_typ_is_not_an_access_token(app: Starlette, db: AsyncSession) -> None:
    client = await service_client(db)
    await db.commit()
    token = await signed(app, claims_for(app, client.client_id), typ="JWT")
    assert_invalid(
        await post(app, {"Authorization": f"Bearer {token}"}),
        "Not an access token (typ must be at+jwt).",
    )


@pytest.mark.parametrize(
    ("authorization", "description"),
    [
        ("Bearer not-a-jwt", "The token is malformed."),
        ("Basic dXNlcjpwYXNz", "Use the Authorization: Bearer <access token> scheme."),
        ("Bearer ", "Use the Authorization: Bearer <access token> scheme."),
    ],
)
async def test_malformed_authorization(
    app: Starlette, authorization: str, description: str
) -> None:
    assert_invalid(await post(app, {"Authorization": authorization}), description)


async def test_revoked_token_and_disabled_accounts_fail_at_the_next_request(
    app: Starlette, db: AsyncSession
) -> None:
    user = await user_with_roles(db, "admin")
    headers = await bearer(app, db, ["portfolio:read"], user=user)
    assert (await post(app, headers)).status_code == 200

    user.is_active = False
    await db.commit()
    assert_invalid(await post(app, headers), "The user of this token is disabled.")

    client = await service_client(db)
    await db.commit()
    token, _ = await app.state.auth.tokens.issue(
        client_id=client.client_id, user_id=None, scopes={"portfolio:read"}
    )
    client.tokens_valid_after = datetime.now(UTC)
    await db.commit()
    assert_invalid(
        await post(app, {"Authorization": f"Bearer {token}"}), "The token has been revoked."
    )


async def test_revoked_jti(app: Starlette, db: AsyncSession) -> None:
    headers = await bearer(app, db, ["portfolio:read"])
    claims = await app.state.auth.tokens.verify(headers["Authorization"].split()[1])
    db.add(models.RevokedAccessToken(jti=claims.jti, expires_at=datetime.now(UTC)))
    await db.commit()
    assert_invalid(await post(app, headers), "The token has been revoked.")


async def test_key_rotation_keeps_old_tokens_valid(app: Starlette, db: AsyncSession) -> None:
    old = await bearer(app, db, ["portfolio:read"])
    old_kid = (await app.state.auth.keys.signing_key()).kid
    new_kid = await app.state.auth.keys.rotate()
    assert new_kid != old_kid
    new = await bearer(app, db, ["portfolio:read"])
    header = json.loads(
        base64.urlsafe_b64decode(new["Authorization"].split()[1].split(".")[0] + "==")
    )
    assert header["kid"] == new_kid
    assert (await post(app, old)).status_code == 200
    assert (await post(app, new)).status_code == 200
    published = {key["kid"] for key in (await app.state.auth.keys.jwks())["keys"]}
    assert {old_kid, new_kid} <= published


async def test_tokens_of_an_external_oidc_issuer(
    engine: Any, sessions: Any, db: AsyncSession
) -> None:
    """A fake OpenID provider served over HTTP (ASGI): discovery, JWKS, then rotation."""
    issuer = "https://login.example.org"
    keys = [RSAKey.generate_key(2048, parameters={"kid": "ext-1"}, private=True)]

    async def discovery(request: Any) -> JSONResponse:
        return JSONResponse({"issuer": issuer, "jwks_uri": f"{issuer}/keys"})

    async def jwks(request: Any) -> JSONResponse:
        return JSONResponse({"keys": [k.as_dict(private=False) for k in keys]})

    provider = Starlette(
        routes=[Route("/.well-known/openid-configuration", discovery), Route("/keys", jwks)]
    )
    config = ExternalIssuer(
        issuer=issuer, audience="portfolio-graph", role_mapping={"pg-finance": "finance"}
    )
    settings = settings_for(environment="production", external_issuers=[config])
    from api.app import assemble_app

    app = assemble_app(settings, engine, sessions)
    app.state.auth.external = app.state.auth.tokens.external = ExternalIssuers(
        [config],
        httpx.AsyncClient(transport=httpx.ASGITransport(app=provider)),
        refresh_interval=0,  # the default waits 30 s between two fetches
    )

    def token(key: RSAKey, **claims: Any) -> dict[str, str]:
        now = int(time.time())
        body = {
            "iss": issuer,
            "sub": "ext-user",
            "aud": "portfolio-graph",
            "iat": now,
            "exp": now + 300,
            "scope": "portfolio:read finance:read admin:users",
            "groups": ["pg-finance", "unmapped"],
            **claims,
        }
        signed_token = jwt.encode({"alg": "RS256", "kid": key.kid}, body, key)
        return {"Authorization": f"Bearer {signed_token}"}

    async with make_client(engine, sessions, app=app, headers=token(keys[0])) as client:
        data = await GraphQL(client).data("{ viewer { scopes } }")
    # The groups map to the finance role: admin:users is in the token but not allowed.
    assert data["viewer"]["scopes"] == ["finance:read", "portfolio:read"]

    # The provider rotates its key: an unknown kid makes us fetch the JWKS again.
    keys.append(RSAKey.generate_key(2048, parameters={"kid": "ext-2"}, private=True))
    async with make_client(engine, sessions, app=app, headers=token(keys[1])) as client:
        response = await client.post("/graphql", json={"query": "{ viewer { scopes } }"})
    assert response.status_code == 200, response.text


async def test_a_verified_token_is_remembered_only_until_it_expires(
    app: Starlette, db: AsyncSession
) -> None:
    tokens = app.state.auth.tokens
    client = await service_client(db)
    await db.commit()
    token, _ = await tokens.issue(
        client_id=client.client_id, user_id=None, scopes={"portfolio:read"}
    )
    now = [time.time()]
    service = TokenService(tokens.keys, tokens.settings, tokens.external, clock=lambda: now[0])
    first = await service.verify(token)
    assert first.client_id == client.client_id
    now[0] += 30
    assert await service.verify(token) is first  # from memory: not verified again
    now[0] += VERIFIED_FOR_SECONDS
    again = await service.verify(token)  # verified again after a minute, still valid
    assert again == first and again is not first
    now[0] = first.expires_at + tokens.settings.clock_leeway_seconds + 1
    with pytest.raises(InvalidToken) as refused:
        await service.verify(token)
    assert refused.value.description == "The token has expired."
