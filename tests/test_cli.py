"""The `portfolio` command against a fresh database: migrate, seed (idempotent), current."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
from typer.testing import CliRunner

from api import migrate
from api.cli import app
from auth import models as auth_models
from auth.passwords import verify_secret
from domain import models
from domain.seed import seed_demo
from domain.seed.kpi_kinds import OBSERVATION_TIME, latest_observation_day
from domain.settings import get_settings
from tests.fixtures.database import create_database, drop_database

COUNTED = (models.Team, models.Product, models.Initiative, models.Kpi, models.KpiMeasurement)


@pytest.fixture
def fresh_database(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    url, name = asyncio.run(create_database(database_url))
    monkeypatch.setenv("DATABASE_URL", url)
    get_settings.cache_clear()
    yield url
    get_settings.cache_clear()
    asyncio.run(drop_database(database_url, name))


def counts(url: str) -> dict[str, int]:
    async def run() -> dict[str, int]:
        engine = create_async_engine(url)
        async with engine.connect() as connection:
            found = {
                model.__tablename__: await connection.scalar(
                    select(func.count()).select_from(model)
                )
                for model in COUNTED
            }
        await engine.dispose()
        return found  # type: ignore[return-value]

    return asyncio.run(run())


def invoke(*args: str) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_migrate_and_seed_demo_twice(fresh_database: str) -> None:
    assert "database: empty" in invoke("migrate", "current")
    invoke("migrate", "upgrade")
    head = migrate.head_revision()
    assert f"database: {head}  head: {head}" in invoke("migrate", "current")
    invoke("seed", "--demo")
    first = counts(fresh_database)
    assert first["products"] >= 8 and first["initiatives"] >= 50
    assert first["kpi_measurements"] >= 365 * first["kpis"] * 0.9
    invoke("seed", "--demo")
    assert counts(fresh_database) == first


def latest_measurements(url: str) -> tuple[list[datetime], datetime]:
    """Every KPI's latest observation time (distinct), and the database's now."""

    async def read() -> tuple[list[datetime], datetime]:
        engine = create_async_engine(url)
        async with engine.connect() as connection:
            latest = await connection.scalars(
                text("SELECT DISTINCT max(observed_at) FROM kpi_measurements GROUP BY kpi_id")
            )
            found = list(latest)
            now = await connection.scalar(select(func.now()))
        await engine.dispose()
        assert now is not None
        return found, now

    return asyncio.run(read())


def test_the_cli_demo_is_measured_until_today(fresh_database: str) -> None:
    """`seed --demo` (like `serve --demo`) ends every KPI's series on the database's
    today, at the pipelines' hour, never in the future: the demo's KPIs read as fresh."""
    invoke("seed", "--demo")
    [latest], now = latest_measurements(fresh_database)
    assert latest.astimezone(UTC).time() == OBSERVATION_TIME.replace(tzinfo=None)
    # The last observation due by the seed's now: within a day before it (one more hour
    # of margin for the time between seeding and this read; no wall-clock edge).
    assert now - timedelta(hours=25) < latest <= now


def test_the_demo_ends_its_measurements_on_the_day_passed(fresh_database: str) -> None:
    async def seed() -> None:
        engine = create_async_engine(fresh_database)
        await migrate.upgrade(engine)
        async with AsyncSession(engine) as session, session.begin():
            await seed_demo(session, date(2027, 3, 15))
        await engine.dispose()

    asyncio.run(seed())
    [latest], _ = latest_measurements(fresh_database)
    assert latest == datetime(2027, 3, 15, 6, tzinfo=UTC)
    assert counts(fresh_database)["kpi_measurements"] == 365 * counts(fresh_database)["kpis"]


def test_the_latest_observation_day_is_never_in_the_future() -> None:
    """Before the pipelines' hour (06:00 UTC) today's figure is not in yet."""
    assert latest_observation_day(datetime(2027, 3, 15, 5, 59, tzinfo=UTC)) == date(2027, 3, 14)
    assert latest_observation_day(datetime(2027, 3, 15, 6, 0, tzinfo=UTC)) == date(2027, 3, 15)
    # 01:00 in UTC+2 is 23:00 UTC the day before: the UTC day counts.
    east = timezone(timedelta(hours=2))
    assert latest_observation_day(datetime(2027, 3, 16, 1, 0, tzinfo=east)) == date(2027, 3, 15)


def test_seed_generated_scales_with_products(fresh_database: str) -> None:
    invoke("seed", "--products", "20")
    generated = counts(fresh_database)
    assert generated["products"] == 20
    assert 150 <= generated["initiatives"] <= 250
    assert generated["kpis"] == 80
    assert analyzed(fresh_database) >= {"products", "initiatives", "kpi_measurements"}
    invoke("seed", "--products", "20")
    assert counts(fresh_database) == generated


def analyzed(url: str) -> set[str]:
    """Tables the planner has statistics for (ANALYZE ran on them)."""

    async def read() -> set[str]:
        engine = create_async_engine(url)
        async with engine.connect() as connection:
            names = await connection.scalars(
                text("SELECT relname FROM pg_stat_user_tables WHERE last_analyze IS NOT NULL")
            )
            found = set(names)
        await engine.dispose()
        return found

    return asyncio.run(read())


def test_seed_needs_exactly_one_source() -> None:
    result = CliRunner().invoke(app, ["seed"])
    assert result.exit_code == 2
    assert "pass exactly one of --demo or --products N" in result.output


def test_create_admin_client_and_rotate_keys(fresh_database: str) -> None:
    invoke("migrate", "upgrade")
    result = CliRunner().invoke(
        app,
        ["create-admin", "--email", "Root@Example.com", "--name", "Root"],
        input="a long enough password\n",  # not a terminal: the first line of stdin
    )
    assert result.exit_code == 0, result.output
    assert "created admin root@example.com" in result.output

    output = invoke(
        "create-client",
        "--name",
        "KPI pipeline",
        "--scopes",
        "portfolio:read kpis:ingest",
        "--grant",
        "client_credentials",
    )
    client_id = output.split("client_id:")[1].split()[0]
    secret = output.split("client_secret:")[1].split()[0]
    assert "shown only now" in output

    first = invoke("rotate-keys").split()[-1]
    second = invoke("rotate-keys").split()[-1]
    assert first != second

    async def check() -> tuple[Any, Any, int]:
        engine = create_async_engine(fresh_database)
        async with engine.connect() as connection:
            user = (
                await connection.execute(
                    select(auth_models.User.password_hash, auth_models.Role.name)
                    .join(
                        auth_models.RoleGrant, auth_models.RoleGrant.user_id == auth_models.User.id
                    )
                    .join(auth_models.Role, auth_models.Role.id == auth_models.RoleGrant.role_id)
                    .where(auth_models.User.email == "root@example.com")
                )
            ).one()
            client = (
                await connection.execute(
                    select(
                        auth_models.OAuthClient.secret_hash, auth_models.OAuthClient.scopes
                    ).where(auth_models.OAuthClient.client_id == client_id)
                )
            ).one()
            active_keys = await connection.scalar(
                select(func.count()).where(auth_models.SigningKey.retired_at.is_(None))
            )
        await engine.dispose()
        return user, client, active_keys or 0

    user, client, active_keys = asyncio.run(check())
    assert user.name == "admin"
    assert verify_secret(user.password_hash, "a long enough password")
    assert verify_secret(client.secret_hash, secret)
    assert client.scopes == ["portfolio:read", "kpis:ingest"]
    assert active_keys == 1  # the older key is retired, still published until expiry


def test_cli_reports_refusals(fresh_database: str) -> None:
    invoke("migrate", "upgrade")
    result = CliRunner().invoke(
        app,
        ["create-client", "--name", "x", "--scopes", "root", "--grant", "client_credentials"],
    )
    assert result.exit_code == 1
    assert "scopes: Unknown scopes: root." in result.output
    result = CliRunner().invoke(
        app, ["create-admin", "--email", "a@example.com"], env={"PORTFOLIO_ADMIN_PASSWORD": "short"}
    )
    assert result.exit_code == 1
    assert "password: `password` must have at least 12 characters." in result.output
    # A password is never taken from the command line, where `ps` and shells keep it.
    result = CliRunner().invoke(
        app, ["create-admin", "--email", "a@example.com", "--password", "a long enough password"]
    )
    assert result.exit_code == 2
    assert "No such option: --password" in result.output


def test_serve_help_shows_what_each_option_defaults_to() -> None:
    result = CliRunner().invoke(app, ["serve", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert "[default: ($PORTFOLIO_HOST, else 127.0.0.1)]" in result.output
    assert "[default: ($PORTFOLIO_PORT, else 8000)]" in result.output
    assert "one per CPU this process may use in production, one in development" in result.output


def test_deliver_webhooks_once_sends_what_is_due(
    fresh_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`portfolio deliver-webhooks --once` delivers the outbox to a real receiver (an
    http.server thread) and exits when nothing is due. (Development: production would
    refuse a plain-http target on 127.0.0.1, see test_webhooks.)"""
    monkeypatch.setenv("PORTFOLIO_ENVIRONMENT", "development")
    get_settings.cache_clear()
    received: list[tuple[str, bytes]] = []

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["content-length"]))
            received.append((self.headers["webhook-id"], body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        invoke("migrate", "upgrade")

        async def arrange() -> None:
            engine = create_async_engine(
                fresh_database.replace("postgresql://", "postgresql+asyncpg://", 1)
            )
            async with engine.begin() as connection:
                user = await connection.scalar(
                    text(
                        "INSERT INTO users (email, display_name) VALUES ('c@example.com', 'C') RETURNING id"
                    )
                )
                await connection.execute(
                    text(
                        "INSERT INTO webhook_endpoints (owner_user_id, url, event_types, secret)"
                        " VALUES (:user, :url, '{initiative.created}', 'whsec_AAAA')"
                    ),
                    {"user": user, "url": f"http://127.0.0.1:{server.server_port}/in"},
                )
                await connection.execute(
                    text(
                        "INSERT INTO initiatives (key, title, status) VALUES ('CLI', 'x', 'PROPOSED')"
                    )
                )
            await engine.dispose()

        asyncio.run(arrange())
        assert "1 deliveries attempted" in invoke("deliver-webhooks", "--once")
    finally:
        server.shutdown()
        thread.join()
    [(message_id, body)] = received
    assert message_id.startswith("msg_") and b'"initiative.created"' in body
