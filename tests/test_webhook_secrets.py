"""Webhook secrets at rest: sealed with AES-256-GCM under PORTFOLIO_WEBHOOK_SECRET_KEY
(never in clear in the database), opened by the worker to sign, movable to a new key,
and required in production."""

from __future__ import annotations

import base64
import os
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from domain.database import create_engine
from domain.errors import InvalidInput
from domain.settings import Environment
from domain.webhooks.endpoints import create_endpoint, reseal_secrets, rotate_secret
from domain.webhooks.secrets import SecretBox, SecretUnavailable, key_id
from tests.conftest import settings_for
from tests.fixtures.webhooks import (
    create_initiative,
    deliver,
    deliveries,
    owner,
    receiving,
    register,
    verify,
)

pytestmark = pytest.mark.asyncio

OLD_KEY = base64.b64encode(os.urandom(32)).decode()
NEW_KEY = base64.b64encode(os.urandom(32)).decode()


@pytest.fixture
async def committed(own_database: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(own_database, settings_for())
    yield engine
    await engine.dispose()


async def stored(engine: AsyncEngine) -> tuple[str, str | None]:
    async with engine.connect() as connection:
        secret, previous = (
            await connection.execute(text("SELECT secret, previous_secret FROM webhook_endpoints"))
        ).one()
    return secret, previous


async def test_a_secret_is_stored_sealed_and_deliveries_are_signed_with_it(
    committed: AsyncEngine,
) -> None:
    async with receiving() as receiver:
        secret = await register(
            committed, receiver.url, ["initiative.created"], webhook_secret_key=OLD_KEY
        )
        sealed, _ = await stored(committed)
        assert secret not in sealed and secret.removeprefix("whsec_") not in sealed
        assert sealed.startswith(f"aesgcm:{key_id(base64.b64decode(OLD_KEY))}:")
        await create_initiative(committed, "SEALED")
        assert await deliver(committed, webhook_secret_key=OLD_KEY) == 1
        [(headers, body)] = receiver.requests
    assert verify(secret, headers, body)


async def test_without_the_key_nothing_is_sent_and_the_log_says_why(
    committed: AsyncEngine,
) -> None:
    async with receiving() as receiver:
        await register(committed, receiver.url, ["initiative.created"], webhook_secret_key=OLD_KEY)
        await create_initiative(committed, "NOKEY")
        assert await deliver(committed, webhook_secret_key=NEW_KEY) == 1
        assert receiver.connections == 0
    async with committed.connect() as connection:
        error = await connection.scalar(text("SELECT error FROM webhook_attempts"))
    kid = key_id(base64.b64decode(OLD_KEY))
    assert error == (
        f"secret unavailable: the secret is sealed under key {kid}, which is neither "
        "PORTFOLIO_WEBHOOK_SECRET_KEY nor one of PORTFOLIO_WEBHOOK_SECRET_OLD_KEYS"
    )
    [row] = await deliveries(committed)
    assert (row["status"], row["codes"]) == ("pending", [None])


async def test_key_rotation_reseals_every_secret_and_keeps_signing(
    committed: AsyncEngine,
) -> None:
    async with receiving() as receiver:
        first = await register(
            committed, receiver.url, ["initiative.created"], webhook_secret_key=OLD_KEY
        )
        async with AsyncSession(committed) as session, session.begin():
            endpoint = await session.scalar(text("SELECT id FROM webhook_endpoints"))
            second = await rotate_secret(
                session, settings_for(webhook_secret_key=OLD_KEY), endpoint
            )
        rotating = settings_for(webhook_secret_key=NEW_KEY, webhook_secret_old_keys=[OLD_KEY])
        async with AsyncSession(committed) as session, session.begin():
            assert await reseal_secrets(session, rotating) == 1
        async with AsyncSession(committed) as session, session.begin():
            assert await reseal_secrets(session, rotating) == 0  # nothing left to move
        new_kid = key_id(base64.b64decode(NEW_KEY))
        secret, previous = await stored(committed)
        assert secret.startswith(f"aesgcm:{new_kid}:")
        assert previous is not None and previous.startswith(f"aesgcm:{new_kid}:")
        # The old key is no longer needed: the new one alone opens both secrets.
        await create_initiative(committed, "RESEALED")
        assert await deliver(committed, webhook_secret_key=NEW_KEY) == 1
        [(headers, body)] = receiver.requests
    assert verify(second, headers, body) and verify(first, headers, body)


async def test_production_without_a_key_refuses_to_register_and_stores_nothing(
    committed: AsyncEngine,
) -> None:
    user = await owner(committed)
    async with AsyncSession(committed) as session, session.begin():
        with pytest.raises(InvalidInput) as refused:
            await create_endpoint(
                session,
                settings_for(environment=Environment.PRODUCTION, webhook_secret_key=None),
                owner_user_id=user,
                url="https://hooks.example.com/in",
                event_types=["kpi.created"],
            )
    assert (refused.value.code, refused.value.message) == (
        "INVALID",
        "Webhook secrets are stored encrypted: the server needs PORTFOLIO_WEBHOOK_SECRET_KEY "
        "(see docs/configuration.md).",
    )
    async with committed.connect() as connection:
        assert await connection.scalar(text("SELECT count(*) FROM webhook_endpoints")) == 0


async def test_a_sealed_secret_altered_in_the_database_does_not_open() -> None:
    box = SecretBox(settings_for(webhook_secret_key=OLD_KEY))
    sealed = box.seal("whsec_c2VjcmV0")
    assert box.open(sealed) == "whsec_c2VjcmV0"
    prefix, encoded = sealed.rsplit(":", 1)
    raw = bytearray(base64.urlsafe_b64decode(encoded))
    raw[-1] ^= 1
    altered = f"{prefix}:{base64.urlsafe_b64encode(bytes(raw)).decode()}"
    with pytest.raises(SecretUnavailable) as refused:
        box.open(altered)
    assert str(refused.value) == (
        f"the secret sealed under key {key_id(base64.b64decode(OLD_KEY))} was altered"
    )


async def test_a_malformed_key_is_refused_at_start() -> None:
    with pytest.raises(ValueError) as refused:
        SecretBox(settings_for(webhook_secret_key=base64.b64encode(b"short").decode()))
    assert str(refused.value) == "a webhook secret key must be 32 bytes, base64-encoded"
