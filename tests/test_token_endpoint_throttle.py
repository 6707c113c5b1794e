"""Failed client authentication at the token endpoint is throttled per address and per
client id, like the login form (issue #16, finding 8). The policy is documented on
``AuthorizationServer._client``."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from starlette.applications import Starlette

from api.app import assemble_app, create_app
from auth import models
from auth.oauth import clients as authorization
from auth.passwords import hash_secret
from tests.conftest import settings_for

PER_ADDRESS = 3
PER_CLIENT = 4
CLIENT_WINDOW = 60
SLOW_DOWN = {
    "error": "slow_down",
    "error_description": "Too many failed client authentications; try again later.",
}
INVALID_CLIENT = {"error": "invalid_client", "error_description": "Client authentication failed."}


@pytest.fixture
def server(engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]) -> Starlette:
    return assemble_app(
        settings_for(
            environment="production",
            issuer="http://test",
            login_max_failures=PER_ADDRESS,
            client_auth_max_failures=PER_CLIENT,
            client_auth_window_seconds=CLIENT_WINDOW,
        ),
        engine,
        sessions,
    )


@pytest.fixture
async def services(db: AsyncSession) -> None:
    for client_id in ("svc", "other"):
        db.add(
            models.OAuthClient(
                client_id=client_id,
                name=client_id,
                secret_hash=hash_secret(f"{client_id}-secret"),
                grant_types=["client_credentials"],
                scopes=["portfolio:read"],
            )
        )
    await db.commit()


@pytest.fixture
def hashed(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Secrets checked against a stored hash, counted on their way to the real check."""
    calls: list[str] = []
    real = authorization.verify_secret_off_loop

    async def counted(stored: str | None, secret: str) -> bool:
        calls.append(secret)
        return await real(stored, secret)

    monkeypatch.setattr(authorization, "verify_secret_off_loop", counted)
    return calls


async def token(
    app: Starlette, address: str, client_id: str, secret: str, path: str = "/oauth/token"
) -> httpx.Response:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, client=(address, 40000)), base_url="http://test"
    ) as client:
        return await client.post(
            path,
            data={"grant_type": "client_credentials", "token": "x"},
            auth=(client_id, secret),
        )


def assert_paused(response: httpx.Response, at_most: int) -> None:
    assert response.status_code == 429, response.text
    assert response.json() == SLOW_DOWN
    assert 1 <= int(response.headers["retry-after"]) <= at_most
    assert response.headers["cache-control"] == "no-store"


async def test_wrong_secrets_pause_their_address_only(
    server: Starlette, services: None, hashed: list[str], db: AsyncSession
) -> None:
    attacker, legitimate = "203.0.113.7", "198.51.100.20"
    for path in ("/oauth/token", "/oauth/revoke", "/oauth/token"):  # every endpoint counts
        wrong = await token(server, attacker, "svc", "guess", path)
        assert wrong.status_code == 401 and wrong.json() == INVALID_CLIENT
    hashed.clear()
    # Paused for the login window, even with the right secret or another client's id,
    # and refused before any secret is hashed.
    assert_paused(await token(server, attacker, "svc", "svc-secret"), 900)
    assert_paused(await token(server, attacker, "other", "other-secret"), 900)
    assert_paused(await token(server, attacker, "svc", "guess", "/oauth/introspect"), 900)
    assert hashed == []
    # The client itself, from its own address, is not locked out.
    served = await token(server, legitimate, "svc", "svc-secret")
    assert served.status_code == 200, served.text
    assert served.json()["token_type"] == "Bearer"
    rows = dict(
        (await db.execute(select(models.LoginThrottle.key, models.LoginThrottle.failures))).all()
    )
    assert rows == {f"client-address:{attacker}": PER_ADDRESS, "client:svc": PER_ADDRESS}


async def test_the_client_pause_is_per_client_id_and_short(
    server: Starlette, services: None, hashed: list[str], db: AsyncSession
) -> None:
    # Failures from many addresses, each below its own limit, add up for the client id.
    for number in range(PER_CLIENT):
        wrong = await token(server, f"192.0.2.{number}", "svc", "guess")
        assert wrong.status_code == 401 and wrong.json() == INVALID_CLIENT
    hashed.clear()
    assert_paused(await token(server, "198.51.100.20", "svc", "svc-secret"), CLIENT_WINDOW)
    assert hashed == []
    # Another client is not affected, from the same addresses or others.
    assert (await token(server, "192.0.2.0", "other", "other-secret")).status_code == 200
    assert (await token(server, "198.51.100.21", "other", "other-secret")).status_code == 200

    # The pause lasts one short window from the first failure, then the client is served.
    await db.execute(
        update(models.LoginThrottle)
        .where(models.LoginThrottle.key == "client:svc")
        .values(window_started_at=datetime.now(UTC) - timedelta(seconds=CLIENT_WINDOW))
    )
    await db.commit()
    assert (await token(server, "198.51.100.20", "svc", "svc-secret")).status_code == 200


async def test_made_up_client_ids_count_only_against_the_address(
    server: Starlette, services: None, db: AsyncSession
) -> None:
    for number in range(PER_ADDRESS):
        wrong = await token(server, "203.0.113.9", f"nobody-{number}", "guess")
        assert wrong.status_code == 401 and wrong.json() == INVALID_CLIENT
    long_id = await token(server, "203.0.113.10", "x" * 65, "guess")
    assert long_id.status_code == 401 and long_id.json() == INVALID_CLIENT
    assert_paused(await token(server, "203.0.113.9", "svc", "svc-secret"), 900)
    keys: Any = set(await db.scalars(select(models.LoginThrottle.key)))
    assert keys == {"client-address:203.0.113.9", "client-address:203.0.113.10"}


async def test_a_concurrent_burst_is_hashed_only_up_to_the_limit(
    own_database: str, hashed: list[str]
) -> None:
    """Concurrent guesses, all sent before any failure is recorded: attempts beyond the
    limit wait for those under way, then find the address paused. The app has a pool
    of its own (a database of the test's own), so the requests really overlap."""
    burst = 30
    app = create_app(
        settings_for(
            environment="production",
            login_max_failures=PER_ADDRESS,
            client_auth_max_failures=PER_CLIENT,
        ),
        database_url=own_database,
    )
    try:
        async with app.router.lifespan_context(app):
            async with app.state.sessions() as session, session.begin():
                session.add(
                    models.OAuthClient(
                        client_id="burst",
                        name="burst",
                        secret_hash=hash_secret("burst-secret"),
                        grant_types=["client_credentials"],
                        scopes=["portfolio:read"],
                    )
                )
            answers = await asyncio.gather(
                *(token(app, "203.0.113.50", "burst", f"guess-{n}") for n in range(burst))
            )
            served = await token(app, "198.51.100.50", "burst", "burst-secret")
    finally:
        await app.state.reads.close()
        await app.state.engine.dispose()
    assert Counter(answer.status_code for answer in answers) == {
        401: PER_ADDRESS,
        429: burst - PER_ADDRESS,
    }
    assert all(a.json() == SLOW_DOWN for a in answers if a.status_code == 429)
    # Only as many guesses were hashed as the address may fail, then the right secret.
    assert len(hashed) == PER_ADDRESS + 1 and hashed[-1] == "burst-secret"
    assert served.status_code == 200, served.text
