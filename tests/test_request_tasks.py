"""No database work of a request outlives its transaction.

graphql-core cancels the siblings of a field whose error nulls their parent; a
dataloader batch they asked for was still due (scheduled, or between the statements
of its groups) when the endpoint committed, and then used the session during the
commit ("This session is in 'prepared' state"), or after it; its future failed with
nobody left to read it ("Future exception was never retrieved"). ``schema.work``
tracks every load from the moment it is asked for; the endpoint finishes the request
(nothing new begins, everything begun is waited for) before the transaction ends."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from auth.principal import anonymous_principal
from domain import models
from schema.context import Context
from schema.work import RequestFinished
from tests.conftest import GraphQL, make_client, settings_for
from tests.fixtures.database import StatementCounter

# `series` refuses its empty window when it runs, after its siblings asked for their
# pages: `measurements` and `initiatives` are one batch of the edge loader in two
# groups (two statements), whose waiters are cancelled when the error nulls `kpi`.
NULLED = """{ kpi(key: "PAY-ADOPTION") {
  measurements(last: 4) { totalCount }
  initiatives { totalCount }
  series(from: "2099-01-01T00:00:00Z", to: "2099-01-01T00:00:00Z") { count }
} }"""


@pytest.fixture
async def loop_errors() -> AsyncIterator[list[dict[str, Any]]]:
    """What the event loop reports (an exception never retrieved, a task destroyed
    while pending), collected instead of logged; read after ``gc.collect()``, which
    is when an unread future reports itself."""
    loop = asyncio.get_running_loop()
    seen: list[dict[str, Any]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: seen.append(context))
    yield seen
    loop.set_exception_handler(previous)


def _context(db: AsyncSession) -> Context:
    return Context(
        session=db,
        principal=anonymous_principal(development=True, configured=None),
        settings=settings_for(),
    )


async def _kpi_ids(db: AsyncSession) -> list[int]:
    return list((await db.scalars(select(models.Kpi.id).order_by(models.Kpi.id).limit(2))).all())


async def test_a_batch_whose_waiters_were_cancelled_is_waited_for_to_its_last_statement(
    db: AsyncSession, statements: StatementCounter, loop_errors: list[dict[str, Any]]
) -> None:
    context = _context(db)
    first, second = await _kpi_ids(db)
    loader = context.trend()
    keys = [(first, 7), (second, 30)]  # two windows: one statement each, in one batch
    waiters = [asyncio.ensure_future(loader.load(key)) for key in keys]
    for waiter in waiters:
        waiter.cancel()  # as graphql-core cancels the siblings of a failed field
    before = statements.count

    await context.settle()

    # Nothing of the batch is left to run on the session: both groups' statements ran
    # before settle returned (the batch had not even been scheduled when it was called).
    loads = [loader.cache_map.get(key) for key in keys]
    assert all(load is not None and load.done() for load in loads)
    assert statements.count - before == 2
    assert [w.cancelled() for w in waiters] == [True, True]
    # The session is still usable, and nothing was left unread.
    assert await db.scalar(select(1)) == 1
    gc.collect()
    assert loop_errors == []


async def test_a_finished_request_begins_no_more_work_and_reads_what_failed(
    db: AsyncSession, statements: StatementCounter, loop_errors: list[dict[str, Any]]
) -> None:
    context = _context(db)
    first, second = await _kpi_ids(db)
    loader = context.trend()
    keys = [(first, 7), (second, 30)]
    waiters = [asyncio.ensure_future(loader.load(key)) for key in keys]
    for waiter in waiters:
        waiter.cancel()
    before = statements.count

    await context.finish()

    # The answer is decided: the batch asked for before was refused without a statement,
    # its failure read by finish (nobody else could), and nothing new may begin.
    loads = [loader.cache_map.get(key) for key in keys]
    assert all(load is not None and load.done() for load in loads)
    assert all(isinstance(load.exception(), RequestFinished) for load in loads if load)
    with pytest.raises(RequestFinished, match="no more database work may begin"):
        loader.load((first, 90))
    with pytest.raises(RequestFinished, match="no more database work may begin"):
        await context.run(lambda session: session.scalar(select(1)))
    assert statements.count == before
    del loads
    gc.collect()
    assert loop_errors == []


async def test_a_field_error_nulling_loads_in_flight_ends_the_transaction_cleanly(
    engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
    loop_errors: list[dict[str, Any]],
) -> None:
    order: list[str] = []

    def statement(_conn: Any, _cursor: Any, text: str, *_: Any) -> None:
        order.append(text.split(None, 1)[0].upper())

    def released(_conn: Any, _name: Any, _context: Any) -> None:
        order.append("RELEASE")

    event.listen(engine.sync_engine, "before_cursor_execute", statement)
    event.listen(engine.sync_engine, "release_savepoint", released)
    try:
        async with make_client(engine, sessions, compiled_reads=False) as client:
            body = await GraphQL(client)(NULLED)
            # The answer is complete once sent: nothing of the request runs after it.
            answered = list(order)
            gc.collect()
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", statement)
        event.remove(engine.sync_engine, "release_savepoint", released)

    assert body["data"] == {"kpi": None}
    [error] = body["errors"]
    assert error["path"] == ["kpi", "series"]
    assert error["message"] == "`to` must be after `from`."
    assert error["extensions"]["code"] == "INVALID"
    # The request's savepoint (its transaction, in tests) began, ran the KPI and what
    # of the cancelled batch began before the answer was decided (one group or both),
    # and was released last: no statement ran after it.
    ended = answered.index("RELEASE")
    assert answered[0] == "SAVEPOINT"
    assert answered[1:ended] in (["SELECT", "SELECT"], ["SELECT", "SELECT", "SELECT"])
    assert set(answered[ended:]) == {"RELEASE"}
    assert order == answered
    assert loop_errors == []
