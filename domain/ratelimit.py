"""Point budgets per caller and window, shared between replicas through Redis.

Each request is charged its requested query cost before it runs; a caller whose
budget for the current window is spent is refused until the window resets.
Without Redis the counters live in this process (fine for one replica only).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from redis.asyncio import Redis


@dataclass(frozen=True)
class Budget:
    limit: int
    cost: int
    remaining: int
    reset_at: float  # epoch seconds
    allowed: bool
    # The limiter's clock at the charge: the wait is told by the clock that chose the
    # window, so a limiter whose clock a test sets tells a wait the test knows.
    charged_at: float

    @property
    def retry_after(self) -> int:
        return max(1, int(self.reset_at - self.charged_at) + 1)


class RateLimiter(Protocol):
    async def charge(self, key: str, cost: int) -> Budget: ...

    async def aclose(self) -> None: ...


class LocalRateLimiter:
    """Fixed windows in process memory."""

    def __init__(
        self, limit: int, window_seconds: int, clock: Callable[[], float] = time.time
    ) -> None:
        self.limit = limit
        self.window = window_seconds
        self.clock = clock
        self._spent: dict[tuple[str, int], int] = {}
        self._current = -1  # the window whose counters ``_spent`` holds

    async def charge(self, key: str, cost: int) -> Budget:
        now = self.clock()
        window = int(now // self.window)
        reset_at = (window + 1) * self.window
        spent = self._spent.get((key, window), 0)
        if spent + cost > self.limit:
            return Budget(
                self.limit, cost, self.limit - spent, reset_at, allowed=False, charged_at=now
            )
        if window != self._current:
            # Past windows' counters go once, when a new window begins, not at every
            # charge (which made a charge cost as much as the callers seen this window).
            self._spent = {k: v for k, v in self._spent.items() if k[1] == window}
            self._current = window
        self._spent[(key, window)] = spent + cost
        return Budget(
            self.limit, cost, self.limit - spent - cost, reset_at, allowed=True, charged_at=now
        )

    async def aclose(self) -> None:
        return None


# Atomically: charge only if the budget allows; the key expires with its window.
_CHARGE = """
local spent = tonumber(redis.call('GET', KEYS[1]) or '0')
local cost = tonumber(ARGV[1])
if spent + cost > tonumber(ARGV[2]) then return {0, spent} end
spent = redis.call('INCRBY', KEYS[1], cost)
redis.call('EXPIRE', KEYS[1], ARGV[3])
return {1, spent}
"""


class RedisRateLimiter:
    """Fixed windows in Redis, shared by every replica."""

    def __init__(self, url: str, limit: int, window_seconds: int, prefix: str = "pg:rl") -> None:
        self.redis = Redis.from_url(url)
        self.limit = limit
        self.window = window_seconds
        self.prefix = prefix
        self._script = self.redis.register_script(_CHARGE)

    async def charge(self, key: str, cost: int) -> Budget:
        now = time.time()
        window = int(now // self.window)
        reset_at = (window + 1) * self.window
        allowed, spent = await self._script(
            keys=[f"{self.prefix}:{key}:{window}"], args=[cost, self.limit, self.window + 5]
        )
        return Budget(
            self.limit,
            cost,
            self.limit - int(spent),
            reset_at,
            allowed=bool(allowed),
            charged_at=now,
        )

    async def aclose(self) -> None:
        await self.redis.aclose()
