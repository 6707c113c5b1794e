"""A request's outstanding database work, so that none of it outlives the transaction.

graphql-core cancels the siblings of a field whose error nulls their parent, and
settles in the background the ones still unstarted when an error is raised at once;
either way execution returns while work it asked for may still be due: a dataloader
batch scheduled but not yet begun, or one between two of its statements (``edge``,
``trend`` and ``series`` run one statement per group). The endpoint then committed
while that batch went on to use the session: "This session is in 'prepared' state"
(during the commit), or, after it, a statement on a transaction nobody ends, and the
loader's future failing with nobody to read it ("Future exception was never
retrieved"). So every load is tracked from the moment it is asked for, and the
request is finished (``Work.finish``) before its transaction ends: nothing new may
begin, and everything begun is waited for.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Sequence
from typing import Any, TypeVar

from strawberry.dataloader import DataLoader

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class RequestFinished(RuntimeError):
    """Work asked for once the request's answer was decided: refused before it touches
    the session, which is being committed or rolled back. Nobody reads its result."""

    def __init__(self) -> None:
        super().__init__("the request is finished: no more database work may begin")


class Work:
    """What a request's database work is doing: futures not yet done, and whether any
    more may begin."""

    def __init__(self) -> None:
        self.finished = False
        self._pending: set[asyncio.Future[Any]] = set()

    def check(self) -> None:
        """Refuses new work once the request is finished."""
        if self.finished:
            raise RequestFinished()

    def track(self, future: asyncio.Future[Any]) -> None:
        if not future.done():
            self._pending.add(future)
            future.add_done_callback(self._pending.discard)

    async def settle(self) -> None:
        """Waits until everything asked for so far is done (a batch's later statements
        included), reading its errors: their callers were cancelled and cannot."""
        while self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)

    async def finish(self) -> None:
        """The answer is decided: nothing new begins, and what began is waited for."""
        self.finished = True
        await self.settle()


class SharedLoader(DataLoader[K, V]):
    """A per-request loader whose futures survive a cancelled waiter, and are tracked.

    Every field asking for the same key awaits the same future; graphql-core cancels
    the siblings of a field whose error nulls their parent, and a cancelled waiter
    would cancel that shared future, so fields elsewhere in the answer would receive
    the cancellation and the whole request would fail. Each waiter gets its own
    shield; the future itself is tracked by the request's ``Work`` from the moment it
    is asked for, before its batch is even scheduled."""

    def __init__(
        self, load_fn: Callable[[Sequence[K]], Awaitable[Sequence[V]]], work: Work
    ) -> None:
        super().__init__(load_fn=load_fn)
        self._work = work

    def load(self, key: K) -> Awaitable[V]:
        self._work.check()
        future = super().load(key)
        self._work.track(future)  # type: ignore[arg-type]
        return asyncio.shield(future)
