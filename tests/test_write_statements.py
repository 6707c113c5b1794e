"""How many SQL statements each write costs: pinned, so the write path stays off the ORM's
unit of work (lock, then one statement that updates, writes the audit event and returns the
row the payload is built from)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import GraphQL
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
        {"key": "CNT-1", "title": "Counted", "reach": 10, "impact": 1, "confidence": 0.5,
         "effort": 2},
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
        {"key": "CNT-KPI", "name": "Counted", "unit": "ms", "direction": "LOWER_IS_BETTER",
         "itRelevance": "Capacity.", "productRelevance": "Conversion."},
        {"target": 500},
        "target",
    ),
    ("glossaryTerm", {"term": "Counted term", "definition": "D."}, {"definition": "E."},
     "definition"),
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
