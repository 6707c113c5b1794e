"""The change feed (``Query.changes``): every create, update, archive, link and unlink,
in an order a client resumes from without missing or repeating an event, tombstones
for archived objects, and the caller's scopes on every event.

Most tests read in the test's own transaction (its events are shown to itself, as
PostgreSQL shows a transaction its own writes). The resumption test commits for real,
on a database of its own, with a writer that deliberately commits late."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from domain import models
from domain.database import create_engine, create_session_factory
from domain.services import feed, specs, writes
from tests.conftest import ALL_SCOPES, GraphQL, make_client, settings_for
from tests.fixtures.database import StatementCounter
from tests.polling import poll_feed

PAGE = """query($since: String, $types: [ChangeEntityType!], $first: Int) {
  changes(since: $since, types: $types, first: $first) {
    cursor hasMore
    events { cursor change entityType entityId key occurredAt linkedId
             tombstone { id type key archivedAt } node { id } }
  }
}"""


async def _caught_up(api: GraphQL, since: str | None = None) -> str:
    """The feed's cursor once every event ready now has been read."""
    while True:
        page = (await api.data(PAGE, {"since": since, "first": 100}))["changes"]
        since = page["cursor"]
        if not page["hasMore"]:
            return since


async def _events_since(api: GraphQL, since: str, **variables: Any) -> list[dict[str, Any]]:
    page = (await api.data(PAGE, {"since": since, **variables}))["changes"]
    return list(page["events"])


CREATE = """mutation($key: String!) { createInitiative(input: {key: $key, title: "Feed"}) {
  initiative { id version } userErrors { code message } } }"""


async def test_events_of_every_kind_in_order_with_a_tombstone(writer: GraphQL) -> None:
    start = await _caught_up(writer)
    created = (await writer.data(CREATE, {"key": "FEED-1"}))["createInitiative"]["initiative"]
    initiative_id = created["id"]
    product = (await writer.data('{ product(key: "PAY") { id } }'))["product"]["id"]
    await writer.data(
        'mutation($id: ID!) { updateInitiative(input: {id: $id, title: "Feed 2"}) '
        "{ userErrors { code } } }",
        {"id": initiative_id},
    )
    link = {"i": initiative_id, "p": product}
    for name in ("linkInitiativeProduct", "unlinkInitiativeProduct"):
        await writer.data(
            f"mutation($i: ID!, $p: ID!) {{ {name}(input: {{initiativeId: $i, productId: $p}}) "
            "{ userErrors { code } } }",
            link,
        )
    await writer.data(
        "mutation($id: ID!) { archiveInitiative(input: {id: $id}) { userErrors { code } } }",
        {"id": initiative_id},
    )

    events = await _events_since(writer, start, types=["INITIATIVE"])
    assert [e["change"] for e in events] == ["CREATED", "UPDATED", "LINKED", "UNLINKED", "ARCHIVED"]
    assert {e["entityId"] for e in events} == {initiative_id}
    assert {e["entityType"] for e in events} == {"INITIATIVE"}
    assert [e["linkedId"] for e in events] == [None, None, product, product, None]
    # Archived now: every event of it carries the tombstone, none the object.
    archived = events[-1]["tombstone"]
    assert archived["id"] == initiative_id
    assert archived["type"] == "INITIATIVE"
    assert archived["key"] == "FEED-1"
    assert archived["archivedAt"] == events[-1]["occurredAt"]
    assert all(e["tombstone"] == archived and e["node"] is None for e in events)
    # The product's side of the links, naming the initiative.
    product_events = await _events_since(writer, start, types=["PRODUCT"])
    assert [(e["change"], e["entityId"], e["linkedId"]) for e in product_events] == [
        ("LINKED", product, initiative_id),
        ("UNLINKED", product, initiative_id),
    ]
    assert all(e["node"] == {"id": product} and e["tombstone"] is None for e in product_events)
    # Each event's cursor resumes right after it.
    after_second = await _events_since(writer, events[1]["cursor"], types=["INITIATIVE"])
    assert after_second == events[2:]


CREATE_REFERENCED = """mutation($key: String!, $ref: ExternalRefInput!) {
  createInitiative(input: {key: $key, title: "Referenced", externalRefs: [$ref]}) {
    initiative { id } userErrors { code message } } }"""


async def test_a_tombstone_lists_the_archived_objects_external_refs(writer: GraphQL) -> None:
    """A sync deletes the other system's copy by that system's own ID."""
    start = await _caught_up(writer)
    refs = [
        {"system": "snow", "externalId": "CHG-9", "url": None},
        {"system": "jira", "externalId": "PAY-77", "url": "https://jira.example.com/PAY-77"},
    ]
    created = await writer.data(
        """mutation($input: CreateInitiativeInput!) { createInitiative(input: $input) {
          initiative { id } userErrors { code message } } }""",
        {"input": {"key": "FEED-R1", "title": "Referenced", "externalRefs": refs}},
    )
    initiative_id = created["createInitiative"]["initiative"]["id"]
    await writer.data(CREATE, {"key": "FEED-R2"})  # archived too, without references
    plain_id = (await writer.data('{ initiative(key: "FEED-R2") { id } }'))["initiative"]["id"]
    for archived in (initiative_id, plain_id):
        await writer.data(
            "mutation($id: ID!) { archiveInitiative(input: {id: $id}) { userErrors { code } } }",
            {"id": archived},
        )
    page = await writer.data(
        "query($s: String) { changes(since: $s) { events { change entityId "
        "tombstone { key externalRefs { system externalId url } } } } }",
        {"s": start},
    )
    tombstones = {
        e["entityId"]: e["tombstone"]
        for e in page["changes"]["events"]
        if e["change"] == "ARCHIVED"
    }
    assert tombstones == {
        initiative_id: {"key": "FEED-R1", "externalRefs": [refs[1], refs[0]]},  # by system
        plain_id: {"key": "FEED-R2", "externalRefs": []},
    }


async def test_pages_are_exact_and_a_live_object_is_resolved(writer: GraphQL) -> None:
    start = await _caught_up(writer)
    ids = [
        (await writer.data(CREATE, {"key": f"FEED-P{n}"}))["createInitiative"]["initiative"]["id"]
        for n in range(5)
    ]
    seen: list[str] = []
    cursor = start
    pages = 0
    while True:
        page = (await writer.data(PAGE, {"since": cursor, "first": 2}))["changes"]
        pages += 1
        seen += [e["entityId"] for e in page["events"]]
        assert all(e["node"] == {"id": e["entityId"]} for e in page["events"])
        cursor = page["cursor"]
        if not page["hasMore"]:
            break
    assert seen == ids
    assert pages == 3
    # Caught up: the same cursor again, nothing new.
    empty = (await writer.data(PAGE, {"since": cursor}))["changes"]
    assert empty == {"cursor": cursor, "hasMore": False, "events": []}


async def test_types_filter_and_first_zero(writer: GraphQL) -> None:
    start = await _caught_up(writer)
    await writer.data(CREATE, {"key": "FEED-T1"})
    await writer.data(
        'mutation { createProduct(input: {key: "FEEDP", name: "Feed product", '
        "lifecycleStage: GROWTH}) { userErrors { code } } }"
    )
    products = await _events_since(writer, start, types=["PRODUCT"])
    assert [(e["entityType"], e["key"]) for e in products] == [("PRODUCT", "FEEDP")]
    both = await _events_since(writer, start)
    assert [e["key"] for e in both] == ["FEED-T1", "FEEDP"]
    none = (await writer.data(PAGE, {"since": start, "first": 0}))["changes"]
    assert none == {"cursor": start, "hasMore": False, "events": []}


async def test_a_caller_sees_only_what_its_scopes_allow(writer: GraphQL, caller: Any) -> None:
    start = await _caught_up(writer)
    created = (await writer.data(CREATE, {"key": "FEED-S1"}))["createInitiative"]["initiative"]
    await writer.data(
        'mutation($id: ID!) { updateInitiative(input: {id: $id, estimatedCost: "4242.17"}) '
        "{ userErrors { code } } }",
        {"id": created["id"]},
    )
    query = "query($s: String) { changes(since: $s) { events { change changes } } }"
    reader = await caller(["portfolio:read"])
    refused = await reader(query, {"s": start})
    assert refused["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert "audit:read" in refused["errors"][0]["message"]
    assert "4242.17" not in reader.last_body.decode()

    auditor = await caller(["portfolio:read", "audit:read"])
    events = (await auditor.data(query, {"s": start}))["changes"]["events"]
    assert [e["change"] for e in events] == ["CREATED", "UPDATED"]
    assert "estimatedCost" not in events[1]["changes"]
    assert events[1]["changes"]["version"] == {"before": 1, "after": 2}
    assert "4242.17" not in auditor.last_body.decode()

    finance = await caller(["portfolio:read", "audit:read", "finance:read"])
    events = (await finance.data(query, {"s": start}))["changes"]["events"]
    assert events[1]["changes"]["estimatedCost"] == {"before": None, "after": "4242.17"}

    nobody = await caller(["kpis:ingest"])
    body = await nobody(query, {"s": start})
    assert body["data"] is None
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert "portfolio:read" in body["errors"][0]["message"]


@pytest.mark.parametrize(
    ("variables", "field", "message"),
    [
        ({"since": "not a cursor"}, "since", "`since` is not a cursor of the change feed."),
        # A connection's cursor is not a feed cursor.
        ({"since": "WyJrZXkiLCJBIiwxXQ"}, "since", "`since` is not a cursor of the change feed."),
        ({"since": "ZmVlZDotMTox"}, "since", "`since` is not a cursor of the change feed."),
        ({"first": -1}, "first", "`first` must be between 0 and 100; got -1."),
        ({"first": 101}, "first", "`first` must be between 0 and 100; got 101."),
    ],
)
async def test_bad_arguments_are_refused_precisely(
    writer: GraphQL, db: AsyncSession, variables: dict[str, Any], field: str, message: str
) -> None:
    before = await db.scalar(select(func.count()).select_from(models.AuditEvent))
    body = await writer(PAGE, variables)
    assert body["data"] is None
    error = body["errors"][0]
    assert error["extensions"]["code"] == "INVALID"
    assert error["extensions"]["field"] == field
    assert error["message"] == message
    assert await db.scalar(select(func.count()).select_from(models.AuditEvent)) == before


def test_a_cursor_round_trips_and_orders_by_transaction_then_event() -> None:
    position = feed.Position(2**40 + 7, 12)
    assert feed.Position.decode(position.encode()) == position
    assert feed.Position(5, 900) < feed.Position(6, 1)


# --- Resumption with real, concurrent transactions -------------------------------------


@pytest.fixture
async def committed(own_database: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(own_database, settings_for())
    yield engine
    await engine.dispose()


@pytest.fixture
async def live(committed: AsyncEngine) -> AsyncIterator[GraphQL]:
    """The app with its real session factory: one committed transaction per request."""
    async with make_client(
        committed, create_session_factory(committed), anonymous_scopes=ALL_SCOPES
    ) as client:
        yield GraphQL(client)


async def _read_until(api: GraphQL, since: str, expected: int) -> tuple[list[str], str]:
    """Page (3 at a time) until ``expected`` events arrived (polled: ``tests.polling``)."""
    seen: list[str] = []

    async def page() -> int:
        nonlocal since
        changes = (await api.data(PAGE, {"since": since, "first": 3}))["changes"]
        seen.extend(e["cursor"] for e in changes["events"])
        since = changes["cursor"]
        return len(seen)

    await poll_feed(page, lambda count: count >= expected, what=f"{expected} events")
    return seen, since


async def test_a_reader_resuming_from_its_cursor_misses_nothing_and_sees_nothing_twice(
    committed: AsyncEngine, live: GraphQL
) -> None:
    start = await _caught_up(live)
    async with committed.connect() as probe:
        first_product = await probe.scalar(select(models.Product.id).order_by(models.Product.id))
    assert first_product is not None

    # The late writer: its transaction writes first (the smallest transaction id and
    # event id of all), and commits last.
    late = AsyncSession(committed, expire_on_commit=False)
    await late.begin()
    actor = writes.Actor(user_id=None, client_id=None, scopes=frozenset(ALL_SCOPES))
    await writes.update(
        late, actor, specs.PRODUCT, first_product, None, {"description": "written late"}
    )
    late_event = await late.scalar(
        select(models.AuditEvent.id).order_by(models.AuditEvent.id.desc()).limit(1)
    )

    # Concurrent writers commit while it is open; the reader pages meanwhile.
    created = await asyncio.gather(*(live.data(CREATE, {"key": f"RES-{n}"}) for n in range(6)))
    assert all(c["createInitiative"]["userErrors"] == [] for c in created)
    while_open = (await live.data(PAGE, {"since": start, "first": 100}))["changes"]
    # Nothing behind the open transaction is served yet: the id order would have served
    # the six creations and passed the late event's smaller id for ever.
    assert while_open["events"] == []
    assert while_open["cursor"] == start

    await late.commit()
    await late.close()
    more = await asyncio.gather(*(live.data(CREATE, {"key": f"RES-{n}"}) for n in range(6, 9)))
    assert all(c["createInitiative"]["userErrors"] == [] for c in more)

    # The reader stops halfway and resumes from its last cursor (a new process would
    # do the same with the cursor it stored).
    first_half, cursor = await _read_until(live, start, 5)
    second_half, _ = await _read_until(live, cursor, 10 - len(first_half))
    seen = first_half + second_half
    async with committed.connect() as connection:
        written = (
            await connection.execute(
                select(models.AuditEvent.transaction_id, models.AuditEvent.id)
                .where(models.AuditEvent.action.in_(feed.FEED_ACTIONS))
                .order_by(models.AuditEvent.transaction_id, models.AuditEvent.id)
            )
        ).all()
    expected = [feed.Position(t, i).encode() for t, i in written]
    assert len(expected) == 10
    assert seen == expected  # every event, once, in feed order
    assert feed.Position.decode(seen[0]).event_id == late_event  # the late one comes first


async def test_both_read_paths_answer_the_feed_alike(writer: GraphQL, pair: Any) -> None:
    """The compiled path answers the feed in one statement, byte for byte as the resolvers
    do (tests/test_compiled_feed.py compares every field and argument)."""
    start = await _caught_up(writer)
    await writer.data(CREATE, {"key": "FEED-D1"})
    compiled, reference = pair(["portfolio:read", "audit:read"])
    query = (
        "query($s: String) { changes(since: $s) { cursor hasMore events { cursor change "
        "entityId key changes node { id ... on Initiative { title version } } } } }"
    )
    got = await compiled(query, {"s": start})
    expected = await reference(query, {"s": start})
    assert got.pop("extensions")["answeredBy"] == "compiled"
    expected.pop("extensions")
    assert got == expected
    assert [e["key"] for e in got["data"]["changes"]["events"]] == ["FEED-D1"]


async def test_an_unknown_type_is_refused_before_anything_runs(
    writer: GraphQL, db: AsyncSession
) -> None:
    before = await db.scalar(select(func.count()).select_from(models.AuditEvent))
    body = await writer(PAGE, {"types": ["TEAM"]}, status=None)
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert body["errors"][0]["message"] == (
        "Variable '$types' has invalid value at [0]: Value 'TEAM' does not exist in "
        "'ChangeEntityType' enum."
    )
    assert await db.scalar(select(func.count()).select_from(models.AuditEvent)) == before


async def test_a_page_costs_the_same_statements_whatever_its_size(
    writer: GraphQL, pair: Any, statements: StatementCounter
) -> None:
    """On the resolvers, one statement for the events (keys and archive times included),
    one per type for the objects (the by-id dataloader) and one per type for the
    tombstones' external references: never one per event. Compiled, one in all."""
    compiled, resolvers = pair(ALL_SCOPES)
    query = (
        "query($s: String) { changes(since: $s) { events { key "
        "tombstone { key externalRefs { system externalId } } "
        "node { id ... on Initiative { title } ... on Product { name } } } } }"
    )
    start = await _caught_up(writer)
    product = 'mutation($k: String!) { createProduct(input: {key: $k, name: "P", '
    product += "lifecycleStage: GROWTH}) { userErrors { code } } }"
    counts = []
    for size in (1, 12):
        for n in range(size):
            await writer.data(CREATE, {"key": f"FEED-C{size}-{n}"})
            await writer.data(product, {"k": f"FC{size}X{n}"})
            gone = await writer.data(
                CREATE_REFERENCED,
                {
                    "key": f"FEED-G{size}-{n}",
                    "ref": {"system": "jira", "externalId": f"G{size}-{n}"},
                },
            )
            await writer.data(
                "mutation($id: ID!) { archiveInitiative(input: {id: $id}) { userErrors { code } } }",
                {"id": gone["createInitiative"]["initiative"]["id"]},
            )
        for reader in (resolvers, compiled):
            statements.reset()
            page = (await reader.data(query, {"s": start}))["changes"]
            await statements.delivered()
            counts.append(statements.count)
        assert len(page["events"]) == 4 * size
        live = [e for e in page["events"] if e["tombstone"] is None]
        archived = [e for e in page["events"] if e["tombstone"] is not None]
        assert len(live) == 2 * size and all(e["node"] is not None for e in live)
        assert [len(e["tombstone"]["externalRefs"]) for e in archived] == [1] * 2 * size
        start = await _caught_up(writer)
    # The events; initiatives and products by ID; the initiatives' references. Compiled:
    # the page in one statement.
    assert counts == [4, 1, 4, 1], statements.statements
