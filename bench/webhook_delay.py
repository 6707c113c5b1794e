"""``python -m bench webhooks``: the delay from a write's commit to its webhook's arrival,
under a steady write rate.

A writer commits one new initiative per transaction at ``--rate`` per second (each a
``initiative.created`` event); a receiver in this same process answers 200 and notes
when each delivery arrives. Both read one clock (``time.perf_counter``), so the delay is
arrival minus the moment the writer's COMMIT returned. The server runs as in production
but for the environment: development, so that the plain-http receiver on 127.0.0.1 is
an allowed target; its delivery worker runs in-process (``PORTFOLIO_WEBHOOK_WORKER``),
woken by the change notifications.
"""

from __future__ import annotations

import asyncio
import base64
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

import auth.models  # noqa: F401 (the users table, which a webhook's owner references)
from bench import database
from bench.limit import percentile
from bench.processes import ManagedProcess, ensure_port_free, stop_all, wait_for_graphql
from bench.runner import BENCH_DIR, LOG_ROOT, REPO_DIR
from domain.database import create_engine, to_async_url
from domain.settings import Environment, Settings
from domain.webhooks.endpoints import create_endpoint

KEY_PREFIX = "BENCHWH-"
# The receiver's path, by which a run finds the endpoint an earlier one left.
HOOK_PATH = "/bench-webhook-delay"
# Deliveries still missing this long after the last write are counted as lost.
DRAIN_SECONDS = 60.0


@dataclass
class Options:
    products: int = 50
    rate: float = 20.0
    duration: float = 10.0
    workers: int = 1
    port: int = 8711
    results_dir: Path = BENCH_DIR / "results"


@dataclass
class Result:
    writes: int
    delivered: int
    p50_ms: float | None
    p90_ms: float | None
    p99_ms: float | None
    max_ms: float | None
    achieved_rate: float


class Receiver:
    """Notes the arrival time of each delivery by the initiative's global ID."""

    def __init__(self) -> None:
        self.arrivals: dict[str, float] = {}
        self.all_arrived = asyncio.Event()
        self.expected: int | None = None

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:  # keep-alive: the worker reuses its connections
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.decode("latin-1").split("\r\n")[1:]:
                    name, _, value = line.partition(":")
                    if name.strip().lower() == "content-length":
                        length = int(value)
                body = await reader.readexactly(length)
                arrived = time.perf_counter()
                self.arrivals.setdefault(orjson.loads(body)["data"]["id"], arrived)
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                await writer.drain()
                if self.expected is not None and len(self.arrivals) >= self.expected:
                    self.all_arrived.set()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


def run_webhook_delay(options: Options) -> Path:
    try:
        return asyncio.run(_run(options))
    finally:
        stop_all()


async def _run(options: Options) -> Path:
    ensure_port_free(options.port)
    started = datetime.now(UTC)
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    out = options.results_dir / f"{stamp}-webhooks"
    logs = LOG_ROOT / f"{stamp}-webhooks"
    logs.mkdir(parents=True, exist_ok=True)
    url = await database.ensure_database(options.products, fresh=False, log_dir=logs)
    receiver = Receiver()
    listener = await asyncio.start_server(receiver.handle, "127.0.0.1", 0)
    target = f"http://127.0.0.1:{listener.sockets[0].getsockname()[1]}{HOOK_PATH}"
    connection = await database.connect(url)
    key = base64.b64encode(os.urandom(32)).decode()
    server = _server(url, key, options, logs)
    try:
        await _clean(connection)
        await _register(url, key, target)
        server.start()
        endpoint = f"http://127.0.0.1:{options.port}/graphql"
        await asyncio.to_thread(wait_for_graphql, server, endpoint)
        committed = await _write(connection, options)
        receiver.expected = len(committed)
        try:
            async with asyncio.timeout(DRAIN_SECONDS):
                await receiver.all_arrived.wait()
        except TimeoutError:
            pass
        result = _result(committed, receiver.arrivals, options)
    finally:
        server.stop()
        await _clean(connection)
        await connection.close()
        listener.close()
    meta = {
        "started": started.strftime("%Y-%m-%d %H:%M UTC"),
        "products": options.products,
        "rate": options.rate,
        "duration": options.duration,
        "workers": options.workers,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "python": platform.python_version(),
        "logs": str(logs),
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_bytes(
        orjson.dumps({"meta": meta, "result": asdict(result)}, option=orjson.OPT_INDENT_2)
    )
    text = _markdown(meta, result)
    (out / "results.md").write_text(text)
    print(text)
    print(f"written: {out / 'results.md'}")
    return out


def _server(url: str, key: str, options: Options, logs: Path) -> ManagedProcess:
    env = os.environ | {
        "DATABASE_URL": url,
        "PORTFOLIO_ENVIRONMENT": "development",
        "PORTFOLIO_LOG_LEVEL": "WARNING",
        "PORTFOLIO_MIGRATE_ON_START": "false",
        "PORTFOLIO_WEBHOOK_WORKER": "true",
        "PORTFOLIO_WEBHOOK_SECRET_KEY": key,
    }
    argv = [sys.executable, "-m", "api.cli", "serve", "--host", "127.0.0.1"]
    argv += ["--port", str(options.port), "--workers", str(options.workers)]
    return ManagedProcess("Portfolio Graph", argv, env, logs / "server.log", cwd=REPO_DIR)


async def _clean(connection: asyncpg.Connection) -> None:
    """What an earlier run left: its endpoint (and outbox), then its initiatives."""
    await connection.execute("DELETE FROM webhook_endpoints WHERE url LIKE $1", "%" + HOOK_PATH)
    await connection.execute("DELETE FROM initiatives WHERE key LIKE $1", KEY_PREFIX + "%")


async def _register(url: str, key: str, target: str) -> None:
    """The endpoint, through the domain as the API would (its secret sealed with ``key``)."""
    settings = Settings(environment=Environment.DEVELOPMENT, webhook_secret_key=key)
    engine = create_engine(to_async_url(url), settings)
    try:
        async with AsyncSession(engine) as session, session.begin():
            owner = await session.scalar(
                text(
                    "INSERT INTO users (email, display_name)"
                    " VALUES ('bench-webhooks@example.com', 'Bench webhooks')"
                    " ON CONFLICT (email) DO UPDATE SET display_name = excluded.display_name"
                    " RETURNING id"
                )
            )
            await create_endpoint(
                session,
                settings,
                url=target,
                event_types=["initiative.created"],
                owner_user_id=owner,
            )
    finally:
        await engine.dispose()


async def _write(connection: asyncpg.Connection, options: Options) -> dict[str, float]:
    """One initiative per transaction at the rate: global ID -> when its COMMIT returned."""
    committed: dict[str, float] = {}
    count = int(options.rate * options.duration)
    start = time.perf_counter()
    for n in range(count):
        due = start + n / options.rate
        wait = due - time.perf_counter()
        if wait > 0:
            await asyncio.sleep(wait)
        pk = await connection.fetchval(
            "INSERT INTO initiatives (key, title, status) VALUES ($1, 'bench', 'PROPOSED')"
            " RETURNING id",
            f"{KEY_PREFIX}{n}",
        )
        committed[_global_id("Initiative", pk)] = time.perf_counter()
    return committed


def _global_id(type_name: str, pk: int) -> str:
    return base64.urlsafe_b64encode(f"{type_name}:{pk}".encode()).decode().rstrip("=")


def _result(committed: dict[str, float], arrivals: dict[str, float], options: Options) -> Result:
    delays = [(arrivals[i] - at) * 1000 for i, at in committed.items() if i in arrivals]
    times = sorted(committed.values())
    span = times[-1] - times[0] if len(times) > 1 else 0.0
    return Result(
        writes=len(committed),
        delivered=len(delays),
        p50_ms=percentile(delays, 50),
        p90_ms=percentile(delays, 90),
        p99_ms=percentile(delays, 99),
        max_ms=max(delays) if delays else None,
        achieved_rate=(len(times) - 1) / span if span else 0.0,
    )


def _markdown(meta: dict[str, object], result: Result) -> str:
    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value:.1f}"

    return (
        f"# Webhooks: commit to delivery ({meta['started']})\n\n"
        f"{meta['machine']}; {meta['workers']} server process(es); one endpoint; "
        f"{result.achieved_rate:.1f} writes/s for {meta['duration']} s.\n\n"
        "| writes | delivered | p50 ms | p90 ms | p99 ms | max ms |\n"
        "|---:|---:|---:|---:|---:|---:|\n"
        f"| {result.writes} | {result.delivered} | {ms(result.p50_ms)} | {ms(result.p90_ms)} "
        f"| {ms(result.p99_ms)} | {ms(result.max_ms)} |\n"
    )
