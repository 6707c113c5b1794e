"""``mutation … @atomic``: every root field commits, or none does. Each part still
answers with its own userErrors; ``extensions.atomic`` says what happened; a rolled-back
batch leaves the database exactly as it was (rows, audit events, webhook outbox), sends
no change notification and keeps the response cache. Without the directive nothing
changes: each mutation is its own savepoint."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from domain.changes import CHANNEL
from domain.webhooks.endpoints import create_endpoint
from tests.conftest import GraphQL, settings_for
from tests.fixtures import factories
from tests.fixtures.auth import user_with_roles

CREATE_TWO = """mutation Sync($first: String!, $second: String!) @atomic {
  a: createInitiative(input: {key: $first, title: "First"}) {
    initiative { id key } userErrors { field code message }
  }
  b: createInitiative(input: {key: $second, title: "Second"}) {
    initiative { id key } userErrors { field code message }
  }
}"""

BAD_KEY = (
    "`key` must be 2 to 32 upper-case letters, digits or dashes, starting with a letter "
    "(e.g. PAY-12)."
)

# Every table a mutation here can write, directly or through a trigger.
TABLES = (
    "initiatives",
    "products",
    "kpi_measurements",
    "initiative_products",
    "audit_events",
    "webhook_deliveries",
)


async def snapshot(db: AsyncSession) -> dict[str, list[str]]:
    """Every row of every table a batch may touch, as text, in a stable order."""
    found = {}
    for table in TABLES:
        rows = await db.execute(text(f"SELECT t::text FROM {table} t ORDER BY t::text"))
        found[table] = [row[0] for row in rows]
    return found


async def keys(db: AsyncSession, *wanted: str) -> list[str]:
    rows = await db.scalars(
        text("SELECT key FROM initiatives WHERE key = ANY(:keys) ORDER BY key"),
        {"keys": list(wanted)},
    )
    return list(rows)


async def test_a_refused_part_rolls_back_the_parts_that_went_through(
    writer: GraphQL, db: AsyncSession
) -> None:
    await register_webhook(db)
    before = await snapshot(db)
    body = await writer(CREATE_TWO, {"first": "ATOM-1", "second": "bad key"})
    assert body["data"]["a"]["userErrors"] == []
    assert body["data"]["a"]["initiative"]["key"] == "ATOM-1"  # what it would have been
    assert body["data"]["b"] == {
        "initiative": None,
        "userErrors": [
            {
                "field": "key",
                "code": "INVALID",
                "message": BAD_KEY,
            }
        ],
    }
    assert body["extensions"]["atomic"] == {
        "committed": False,
        "failed": ["b"],
        "rolledBack": ["a"],
    }
    # Nothing of `a` is left: no row, no audit event, no webhook delivery queued.
    assert await snapshot(db) == before


async def test_every_failing_part_reports_its_own_user_errors(
    writer: GraphQL, db: AsyncSession
) -> None:
    """Parts run one after the other, each seeing the ones before: the second create of
    the same key is a DUPLICATE of the first, and both creates vanish."""
    before = await snapshot(db)
    query = """mutation @atomic {
      one: createInitiative(input: {key: "ATOM-D", title: "x"}) { userErrors { code } }
      two: createInitiative(input: {key: "ATOM-D", title: "y"}) {
        userErrors { field code message }
      }
      three: createInitiative(input: {key: "", title: "z"}) { userErrors { field code } }
    }"""
    body = await writer(query)
    assert body["data"]["one"] == {"userErrors": []}
    assert body["data"]["two"]["userErrors"] == [
        {
            "field": "key",
            "code": "DUPLICATE",
            "message": "Another Initiative already has this key.",
        }
    ]
    assert body["data"]["three"]["userErrors"][0]["code"] == "INVALID"
    assert body["extensions"]["atomic"] == {
        "committed": False,
        "failed": ["two", "three"],
        "rolledBack": ["one"],
    }
    assert await snapshot(db) == before


async def register_webhook(db: AsyncSession) -> None:
    """An endpoint asking for created initiatives: their deliveries go to the outbox."""
    owner = await user_with_roles(db)
    await create_endpoint(
        db,
        settings_for(),
        url="http://127.0.0.1:9/hooks",
        event_types=["initiative.created"],
        owner_user_id=owner.id,
    )
    await db.commit()


async def test_all_parts_going_through_commit_together(writer: GraphQL, db: AsyncSession) -> None:
    await register_webhook(db)
    body = await writer(CREATE_TWO, {"first": "ATOM-2", "second": "ATOM-3"})
    assert body["extensions"]["atomic"] == {"committed": True, "failed": [], "rolledBack": []}
    assert [body["data"][k]["userErrors"] for k in "ab"] == [[], []]
    assert await keys(db, "ATOM-2", "ATOM-3") == ["ATOM-2", "ATOM-3"]
    audited = await db.scalar(
        text(
            "SELECT count(*) FROM audit_events e JOIN initiatives i ON i.id = e.entity_id"
            " WHERE e.entity_type = 'Initiative' AND e.action = 'CREATE'"
            " AND i.key IN ('ATOM-2', 'ATOM-3')"
        )
    )
    assert audited == 2
    # The outbox the rolled-back batches leave untouched does fill on a commit.
    assert await db.scalar(text("SELECT count(*) FROM webhook_deliveries")) == 2


async def test_without_the_directive_each_mutation_stands_alone(
    writer: GraphQL, db: AsyncSession
) -> None:
    body = await writer(
        CREATE_TWO.replace(" @atomic", ""), {"first": "ATOM-4", "second": "bad key"}
    )
    assert body["data"]["a"]["userErrors"] == []
    assert body["data"]["b"]["userErrors"][0]["code"] == "INVALID"
    assert "atomic" not in body.get("extensions", {})
    assert await keys(db, "ATOM-4") == ["ATOM-4"]


async def test_an_error_in_a_part_rolls_back_the_batch(caller: Any, db: AsyncSession) -> None:
    """A part refused for a missing scope is a GraphQL error, not a userError: it fails
    the batch just the same."""
    limited: GraphQL = await caller(["portfolio:read", "initiatives:write"])
    before = await snapshot(db)
    query = """mutation @atomic {
      initiative: createInitiative(input: {key: "ATOM-5", title: "x"}) { userErrors { code } }
      product: createProduct(input: {key: "ATOMP", name: "x", lifecycleStage: IDEA}) {
        userErrors { code }
      }
    }"""
    body = await limited(query)
    assert body["data"] == {"initiative": {"userErrors": []}, "product": None}
    [error] = body["errors"]
    assert error["extensions"]["code"] == "FORBIDDEN"
    assert error["message"] == "Missing scope: this field requires products:write."
    assert error["path"] == ["product"]
    assert body["extensions"]["atomic"] == {
        "committed": False,
        "failed": ["product"],
        "rolledBack": ["initiative"],
    }
    assert await snapshot(db) == before


async def test_an_error_deep_in_a_part_fails_it(caller: Any, db: AsyncSession) -> None:
    """Any error of the answer counts, a field the caller may not read included: the
    batch is committed only when its whole answer is."""
    limited: GraphQL = await caller(["portfolio:read", "initiatives:write"])
    before = await snapshot(db)
    query = """mutation @atomic {
      made: createInitiative(input: {key: "ATOM-7", title: "x", estimatedCost: "10"}) {
        initiative { key estimatedCost } userErrors { code }
      }
    }"""
    body = await limited(query)
    assert body["data"]["made"] == {
        "initiative": {"key": "ATOM-7", "estimatedCost": None},
        "userErrors": [],
    }
    [error] = body["errors"]
    assert error["path"] == ["made", "initiative", "estimatedCost"]
    assert error["message"] == "Missing scope: this field requires finance:read."
    assert body["extensions"]["atomic"] == {
        "committed": False,
        "failed": ["made"],
        "rolledBack": [],
    }
    assert await snapshot(db) == before


async def test_a_bulk_ingest_with_one_rejected_item_fails_the_batch(
    writer: GraphQL, db: AsyncSession
) -> None:
    """Without ``@atomic`` the valid measurements of a batch are stored; with it, one
    rejected item undoes them and everything else of the operation."""
    kpi = await factories.kpi(db)
    await db.commit()
    items = factories.measurement_items(kpi.key, 3, "atomic")
    items[2] = {**items[2], "kpiKey": "NO-SUCH-KPI"}
    before = await snapshot(db)
    query = """mutation($m: [KpiMeasurementInput!]!) @atomic {
      create: createInitiative(input: {key: "ATOM-6", title: "x"}) { userErrors { code } }
      ingest: recordKpiMeasurements(input: {measurements: $m}) { inserted rejected }
    }"""
    body = await writer(query, {"m": items})
    assert body["data"]["ingest"] == {"inserted": 2, "rejected": 1}  # as it would have been
    assert body["extensions"]["atomic"] == {
        "committed": False,
        "failed": ["ingest"],
        "rolledBack": ["create"],
    }
    assert await snapshot(db) == before


async def test_atomic_belongs_to_mutations_only(writer: GraphQL) -> None:
    body = await writer("query @atomic { viewer { authenticated } }", status=200)
    assert "data" not in body
    [error] = body["errors"]
    assert error["message"] == "Directive '@atomic' may not be used on query."
    assert error["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    body = await writer("mutation @atomic(now: true) { __typename }", status=200)
    assert body["errors"][0]["message"] == "Unknown argument 'now' on directive '@atomic'."


# A server wired as in production, on a database of the test's own: committed writes,
# the change feed listening, the response cache on.


@pytest.fixture
async def live(wired_app: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with wired_app.router.lifespan_context(wired_app):
        responses = wired_app.state.responses
        while not responses.listening:
            await asyncio.wait_for(responses.changed.wait(), 15)
        transport = httpx.ASGITransport(app=wired_app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client


async def post(client: httpx.AsyncClient, query: str, **variables: Any) -> dict[str, Any]:
    response = await client.post("/graphql", json={"query": query, "variables": variables})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


READ = '{ initiative(key: "CHK-103") { id key title version } }'
RENAME_THEN = """mutation($id: ID!, $title: String!, $key: String!) @atomic {
  rename: updateInitiative(input: {id: $id, title: $title}) { userErrors { code } }
  create: createInitiative(input: {key: $key, title: "x"}) { userErrors { code } }
}"""
MARKER = """mutation { createProduct(input: {key: "MARK", name: "m", lifecycleStage: IDEA}) {
  userErrors { code } } }"""


async def test_a_rolled_back_batch_sends_no_notification_and_keeps_the_cache(
    live: httpx.AsyncClient, own_database: str
) -> None:
    for _ in range(3):
        answered = await post(live, READ)
    assert answered["extensions"]["answeredBy"] == "cached"
    node = answered["data"]["initiative"]
    heard: asyncio.Queue[str] = asyncio.Queue()
    listener = await asyncpg.connect(own_database.replace("+asyncpg", ""))
    try:
        await listener.add_listener(CHANNEL, lambda *args: heard.put_nowait(args[3]))
        body = await post(live, RENAME_THEN, id=node["id"], title="Never", key="bad key")
        assert body["extensions"]["atomic"] == {
            "committed": False,
            "failed": ["create"],
            "rolledBack": ["rename"],
        }
        # Nothing changed, so the cached answer stands.
        again = await post(live, READ)
        assert (again["extensions"]["answeredBy"], again["data"]["initiative"]) == ("cached", node)
        # A marker committed after it: notifications arrive in commit order, so anything
        # the batch had sent would arrive first.
        marker = await post(live, MARKER)
        assert marker["data"]["createProduct"]["userErrors"] == []
        payloads = [await asyncio.wait_for(heard.get(), 15)]
        while '"products"' not in payloads[-1]:
            payloads.append(await asyncio.wait_for(heard.get(), 15))
        assert not any("initiatives" in payload for payload in payloads), payloads
        # A committed batch drops the cache before it answers.
        body = await post(live, RENAME_THEN, id=node["id"], title="Committed", key="ATOM-OK")
        assert body["extensions"]["atomic"] == {"committed": True, "failed": [], "rolledBack": []}
        after = await post(live, READ)
        assert after["extensions"]["answeredBy"] != "cached"
        assert after["data"]["initiative"]["title"] == "Committed"
    finally:
        await listener.close()
