"""Polling the change feed until it has caught up.

The feed's horizon is the oldest writing transaction of the whole PostgreSQL server,
other databases' included: a parallel test run can hold it back for a moment, so a
test that expects an event to be served polls for it, bounded by a deadline (under a
loaded server a bound on the number of attempts runs out first). The short pause
between attempts only yields to the server; no assertion depends on its length.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")

FEED_CATCH_UP_SECONDS = 60.0
PAUSE_SECONDS = 0.01


async def poll_feed(
    attempt: Callable[[], Awaitable[T]],
    done: Callable[[T], bool],
    *,
    what: str,
    seconds: float = FEED_CATCH_UP_SECONDS,
) -> T:
    """Run ``attempt`` until ``done`` holds of its result, and return that result;
    fail with ``what`` (and the last result) once ``seconds`` have passed."""
    deadline = time.monotonic() + seconds
    while True:
        result = await attempt()
        if done(result):
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what}: not reached in {seconds:.0f} s; last: {result!r}")
        await asyncio.sleep(PAUSE_SECONDS)
