"""The limit: each request answered by one hand-written SQL statement that builds the
whole JSON answer in PostgreSQL, run through asyncpg by N concurrent tasks."""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass

import asyncpg

from bench.workloads import ReadPlan


@dataclass
class LoadResult:
    requests: int
    seconds: float
    latencies_ms: list[float]
    errors: int
    sample: str

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def percentile(self, p: float) -> float | None:
        return percentile(self.latencies_ms, p)


def percentile(values: list[float], p: float) -> float | None:
    """Nearest-rank percentile (as wrk reports them)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(p / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


async def _keep_session(connection: asyncpg.Connection) -> None:
    """Release without asyncpg's default reset (`RESET ALL`, `UNLISTEN *`, ...): that is a
    second round trip per request, and the limit changes no session state."""


async def create_pool(url: str, size: int) -> asyncpg.Pool:
    """The limits' pool (in process and over HTTP): answers in UTC and keeps one
    generic plan per prepared statement, like ours (``Settings.db_plan_cache_mode``)."""
    pool = await asyncpg.create_pool(
        url,
        min_size=size,
        max_size=size,
        server_settings={"timezone": "UTC", "plan_cache_mode": "force_generic_plan"},
        reset=_keep_session,
    )
    assert pool is not None
    return pool


async def run_limit(
    pool: asyncpg.Pool, plan: ReadPlan, *, duration: float, connections: int, seed: int = 11
) -> LoadResult:
    """``connections`` tasks send statements back to back for ``duration`` seconds."""
    latencies: list[float] = []
    errors = 0
    sample = ""
    deadline = time.perf_counter() + duration

    async def worker(index: int) -> None:
        nonlocal errors, sample
        rng = random.Random(seed * 1000 + index)
        async with pool.acquire() as connection:
            statement = await connection.prepare(plan.limit_sql)
            while (start := time.perf_counter()) < deadline:
                args = plan.args(plan.sample(rng))
                try:
                    answer = await statement.fetchval(*args)
                    if not answer:
                        raise ValueError("empty answer")
                except (asyncpg.PostgresError, ValueError) as error:
                    errors += 1
                    sample = sample or str(error)[:400]
                latencies.append((time.perf_counter() - start) * 1000)

    began = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(connections)))
    return LoadResult(len(latencies), time.perf_counter() - began, latencies, errors, sample)
