"""Mutations: success paths for every entity, every user error code, links and statuses.
A refused mutation changes nothing."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from auth.scopes import Scope
from domain import models
from domain.models.base import IdMixin
from schema.ids import encode_id
from tests.conftest import GraphQL
from tests.fixtures import factories
from tests.fixtures.database import StatementCounter

ERRORS = "userErrors { field code message }"


async def mutate(api: GraphQL, name: str, input: dict[str, Any], selection: str) -> dict[str, Any]:
    input_type = {
        "setInitiativeStatus": "SetInitiativeStatusInput",
        "setConstraintStatus": "SetConstraintStatusInput",
    }.get(name) or _input_type(name)
    query = (
        f"mutation($input: {input_type}!) {{ {name}(input: $input) {{ {selection} {ERRORS} }} }}"
    )
    return (await api.data(query, {"input": input}))[name]


def _input_type(name: str) -> str:
    for verb in ("create", "update"):
        if name.startswith(verb):
            return f"{verb.title()}{name[len(verb) :]}Input"
    if name.startswith("archive"):
        return "ArchiveInput"
    return {
        "InitiativeProduct": "InitiativeProductInput",
        "ConstraintProduct": "ConstraintProductInput",
        "ConstraintInitiative": "ConstraintInitiativeInput",
        "InitiativeKpi": "InitiativeKpiInput",
    }[name.removeprefix("link").removeprefix("unlink")]


async def snapshot(db: AsyncSession) -> dict[str, int]:
    """Row counts of every table, to prove a refused mutation changed nothing."""
    tables = [t.name for t in models.Base.metadata.sorted_tables]
    counts = {}
    for table in tables:
        counts[table] = await db.scalar(text(f'SELECT count(*) FROM "{table}"'))
    counts["versions"] = await db.scalar(
        text("SELECT coalesce(sum(version), 0) FROM products")
    ) + await db.scalar(text("SELECT coalesce(sum(version), 0) FROM initiatives"))
    return counts


# ---------------------------------------------------------------- success paths


@pytest.mark.parametrize(
    ("entity", "create", "update", "field"),
    [
        (
            "team",
            {"key": "NEWTEAM", "name": "New team", "kind": "BUSINESS"},
            {"name": "Renamed"},
            "name",
        ),
        (
            "product",
            {"key": "NEWPROD", "name": "New product", "lifecycleStage": "IDEA"},
            {"lifecycleStage": "GROWTH"},
            "lifecycleStage",
        ),
        (
            "initiative",
            {
                "key": "NEW-1",
                "title": "New initiative",
                "reach": 100,
                "impact": 1,
                "confidence": 0.5,
                "effort": 2,
            },
            {"title": "Renamed"},
            "title",
        ),
        (
            "technicalConstraint",
            {"key": "NEWC-1", "title": "New constraint", "category": "DATA", "severity": "LOW"},
            {"severity": "HIGH"},
            "severity",
        ),
        (
            "kpi",
            {
                "key": "NEW-KPI",
                "name": "New KPI",
                "unit": "ms",
                "direction": "LOWER_IS_BETTER",
                "itRelevance": "Capacity.",
                "productRelevance": "Conversion.",
                "warningThreshold": 800,
                "criticalThreshold": 1500,
            },
            {"target": 500},
            "target",
        ),
        (
            "glossaryTerm",
            {"term": "Zebra term", "definition": "A definition."},
            {"definition": "A better definition."},
            "definition",
        ),
    ],
)
async def test_create_update_archive(
    writer: GraphQL,
    db: AsyncSession,
    entity: str,
    create: dict[str, Any],
    update: dict[str, Any],
    field: str,
) -> None:
    type_name = entity[0].upper() + entity[1:]
    created = await mutate(
        writer, f"create{type_name}", create, f"{entity} {{ id version {field} }}"
    )
    assert created["userErrors"] == []
    node = created[entity]
    assert node["version"] == 1

    updated = await mutate(
        writer,
        f"update{type_name}",
        {"id": node["id"], "expectedVersion": 1, **update},
        f"{entity} {{ id version {field} }}",
    )
    assert updated["userErrors"] == []
    assert updated[entity]["version"] == 2
    assert updated[entity][field] == next(iter(update.values()))

    archived = await mutate(
        writer,
        f"archive{type_name}",
        {"id": node["id"], "expectedVersion": 2},
        f"{entity} {{ version }}",
    )
    assert archived == {entity: {"version": 3}, "userErrors": []}
    gone = await writer.data("query($id: ID!) { node(id: $id) { id } }", {"id": node["id"]})
    assert gone == {"node": None}


async def test_update_without_change_keeps_the_version(writer: GraphQL, db: AsyncSession) -> None:
    product = await factories.product(db, name="Same")
    await db.commit()
    result = await mutate(
        writer,
        "updateProduct",
        {"id": encode_id("Product", product.id), "name": "Same"},
        "product { version }",
    )
    assert result == {"product": {"version": 1}, "userErrors": []}


async def test_references_are_set_and_cleared(writer: GraphQL, db: AsyncSession) -> None:
    team = await factories.team(db)
    product = await factories.product(db)
    await db.commit()
    product_id = encode_id("Product", product.id)
    set_owner = await mutate(
        writer,
        "updateProduct",
        {"id": product_id, "technologyOwnerTeamId": encode_id("Team", team.id)},
        "product { technologyOwnerTeam { key } }",
    )
    assert set_owner["product"] == {"technologyOwnerTeam": {"key": team.key}}
    cleared = await mutate(
        writer,
        "updateProduct",
        {"id": product_id, "technologyOwnerTeamId": None},
        "product { technologyOwnerTeam { key } version }",
    )
    assert cleared["product"] == {"technologyOwnerTeam": None, "version": 3}


# ---------------------------------------------------------------- user errors


async def test_not_found(writer: GraphQL, db: AsyncSession) -> None:
    before = await snapshot(db)
    result = await mutate(
        writer,
        "updateInitiative",
        {"id": encode_id("Initiative", 987654), "title": "x"},
        "initiative { id }",
    )
    assert result == {
        "initiative": None,
        "userErrors": [
            {"field": "id", "code": "NOT_FOUND", "message": "No Initiative with this ID."}
        ],
    }
    missing_team = await mutate(
        writer,
        "createProduct",
        {
            "key": "ORPHAN",
            "name": "x",
            "lifecycleStage": "IDEA",
            "businessOwnerTeamId": encode_id("Team", 987654),
        },
        "product { id }",
    )
    assert missing_team["userErrors"] == [
        {"field": "businessOwnerTeamId", "code": "NOT_FOUND", "message": "No Team with this ID."}
    ]
    assert await snapshot(db) == before


async def test_wrong_type_of_id(writer: GraphQL, db: AsyncSession) -> None:
    result = await mutate(writer, "archiveProduct", {"id": encode_id("Team", 1)}, "product { id }")
    assert result["userErrors"] == [
        {"field": "id", "code": "INVALID", "message": "`id` expects a Product ID."}
    ]
    malformed = await mutate(writer, "archiveProduct", {"id": "%%%"}, "product { id }")
    assert malformed["userErrors"] == [
        {"field": "id", "code": "INVALID", "message": "`%%%` is not a valid global ID."}
    ]


async def test_invalid_fields_are_all_reported_and_nothing_is_written(
    writer: GraphQL, db: AsyncSession
) -> None:
    before = await snapshot(db)
    result = await mutate(
        writer,
        "createInitiative",
        {
            "key": "bad key",
            "title": "  ",
            "status": "DONE",
            "targetStart": "2026-06-01",
            "targetEnd": "2026-01-31",
            "reach": -1,
            "impact": 0,
            "confidence": 1.5,
            "effort": 0,
            "jobSize": 21,
            "estimatedCost": "-5",
        },
        "initiative { id }",
    )
    assert result["initiative"] is None
    assert {(e["field"], e["code"]) for e in result["userErrors"]} == {
        ("key", "INVALID"),
        ("title", "INVALID"),
        ("status", "INVALID"),
        ("targetEnd", "INVALID"),
        ("reach", "INVALID"),
        ("impact", "INVALID"),
        ("confidence", "INVALID"),
        ("effort", "INVALID"),
        ("jobSize", "INVALID"),
        ("estimatedCost", "INVALID"),
    }
    messages = {e["field"]: e["message"] for e in result["userErrors"]}
    assert messages["targetEnd"] == "`targetEnd` (2026-01-31) is before `targetStart` (2026-06-01)."
    assert messages["confidence"] == "`confidence` must be at least 0 and at most 1; got 1.5."
    assert messages["effort"] == "`effort` must be greater than 0; got 0.0."
    assert messages["status"] == "A new initiative starts as PROPOSED or APPROVED."
    assert messages["key"] == (
        "`key` must be 2 to 32 upper-case letters, digits or dashes, starting with a letter "
        "(e.g. PAY-12)."
    )
    assert await snapshot(db) == before


async def test_partial_update_is_checked_against_stored_values(
    writer: GraphQL, db: AsyncSession
) -> None:
    from datetime import date

    initiative = await factories.initiative(
        db, target_start=date(2026, 3, 1), target_end=date(2026, 6, 1)
    )
    await db.commit()
    result = await mutate(
        writer,
        "updateInitiative",
        {"id": encode_id("Initiative", initiative.id), "targetStart": "2026-07-01"},
        "initiative { targetStart }",
    )
    assert result["userErrors"] == [
        {
            "field": "targetEnd",
            "code": "INVALID",
            "message": "`targetEnd` (2026-06-01) is before `targetStart` (2026-07-01).",
        }
    ]


async def test_required_field_cannot_be_cleared(writer: GraphQL, db: AsyncSession) -> None:
    product = await factories.product(db)
    await db.commit()
    result = await mutate(
        writer,
        "updateProduct",
        {"id": encode_id("Product", product.id), "lifecycleStage": None},
        "product { id }",
    )
    assert result["userErrors"] == [
        {
            "field": "lifecycleStage",
            "code": "INVALID",
            "message": "`lifecycleStage` cannot be null.",
        }
    ]


async def test_kpi_thresholds_follow_the_direction(writer: GraphQL, db: AsyncSession) -> None:
    result = await mutate(
        writer,
        "createKpi",
        {
            "key": "BAD-KPI",
            "name": "x",
            "unit": "%",
            "direction": "HIGHER_IS_BETTER",
            "itRelevance": "a",
            "productRelevance": "b",
            "warningThreshold": 99,
            "criticalThreshold": 99.5,
        },
        "kpi { id }",
    )
    assert result["userErrors"] == [
        {
            "field": "criticalThreshold",
            "code": "INVALID",
            "message": "`criticalThreshold` must be at or below `warningThreshold` for "
            "HIGHER_IS_BETTER.",
        }
    ]


async def test_duplicate_keys_and_terms(writer: GraphQL, db: AsyncSession) -> None:
    product = await factories.product(db)
    await factories.add(db, models.GlossaryTerm(term="Taken", definition="x"))
    await db.commit()
    before = await snapshot(db)
    result = await mutate(
        writer,
        "createProduct",
        {"key": product.key, "name": "Twin", "lifecycleStage": "IDEA"},
        "product { id }",
    )
    assert result == {
        "product": None,
        "userErrors": [
            {
                "field": "key",
                "code": "DUPLICATE",
                "message": "Another Product already has this key.",
            }
        ],
    }
    term = await mutate(
        writer, "createGlossaryTerm", {"term": "Taken", "definition": "y"}, "glossaryTerm { id }"
    )
    assert term["userErrors"] == [
        {
            "field": "term",
            "code": "DUPLICATE",
            "message": "Another GlossaryTerm already has this term.",
        }
    ]
    assert await snapshot(db) == before


async def test_conflict_returns_the_current_version_and_changes_nothing(
    writer: GraphQL, db: AsyncSession
) -> None:
    product = await factories.product(db, name="Stored")
    await db.commit()
    product_id = encode_id("Product", product.id)
    await mutate(writer, "updateProduct", {"id": product_id, "name": "Moved on"}, "product { id }")
    before = await snapshot(db)
    stale = await mutate(
        writer,
        "updateProduct",
        {"id": product_id, "expectedVersion": 1, "name": "Stale"},
        "product { name version }",
    )
    assert stale == {
        "product": {"name": "Moved on", "version": 2},
        "userErrors": [
            {
                "field": "expectedVersion",
                "code": "CONFLICT",
                "message": f"Product {product.key} is at version 2, not 1: it changed since you "
                "read it.",
            }
        ],
    }
    assert await snapshot(db) == before


async def test_hierarchy_cycles_are_refused(writer: GraphQL, db: AsyncSession) -> None:
    theme = await factories.initiative(db)
    epic = await factories.initiative(db, parent_id=theme.id)
    story = await factories.initiative(db, parent_id=epic.id)
    await db.commit()
    for child, parent in ((theme, story), (theme, theme)):
        result = await mutate(
            writer,
            "updateInitiative",
            {
                "id": encode_id("Initiative", child.id),
                "parentId": encode_id("Initiative", parent.id),
            },
            "initiative { id }",
        )
        assert result["userErrors"] == [
            {
                "field": "parentId",
                "code": "INVALID",
                "message": "This parent would create a cycle in the initiative hierarchy.",
            }
        ]
    moved = await mutate(
        writer,
        "updateInitiative",
        {"id": encode_id("Initiative", story.id), "parentId": encode_id("Initiative", theme.id)},
        "initiative { parent { key } }",
    )
    assert moved == {"initiative": {"parent": {"key": theme.key}}, "userErrors": []}


async def test_only_references_that_change_are_looked_up(
    writer: GraphQL, db: AsyncSession, statements: StatementCounter
) -> None:
    """A title edit does not re-check the team and parent it keeps (nor walk the
    hierarchy): one was archived since, and the edit still goes through. Setting a
    reference is still checked."""
    team = await factories.team(db)
    parent = await factories.initiative(db)
    child = await factories.initiative(db, parent_id=parent.id, owner_team_id=team.id)
    team.archived_at = func.now()
    await db.commit()
    child_id = encode_id("Initiative", child.id)
    statements.reset()
    edited = await mutate(
        writer, "updateInitiative", {"id": child_id, "title": "Renamed"}, "initiative { title }"
    )
    assert edited == {"initiative": {"title": "Renamed"}, "userErrors": []}
    sent = " ".join(statements.statements)
    assert "FROM teams" not in sent
    assert "WITH RECURSIVE walk" not in sent
    # The row locked, changed and returned (with the audit event) in one statement: the
    # rules on a title need nothing of the row.
    assert sent.count("FROM initiatives") == 1
    assert sent.count("UPDATE initiatives") == 1
    assert statements.count == 1

    again = await mutate(
        writer,
        "updateInitiative",
        {"id": child_id, "ownerTeamId": encode_id("Team", team.id), "parentId": None},
        "initiative { title }",
    )
    assert again["userErrors"] == []  # unchanged team, parent cleared: nothing to look up
    cleared = await mutate(
        writer,
        "updateInitiative",
        {"id": child_id, "ownerTeamId": None},
        "initiative { title }",
    )
    assert cleared["userErrors"] == []
    set_again = await mutate(
        writer,
        "updateInitiative",
        {"id": child_id, "ownerTeamId": encode_id("Team", team.id)},
        "initiative { title }",
    )
    assert set_again["userErrors"] == [
        {"field": "ownerTeamId", "code": "NOT_FOUND", "message": "No Team with this ID."}
    ]


# ---------------------------------------------------------------- statuses


async def test_initiative_status_transitions(writer: GraphQL, db: AsyncSession) -> None:
    initiative = await factories.initiative(db)
    await db.commit()
    initiative_id = encode_id("Initiative", initiative.id)
    for status in ("APPROVED", "IN_PROGRESS", "DONE"):
        moved = await mutate(
            writer,
            "setInitiativeStatus",
            {"id": initiative_id, "status": status},
            "initiative { status }",
        )
        assert moved == {"initiative": {"status": status}, "userErrors": []}
    refused = await mutate(
        writer,
        "setInitiativeStatus",
        {"id": initiative_id, "status": "PROPOSED"},
        "initiative { status }",
    )
    assert refused == {
        "initiative": None,
        "userErrors": [
            {
                "field": "status",
                "code": "INVALID",
                "message": "Initiative cannot move from DONE to PROPOSED; allowed: none.",
            }
        ],
    }


async def test_blocked_initiative_cannot_start(writer: GraphQL, db: AsyncSession) -> None:
    product = await factories.product(db)
    initiative = await factories.initiative(
        db, products=[product], status=models.InitiativeStatus.APPROVED
    )
    first = await factories.constraint(db, products=[product], key="BLK-A")
    second = await factories.constraint(db, initiatives=[initiative], key="BLK-B")
    await db.commit()
    initiative_id = encode_id("Initiative", initiative.id)
    before = await snapshot(db)
    refused = await mutate(
        writer,
        "setInitiativeStatus",
        {"id": initiative_id, "status": "IN_PROGRESS"},
        "initiative { status }",
    )
    assert refused == {
        "initiative": None,
        "userErrors": [
            {
                "field": "status",
                "code": "BLOCKED",
                "message": f"Initiative {initiative.key} is blocked by BLK-A, BLK-B: resolve or "
                "accept them before starting it.",
            }
        ],
    }
    assert await snapshot(db) == before

    for blocker, status in ((first, "RESOLVED"), (second, "ACCEPTED")):
        lifted = await mutate(
            writer,
            "setConstraintStatus",
            {"id": encode_id("TechnicalConstraint", blocker.id), "status": status},
            "technicalConstraint { status }",
        )
        assert lifted == {"technicalConstraint": {"status": status}, "userErrors": []}
    started = await mutate(
        writer,
        "setInitiativeStatus",
        # Each lift changed what blocks it: a new version each (domain.services.blocking).
        {"id": initiative_id, "status": "IN_PROGRESS", "expectedVersion": 3},
        "initiative { status isBlocked version }",
    )
    assert started == {
        "initiative": {"status": "IN_PROGRESS", "isBlocked": False, "version": 4},
        "userErrors": [],
    }


async def test_constraint_status_transition_refused(writer: GraphQL, db: AsyncSession) -> None:
    constraint = await factories.constraint(db, status=models.ConstraintStatus.RESOLVED)
    await db.commit()
    result = await mutate(
        writer,
        "setConstraintStatus",
        {"id": encode_id("TechnicalConstraint", constraint.id), "status": "MITIGATING"},
        "technicalConstraint { status }",
    )
    assert result["userErrors"] == [
        {
            "field": "status",
            "code": "INVALID",
            "message": "TechnicalConstraint cannot move from RESOLVED to MITIGATING; allowed: OPEN.",
        }
    ]


# ---------------------------------------------------------------- links


@pytest.mark.parametrize(
    ("name", "owner", "target", "owner_field", "target_field", "edge"),
    [
        (
            "InitiativeProduct",
            "Initiative",
            "Product",
            "initiativeId",
            "productId",
            "initiative { products { nodes { id } } }",
        ),
        (
            "ConstraintProduct",
            "TechnicalConstraint",
            "Product",
            "constraintId",
            "productId",
            "technicalConstraint { products { nodes { id } } }",
        ),
        (
            "ConstraintInitiative",
            "TechnicalConstraint",
            "Initiative",
            "constraintId",
            "initiativeId",
            "technicalConstraint { initiatives { nodes { id } } }",
        ),
        (
            "InitiativeKpi",
            "Initiative",
            "Kpi",
            "initiativeId",
            "kpiId",
            "initiative { kpis { nodes { id } } }",
        ),
    ],
)
async def test_link_and_unlink_are_idempotent(
    writer: GraphQL,
    db: AsyncSession,
    name: str,
    owner: str,
    target: str,
    owner_field: str,
    target_field: str,
    edge: str,
) -> None:
    builders: dict[str, Callable[[AsyncSession], Awaitable[IdMixin]]] = {
        "Initiative": factories.initiative,
        "Product": factories.product,
        "TechnicalConstraint": factories.constraint,
        "Kpi": factories.kpi,
    }
    owner_row = await builders[owner](db)
    target_row = await builders[target](db)
    await db.commit()
    target_id = encode_id(target, target_row.id)
    link_input = {owner_field: encode_id(owner, owner_row.id), target_field: target_id}
    edge_field = edge.split(" {")[0]
    for _ in range(2):
        linked = await mutate(writer, f"link{name}", link_input, edge)
        assert linked["userErrors"] == []
        nodes = linked[edge_field][edge.split("{ ")[1].split(" ")[0]]["nodes"]
        assert nodes == [{"id": target_id}]
    for _ in range(2):
        unlinked = await mutate(writer, f"unlink{name}", link_input, edge)
        assert unlinked["userErrors"] == []
        assert unlinked[edge_field][edge.split("{ ")[1].split(" ")[0]]["nodes"] == []


async def test_link_to_unknown_objects(writer: GraphQL, db: AsyncSession) -> None:
    before = await snapshot(db)
    result = await mutate(
        writer,
        "linkInitiativeProduct",
        {
            "initiativeId": encode_id("Initiative", 987654),
            "productId": encode_id("Product", 987654),
        },
        "initiative { id } product { id }",
    )
    assert result == {
        "initiative": None,
        "product": None,
        "userErrors": [
            {
                "field": "initiativeId",
                "code": "NOT_FOUND",
                "message": "No Initiative with this ID.",
            },
            {"field": "productId", "code": "NOT_FOUND", "message": "No Product with this ID."},
        ],
    }
    assert await snapshot(db) == before


# ---------------------------------------------------------------- scopes


@pytest.mark.parametrize(
    ("mutation", "input_type", "scope"),
    [
        ("createTeam", "CreateTeamInput", "products:write"),
        ("createProduct", "CreateProductInput", "products:write"),
        ("createInitiative", "CreateInitiativeInput", "initiatives:write"),
        ("setInitiativeStatus", "SetInitiativeStatusInput", "initiatives:write"),
        ("createTechnicalConstraint", "CreateTechnicalConstraintInput", "constraints:write"),
        ("setConstraintStatus", "SetConstraintStatusInput", "constraints:write"),
        ("linkConstraintProduct", "ConstraintProductInput", "constraints:write"),
        ("createKpi", "CreateKpiInput", "kpis:write"),
        ("createGlossaryTerm", "CreateGlossaryTermInput", "glossary:write"),
        ("recordKpiMeasurements", "RecordKpiMeasurementsInput", "kpis:ingest"),
    ],
)
async def test_each_mutation_needs_its_scope(
    caller: Any, db: AsyncSession, mutation: str, input_type: str, scope: str
) -> None:
    others = [s.value for s in Scope if s.value != scope]
    valid_inputs = {
        "createTeam": {"key": "SCOPED", "name": "x", "kind": "BUSINESS"},
        "createProduct": {"key": "SCOPED", "name": "x", "lifecycleStage": "IDEA"},
        "createInitiative": {"key": "SCOPED-1", "title": "x"},
        "setInitiativeStatus": {"id": encode_id("Initiative", 1), "status": "APPROVED"},
        "createTechnicalConstraint": {
            "key": "SCOPED-1",
            "title": "x",
            "category": "DATA",
            "severity": "LOW",
        },
        "setConstraintStatus": {"id": encode_id("TechnicalConstraint", 1), "status": "OPEN"},
        "linkConstraintProduct": {
            "constraintId": encode_id("TechnicalConstraint", 1),
            "productId": encode_id("Product", 1),
        },
        "createKpi": {
            "key": "SCOPED",
            "name": "x",
            "unit": "%",
            "direction": "HIGHER_IS_BETTER",
            "itRelevance": "a",
            "productRelevance": "b",
        },
        "createGlossaryTerm": {"term": "Scoped", "definition": "x"},
        "recordKpiMeasurements": {"measurements": []},
    }
    api = await caller(others)
    before = await snapshot(db)
    body = await api(
        f"mutation($input: {input_type}!) {{ {mutation}(input: $input) {{ __typename }} }}",
        {"input": valid_inputs[mutation]},
    )
    assert body["data"] == {mutation: None}
    [error] = body["errors"]
    assert error["extensions"] == {"code": "FORBIDDEN", "requiredScopes": [scope]}
    assert error["message"] == f"Missing scope: this field requires {scope}."
    assert await snapshot(db) == before


async def test_audit_rows_count_helper_sees_writes(writer: GraphQL, db: AsyncSession) -> None:
    """Guard for ``snapshot``: a successful mutation does change it."""
    before = await snapshot(db)
    await mutate(
        writer, "createTeam", {"key": "SNAP", "name": "x", "kind": "BUSINESS"}, "team { id }"
    )
    after = await snapshot(db)
    assert after["teams"] == before["teams"] + 1
    assert after["audit_events"] == before["audit_events"] + 1
    assert await db.scalar(select(func.count()).select_from(models.Team)) == after["teams"]
