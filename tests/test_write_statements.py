"""How many SQL statements each write costs: pinned, so the write path stays off the ORM's
unit of work (lock, then one statement that updates, writes the audit event and returns the
row the payload is built from)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from domain import models
from domain.services import specs, writes
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
    assert counts == {"create": 2, "update": 1, "archive": 2}, statements.statements


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


# One value of each kind of column the one-statement update writes: text, integers,
# inexact and exact decimals, dates, enums, doubles.
TWIN_CHANGES: list[tuple[Any, dict[str, Any], dict[str, Any]]] = [
    (
        specs.INITIATIVE,
        {"title": "Twin", "reach": 10, "impact": 1, "confidence": 0.5, "effort": 2},
        {
            "title": "Twin renamed",
            "summary": "Now with a summary.",
            "reach": 12,
            "impact": 0.25,
            "confidence": 0.7,
            "effort": 1.5,
            "target_start": date(2027, 1, 4),  # with its end: the rule on both needs no row
            "target_end": date(2027, 3, 1),
            "estimated_cost": Decimal("1234.50"),
            "job_size": 3,
        },
    ),
    (
        specs.CONSTRAINT,
        {"title": "Twin", "severity": models.ConstraintSeverity.LOW},
        {"severity": models.ConstraintSeverity.HIGH, "due_date": date(2027, 2, 1)},
    ),
    (
        specs.KPI,
        {"target": 99.9, "warning_threshold": 99.5, "critical_threshold": 99.0},
        {"target": 99.95, "description": "Twin."},
    ),
]


@pytest.mark.parametrize(("spec", "created", "changes"), TWIN_CHANGES)
async def test_one_statement_audits_as_the_row_path_does(
    db: AsyncSession, spec: Any, created: dict[str, Any], changes: dict[str, Any]
) -> None:
    """The one-statement update computes the audit event's "before" values in PostgreSQL:
    twins changed alike, one by it and one by the row's path (locked and read, diffed in
    Python), get the same event, values and version."""
    make: Any = {
        "Initiative": factories.initiative,
        "TechnicalConstraint": factories.constraint,
        "Kpi": factories.kpi,
    }[spec.name]
    twins = [(await make(db, **created)).id for _ in range(2)]
    await db.commit()
    actor = writes.Actor(user_id=None)
    assert await writes.decided_by_input(db, spec, changes)  # the one-statement path
    one = await writes.update(db, actor, spec, twins[0], 1, dict(changes))
    current = await writes.lock(db, spec, twins[1], 1)
    other = await writes.change(db, actor, spec, current, dict(changes))
    events = [
        (
            await db.execute(
                select(models.AuditEvent.changes, models.AuditEvent.action).where(
                    models.AuditEvent.entity_type == spec.name,
                    models.AuditEvent.entity_id == twin,
                )
            )
        ).all()
        for twin in twins
    ]
    assert events[0] == events[1]
    assert events[0][-1][1] == models.AuditAction.UPDATE
    assert events[0][-1][0]["version"] == {"before": 1, "after": 2}
    assert set(events[0][-1][0]) == {*changes, "version"}
    for name in (*spec.fields, "version"):
        if name != spec.label_field:  # the twins' keys differ
            assert getattr(one, name) == getattr(other, name), name


async def test_an_update_the_rules_need_the_row_for_reads_it_first(
    writer: GraphQL, db: AsyncSession, statements: StatementCounter
) -> None:
    """`targetEnd` alone is checked against the stored `targetStart`: the row is locked
    and read, then written (2 statements). A title the rules refuse is refused by the
    row's path (so a missing or stale row is reported first), and nothing is written."""
    initiative = await factories.initiative(db, target_start=date(2027, 1, 4))
    await db.commit()
    initiative_id = encode_id("Initiative", initiative.id)
    await mutate(
        writer, "updateInitiative", {"id": initiative_id, "title": "Warm"}, "initiative { version }"
    )

    statements.reset()
    moved = await mutate(
        writer,
        "updateInitiative",
        {"id": initiative_id, "targetEnd": "2027-01-01"},
        "initiative { version }",
    )
    assert moved["userErrors"] == [
        {
            "field": "targetEnd",
            "code": "INVALID",
            "message": "`targetEnd` (2027-01-01) is before `targetStart` (2027-01-04).",
        }
    ]
    assert statements.count == 1 and "UPDATE initiatives" not in statements.statements[0]
    statements.reset()
    moved = await mutate(
        writer,
        "updateInitiative",
        {"id": initiative_id, "targetEnd": "2027-02-01"},
        "initiative { version }",
    )
    assert moved == {"initiative": {"version": 3}, "userErrors": []}
    assert statements.count == 2, statements.statements

    statements.reset()
    refused = await mutate(
        writer,
        "updateInitiative",
        {"id": initiative_id, "title": "x" * 301, "expectedVersion": 2},
        "initiative { version }",
    )
    assert refused["userErrors"] == [
        {
            "field": "expectedVersion",
            "code": "CONFLICT",
            "message": f"Initiative {initiative.key} is at version 3, not 2: "
            "it changed since you read it.",
        }
    ]
    assert refused["initiative"] == {"version": 3}
    assert statements.count == 1 and "UPDATE initiatives" not in statements.statements[0]
