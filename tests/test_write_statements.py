"""How many SQL statements each write costs: pinned, so the write path stays off the ORM's
unit of work (lock, then one statement that updates, writes the audit event and returns the
row the payload is built from)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from domain import models
from schema.ids import encode_id
from tests.conftest import GraphQL
from tests.fixtures import factories
from tests.fixtures.database import StatementCounter
from tests.test_mutations import mutate

# entity, create input, update input, the field the update changes.
ENTITIES: list[tuple[str, dict[str, Any], dict[str, Any], str]] = [
    ("team", {"key": "CNT-TEAM", "name": "Counted", "kind": "BUSINESS"}, {"name": "R"}, "name"),
    (
        "product",
        {"key": "CNTPROD", "name": "Counted", "lifecycleStage": "IDEA"},
        {"lifecycleStage": "GROWTH"},
        "lifecycleStage",
    ),
    (
        "initiative",
        {
            "key": "CNT-1",
            "title": "Counted",
            "reach": 10,
            "impact": 1,
            "confidence": 0.5,
            "effort": 2,
        },
        {"title": "Renamed"},
        "title",
    ),
    (
        "technicalConstraint",
        {"key": "CNTC-1", "title": "Counted", "category": "DATA", "severity": "LOW"},
        {"severity": "HIGH"},
        "severity",
    ),
    (
        "kpi",
        {
            "key": "CNT-KPI",
            "name": "Counted",
            "unit": "ms",
            "direction": "LOWER_IS_BETTER",
            "itRelevance": "Capacity.",
            "productRelevance": "Conversion.",
        },
        {"target": 500},
        "target",
    ),
    (
        "glossaryTerm",
        {"term": "Counted term", "definition": "D."},
        {"definition": "E."},
        "definition",
    ),
]


async def _round(
    writer: GraphQL,
    statements: StatementCounter,
    entity: str,
    create: dict[str, Any],
    update: dict[str, Any],
    field: str,
) -> dict[str, int]:
    """Create, update and archive one entity; the statements each cost."""
    type_name = entity[0].upper() + entity[1:]
    selection = f"{entity} {{ id version {field} }}"
    statements.reset()
    created = await mutate(writer, f"create{type_name}", create, selection)
    counts = {"create": statements.count}
    assert created["userErrors"] == []
    node = created[entity]

    statements.reset()
    updated = await mutate(
        writer, f"update{type_name}", {"id": node["id"], "expectedVersion": 1, **update}, selection
    )
    counts["update"] = statements.count
    assert updated["userErrors"] == [] and updated[entity]["version"] == 2

    statements.reset()
    archived = await mutate(
        writer, f"archive{type_name}", {"id": node["id"], "expectedVersion": 2}, selection
    )
    counts["archive"] = statements.count
    assert archived["userErrors"] == [] and archived[entity]["version"] == 3
    return counts


@pytest.mark.parametrize(("entity", "create", "update", "field"), ENTITIES)
async def test_statements_per_write(
    writer: GraphQL,
    statements: StatementCounter,
    entity: str,
    create: dict[str, Any],
    update: dict[str, Any],
    field: str,
) -> None:
    """Create: the row inserted and returned, then its audit event (which records the
    values as stored). Update and archive: the row locked, then one statement that
    changes it, writes the audit event and returns it."""
    # The first use of an enum type on a connection makes asyncpg look the type up:
    # a first round on other keys, not counted.
    label = "key" if "key" in create else "term"
    warm = {**create, label: create[label] + "W"}
    await _round(writer, statements, entity, warm, update, field)
    counts = await _round(writer, statements, entity, create, update, field)
    assert counts == {"create": 2, "update": 2, "archive": 2}, statements.statements


async def test_computed_fields_come_back_with_the_written_row(
    writer: GraphQL, db: AsyncSession
) -> None:
    """The payload is built from the row the write returned: its computed fields (a
    KPI's status from its latest measurement and its new thresholds, an initiative's
    scores and blocked flag from its links) equal a fresh read's."""
    kpi = await factories.kpi(db)
    db.add(
        models.KpiMeasurement(
            kpi_id=kpi.id,
            observed_at=datetime(2026, 3, 1, tzinfo=UTC),
            value=99.2,  # between critical 99.0 and warning 99.5: WARNING
            source="test",
            external_id="computed-1",
        )
    )
    product = await factories.product(db)
    initiative = await factories.initiative(db, products=[product], reach=10, impact=1)
    await factories.constraint(
        db,
        products=[product],
        severity=models.ConstraintSeverity.BLOCKER,
        status=models.ConstraintStatus.OPEN,
    )
    await db.commit()

    kpi_id = encode_id("Kpi", kpi.id)
    fields = "status freshness isStale latestValue latest { value } target warningThreshold version"
    selection = f"kpi {{ {fields} }}"
    changed = await mutate(writer, "updateKpi", {"id": kpi_id, "warningThreshold": 99.1}, selection)
    # 99.2 is better than the new warning 99.1 but short of the target 99.9.
    assert changed["kpi"]["status"] == "OFF_TARGET"
    assert changed["kpi"]["isStale"] is True  # observed in March, expected daily
    fresh = await writer.data(
        f"query($id: ID!) {{ node(id: $id) {{ ... on Kpi {{ {fields} }} }} }}",
        {"id": kpi_id},
    )
    assert changed["kpi"] == fresh["node"]

    initiative_id = encode_id("Initiative", initiative.id)
    fields = "isBlocked riceScore rice { explanation } wsjfScore version"
    selection = f"initiative {{ {fields} }}"
    changed = await mutate(
        writer,
        "updateInitiative",
        {"id": initiative_id, "confidence": 0.5, "effort": 2},
        selection,
    )
    assert changed["initiative"]["isBlocked"] is True
    assert changed["initiative"]["riceScore"] == 2.5
    fresh = await writer.data(
        f"query($id: ID!) {{ node(id: $id) {{ ... on Initiative {{ {fields} }} }} }}",
        {"id": initiative_id},
    )
    assert changed["initiative"] == fresh["node"]


async def test_a_link_reads_both_ends_then_links_and_audits_in_one_statement(
    writer: GraphQL, db: AsyncSession, statements: StatementCounter
) -> None:
    """Three statements for a link, a repeated one (which records nothing) and an
    unlink: 4 before (the link and its audit event were two)."""
    initiative = await factories.initiative(db)
    product = await factories.product(db)
    other = await factories.product(db)
    await db.commit()
    # Uncounted: the first use of an enum type on a connection makes asyncpg look it up.
    warm = {
        "initiativeId": encode_id("Initiative", initiative.id),
        "productId": encode_id("Product", other.id),
    }
    for name in ("linkInitiativeProduct", "unlinkInitiativeProduct"):
        await mutate(writer, name, warm, "initiative { key }")
    ids = {
        "initiativeId": encode_id("Initiative", initiative.id),
        "productId": encode_id("Product", product.id),
    }
    selection = "initiative { key } product { key }"
    events = []
    counts = []
    for name in ("linkInitiativeProduct", "linkInitiativeProduct", "unlinkInitiativeProduct"):
        statements.reset()
        answer = await mutate(writer, name, ids, selection)
        counts.append(statements.count)
        assert answer == {
            "initiative": {"key": initiative.key},
            "product": {"key": product.key},
            "userErrors": [],
        }
        events.append(
            await db.scalar(
                select(func.count())
                .select_from(models.AuditEvent)
                .where(
                    models.AuditEvent.entity_type == "Initiative",
                    models.AuditEvent.entity_id == initiative.id,
                )
            )
        )
    assert counts == [3, 3, 3], statements.statements
    assert events == [3, 3, 4]  # the repeated link changed nothing and recorded nothing
