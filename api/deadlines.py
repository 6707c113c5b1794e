"""Request deadlines on one shared timer.

``asyncio.timeout`` starts and stops a timer of the event loop for every request (with
uvloop, a libuv timer each): ~11 µs of a known read's ~270 µs of CPU. Every request of a
worker has the same time limit, so their deadlines come in the order they started: one
timer, ticking while requests run, stops those past their deadline. A request may run up
to one tick past it (a twentieth of the limit, at most a quarter of a second)."""

from __future__ import annotations

import asyncio
from types import TracebackType


class Deadlines:
    """``async with deadlines.limit():`` raises ``TimeoutError`` in the block once it has
    run ``seconds``, as ``asyncio.timeout(seconds)`` does (the task is cancelled, and the
    cancellation turned into ``TimeoutError`` as the block ends)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._tick = min(seconds / 20, 0.25)
        # Running blocks in the order they started, which is their deadlines' order.
        self._running: dict[Deadline, None] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None  # the timer's

    def limit(self) -> Deadline:
        return Deadline(self)

    def _enter(self, deadline: Deadline) -> float:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # a test's new loop: what ran on the last one is gone
            self._loop, self._running, self._timer = loop, {}, None
        now = loop.time()
        self._running[deadline] = None
        if self._timer is None:
            self._timer = loop.call_at(now + self._tick, self._expire, loop)
        return now + self.seconds

    def _leave(self, deadline: Deadline) -> None:
        self._running.pop(deadline, None)

    def _expire(self, loop: asyncio.AbstractEventLoop) -> None:
        """Cancels each block past its deadline; ticks again while any run."""
        if loop is not self._loop:
            return  # a timer of an earlier loop, replaced
        now = loop.time()
        running = self._running
        while running:
            deadline = next(iter(running))
            if deadline.at > now:
                break
            del running[deadline]
            deadline.expire()
        self._timer = loop.call_at(now + self._tick, self._expire, loop) if running else None


class Deadline:
    """One block's deadline (``Deadlines.limit``)."""

    __slots__ = ("_deadlines", "_task", "_cancelling", "_expired", "at")

    def __init__(self, deadlines: Deadlines) -> None:
        self._deadlines = deadlines
        self._task: asyncio.Task[object] | None = None
        self._cancelling = 0
        self._expired = False
        self.at = 0.0

    async def __aenter__(self) -> Deadline:
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("a deadline needs to be entered in a task")
        self._task = task
        self._cancelling = task.cancelling()
        self.at = self._deadlines._enter(self)
        return self

    def expire(self) -> None:
        assert self._task is not None
        self._expired = True
        self._task.cancel()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._deadlines._leave(self)
        if not self._expired:
            return
        assert self._task is not None
        # As asyncio.timeout: the cancellation was ours alone (no one else cancelled the
        # task meanwhile) if taking ours back leaves the count where it was on entry.
        if self._task.uncancel() <= self._cancelling and exc_type is asyncio.CancelledError:
            raise TimeoutError from exc_value
