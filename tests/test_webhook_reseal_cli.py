"""`portfolio reseal-webhook-secrets`, run for real: once a key is set, secrets stored in
clear (development without a key) are sealed under it; a second run has nothing to do."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from typer.testing import CliRunner

from api.cli import app
from domain.settings import get_settings
from domain.webhooks.secrets import SecretBox, key_id
from tests.conftest import TEST_WEBHOOK_SECRET_KEY, settings_for
from tests.fixtures.database import create_database, drop_database

CLEAR = "whsec_c2VhbGVkIGJ5IHRoZSBjb21tYW5kIGxpbmUgdGVzdCwgMzIgYnl0ZXM="


@pytest.fixture
def fresh_database(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    url, name = asyncio.run(create_database(database_url))
    monkeypatch.setenv("DATABASE_URL", url)
    get_settings.cache_clear()
    yield url
    get_settings.cache_clear()
    asyncio.run(drop_database(database_url, name))


def invoke(*args: str) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def run_sql(url: str, statement: str) -> str | None:
    async def run() -> str | None:
        engine = create_async_engine(url.replace("postgresql://", "postgresql+asyncpg://", 1))
        try:
            async with engine.begin() as connection:
                found = await connection.scalar(text(statement))
                return None if found is None else str(found)
        finally:
            await engine.dispose()

    return asyncio.run(run())


def test_reseal_seals_clear_secrets_under_the_key(
    fresh_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    invoke("migrate", "upgrade")
    run_sql(
        fresh_database,
        "WITH u AS (INSERT INTO users (email, display_name) VALUES ('o@example.com', 'O')"
        " RETURNING id) INSERT INTO webhook_endpoints (owner_user_id, url, event_types, secret)"
        f" SELECT id, 'https://hooks.example.com', '{{kpi.created}}', '{CLEAR}' FROM u"
        " RETURNING id",
    )
    monkeypatch.setenv("PORTFOLIO_WEBHOOK_SECRET_KEY", TEST_WEBHOOK_SECRET_KEY)
    get_settings.cache_clear()
    assert invoke("reseal-webhook-secrets").strip() == "1 webhooks resealed"
    sealed = run_sql(fresh_database, "SELECT secret FROM webhook_endpoints")
    assert sealed is not None and CLEAR not in sealed
    box = SecretBox(settings_for())
    assert sealed.startswith(f"aesgcm:{key_id(box.current or b'')}:")
    assert box.open(sealed) == CLEAR
    assert invoke("reseal-webhook-secrets").strip() == "0 webhooks resealed"
