"""Upserts by key or external reference: created, updated or unchanged (no new version),
``expectedVersion`` honoured, race-safe under real concurrency, and in batches with
per-item errors by index; bad input is refused precisely and changes nothing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import delete, func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from domain import models
from domain.database import create_session_factory
from tests.conftest import ALL_SCOPES, GraphQL, make_client
from tests.fixtures import factories
from tests.fixtures.database import StatementCounter

ERRORS = "userErrors { field code message }"
UPSERT = f"""mutation($input: UpsertInitiativeInput!) {{
  upsertInitiative(input: $input) {{
    outcome created initiative {{ key title status version
      externalRefs {{ system externalId }} }} {ERRORS}
  }}
}}"""
UPSERT_MANY = f"""mutation($input: UpsertInitiativesInput!) {{
  upsertInitiatives(input: $input) {{
    results {{ outcome initiative {{ key version }} }}
    created updated unchanged rejected {ERRORS}
  }}
}}"""


async def upsert(api: GraphQL, **fields: Any) -> dict[str, Any]:
    return (await api.data(UPSERT, {"input": fields}))["upsertInitiative"]


async def upsert_many(api: GraphQL, items: list[dict[str, Any]]) -> dict[str, Any]:
    return (await api.data(UPSERT_MANY, {"input": {"items": items}}))["upsertInitiatives"]


async def state(db: AsyncSession) -> tuple[Any, ...]:
    """Initiatives (key, version), references and the audit trail's length."""
    initiatives = (
        await db.execute(
            select(models.Initiative.key, models.Initiative.version).order_by(models.Initiative.key)
        )
    ).all()
    refs = (
        await db.execute(text("SELECT system, external_id FROM external_refs ORDER BY 1, 2"))
    ).all()
    events = await db.scalar(select(func.count()).select_from(models.AuditEvent))
    return tuple(initiatives), tuple(refs), events


async def test_create_then_unchanged_then_updated(writer: GraphQL, db: AsyncSession) -> None:
    created = await upsert(writer, key="UP-1", title="First")
    assert created == {
        "outcome": "CREATED",
        "created": True,
        "initiative": {
            "key": "UP-1",
            "title": "First",
            "status": "PROPOSED",
            "version": 1,
            "externalRefs": [],
        },
        "userErrors": [],
    }
    events = await db.scalar(select(func.count()).select_from(models.AuditEvent))
    again = await upsert(writer, key="UP-1", title="First")
    assert (again["outcome"], again["created"], again["initiative"]["version"]) == (
        "UNCHANGED",
        False,
        1,
    )
    # Nothing changed: no audit event either.
    assert await db.scalar(select(func.count()).select_from(models.AuditEvent)) == events
    changed = await upsert(writer, key="UP-1", title="Second", summary="Why")
    assert (
        changed["outcome"],
        changed["initiative"]["title"],
        changed["initiative"]["version"],
    ) == (
        "UPDATED",
        "Second",
        2,
    )


async def test_found_by_external_reference(writer: GraphQL) -> None:
    jira = {"system": "jira", "externalId": "PROJ-7"}
    created = await upsert(writer, key="UP-2", title="From Jira", match=jira)
    assert created["initiative"]["externalRefs"] == [jira]
    updated = await upsert(writer, key="UP-2", title="Renamed in Jira", match=jira)
    assert (updated["outcome"], updated["initiative"]["title"]) == ("UPDATED", "Renamed in Jira")


@pytest.mark.parametrize(
    ("fields", "field", "code", "message"),
    [
        (
            {"key": "UP-3", "title": "X", "expectedVersion": 4},
            "expectedVersion",
            "CONFLICT",
            "Initiative UP-3 is at version 1, not 4: it changed since you read it.",
        ),
        (
            {"key": "UP-3", "title": "X", "expectedVersion": 0},
            "expectedVersion",
            "CONFLICT",
            "Initiative UP-3 is at version 1, not 0: it changed since you read it.",
        ),
        (
            {"key": "UP-NEW", "title": "X", "expectedVersion": 2},
            "expectedVersion",
            "CONFLICT",
            "No Initiative has the key `UP-NEW`, so `expectedVersion` 2 cannot match "
            "(0 means: only create).",
        ),
        (
            {"key": "UP-NEW", "summary": "No title"},
            "title",
            "INVALID",
            "`title` cannot be null.",
        ),
        (
            {"key": "UP-3", "status": "DONE"},
            "status",
            "INVALID",
            "Initiative UP-3 is PROPOSED: an existing Initiative's `status` changes through "
            "`setInitiativeStatus`.",
        ),
        (
            {"key": "UP-OTHER", "title": "X", "match": {"system": "jira", "externalId": "UP3"}},
            "key",
            "INVALID",
            "The reference `jira` `UP3` belongs to Initiative UP-3, not `UP-OTHER`: keys never "
            "change.",
        ),
        (
            {"key": "UP-NEW", "title": "X", "match": {"system": "JIRA", "externalId": "A"}},
            "match.system",
            "INVALID",
            "`system` must be a short lowercase name: a letter, then up to 31 letters, digits, "
            "`_`, `.` or `-` (e.g. `jira`).",
        ),
        (
            {"key": "UP-NEW", "title": "X", "parent": {"key": "UP-NOPE"}},
            "parent.key",
            "NOT_FOUND",
            "No Initiative with key `UP-NOPE`.",
        ),
        (
            {
                "key": "UP-NEW",
                "title": "X",
                "externalRefs": [{"system": "jira", "externalId": "A", "url": "javascript:x"}],
            },
            "externalRefs.0.url",
            "INVALID",
            "`url` must be an absolute http:// or https:// URL.",
        ),
        (
            {"key": "UP-NEW", "title": "X", "reach": -1},
            "reach",
            "INVALID",
            "`reach` must be at least 0; got -1.",
        ),
    ],
)
async def test_bad_input_is_refused_and_changes_nothing(
    writer: GraphQL, db: AsyncSession, fields: dict[str, Any], field: str, code: str, message: str
) -> None:
    await upsert(
        writer, key="UP-3", title="Existing", match={"system": "jira", "externalId": "UP3"}
    )
    before = await state(db)
    answer = await upsert(writer, **fields)
    assert answer["userErrors"][0] == {"field": field, "code": code, "message": message}
    assert answer["outcome"] is None and answer["created"] is False
    assert await state(db) == before


async def test_an_archived_key_is_not_brought_back(writer: GraphQL, db: AsyncSession) -> None:
    await upsert(writer, key="UP-4", title="Old")
    await writer.data(
        'mutation { archiveInitiative(input: {key: "UP-4"}) { userErrors { code } } }'
    )
    before = await state(db)
    answer = await upsert(writer, key="UP-4", title="Again")
    assert answer["userErrors"] == [
        {
            "field": "key",
            "code": "CONFLICT",
            "message": "Initiative `UP-4` is archived: an upsert does not bring it back.",
        }
    ]
    assert await state(db) == before


async def test_an_archived_reference_holder_is_not_brought_back(
    writer: GraphQL, db: AsyncSession
) -> None:
    jira = {"system": "jira", "externalId": "GONE-1"}
    await upsert(writer, key="UP-6", title="Old", match=jira)
    await writer.data(
        'mutation { archiveInitiative(input: {key: "UP-6"}) { userErrors { code } } }'
    )
    before = await state(db)
    answer = await upsert(writer, key="UP-7", title="New", match=jira)
    assert answer["userErrors"] == [
        {
            "field": "match",
            "code": "CONFLICT",
            "message": "The Initiative holding `jira` `GONE-1` is archived: an upsert does not "
            "bring it back.",
        }
    ]
    assert await state(db) == before


async def test_a_value_of_the_wrong_type_is_refused_by_graphql(
    writer: GraphQL, db: AsyncSession
) -> None:
    before = await state(db)
    body = await writer(UPSERT, {"input": {"key": "UP-5", "title": "X", "reach": "many"}})
    assert body.get("data") is None
    assert body["errors"][0]["message"] == (
        "Variable '$input' has invalid value at .reach: Int cannot represent non-integer "
        "value: 'many'"
    )
    assert await state(db) == before


# ---------------------------------------------------------------- batches


async def test_a_batch_reports_each_item_by_index(writer: GraphQL, db: AsyncSession) -> None:
    await upsert(writer, key="UPB-1", title="Kept")
    answer = await upsert_many(
        writer,
        [
            {"key": "UPB-1", "title": "Kept"},
            {"key": "UPB-2", "title": "New"},
            {"key": "UPB-3"},
            {"key": "UPB-4", "title": "Bad", "confidence": 2.0},
            {"key": "UPB-2", "title": "Twice"},
        ],
    )
    assert answer == {
        "results": [
            {"outcome": "UNCHANGED", "initiative": {"key": "UPB-1", "version": 1}},
            {"outcome": "CREATED", "initiative": {"key": "UPB-2", "version": 1}},
            None,
            None,
            None,
        ],
        "created": 1,
        "updated": 0,
        "unchanged": 1,
        "rejected": 3,
        "userErrors": [
            {"field": "items.2.title", "code": "INVALID", "message": "`title` cannot be null."},
            {"field": "items.2.title", "code": "INVALID", "message": "`title` must not be blank."},
            {
                "field": "items.3.confidence",
                "code": "INVALID",
                "message": "`confidence` must be at least 0 and at most 1; got 2.0.",
            },
            {
                "field": "items.4.key",
                "code": "DUPLICATE",
                "message": "Item 1 has the same key `UPB-2`: name each Initiative once per batch.",
            },
        ],
    }
    keys = await db.scalars(
        select(models.Initiative.key)
        .where(models.Initiative.key.like("UPB-%"))
        .order_by(models.Initiative.key)
    )
    assert list(keys) == ["UPB-1", "UPB-2"]


async def test_an_oversized_batch_is_refused_whole(writer: GraphQL, db: AsyncSession) -> None:
    before = await state(db)
    answer = await upsert_many(writer, [{"key": f"UPX-{i}", "title": "X"} for i in range(501)])
    assert answer["userErrors"] == [
        {
            "field": "items",
            "code": "INVALID",
            "message": "`items` takes at most 500 items; got 501.",
        }
    ]
    assert (answer["results"], answer["rejected"], answer["created"]) == ([], 501, 0)
    assert await state(db) == before


async def test_two_items_with_one_reference_are_refused(writer: GraphQL, db: AsyncSession) -> None:
    jira = {"system": "jira", "externalId": "DUP-1"}
    answer = await upsert_many(
        writer,
        [
            {"key": "UPR-1", "title": "A", "match": jira},
            {"key": "UPR-2", "title": "B", "match": jira},
        ],
    )
    assert answer["userErrors"] == [
        {
            "field": "items.1.match",
            "code": "DUPLICATE",
            "message": "Item 0 has the same reference `jira` `DUP-1`: name each Initiative once "
            "per batch.",
        }
    ]
    assert answer["created"] == 1


async def _unchanged_batch_statements(
    writer: GraphQL, statements: StatementCounter, size: int, prefix: str
) -> int:
    items = [{"key": f"{prefix}-{i}", "title": "Same"} for i in range(size)]
    await upsert_many(writer, items)
    start = statements.count
    answer = await upsert_many(writer, items)
    assert answer["unchanged"] == size
    return statements.count - start


async def test_statements_of_a_batch_grow_by_one_per_unchanged_item(
    writer: GraphQL, statements: StatementCounter
) -> None:
    """The batch finds all its items in one statement (keys; references in another when
    any item has a `match`); then each item's row is locked and read, and its rules run
    on it: one statement per unchanged item, whatever the batch's size."""
    five = await _unchanged_batch_statements(writer, statements, 5, "UPS")
    ten = await _unchanged_batch_statements(writer, statements, 10, "UPT")
    assert ten - five == 5  # one per item: its lock
    assert five - 5 == ten - 10 == 1  # the batch's own: one lookup of every key


# ---------------------------------------------------------------- real concurrency


@pytest.fixture
async def api(engine: AsyncEngine) -> AsyncIterator[GraphQL]:
    """The app with its real session factory: one connection and transaction per request."""
    async with make_client(
        engine, create_session_factory(engine), anonymous_scopes=ALL_SCOPES
    ) as client:
        yield GraphQL(client)


@pytest.fixture
async def cleanup(engine: AsyncEngine) -> AsyncIterator[list[str]]:
    keys: list[str] = []
    yield keys
    async with AsyncSession(engine) as session, session.begin():
        ids = select(models.Initiative.id).where(models.Initiative.key.in_(keys))
        await session.execute(
            delete(models.AuditEvent).where(
                models.AuditEvent.entity_type == "Initiative", models.AuditEvent.entity_id.in_(ids)
            )
        )
        await session.execute(delete(models.Initiative).where(models.Initiative.key.in_(keys)))


async def _rows(engine: AsyncEngine, key: str) -> list[Any]:
    async with AsyncSession(engine) as session:
        result = await session.execute(
            select(models.Initiative.title, models.Initiative.version).where(
                models.Initiative.key == key
            )
        )
        return list(result.all())


async def test_concurrent_upserts_of_one_key_make_one_row(
    api: GraphQL, engine: AsyncEngine, cleanup: list[str]
) -> None:
    cleanup.append("UPC-1")
    answers = await asyncio.gather(*(upsert(api, key="UPC-1", title="Same") for _ in range(4)))
    assert sorted(a["outcome"] for a in answers) == [
        "CREATED",
        "UNCHANGED",
        "UNCHANGED",
        "UNCHANGED",
    ]
    assert await _rows(engine, "UPC-1") == [("Same", 1)]


async def test_an_upsert_that_loses_the_insert_race_updates_the_winner(
    api: GraphQL, engine: AsyncEngine, cleanup: list[str]
) -> None:
    """A transaction inserts the key and holds it uncommitted; the upsert, which did not
    see it, waits on its insert; once the other commits, the upsert updates that row."""
    cleanup.append("UPC-2")
    async with engine.connect() as blocker, engine.connect() as watcher:
        transaction = await blocker.begin()
        await blocker.execute(
            insert(models.Initiative).values(
                key="UPC-2", title="Winner", status=models.InitiativeStatus.PROPOSED
            )
        )
        holder = await blocker.scalar(text("SELECT pg_backend_pid()"))
        racing = asyncio.create_task(upsert(api, key="UPC-2", title="Loser"))
        waiting = text(
            "SELECT count(*) FROM pg_stat_activity WHERE :holder = ANY(pg_blocking_pids(pid))"
        )
        # Each probe is a round trip to PostgreSQL (the upsert's request runs meanwhile),
        # not a sleep: done once PostgreSQL says the upsert waits on the blocker.
        while not racing.done() and not await watcher.scalar(waiting, {"holder": holder}):
            await watcher.rollback()
        assert not racing.done()
        await transaction.commit()
        answer = await racing
    assert (answer["outcome"], answer["userErrors"]) == ("UPDATED", [])
    assert await _rows(engine, "UPC-2") == [("Loser", 2)]


@pytest.mark.parametrize(
    ("single", "batch", "input_type", "field", "item"),
    [
        (
            "upsertProduct",
            "upsertProducts",
            "Product",
            "product",
            {"key": "UPP", "name": "Synced", "lifecycleStage": "IDEA"},
        ),
        (
            "upsertTechnicalConstraint",
            "upsertTechnicalConstraints",
            "TechnicalConstraint",
            "technicalConstraint",
            {"key": "UPC-9", "title": "Synced", "category": "SECURITY", "severity": "LOW"},
        ),
        (
            "upsertKpi",
            "upsertKpis",
            "Kpi",
            "kpi",
            {
                "key": "UP-KPI",
                "name": "Synced",
                "unit": "%",
                "direction": "HIGHER_IS_BETTER",
                "itRelevance": "Uptime",
                "productRelevance": "Trust",
                "product": {"key": "UPP0"},
            },
        ),
    ],
)
async def test_every_type_upserts_alone_and_in_batches(
    writer: GraphQL,
    db: AsyncSession,
    single: str,
    batch: str,
    input_type: str,
    field: str,
    item: dict[str, Any],
) -> None:
    await factories.product(db, key="UPP0")
    one = f"""mutation($input: Upsert{input_type}Input!) {{
      {single}(input: $input) {{ outcome {field} {{ key version }} {ERRORS} }} }}"""
    first = (await writer.data(one, {"input": item}))[single]
    assert (first["outcome"], first[field], first["userErrors"]) == (
        "CREATED",
        {"key": item["key"], "version": 1},
        [],
    )
    again = (await writer.data(one, {"input": item}))[single]
    assert (again["outcome"], again[field]["version"]) == ("UNCHANGED", 1)
    many = f"""mutation($input: Upsert{input_type}sInput!) {{
      {batch}(input: $input) {{ created updated unchanged rejected {ERRORS} }} }}"""
    renamed = {**item, ("title" if "title" in item else "name"): "Renamed"}
    answer = (await writer.data(many, {"input": {"items": [renamed]}}))[batch]
    assert answer == {"created": 0, "updated": 1, "unchanged": 0, "rejected": 0, "userErrors": []}
