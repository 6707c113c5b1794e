"""Seed data: the demo portfolio for newcomers and tests, a generator for benchmarks.

Both are idempotent and leave the transaction to the caller (they never commit).
"""

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from domain.seed.demo import demo_day, seed_demo
from domain.seed.generator import seed_generated
from domain.seed.report import SeedReport

__all__ = ["SeedReport", "demo_day", "refresh_statistics", "seed_demo", "seed_generated"]


async def refresh_statistics(session: AsyncSession) -> None:
    """ANALYZE, after loading: until autovacuum gets to it (a minute or more), the
    planner takes a freshly loaded table for a handful of rows and plans nested
    connections as scans repeated per parent row: a 20-row Relay page took 22 ms of
    the database's time instead of 3."""
    await session.execute(text("ANALYZE"))
