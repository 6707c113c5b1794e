"""A worker's memory under large requests: a 10,000-measurement batch is ~10 MB of
objects, and four calls in flight used to leave a worker at 400-750 MB RSS (bench
ingest workload).

What a request holds is let go when its answer is sent, not at the collector's next
full pass: those tests switch the collector off while the request runs, so anything
kept only by a reference cycle stays visible to ``gc.get_objects()``. Large requests
take turns, a few at a time. And large unique documents are refused before they are
parsed, so no cache keeps them.
"""

from __future__ import annotations

import asyncio
import contextvars
import gc
import json
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from graphql import Source
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from api.app import assemble_app
from domain.services import measurements
from domain.services.measurements import Batch
from domain.settings import Settings
from schema.mutations import bulk
from tests.conftest import ALL_SCOPES, in_pieces, make_client, settings_for
from tests.fixtures import factories

INGEST = """mutation Ingest($input: RecordKpiMeasurementsInput!) {
  recordKpiMeasurements(input: $input) { received inserted rejected } }"""
COUNT = 200


@pytest.fixture
async def client(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> AsyncIterator[httpx.AsyncClient]:
    async with make_client(engine, sessions, anonymous_scopes=ALL_SCOPES) as client:
        yield client


@pytest.fixture
def collector_off() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _alive_batches() -> list[Batch]:
    return [o for o in gc.get_objects() if isinstance(o, Batch)]


def _decoded_copies(sent: list[dict[str, Any]]) -> list[list[Any]]:
    """Lists equal to the items sent, other than ``sent`` itself: the server's decoding."""
    return [
        o
        for o in gc.get_objects()
        if type(o) is list and o is not sent and len(o) == len(sent) and o == sent
    ]


async def _ingest(
    client: httpx.AsyncClient, items: list[dict[str, Any]], *, chunked: bool = False
) -> dict[str, Any]:
    """One ingest call; ``chunked`` sends the body in pieces without a Content-Length."""
    body = json.dumps({"query": INGEST, "variables": {"input": {"measurements": items}}})
    response = await client.post(
        "/graphql",
        content=in_pieces(body.encode(), 512) if chunked else body,
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


async def test_a_prevalidated_batch_is_let_go_with_its_request(
    client: httpx.AsyncClient, db: AsyncSession, collector_off: None
) -> None:
    kpi = await factories.kpi(db)
    await db.commit()
    items = factories.measurement_items(kpi.key, COUNT, "memory-test", 0, prefix="m")
    taken = bulk.COUNTERS.prevalidated
    answer = await _ingest(client, items)
    assert answer["data"]["recordKpiMeasurements"] == {
        "received": COUNT,
        "inserted": COUNT,
        "rejected": 0,
    }
    assert bulk.COUNTERS.prevalidated == taken + 1  # the batch took the fast path
    # graphql-core's execution context sits in a reference cycle; the batch it was
    # given as root value must not wait there for the collector.
    assert _alive_batches() == []
    assert _decoded_copies(items) == []


async def test_a_context_kept_past_the_request_does_not_keep_its_body(
    client: httpx.AsyncClient,
    db: AsyncSession,
    collector_off: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Whatever a request starts keeps a copy of its context: uvicorn's keep-alive timer
    until the next request, a task or callback scheduled meanwhile for as long as it
    lives. Such a copy must not keep the decoded body."""
    kpi = await factories.kpi(db)
    await db.commit()
    items = factories.measurement_items(kpi.key, COUNT, "memory-test", 0, prefix="c")
    kept: list[contextvars.Context] = []
    record = measurements.record

    async def keeping_context(*args: Any) -> measurements.IngestResult:
        kept.append(contextvars.copy_context())  # as a timer started here would
        return await record(*args)

    monkeypatch.setattr(measurements, "record", keeping_context)
    answer = await _ingest(client, items)
    assert answer["data"]["recordKpiMeasurements"]["inserted"] == COUNT
    assert len(kept) == 1
    assert _decoded_copies(items) == []


async def _waiting(client: httpx.AsyncClient) -> float:
    metrics = (await client.get("/metrics")).text
    found = re.search(r"^portfolio_large_requests_waiting (\S+)$", metrics, re.MULTILINE)
    assert found is not None, metrics
    return float(found.group(1))


@pytest.mark.parametrize("chunked", [False, True], ids=["declared", "chunked"])
async def test_large_requests_take_turns(
    engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
    db: AsyncSession,
    monkeypatch: pytest.MonkeyPatch,
    chunked: bool,
) -> None:
    """Bodies over ``large_body_bytes`` run ``large_requests_at_once`` at a time; the
    others wait (counted in a gauge) and then run; small requests never wait. A body
    sent in chunks, without a Content-Length, waits as one that declares its size."""
    kpi = await factories.kpi(db)
    await db.commit()
    entered: list[int] = []
    inside = asyncio.Event()
    go_on = asyncio.Event()
    record = measurements.record

    async def held(*args: Any) -> measurements.IngestResult:
        entered.append(len(args[2]))
        inside.set()
        await go_on.wait()
        return await record(*args)

    monkeypatch.setattr(measurements, "record", held)
    settings = settings_for(
        anonymous_scopes=ALL_SCOPES, large_body_bytes=1_000, large_requests_at_once=1
    )
    app = assemble_app(settings, engine, sessions)
    async with make_client(engine, sessions, app=app) as client:
        first = asyncio.ensure_future(
            _ingest(client, factories.measurement_items(kpi.key, COUNT, "turns", 0, prefix="a"))
        )
        await inside.wait()
        second = asyncio.ensure_future(
            _ingest(
                client,
                factories.measurement_items(kpi.key, 50, "turns", 0, prefix="b"),
                chunked=chunked,
            )
        )
        for _ in range(1_000):
            await asyncio.sleep(0)  # a turn for the second request (in-process HTTP)
            if await _waiting(client) == 1:
                break
        else:
            pytest.fail("the second large request never waited")
        assert entered == [COUNT]
        # A small request is answered meanwhile.
        small = await client.post("/graphql", json={"query": "{ __typename }"})
        assert small.json()["data"] == {"__typename": "Query"}

        go_on.set()
        answers = await asyncio.gather(first, second)
        assert [a["data"]["recordKpiMeasurements"]["inserted"] for a in answers] == [COUNT, 50]
        assert entered == [COUNT, 50]
        assert await _waiting(client) == 0


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("PORTFOLIO_LARGE_REQUESTS_AT_ONCE", "0", "Input should be greater than or equal to 1"),
        ("PORTFOLIO_LARGE_REQUESTS_AT_ONCE", "two", "Input should be a valid integer"),
        ("PORTFOLIO_LARGE_BODY_BYTES", "-1", "Input should be greater than or equal to 0"),
    ],
)
def test_the_large_request_settings_refuse_bad_values(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    """A worker with no slot would make every large request wait for its timeout: the
    setting is refused at start-up instead, naming the field."""
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValidationError) as refused:
        Settings()
    (error,) = refused.value.errors()
    assert error["loc"] == (variable.removeprefix("PORTFOLIO_").lower(),)
    assert error["msg"].startswith(message)


async def test_unique_large_documents_are_neither_parsed_nor_kept(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """Unique 4.8 MB documents (a comment and ``{ __typename }``) from anonymous callers
    took a server from 120 MiB to 1 GiB, each kept parsed in the caches: now each is
    refused on its length, and no parsed copy of any of them stays alive."""
    async with make_client(engine, sessions, environment="production") as anonymous:
        for number in range(5):
            document = f"# {number} {uuid.uuid4()} " + "x" * 4_800_000 + "\n{ __typename }"
            response = await anonymous.post("/graphql", json={"query": document})
            assert response.status_code == 200
            [error] = response.json()["errors"]
            assert error["extensions"]["code"] == "DOCUMENT_TOO_LARGE"
    gc.collect()
    assert [o for o in gc.get_objects() if isinstance(o, Source) and len(o.body) > 1_000_000] == []
