"""``python -m bench write-http``: ``updateInitiative`` over HTTP, ours against the write
limit (``bench.limit_write_http``), one process each, under wrk.

Each server is started on the bench database, warmed (so that ours knows the document
and answers it by its known-mutation path), then loaded with wrk's mutation script
(``bench.wrk.mutation_script``: the varied variant, every request a title edit of a
random initiative at the version last seen) for ``duration`` seconds, with ``--token``
a bearer token with every request to ours. Reported: req/s,
updates that went through, CONFLICTs, p99, and the server's CPU time per request (its
process tree's user + system time over the timed run ÷ requests).
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import asyncpg

from bench import database
from bench.floor import LOG_DIR, REPO_DIR
from bench.processes import BenchError, ManagedProcess, tree_cpu_seconds
from bench.runner import _ours_process, _start, register_client, token_from
from bench.workloads import MutationPlan
from bench.wrk import WrkResult, mutation_script, run_wrk
from schema.ids import encode_id


def run_write_http(
    products: int, duration: float, connections: int, port: int, token: bool
) -> None:
    url = asyncio.run(database.ensure_database(products, fresh=False, log_dir=LOG_DIR))
    asyncio.run(_run(url, duration, connections, port, token))


def _limit_process(url: str, port: int, log: Path, pool_size: int) -> ManagedProcess:
    env = os.environ | {"DATABASE_URL": url, "BENCH_LIMIT_POOL_SIZE": str(pool_size)}
    argv = [sys.executable, "-m", "bench.limit_write_http", "--host", "127.0.0.1"]
    return ManagedProcess("the write limit", [*argv, "--port", str(port)], env, log, cwd=REPO_DIR)


def _strawberry_only(url: str, port: int, log: Path) -> ManagedProcess:
    """Ours with the known paths off (``PORTFOLIO_COMPILED_READS=false``): every update
    through strawberry's execution and the ORM session, as before the known-mutation
    path."""
    process = _ours_process(url, port, log)
    process.env["PORTFOLIO_COMPILED_READS"] = "false"
    return process


async def _token(url: str, endpoint: str) -> str:
    """A bearer token from ``endpoint`` for a new client allowed to write initiatives
    (``portfolio create-client``, as ``bench run --token`` does with read scopes)."""
    scopes = "portfolio:read initiatives:write"
    return await token_from(endpoint, await register_client(url, "bench-writes", scopes))


def _with_token(script: str, token: str | None) -> str:
    """wrk's script sending ``token`` with every request."""
    if token is None:
        return script
    marker = "local headers = { "
    return script.replace(marker, f'{marker}["Authorization"] = "Bearer {token}", ', 1)


async def _plan(url: str) -> MutationPlan:
    """Every active initiative at its stored version (re-read before each server)."""
    connection = await asyncpg.connect(url)
    try:
        found = await connection.fetch(
            "SELECT id, version FROM initiatives WHERE archived_at IS NULL ORDER BY id"
        )
    finally:
        await connection.close()
    versions = {encode_id("Initiative", row["id"]): row["version"] for row in found}
    return MutationPlan("varied", list(versions), versions)


async def _run(url: str, duration: float, connections: int, port: int, token: bool) -> None:
    logs = LOG_DIR / "write-http"
    servers = {
        "ours": lambda: _ours_process(url, port, logs / "ours.log"),
        "ours, strawberry's path": lambda: _strawberry_only(url, port, logs / "strawberry.log"),
        "limit": lambda: _limit_process(url, port, logs / "limit.log", connections),
    }
    print(
        f"updateInitiative (varied), {connections} connections, {duration:g} s after 3 s"
        f" warm-up{', a bearer token to ours' if token else ''}"
    )
    for name, process in servers.items():
        server = _start(name, process(), port)
        # The limit checks no token: ours are sent one, as a production client sends.
        bearer = await _token(url, server.endpoint) if token and name != "limit" else None
        try:
            warm = await run_wrk(
                _with_token(mutation_script(await _plan(url)), bearer),
                server.endpoint,
                duration=3,
                connections=connections,
                threads=2,
                log_path=logs / f"{name[:4]}-{len(name)}-warm",
            )
            if warm.graphql_errors or warm.non_2xx:
                raise BenchError(f"{name} answered errors: {warm.sample}")
            script = _with_token(mutation_script(await _plan(url)), bearer)
            before = tree_cpu_seconds(server.process.pid) or 0.0
            result = await run_wrk(
                script,
                server.endpoint,
                duration=duration,
                connections=connections,
                threads=2,
                log_path=logs / f"{name[:4]}-{len(name)}",
            )
            result.server_cpu_seconds = (tree_cpu_seconds(server.process.pid) or 0.0) - before
        finally:
            server.process.stop()
        _report(name, result)


def _report(name: str, result: WrkResult) -> None:
    cpu = result.server_cpu_seconds or 0.0
    per_request = cpu / result.requests * 1000 if result.requests else 0.0
    print(
        f"{name:>24}: {result.rps:8.1f} req/s, {result.updated / result.seconds:8.1f} updated/s,"
        f" {result.conflicts} conflicts, {result.graphql_errors + result.non_2xx} errors,"
        f" p99 {result.p99_ms:.1f} ms, server CPU {per_request:.3f} ms/req"
    )
