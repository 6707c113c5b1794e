"""`serve --demo` prints a curl line with the demo client's secret: the same secret
after a restart (kept in the data directory, owner-only), a new one only when the kept
one no longer matches the database."""

from __future__ import annotations

import stat
from pathlib import Path

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from api.app import assemble_app
from auth.identity import DEMO_CLIENT_ID, DEMO_SECRET_FILE, demo_client
from domain.database import create_engine, create_session_factory
from tests.conftest import settings_for


async def _demo_secret(url: str, data_dir: Path) -> str:
    engine = create_async_engine(url)
    async with AsyncSession(engine) as session, session.begin():
        secret = await demo_client(session, data_dir)
    await engine.dispose()
    return secret


async def _token_status(url: str, secret: str) -> int:
    engine = create_engine(url, settings_for())
    app = assemble_app(settings_for(), engine, create_session_factory(engine))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as client:
        response = await client.post(
            "/oauth/token",
            data={"grant_type": "client_credentials"},
            auth=(DEMO_CLIENT_ID, secret),
        )
    await engine.dispose()
    return response.status_code


async def test_the_demo_secret_survives_a_restart(own_database: str, tmp_path: Path) -> None:
    first = await _demo_secret(own_database, tmp_path)
    kept = tmp_path / DEMO_SECRET_FILE
    assert kept.read_text().strip() == first
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600

    assert await _demo_secret(own_database, tmp_path) == first  # a restart
    assert await _token_status(own_database, first) == 200


async def test_a_secret_that_no_longer_matches_is_replaced(
    own_database: str, tmp_path: Path
) -> None:
    first = await _demo_secret(own_database, tmp_path)
    (tmp_path / DEMO_SECRET_FILE).write_text("not the secret\n")
    second = await _demo_secret(own_database, tmp_path)
    assert second != first and second != "not the secret"
    assert (tmp_path / DEMO_SECRET_FILE).read_text().strip() == second
    assert await _token_status(own_database, second) == 200
    assert await _token_status(own_database, first) == 401  # the old one is gone

    # Another data directory (another machine on the same database) gets its own.
    elsewhere = tmp_path / "elsewhere"
    third = await _demo_secret(own_database, elsewhere)
    assert third != second
    assert await _token_status(own_database, third) == 200
