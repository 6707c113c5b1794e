"""The audit trail, entity history and as-of reads."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from domain import models
from schema.ids import decode_id
from tests.conftest import GraphQL

ERRORS = "userErrors { field code message }"


async def audit_count(db: AsyncSession) -> int:
    return await db.scalar(select(func.count()).select_from(models.AuditEvent)) or 0


async def test_history_of_create_update_archive(writer: GraphQL) -> None:
    created = await writer.data(
        f'mutation {{ createProduct(input: {{key: "HIST", name: "First", lifecycleStage: IDEA}}) '
        f"{{ product {{ id }} {ERRORS} }} }}"
    )
    product_id = created["createProduct"]["product"]["id"]
    await writer.data(
        'mutation($id: ID!) { updateProduct(input: {id: $id, name: "Second"}) { product { id } } }',
        {"id": product_id},
    )
    await writer.data(
        "mutation($id: ID!) { archiveProduct(input: {id: $id}) { product { id } } }",
        {"id": product_id},
    )
    events = await writer.data(
        """query($id: ID!) { auditEvents(filter: {entity: $id}) {
             nodes { action entityType entityId changes } } }""",
        {"id": product_id},
    )
    nodes = events["auditEvents"]["nodes"]
    assert [n["action"] for n in nodes] == ["CREATE", "UPDATE", "ARCHIVE"]
    assert {n["entityType"] for n in nodes} == {"Product"}
    assert {n["entityId"] for n in nodes} == {product_id}
    assert nodes[0]["changes"]["name"] == {"before": None, "after": "First"}
    assert nodes[1]["changes"] == {
        "name": {"before": "First", "after": "Second"},
        "version": {"before": 1, "after": 2},
    }
    assert nodes[2]["changes"]["archivedAt"]["before"] is None
    assert nodes[2]["changes"]["version"] == {"before": 2, "after": 3}
    newest_first = await writer.data(
        """query($id: ID!) { auditEvents(filter: {entity: $id, actions: [UPDATE, ARCHIVE]},
             orderBy: {field: OCCURRED_AT, direction: DESC}) { nodes { action } } }""",
        {"id": product_id},
    )
    assert [n["action"] for n in newest_first["auditEvents"]["nodes"]] == ["ARCHIVE", "UPDATE"]


async def test_refused_mutations_leave_no_audit_event(writer: GraphQL, db: AsyncSession) -> None:
    created = await writer.data(
        'mutation { createTeam(input: {key: "AUDITME", name: "x", kind: BUSINESS}) { team { id } } }'
    )
    team_id = created["createTeam"]["team"]["id"]
    before = await audit_count(db)
    stale = await writer.data(
        f"""mutation($id: ID!) {{ updateTeam(input: {{id: $id, expectedVersion: 7, name: "y"}})
            {{ team {{ id }} {ERRORS} }} }}""",
        {"id": team_id},
    )
    assert stale["updateTeam"]["userErrors"][0]["code"] == "CONFLICT"
    invalid = await writer.data(
        f"""mutation($id: ID!) {{ updateTeam(input: {{id: $id, name: "  "}})
            {{ team {{ id }} {ERRORS} }} }}""",
        {"id": team_id},
    )
    assert invalid["updateTeam"]["userErrors"][0]["code"] == "INVALID"
    duplicate = await writer.data(
        f'mutation {{ createTeam(input: {{key: "AUDITME", name: "x", kind: BUSINESS}}) '
        f"{{ team {{ id }} {ERRORS} }} }}"
    )
    assert duplicate["createTeam"]["userErrors"][0]["code"] == "DUPLICATE"
    assert await audit_count(db) == before


async def test_links_are_audited_once(writer: GraphQL, db: AsyncSession) -> None:
    ids = await writer.data(
        """mutation {
          i: createInitiative(input: {key: "LINK-1", title: "x"}) { initiative { id } }
          p: createProduct(input: {key: "LINKP", name: "x", lifecycleStage: IDEA}) { product { id } }
        }"""
    )
    initiative_id = ids["i"]["initiative"]["id"]
    product_id = ids["p"]["product"]["id"]
    for _ in range(2):
        await writer.data(
            """mutation($i: ID!, $p: ID!) { linkInitiativeProduct(input:
                 {initiativeId: $i, productId: $p}) { initiative { id } } }""",
            {"i": initiative_id, "p": product_id},
        )
    history = await writer.data(
        "query($id: ID!) { node(id: $id) { ... on Initiative { history { nodes { action changes } } } } }",
        {"id": initiative_id},
    )
    links = [n for n in history["node"]["history"]["nodes"] if n["action"] == "LINK"]
    assert len(links) == 1
    assert links[0]["changes"]["target"]["type"] == "Product"
    assert links[0]["changes"]["target"]["key"] == "LINKP"


async def test_history_needs_audit_read(caller: Any, writer: GraphQL) -> None:
    created = await writer.data(
        'mutation { createTeam(input: {key: "SECRETH", name: "x", kind: BUSINESS}) { team { key } } }'
    )
    reader = await caller(["portfolio:read"])
    body = await reader(
        'query { team(key: "SECRETH") { key history { totalCount } } auditEvents { totalCount } }'
    )
    assert body["data"] == {
        "team": {"key": created["createTeam"]["team"]["key"], "history": None},
        "auditEvents": None,
    }
    assert sorted(tuple(e["path"]) for e in body["errors"]) == [
        ("auditEvents",),
        ("team", "history"),
    ]
    for error in body["errors"]:
        assert error["extensions"] == {"code": "FORBIDDEN", "requiredScopes": ["audit:read"]}


async def _age_events(
    db: AsyncSession, entity_type: str, entity_id: int, times: list[datetime]
) -> None:
    """Every mutation of a test shares one transaction, hence one now(): give the
    audit events (oldest first) and the row distinct instants."""
    events = (
        await db.scalars(
            select(models.AuditEvent.id)
            .where(
                models.AuditEvent.entity_type == entity_type,
                models.AuditEvent.entity_id == entity_id,
            )
            .order_by(models.AuditEvent.id)
        )
    ).all()
    assert len(events) == len(times)
    for event_id, at in zip(events, times, strict=True):
        await db.execute(
            update(models.AuditEvent).where(models.AuditEvent.id == event_id).values(occurred_at=at)
        )
    await db.commit()


async def test_initiative_as_of(writer: GraphQL, db: AsyncSession) -> None:
    created = await writer.data(
        """mutation { createInitiative(input: {key: "ASOF-1", title: "Draft", reach: 100,
             impact: 1, confidence: 0.5, effort: 2}) { initiative { id } } }"""
    )
    global_id = created["createInitiative"]["initiative"]["id"]
    await writer.data(
        """mutation($id: ID!) { updateInitiative(input: {id: $id, title: "Final", reach: 400})
           { initiative { id } } }""",
        {"id": global_id},
    )
    await writer.data(
        "mutation($id: ID!) { archiveInitiative(input: {id: $id}) { initiative { id } } }",
        {"id": global_id},
    )
    _, pk = decode_id(global_id)
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    await _age_events(db, "Initiative", pk, [t0, t0 + timedelta(days=10), t0 + timedelta(days=20)])
    await db.execute(
        update(models.Initiative).where(models.Initiative.id == pk).values(created_at=t0)
    )
    await db.commit()

    query = """query($at: DateTime) { initiative(key: "ASOF-1", asOf: $at) {
                 key title reach riceScore version } }"""

    async def at(moment: datetime) -> Any:
        return (await writer.data(query, {"at": moment.isoformat()}))["initiative"]

    assert await at(t0 - timedelta(days=1)) is None  # before it existed
    assert await at(t0 + timedelta(days=5)) == {
        "key": "ASOF-1",
        "title": "Draft",
        "reach": 100,
        "riceScore": 25.0,
        "version": 1,
    }
    assert await at(t0 + timedelta(days=15)) == {
        "key": "ASOF-1",
        "title": "Final",
        "reach": 400,
        "riceScore": 100.0,
        "version": 2,
    }
    assert await at(t0 + timedelta(days=25)) is None  # archived by then
    # Without asOf, an archived initiative is not found at all.
    assert (await writer.data('{ initiative(key: "ASOF-1") { key } }'))["initiative"] is None


async def test_as_of_needs_a_time_zone(gql: GraphQL) -> None:
    body = await gql('{ product(key: "PAY", asOf: "2026-01-01T00:00:00") { key } }')
    [error] = body["errors"]
    assert error["extensions"] == {"code": "INVALID", "field": "asOf"}
    assert error["message"] == "`asOf` needs a time zone offset."


async def test_node_of_an_audit_event(writer: GraphQL) -> None:
    created = await writer.data(
        'mutation { createTeam(input: {key: "NODEAUD", name: "x", kind: BUSINESS}) '
        "{ team { history { nodes { id action } } } } }"
    )
    [event] = created["createTeam"]["team"]["history"]["nodes"]
    found = await writer.data(
        "query($id: ID!) { node(id: $id) { ... on AuditEvent { action entityType } } }",
        {"id": event["id"]},
    )
    assert found["node"] == {"action": "CREATE", "entityType": "Team"}
    assert decode_id(event["id"])[0] == "AuditEvent"
