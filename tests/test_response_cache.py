"""Known reads answered from memory until the data changes: dropped by a mutation
before its answer, by any committed write the database reports, and never kept while
its reports cannot be heard. The app is the production wiring with its lifespan (the
change feed listens), on a database of the test's own."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from domain.changes import APPLICATION_NAME
from schema.compiled.responses import ENTRY_OVERHEAD, Cached, ResponseCache
from schema.ids import encode_id
from tests.fixtures.database import run_sql

NODE = "query($id: ID!) { node(id: $id) { ... on Initiative { key title version } } }"
RENAME = """mutation($id: ID!, $version: Int, $title: String) {
  updateInitiative(input: {id: $id, expectedVersion: $version, title: $title}) {
    initiative { version } userErrors { code }
  }
}"""
EVENT_TIMEOUT = 15  # seconds: a bound on waiting for an event, not a delay


async def until(responses: Any, condition: Any) -> None:
    """Wait, event by event, until ``condition()`` holds (the cache's changes)."""
    while not condition():
        await asyncio.wait_for(responses.changed.wait(), EVENT_TIMEOUT)


@pytest.fixture
async def app(wired_app: Any) -> AsyncIterator[Any]:
    async with wired_app.router.lifespan_context(wired_app):
        await until(wired_app.state.responses, lambda: wired_app.state.responses.listening)
        yield wired_app


@pytest.fixture
async def client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


@pytest.fixture
async def initiative(own_database: str) -> int:
    pk = await run_sql(own_database, "SELECT min(id) FROM initiatives")
    assert isinstance(pk, int)
    return pk


async def ask(client: httpx.AsyncClient, pk: int) -> tuple[str, dict[str, Any]]:
    response = await client.post(
        "/graphql", json={"query": NODE, "variables": {"id": encode_id("Initiative", pk)}}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert "errors" not in body, body
    return body["extensions"]["answeredBy"], body["data"]["node"]


async def cached(client: httpx.AsyncClient, pk: int) -> dict[str, Any]:
    """Asked until memory answers it: planned, rendered, run and kept, then cached."""
    for _ in range(4):
        path, node = await ask(client, pk)
    assert path == "cached"
    return node


async def test_a_repeated_read_is_answered_from_memory(
    client: httpx.AsyncClient, initiative: int
) -> None:
    answers = [await ask(client, initiative) for _ in range(5)]
    paths = [path for path, _ in answers]
    assert paths == ["compiled", "repeated", "cached", "cached", "cached"]
    assert all(node == answers[0][1] for _, node in answers)
    # Other variables are another answer: read, then kept.
    assert (await ask(client, initiative + 1))[0] == "repeated"
    assert (await ask(client, initiative + 1))[0] == "cached"
    metrics = (await client.get("/metrics")).text
    assert "portfolio_response_cache_listening 1.0" in metrics
    assert "portfolio_response_cache_entries 2.0" in metrics
    assert 'portfolio_response_cache_answers_total{result="hit"} 4.0' in metrics
    assert 'portfolio_response_cache_answers_total{result="miss"} 2.0' in metrics


KPI_STATUS = '{ kpi(key: "PAY-UPTIME") { key status latestValue } }'
KPI_FRESHNESS = '{ kpi(key: "PAY-UPTIME") { key status isStale } }'


async def test_a_read_of_freshness_is_never_kept(client: httpx.AsyncClient) -> None:
    """`isStale` changes with the clock, not only with the data: its answers are read
    again every time, while the same KPI's status alone is kept."""

    async def paths(query: str) -> list[str]:
        answered = []
        for _ in range(4):
            response = await client.post("/graphql", json={"query": query})
            body = response.json()
            assert "errors" not in body, body
            answered.append(body["extensions"]["answeredBy"])
        return answered

    assert await paths(KPI_FRESHNESS) == ["compiled", "repeated", "repeated", "repeated"]
    assert await paths(KPI_STATUS) == ["compiled", "repeated", "cached", "cached"]


async def test_a_mutation_drops_the_cache_before_it_answers(
    client: httpx.AsyncClient, initiative: int
) -> None:
    node = await cached(client, initiative)
    renamed = await client.post(
        "/graphql",
        json={
            "query": RENAME,
            "variables": {
                "id": encode_id("Initiative", initiative),
                "version": node["version"],
                "title": "Renamed through the API",
            },
        },
    )
    assert renamed.json()["data"]["updateInitiative"]["userErrors"] == []
    # At once, without waiting for the database's notification.
    path, after = await ask(client, initiative)
    assert (path, after["title"]) == ("repeated", "Renamed through the API")
    assert after["version"] == node["version"] + 1


async def test_a_refused_mutation_keeps_the_cache(
    client: httpx.AsyncClient, initiative: int
) -> None:
    """The cache is dropped where a write goes through (``schema.mutations.common.run``),
    not for every mutation document: a stale ``expectedVersion`` writes nothing."""
    node = await cached(client, initiative)
    refused = await client.post(
        "/graphql",
        json={
            "query": RENAME,
            "variables": {
                "id": encode_id("Initiative", initiative),
                "version": node["version"] - 1,
                "title": "Never stored",
            },
        },
    )
    assert refused.json()["data"]["updateInitiative"]["userErrors"] == [{"code": "CONFLICT"}]
    assert await ask(client, initiative) == ("cached", node)


async def test_a_write_committed_elsewhere_drops_the_cache(
    app: Any, client: httpx.AsyncClient, initiative: int, own_database: str
) -> None:
    responses = app.state.responses
    await cached(client, initiative)
    generation = responses.generation
    # Another process, psql, a migration...
    await run_sql(
        own_database,
        "UPDATE initiatives SET title = 'Renamed by SQL' WHERE id = :id",
        {"id": initiative},
    )
    await until(responses, lambda: responses.generation > generation)
    path, after = await ask(client, initiative)
    assert (path, after["title"]) == ("repeated", "Renamed by SQL")


async def test_a_lost_feed_empties_the_cache_and_listens_again(
    app: Any, client: httpx.AsyncClient, initiative: int, own_database: str
) -> None:
    responses = app.state.responses
    await cached(client, initiative)
    generation = responses.generation
    ended = await run_sql(
        own_database,
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
        " WHERE application_name = :name AND datname = current_database()",
        {"name": APPLICATION_NAME},
    )
    assert ended == 1
    # Deaf (the cache is emptied), then listening again by itself (emptied again).
    await until(responses, lambda: responses.generation >= generation + 2 and responses.listening)
    assert [(await ask(client, initiative))[0] for _ in range(2)] == ["repeated", "cached"]


def test_nothing_is_kept_while_changes_cannot_be_heard() -> None:
    cache = ResponseCache(max_chars=1_000_000)
    cache.set_listening(True)
    cache.put("kept", cache.generation, Cached({}, 0, 10))
    cache.set_listening(False)
    assert len(cache) == 0
    cache.put("answer", cache.generation, Cached({}, 0, 10))
    assert cache.get("answer") is None
    assert len(cache) == 0


async def test_every_table_but_the_exempt_notifies_its_changes(own_database: str) -> None:
    engine = create_async_engine(own_database)
    async with engine.connect() as connection:
        tables = set(
            await connection.scalars(
                text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
            )
        )
        notifying = set(
            await connection.scalars(
                text(
                    "SELECT c.relname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid"
                    " WHERE t.tgname = 'portfolio_changes'"
                )
            )
        )
    await engine.dispose()
    assert notifying <= tables
    # The webhook tables (0009) are read only by the `webhooks` admin field, which the
    # resolvers answer and the response cache never keeps; a notification per delivery
    # attempt would empty every replica's cache for nothing.
    webhooks = {"webhook_endpoints", "webhook_deliveries", "webhook_attempts"}
    assert tables - notifying == {"alembic_version", "login_throttle", *webhooks}


def test_the_bound_counts_every_answer_and_drops_the_least_recently_used() -> None:
    cache = ResponseCache(max_chars=3 * (100 + ENTRY_OVERHEAD))
    cache.set_listening(True)
    for key in range(3):
        cache.put(key, cache.generation, Cached({}, 0, 100))
    assert cache.get(0) is not None  # now the most recently used
    cache.put(3, cache.generation, Cached({}, 0, 100))
    assert len(cache) == 3
    assert cache.get(1) is None  # the least recently used went
    assert cache.chars == 3 * (100 + ENTRY_OVERHEAD)
    # An answer read before a change is not kept after it.
    before = cache.generation
    cache.invalidate()
    cache.put("late", before, Cached({}, 0, 1))
    assert len(cache) == 0
    assert cache.chars == 0


async def test_an_answer_reading_the_webhook_tables_is_never_kept(
    client: httpx.AsyncClient, own_database: str
) -> None:
    """The webhook tables send no change notification (see the test above), so a compiled
    answer reading them is never kept: a webhook registered after it is seen at once."""
    document = "{ webhooks { url } products(first: 1) { nodes { key } } }"
    paths, lists = [], []
    for step in range(4):
        if step == 2:
            await run_sql(
                own_database,
                "WITH owner AS (INSERT INTO users (email, display_name)"
                " VALUES ('hooks@example.com', 'Hooks') RETURNING id)"
                " INSERT INTO webhook_endpoints (url, event_types, secret, owner_user_id)"
                " SELECT 'https://hooks.example.com/late', '{}', 'x', id FROM owner RETURNING 1",
            )
        response = await client.post("/graphql", json={"query": document})
        body = response.json()
        assert "errors" not in body, body
        paths.append(body["extensions"]["answeredBy"])
        lists.append([hook["url"] for hook in body["data"]["webhooks"]])
    assert "cached" not in paths and paths[0] == "compiled", paths
    assert lists[1] == [] and lists[2] == lists[3] == ["https://hooks.example.com/late"], lists


async def test_an_answer_with_errors_the_plan_wrote_is_kept_with_them(
    client: httpx.AsyncClient,
) -> None:
    """An invalid series window is answered by the plan with the resolver's error
    (``schema.compiled.errors``): kept, the cached answer carries that error too."""
    document = (
        '{ kpis(first: 2) { nodes { key series(from: "2026-01-02T00:00:00Z", '
        'to: "2026-01-01T00:00:00Z") { count } } } }'
    )
    answers = []
    for _ in range(4):
        response = await client.post("/graphql", json={"query": document})
        assert response.status_code == 200, response.text
        answers.append(response.json())
    assert [a.pop("extensions")["answeredBy"] for a in answers] == [
        "compiled",
        "repeated",
        "cached",
        "cached",
    ]
    assert all(answer == answers[0] for answer in answers)
    (error,) = answers[0]["errors"]
    assert (error["message"], error["path"]) == (
        "`to` must be after `from`.",
        ["kpis", "nodes", 0, "series"],
    )
    assert error["extensions"] == {"code": "INVALID", "field": "to"}
