"""Request deadlines on one shared timer (``api.deadlines``): what ``asyncio.timeout``
did for each request, for all of them at once. The HTTP answer to a request past its
deadline is tested in test_operations.py (``test_request_timeout``)."""

from __future__ import annotations

import asyncio

import pytest

from api.deadlines import Deadlines

SHORT = 0.05  # seconds: a deadline these tests wait for


async def _forever() -> None:
    await asyncio.Event().wait()


async def test_a_block_past_its_deadline_raises_timeout_and_its_task_goes_on() -> None:
    deadlines = Deadlines(SHORT)
    with pytest.raises(TimeoutError):
        async with deadlines.limit():
            await _forever()
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0  # the cancellation was taken back
    done = asyncio.Event()
    asyncio.get_running_loop().call_soon(done.set)
    await done.wait()  # the task awaits again without being cancelled


async def test_a_block_within_its_deadline_is_left_alone() -> None:
    deadlines = Deadlines(60)
    async with deadlines.limit() as deadline:
        await asyncio.sleep(0)
    assert deadline.at > asyncio.get_running_loop().time()
    assert not deadlines._running


async def test_each_block_has_its_own_deadline() -> None:
    """The first request's deadline passes; one that started later, and ends before its
    own, is not stopped with it."""
    deadlines = Deadlines(0.4)
    first_stopped = asyncio.Event()
    outcomes: dict[str, str] = {}

    async def first() -> None:
        try:
            async with deadlines.limit():
                await _forever()
        except TimeoutError:
            outcomes["first"] = "timed out"
            first_stopped.set()

    async def second() -> None:
        async with deadlines.limit() as deadline:
            await first_stopped.wait()
            outcomes["second"] = "finished"
        assert asyncio.get_running_loop().time() < deadline.at

    first_task = asyncio.create_task(first())
    # Not a synchronisation: the two deadlines are set half the limit apart, so the
    # second has 0.2 s to spare once the first is stopped.
    await asyncio.sleep(0.2)
    await asyncio.gather(first_task, second())
    assert outcomes == {"first": "timed out", "second": "finished"}


async def test_a_cancellation_from_outside_stays_a_cancellation() -> None:
    deadlines = Deadlines(60)
    entered = asyncio.Event()

    async def request() -> None:
        async with deadlines.limit():
            entered.set()
            await _forever()

    task = asyncio.create_task(request())
    await entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not deadlines._running


async def test_the_timer_stops_once_no_block_runs() -> None:
    deadlines = Deadlines(SHORT)
    with pytest.raises(TimeoutError):
        async with deadlines.limit():
            await _forever()
    # The tick that stopped the block found no other: it did not schedule another.
    assert deadlines._timer is None


def test_a_new_event_loop_gets_a_timer_of_its_own() -> None:
    """An app outlives a test's event loop: the timer left on a closed loop must not
    keep the next loop's requests from being stopped."""
    deadlines = Deadlines(SHORT)

    async def quick() -> None:
        async with deadlines.limit():
            await asyncio.sleep(0)

    async def stopped_after() -> float:
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            async with asyncio.timeout(2):  # so that this test fails, not hangs, without it
                async with deadlines.limit():
                    await _forever()
        except TimeoutError:
            return loop.time() - started
        raise AssertionError("never stopped")

    asyncio.run(quick())  # leaves its tick scheduled on a loop that then closes
    assert asyncio.run(stopped_after()) < 1.0
