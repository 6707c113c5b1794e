"""The change feed (``Query.changes``) and ``asOf`` lookups reading other tables, answered
by the compiled path: each answer compared byte for byte with the resolvers', and the
compiled path shown to have answered it (``extensions.answeredBy``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from domain import models
from domain.models import AuditAction
from schema.compiled import feed_text
from schema.compiled.extension import PLANS
from tests.conftest import ALL_SCOPES, GraphQL
from tests.fixtures.database import StatementCounter, run_sql
from tests.polling import poll_feed
from tests.test_response_cache import until

CREATE = """mutation($key: String!, $refs: [ExternalRefInput!]) {
  createInitiative(input: {key: $key, title: "Feed", externalRefs: $refs}) {
    initiative { id } userErrors { code message } } }"""
ARCHIVE = "mutation($id: ID!) { archiveInitiative(input: {id: $id}) { userErrors { code } } }"
LINK = """mutation($i: ID!, $p: ID!) {
  linkInitiativeProduct(input: {initiativeId: $i, productId: $p}) { userErrors { code } } }"""
UNLINK = LINK.replace("linkInitiativeProduct", "unlinkInitiativeProduct")

FULL = """query($since: String, $types: [ChangeEntityType!], $first: Int) {
  changes(since: $since, types: $types, first: $first) {
    __typename cursor hasMore
    events { __typename cursor change entityType entityId key occurredAt linkedId changes
             tombstone { __typename id type key archivedAt externalRefs { system externalId url } }
             node { __typename id ... on Initiative { title isBlocked } ... on Product { name } } }
  }
}"""
# Without `changes` (audit:read) and `node` (portfolio:read): what any reader may ask.
LEAN = """query($since: String, $first: Int) { changes(since: $since, first: $first) {
  cursor hasMore events { cursor change entityType key linkedId
  tombstone { id key externalRefs { system } } } } }"""


def _before_extensions(body: bytes) -> bytes:
    return body.split(b',"extensions":', 1)[0]


async def same(
    pair: Any,
    query: str,
    variables: dict[str, Any] | None = None,
    scopes: list[str] = ALL_SCOPES,
) -> dict[str, Any]:
    """The compiled answer, once checked to be the resolvers' byte for byte."""
    compiled, reference = pair(sorted(scopes))
    before = PLANS.declines.copy()
    got = await compiled(query, variables)
    expected = await reference(query, variables)
    # "repeated": the same shape seen before, run from its rendered SQL.
    assert got["extensions"]["answeredBy"] in {"compiled", "repeated"}, PLANS.declines - before
    assert expected["extensions"]["answeredBy"] == "resolvers"
    assert _before_extensions(compiled.last_body) == _before_extensions(reference.last_body)
    assert "errors" not in got
    return dict(got["data"])


async def _caught_up(api: GraphQL) -> str:
    since = None
    while True:
        page = (await api.data(LEAN, {"since": since, "first": 100}))["changes"]
        since = page["cursor"]
        if not page["hasMore"]:
            return str(since)


@pytest.fixture
async def history(writer: GraphQL) -> dict[str, Any]:
    """Events of every kind since a caught-up cursor: creations (one with references),
    a link and an unlink, and an archival (whose events carry a tombstone)."""
    start = await _caught_up(writer)
    refs = [{"system": "snow", "externalId": "CHG-9"}, {"system": "jira", "externalId": "P-7"}]
    gone = await writer.data(CREATE, {"key": "CF-GONE", "refs": refs})
    gone_id = gone["createInitiative"]["initiative"]["id"]
    kept = await writer.data(CREATE, {"key": "CF-KEPT", "refs": None})
    kept_id = kept["createInitiative"]["initiative"]["id"]
    product = (await writer.data('{ product(key: "PAY") { id } }'))["product"]["id"]
    await writer.data(LINK, {"i": kept_id, "p": product})
    await writer.data(UNLINK, {"i": kept_id, "p": product})
    await writer.data(ARCHIVE, {"id": gone_id})
    return {"start": start, "gone": gone_id, "kept": kept_id, "product": product}


async def test_a_first_page_with_every_field_is_compiled(
    pair: Any, history: dict[str, Any]
) -> None:
    page = (await same(pair, FULL, {"since": history["start"]}))["changes"]
    assert [(e["change"], e["entityType"]) for e in page["events"]] == [
        ("CREATED", "INITIATIVE"),
        ("CREATED", "INITIATIVE"),
        ("LINKED", "INITIATIVE"),
        ("LINKED", "PRODUCT"),
        ("UNLINKED", "INITIATIVE"),
        ("UNLINKED", "PRODUCT"),
        ("ARCHIVED", "INITIATIVE"),
    ]
    assert page["hasMore"] is False and page["cursor"] == page["events"][-1]["cursor"]
    tombstone = page["events"][-1]["tombstone"]
    assert [r["system"] for r in tombstone["externalRefs"]] == ["jira", "snow"]
    assert page["events"][2]["linkedId"] == history["product"]
    assert page["events"][1]["node"]["title"] == "Feed"
    # From the beginning of the feed (no `since`): the resolvers' page, compiled.
    await same(pair, FULL, {"first": 3})


async def test_a_page_resumes_after_a_cursor_and_says_whether_more_is_ready(
    pair: Any, history: dict[str, Any]
) -> None:
    first = (await same(pair, FULL, {"since": history["start"], "first": 2}))["changes"]
    assert len(first["events"]) == 2 and first["hasMore"] is True
    rest = (await same(pair, FULL, {"since": first["cursor"], "first": 100}))["changes"]
    assert len(rest["events"]) == 5 and rest["hasMore"] is False
    # A cursor the server writes differently (padded) resumes at the same place, and the
    # page's cursor is written afresh, as the resolver writes it.
    padded = first["events"][0]["cursor"] + "=" * (-len(first["events"][0]["cursor"]) % 4)
    again = (await same(pair, FULL, {"since": padded, "first": 1}))["changes"]
    assert again["events"][0]["cursor"] == first["events"][1]["cursor"]


async def test_types_narrow_the_page(pair: Any, history: dict[str, Any]) -> None:
    products = await same(pair, FULL, {"since": history["start"], "types": ["PRODUCT"]})
    assert [e["change"] for e in products["changes"]["events"]] == ["LINKED", "UNLINKED"]
    assert {e["linkedId"] for e in products["changes"]["events"]} == {history["kept"]}
    kpis = await same(pair, FULL, {"since": history["start"], "types": ["KPI", "KPI"]})
    assert kpis["changes"] == {
        "__typename": "FeedPage",
        "cursor": history["start"],
        "hasMore": False,
        "events": [],
    }


async def test_empty_pages_keep_their_cursor(pair: Any, history: dict[str, Any]) -> None:
    none = (await same(pair, FULL, {"since": history["start"], "first": 0}))["changes"]
    assert none == {
        "__typename": "FeedPage",
        "cursor": history["start"],
        "hasMore": False,
        "events": [],
    }
    end = (await same(pair, FULL, {"since": history["start"]}))["changes"]["cursor"]
    caught_up = (await same(pair, FULL, {"since": end}))["changes"]
    assert caught_up["events"] == [] and caught_up["cursor"] == end


@pytest.mark.parametrize(
    "scopes",
    [["portfolio:read"], ["portfolio:read", "audit:read"], ALL_SCOPES],
    ids=["reader", "auditor", "every scope"],
)
async def test_what_a_caller_sees_is_compiled_for_its_scopes(
    pair: Any, history: dict[str, Any], scopes: list[str]
) -> None:
    """Link targets, tombstones' references and the events' types, per caller."""
    page = await same(pair, LEAN, {"since": history["start"]}, scopes=scopes)
    assert len(page["changes"]["events"]) == 7


async def test_bad_arguments_are_left_to_the_resolvers(pair: Any, history: dict[str, Any]) -> None:
    compiled, reference = pair(ALL_SCOPES)
    for variables in ({"first": 101}, {"since": "not a cursor"}):
        got = await compiled(LEAN, variables, status=None)
        await reference(LEAN, variables, status=None)
        assert got["extensions"]["answeredBy"] == "resolvers"
        assert got["errors"][0]["extensions"]["code"] == "INVALID"
        assert _before_extensions(compiled.last_body) == _before_extensions(reference.last_body)
    # The same document with values it serves is compiled.
    assert (await compiled(LEAN, {"first": 1}))["extensions"]["answeredBy"] == "compiled"


async def test_a_compiled_page_is_one_statement(
    pair: Any, history: dict[str, Any], statements: StatementCounter
) -> None:
    compiled, _ = pair(ALL_SCOPES)
    for first in (1, 7):
        statements.reset()
        body = await compiled(FULL, {"since": history["start"], "first": first})
        await statements.delivered()
        assert body["extensions"]["answeredBy"] in {"compiled", "repeated"}
        assert len(body["data"]["changes"]["events"]) == first
        assert statements.count == 1, statements.statements


# --- The response cache: the feed's horizon moves without a notification ------------


@pytest.fixture
async def cached_app(wired_app: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with wired_app.router.lifespan_context(wired_app):
        await until(wired_app.state.responses, lambda: wired_app.state.responses.listening)
        transport = httpx.ASGITransport(app=wired_app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client


async def test_a_feed_answer_is_never_kept(
    cached_app: httpx.AsyncClient, own_database: str
) -> None:
    """An event behind a running transaction is held back; when that transaction rolls
    back (which notifies nothing) the same request shows it at once."""
    document = "{ changes(types: [PRODUCT]) { cursor events { key change } } }"

    async def read() -> tuple[str, list[Any]]:
        body = (await cached_app.post("/graphql", json={"query": document})).json()
        assert "errors" not in body, body
        return body["extensions"]["answeredBy"], body["data"]["changes"]["events"]

    engine = create_async_engine(own_database.replace("postgresql://", "postgresql+asyncpg://"))
    try:
        async with engine.connect() as holder:
            await holder.exec_driver_sql("SELECT pg_current_xact_id()")  # holds the horizon
            await run_sql(
                own_database,
                "INSERT INTO audit_events (entity_type, entity_id, action, changes)"
                " SELECT 'Product', min(id), 'UPDATE', '{}' FROM products RETURNING 1",
            )
            held = [await read() for _ in range(3)]
            await holder.rollback()
        # Shown by the next request, unless another database's transaction (a parallel
        # test run) holds the server-wide horizon back a moment: then read again.
        shown: list[tuple[str, list[Any]]] = []

        async def read_again() -> list[Any]:
            shown.append(await read())
            return shown[-1][1]

        await poll_feed(read_again, lambda events: len(events) > len(held[0][1]), what="the event")
    finally:
        await engine.dispose()
    assert [path for path, _ in held] == ["compiled", "repeated", "repeated"]
    assert all(events == held[0][1] for _, events in held)
    assert {path for path, _ in shown} == {"repeated"}
    assert shown[-1][1] == [*held[0][1], {"key": shown[-1][1][-1]["key"], "change": "UPDATED"}]


# --- asOf: fields reading other tables ------------------------------------------------

PRODUCT_AS_OF = """query($key: String!, $at: DateTime) { product(key: $key, asOf: $at) {
  __typename id key name version externalRefs { system externalId }
  initiatives(first: 3) { totalCount nodes { key isBlocked } }
  kpis(first: 2) { nodes { key status } } constraints { nodes { key status } }
  history(first: 2) { totalCount edges { cursor node { action } } }
  businessOwnerTeam { key } } }"""
INITIATIVE_AS_OF = """query($key: String!, $at: DateTime) { initiative(key: $key, asOf: $at) {
  key title status isBlocked riceScore blockedBy { key status }
  externalRefs { system } children { totalCount } products { nodes { key name } }
  constraints { nodes { key } } kpis { nodes { key } } parent { key isBlocked } } }"""


async def _renamed_later(db: AsyncSession, model: Any, entity_type: str, column: str) -> Any:
    """An object whose ``column`` a change in 2100 renamed: its ``asOf`` before then
    shows the old value while what reads other tables is the present's."""
    row = await db.scalar(
        select(model).where(model.archived_at.is_(None)).order_by(model.id).limit(1)
    )
    assert row is not None
    db.add(
        models.AuditEvent(
            action=AuditAction.UPDATE,
            entity_type=entity_type,
            entity_id=row.id,
            occurred_at=datetime(2100, 1, 1, tzinfo=UTC),
            changes={column: {"before": "Old name", "after": getattr(row, column)}},
        )
    )
    await db.flush()
    return row


async def test_as_of_a_product_with_its_lists_is_compiled(
    pair: Any, db: AsyncSession, writer: GraphQL
) -> None:
    product = await _renamed_later(db, models.Product, "Product", "name")
    await writer.data(
        "mutation($id: ID!) { updateProduct(input: {id: $id, externalRefs: "
        '[{system: "jira", externalId: "AS-1"}]}) { userErrors { code } } }',
        {
            "id": (await writer.data(f'{{ product(key: "{product.key}") {{ id }} }}'))["product"][
                "id"
            ]
        },
    )
    for at in ("2099-06-01T00:00:00Z", "2100-06-01T00:00:00Z"):
        found = (await same(pair, PRODUCT_AS_OF, {"key": product.key, "at": at}))["product"]
        assert found["name"] == ("Old name" if at.startswith("2099") else product.name)
        assert {"system": "jira", "externalId": "AS-1"} in found["externalRefs"]  # the present's


async def test_as_of_an_initiative_with_what_blocks_it_is_compiled(
    pair: Any, db: AsyncSession
) -> None:
    initiative = await _renamed_later(db, models.Initiative, "Initiative", "title")
    for scopes in (ALL_SCOPES, ["portfolio:read"]):
        found = await same(
            pair, INITIATIVE_AS_OF, {"key": initiative.key, "at": "2099-06-01T00:00:00Z"}, scopes
        )
        assert found["initiative"]["title"] == "Old name"
        assert isinstance(found["initiative"]["isBlocked"], bool)


async def test_a_feed_selection_seen_before_is_written_from_its_kept_text(
    pair: Any, history: dict[str, Any]
) -> None:
    """The feed's statement depends on its selection and the scopes only (its arguments
    are parameters): a new document selecting the same (literal arguments, another
    alias, another order of arguments) is written from the kept text, and answers as
    the resolvers; another caller's scopes are another text."""
    selection = FULL.split("{", 2)[2].rsplit("}", 1)[0]  # changes' own selection
    since = history["start"]
    documents = [
        f'{{ changes(since: "{since}", first: 2) {{ {selection} }}',
        f'{{ feed: changes(first: 5, since: "{since}") {{ {selection} }}',
        f'{{ changes(since: "{since}", types: [PRODUCT]) {{ {selection} }}',
    ]
    for number, document in enumerate(documents):
        written = feed_text.COUNTS["written"]
        page = await same(pair, document)
        (answer,) = page.values()
        assert len(answer["events"]) == [2, 5, 2][number]
        if number:
            assert feed_text.COUNTS["written"] == written + 1
    lean = LEAN.split("{", 2)[2].rsplit("}", 1)[0]
    lean = f'{{ changes(since: "{since}", first: 3) {{ more: hasMore {lean} }}'
    for scopes in (["portfolio:read"], ALL_SCOPES):  # each caller's scopes: compiled once
        compiled = feed_text.COUNTS["compiled"]
        await same(pair, lean, scopes=scopes)
        assert feed_text.COUNTS["compiled"] == compiled + 1
