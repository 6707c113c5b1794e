"""Forged bearer tokens are refused from memory: no database read and no key import
per request, so a flood of them costs one signature check each (issue #16, finding 5).

Costs are counted, never timed: statements that reach PostgreSQL (the ``statements``
fixture) and calls of joserfc's ``RSAKey.import_key`` (the real function, counted on
its way through)."""

from __future__ import annotations

import base64
import json
import secrets
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.applications import Starlette

from auth.keys import CACHE_SECONDS, REFRESH_INTERVAL_SECONDS, KeyStore
from tests.fixtures.auth import bearer
from tests.fixtures.database import StatementCounter

QUERY = "{ viewer { authenticated } }"
FORGED = 20


@pytest.fixture
def imports(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every key import, counted on its way to the real ``RSAKey.import_key``."""
    calls: list[Any] = []
    real = RSAKey.import_key.__func__  # type: ignore[attr-defined]

    def counted(cls: type[RSAKey], value: Any, *args: Any, **kwargs: Any) -> RSAKey:
        calls.append(value)
        return real(cls, value, *args, **kwargs)

    monkeypatch.setattr(RSAKey, "import_key", classmethod(counted))
    return calls


class Clock:
    """The key store's monotonic clock, moved by hand."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def b64(value: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


def junk_signature() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(256)).decode().rstrip("=")


def forged_from(token: str, **header: Any) -> str:
    """The real header (or one changed by ``header``) and claims of ``token``, with a
    signature of random bytes."""
    head, payload, _ = token.split(".")
    if header:
        decoded = json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
        head = b64({**decoded, **header})
    return f"{head}.{payload}.{junk_signature()}"


async def post(app: Starlette, token: str) -> httpx.Response:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as client:
        return await client.post(
            "/graphql", json={"query": QUERY}, headers={"Authorization": f"Bearer {token}"}
        )


def assert_refused(response: httpx.Response, description: str) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"] == (
        f'Bearer realm="portfolio-graph", error="invalid_token", error_description="{description}"'
    )
    assert response.json() == {
        "errors": [{"message": description, "extensions": {"code": "UNAUTHENTICATED"}}]
    }


async def warmed(app: Starlette, db: AsyncSession) -> tuple[str, Clock]:
    """A valid token, used once (keys read and imported), with the key store's clock
    under the test's control."""
    clock = Clock()
    app.state.auth.keys.clock = clock
    token = (await bearer(app, db, ["portfolio:read"]))["Authorization"].split()[1]
    assert (await post(app, token)).status_code == 200
    return token, clock


async def test_a_forged_signature_costs_no_query_and_no_key_import(
    app: Starlette, db: AsyncSession, statements: StatementCounter, imports: list[Any]
) -> None:
    token, _ = await warmed(app, db)
    await statements.delivered()
    statements.reset()
    imports.clear()
    for _ in range(FORGED):
        assert_refused(await post(app, forged_from(token)), "The token's signature is invalid.")
    await statements.delivered()
    assert statements.statements == []
    assert imports == []
    # The real token still works: nothing was evicted or re-read on its account.
    assert (await post(app, token)).status_code == 200


async def test_unknown_kids_reread_the_keys_at_most_once_per_interval(
    app: Starlette, db: AsyncSession, statements: StatementCounter, imports: list[Any]
) -> None:
    token, clock = await warmed(app, db)
    clock.now += REFRESH_INTERVAL_SECONDS
    await statements.delivered()
    statements.reset()
    imports.clear()
    for number in range(FORGED):
        forged = forged_from(token, kid=f"made-up-{number}")
        assert_refused(await post(app, forged), "The token's signing key is unknown.")
    await statements.delivered()
    # One read of the published keys for the first unknown kid, none for the others.
    assert [s for s in statements.statements if "signing_keys" in s] == statements.statements
    assert len(statements.statements) == 1
    assert imports == []  # the keys it found were already imported

    no_kid = forged_from(token, kid=None)
    assert_refused(await post(app, no_kid), "The token's signing key is unknown.")


async def test_a_key_rotated_elsewhere_is_found_through_its_kid(
    app: Starlette,
    db: AsyncSession,
    sessions: Any,
    statements: StatementCounter,
    imports: list[Any],
) -> None:
    """Another replica rotates the key: the first token signed with the new key makes
    this one read the public keys (never a private key) and import the new one only."""
    token, clock = await warmed(app, db)
    other_replica = KeyStore(sessions, app.state.settings.access_token_ttl_seconds)
    new_kid = await other_replica.rotate()
    new_key = (await other_replica.signing_key()).key
    claims = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
    fresh = jwt.encode({"alg": "RS256", "kid": new_kid, "typ": "at+jwt"}, claims, new_key)

    clock.now += REFRESH_INTERVAL_SECONDS
    await statements.delivered()
    statements.reset()
    imports.clear()
    assert (await post(app, fresh)).status_code == 200
    await statements.delivered()
    key_reads = [s for s in statements.statements if "signing_keys" in s]
    assert len(key_reads) == 1 and "private_jwk" not in key_reads[0]
    assert [value["kid"] for value in imports] == [new_kid]
    assert "d" not in imports[0]  # a public key
    # The old key's tokens stay valid; the keys are not read again for them.
    statements.reset()
    assert (await post(app, token)).status_code == 200
    await statements.delivered()
    assert not [s for s in statements.statements if "signing_keys" in s]

    # Past the cache lifetime the keys are read again, once, still without imports.
    clock.now += CACHE_SECONDS
    statements.reset()
    imports.clear()
    assert (await post(app, forged_from(token))).status_code == 401
    assert (await post(app, forged_from(token))).status_code == 401
    await statements.delivered()
    assert len([s for s in statements.statements if "signing_keys" in s]) == 1
    assert imports == []
