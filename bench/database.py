"""The benchmark database: create, migrate and seed ``bench_<products>``, and read the keys
and IDs that the workloads pick from."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from bench.processes import BenchError
from domain.settings import Settings

DEFAULT_SERVER_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
INGEST_SOURCE = "bench-ingest"  # measurements the ingest workload adds, removed afterwards


def server_url() -> str:
    """The PostgreSQL server to benchmark on (any database on it: it is replaced)."""
    return os.environ.get("BENCH_DATABASE_URL", DEFAULT_SERVER_URL)


def with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    if parts.scheme.startswith("postgresql+"):
        parts = parts._replace(scheme="postgresql")
    return urlunsplit(parts._replace(path=f"/{database}"))


def with_port(url: str, host: str, port: int) -> str:
    """The same URL through another host and port (the statement-counting proxy)."""
    parts = urlsplit(url)
    credentials = parts.netloc.rpartition("@")[0]
    netloc = f"{credentials}@{host}:{port}" if credentials else f"{host}:{port}"
    return urlunsplit(parts._replace(netloc=netloc))


def host_and_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or 5432


def database_name(products: int) -> str:
    return f"bench_{products}"


async def connect(url: str) -> asyncpg.Connection:
    try:
        return await asyncio.wait_for(asyncpg.connect(url), timeout=15)
    except (OSError, asyncpg.PostgresError, TimeoutError) as error:
        where = url.rpartition("@")[2]
        raise BenchError(
            f"cannot connect to PostgreSQL at {where}: {error}\n"
            "Set BENCH_DATABASE_URL (e.g. postgresql://postgres@127.0.0.1:5432/postgres)."
        ) from None


# The random_page_cost ours sets on its connections by default (``domain.settings``).
SSD_PAGE_COST = Settings.model_fields["db_random_page_cost"].default


async def ensure_database(products: int, *, fresh: bool, log_dir: Path) -> str:
    """Create (or with ``fresh`` re-create) and seed the database; return its URL."""
    name = database_name(products)
    admin = await connect(server_url())
    try:
        exists = await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if exists and fresh:
            print(f"dropping database {name}")
            await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
            exists = False
        if not exists:
            print(f"creating database {name}")
            await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    url = with_database(server_url(), name)
    seed(url, products, log_dir)
    connection = await connect(url)
    try:
        await delete_ingested(connection)  # left over from an interrupted run
        # Every server's sessions plan with ours's random_page_cost
        # (``Settings.db_random_page_cost``): the peers' and the limits' connections
        # take it from the database, so no server is measured with the other's planner.
        await connection.execute(f'ALTER DATABASE "{name}" SET random_page_cost = {SSD_PAGE_COST}')
        # VACUUM, not only ANALYZE: a freshly seeded table's visibility map is empty, so
        # every index-only scan visits the heap until autovacuum passes, at a moment of
        # its choosing during some run and not others (the board's link tables: 1.3 ms
        # of PostgreSQL's 2.5 per statement, before and after).
        await connection.execute("VACUUM ANALYZE")
    finally:
        await connection.close()
    return url


def seed(url: str, products: int, log_dir: Path) -> None:
    """Migrate and seed with the project's own CLI (it skips a seeded database)."""
    log_dir.mkdir(parents=True, exist_ok=True)
    env = os.environ | {"DATABASE_URL": url}
    command = [sys.executable, "-m", "api.cli", "seed", "--products", str(products)]
    try:
        done = subprocess.run(
            command, env=env, capture_output=True, text=True, timeout=1800, check=False
        )
    except subprocess.TimeoutExpired:
        raise BenchError("seeding took more than 30 minutes") from None
    (log_dir / "seed.log").write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        raise BenchError(f"`portfolio seed` failed:\n{(done.stdout + done.stderr)[-2000:]}")
    print(done.stdout.strip())


async def delete_ingested(connection: asyncpg.Connection) -> int:
    """Removes what the ingest workload wrote, and leaves the tables as compact as
    before it: its measurements and the audit events of its calls (one per KPI per
    call; the seed writes none). Left in place, the audit table grew by 1.6 M rows per
    run at 2,000 products; deleted but only vacuumed, the indexes of both tables kept
    the pages of a million rows per run. Either way each run's inserts paid for the
    runs before it, and runs were not comparable."""
    status = await connection.execute(
        "DELETE FROM kpi_measurements WHERE source = $1", INGEST_SOURCE
    )
    deleted = int(status.split()[-1])
    # The bench's calls are anonymous: no actor.
    status = await connection.execute(
        "DELETE FROM audit_events WHERE entity_type = 'Kpi' AND action = 'RECORD'"
        " AND actor_user_id IS NULL AND actor_client_id IS NULL"
    )
    if deleted or int(status.split()[-1]):
        # Rewrites what is left (the seed's rows: seconds at 2,000 products).
        await connection.execute("VACUUM FULL ANALYZE kpi_measurements, audit_events")
    return deleted


@dataclass(frozen=True)
class Dataset:
    """What the workloads draw from, read from the seeded database."""

    product_keys: list[str]
    initiative_ids: list[int]
    initiative_versions: dict[int, int]
    kpi_keys: list[str]
    postgres_version: str
    product_ids: list[int] = field(default_factory=list)
    initiative_keys: list[str] = field(default_factory=list)
    team_keys: list[str] = field(default_factory=list)
    constraint_keys: list[str] = field(default_factory=list)
    # Words of the constraints' titles (3+ letters): the board's search texts.
    constraint_words: list[str] = field(default_factory=list)


async def load_dataset(url: str) -> Dataset:
    connection = await connect(url)
    try:
        products = await connection.fetch(
            "SELECT key FROM products WHERE archived_at IS NULL ORDER BY key"
        )
        initiatives = await connection.fetch(
            "SELECT id, version FROM initiatives WHERE archived_at IS NULL ORDER BY key"
        )
        kpis = await connection.fetch("SELECT key FROM kpis WHERE archived_at IS NULL ORDER BY key")
        version = await connection.fetchval("SHOW server_version")
        more = await connection.fetchrow(
            """SELECT
                 (SELECT array_agg(id ORDER BY key) FROM products WHERE archived_at IS NULL)
                   AS product_ids,
                 (SELECT array_agg(key ORDER BY key) FROM initiatives WHERE archived_at IS NULL)
                   AS initiative_keys,
                 (SELECT array_agg(key ORDER BY key) FROM teams WHERE archived_at IS NULL)
                   AS team_keys,
                 (SELECT array_agg(key ORDER BY key) FROM technical_constraints
                   WHERE archived_at IS NULL) AS constraint_keys,
                 (SELECT array_agg(DISTINCT lower(word) ORDER BY lower(word))
                    FROM technical_constraints,
                         regexp_split_to_table(title, '[^[:alpha:]]+') AS word
                   WHERE archived_at IS NULL AND length(word) >= 3) AS constraint_words"""
        )
    finally:
        await connection.close()
    if len(products) < 50 or not initiatives or len(kpis) < 20:
        raise BenchError("the benchmark database has fewer than 50 products: use --products 50+")
    return Dataset(
        product_keys=[r["key"] for r in products],
        initiative_ids=[r["id"] for r in initiatives],
        initiative_versions={r["id"]: r["version"] for r in initiatives},
        kpi_keys=[r["key"] for r in kpis],
        postgres_version=str(version),
        product_ids=list(more["product_ids"] or []),
        initiative_keys=list(more["initiative_keys"] or []),
        team_keys=list(more["team_keys"] or []),
        constraint_keys=list(more["constraint_keys"] or []),
        constraint_words=list(more["constraint_words"] or []),
    )


async def current_versions(url: str) -> dict[int, int]:
    connection = await connect(url)
    try:
        rows = await connection.fetch("SELECT id, version FROM initiatives")
    finally:
        await connection.close()
    return {r["id"]: r["version"] for r in rows}


async def cleanup_ingest(url: str) -> int:
    connection = await connect(url)
    try:
        return await delete_ingested(connection)
    finally:
        await connection.close()
