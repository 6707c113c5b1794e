"""Seed data: the demo portfolio for newcomers and tests, a generator for benchmarks.

Both are idempotent and leave the transaction to the caller (they never commit).
"""

from domain.seed.demo import seed_demo
from domain.seed.generator import seed_generated
from domain.seed.report import SeedReport

__all__ = ["SeedReport", "seed_demo", "seed_generated"]
