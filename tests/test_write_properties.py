"""updateInitiative with random subsets of its fields, random values (valid or not) and
random ``expectedVersion``s (current, stale or left out), checked against a model of
the rules:

- a refused write changes nothing: every table hashes the same before and after;
- it is refused exactly when the model says so, on the fields and codes it names
  (CONFLICT alone, with the stored initiative, when the version is stale);
- an accepted write stores exactly the changed values, bumps the version once and
  writes one audit event with their before and after, or changes nothing at all when
  no value differs; its payload equals a fresh read of the initiative.

Seeded, so every run sends the same sequence."""

from __future__ import annotations

import random
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from domain import models
from domain.services.spelling import camel
from schema.ids import encode_id
from tests.conftest import GraphQL
from tests.fixtures import factories

ROUNDS = 80
SEED = 17

SELECTION = """id title summary targetStart targetEnd reach impact confidence effort
  businessValue timeCriticality riskReduction jobSize estimatedCost riceScore wsjfScore
  rice { explanation } wsjf { explanation } isBlocked version updatedAt
  parent { key } ownerTeam { key }"""
UPDATE = f"""mutation($input: UpdateInitiativeInput!) {{
  updateInitiative(input: $input) {{
    initiative {{ {SELECTION} }}
    userErrors {{ field code message }}
  }}
}}"""
READ = f"query($id: ID!) {{ node(id: $id) {{ ... on Initiative {{ {SELECTION} }} }} }}"

# field -> (GraphQL name, valid values, invalid values); values as sent in JSON.
FIELDS: dict[str, tuple[str, list[Any], list[Any]]] = {
    "title": ("title", ["Alpha", "Beta", "Gamma"], ["", "   ", "x" * 301]),
    "summary": ("summary", [None, "Why it matters.", ""], []),
    "reach": ("reach", [0, 10, 5000, None], [-1]),
    "impact": ("impact", [0.25, 1, 2.5, 3, None], [0, 3.5]),
    "confidence": ("confidence", [0, 0.5, 1, None], [1.5, -0.1]),
    "effort": ("effort", [0.5, 2, 13, None], [0, -2]),
    "business_value": ("businessValue", [1, 8, 20, None], [0, 21]),
    "time_criticality": ("timeCriticality", [1, 5, None], [25]),
    "risk_reduction": ("riskReduction", [3, 20, None], [-3]),
    "job_size": ("jobSize", [1, 13, None], [0]),
    "estimated_cost": ("estimatedCost", ["0", "1250.50", None], ["-1"]),
}
DATES = [None, date(2026, 1, 1), date(2026, 6, 1), date(2027, 1, 1)]


async def table_hashes(db: AsyncSession) -> dict[str, tuple[int, str | None]]:
    """Every row of every table, fingerprinted per table in one statement: equal
    fingerprints, equal tables. A table's is its row count and the sum of its rows'
    64-bit hashes (order does not matter, so nothing is sorted: it runs twice a round)."""
    rows = await db.execute(
        text(
            " UNION ALL ".join(
                f"SELECT '{table.name}', count(*), sum(hashtextextended(t::text, 0))::text "
                f'FROM "{table.name}" t'
                for table in models.Base.metadata.sorted_tables
            )
        )
    )
    return {name: (count, total) for name, count, total in rows}


async def stored(db: AsyncSession, pk: int) -> dict[str, Any]:
    """The initiative's stored columns (its search document left out: it follows the title)."""
    row = (await db.execute(text("SELECT * FROM initiatives WHERE id = :id"), {"id": pk})).one()
    return {k: v for k, v in row._mapping.items() if k != "search_document"}


def as_json(name: str, value: Any) -> Any:
    """A stored value as the audit trail writes it (``domain.services.audit.to_json``): the
    RICE inputs are read as floats, money stays an exact string."""
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value) if name == "estimated_cost" else float(value)
    return value


def as_stored(name: str, value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, date):
        return value
    if name == "estimated_cost":
        return Decimal(value).quantize(Decimal("0.01"))
    if name in {"impact", "confidence", "effort"}:
        return Decimal(str(value)).quantize(Decimal("0.01"))
    return value


async def test_random_updates_follow_the_rules(writer: GraphQL, db: AsyncSession) -> None:
    rng = random.Random(SEED)
    team = await factories.team(db)
    archived_team = await factories.team(db, archived_at=func.now())
    theme = await factories.initiative(db)
    target = await factories.initiative(db, parent_id=theme.id, owner_team_id=team.id)
    below = await factories.initiative(db, parent_id=target.id)
    await db.commit()
    parents = {
        None: "none",
        theme.id: "fine",
        below.id: "cycle",  # below the target: moving the target under it closes a loop
        target.id: "cycle",  # itself
    }
    teams = {team.id: "fine", archived_team.id: "archived", None: "none"}
    global_id = encode_id("Initiative", target.id)
    outcomes = {"accepted": 0, "unchanged": 0, "conflict": 0, "invalid": 0}

    for _ in range(ROUNDS):
        before_row = await stored(db, target.id)
        sent: dict[str, Any] = {}
        expected_errors: set[tuple[str, str]] = set()
        resend = rng.random() < 0.15  # the values it already has: nothing changes
        for name in rng.sample(sorted(FIELDS), rng.randint(1, 4)):
            graphql_name, valid, invalid = FIELDS[name]
            if resend:
                sent[name] = as_json(name, before_row[name])
            elif invalid and rng.random() < 0.2:
                sent[name] = rng.choice(invalid)
                expected_errors.add((graphql_name, "INVALID"))
            else:
                sent[name] = rng.choice(valid)
        if not resend and rng.random() < 0.3:
            for name in ("target_start", "target_end"):
                if rng.random() < 0.7:
                    sent[name] = rng.choice(DATES)
        if not resend and rng.random() < 0.2:
            sent["parent_id"] = rng.choice(list(parents))
        if not resend and rng.random() < 0.2:
            sent["owner_team_id"] = rng.choice(list(teams))
        version_choice = rng.choices(["current", "none", "stale", "ahead"], [5, 3, 1, 1])[0]

        # The model of the rules, over the state the update would leave.
        state = {
            **before_row,
            **{k: as_stored(k, v) for k, v in sent.items() if not k.endswith("_id")},
        }
        for name in ("parent_id", "owner_team_id"):
            if name in sent:
                state[name] = sent[name]
        start, end = state["target_start"], state["target_end"]
        if start is not None and end is not None and end < start:
            expected_errors.add(("targetEnd", "INVALID"))
        # Only a reference that changes is checked.
        new_parent = sent.get("parent_id", before_row["parent_id"])
        if new_parent != before_row["parent_id"] and parents[new_parent] == "cycle":
            expected_errors.add(("parentId", "INVALID"))
        new_team = sent.get("owner_team_id", before_row["owner_team_id"])
        if new_team != before_row["owner_team_id"] and teams[new_team] == "archived":
            expected_errors.add(("ownerTeamId", "NOT_FOUND"))

        variables: dict[str, Any] = {"id": global_id}
        for name, value in sent.items():
            graphql_name = FIELDS[name][0] if name in FIELDS else camel(name)
            if name in {"parent_id", "owner_team_id"} and value is not None:
                kind = "Initiative" if name == "parent_id" else "Team"
                value = encode_id(kind, value)
            elif isinstance(value, date):
                value = value.isoformat()
            variables[graphql_name] = value
        version = before_row["version"]
        if version_choice != "none":
            variables["expectedVersion"] = {"current": version, "stale": version - 1}.get(
                version_choice, version + 1
            )
        stale = version_choice in {"stale", "ahead"}

        hashes = await table_hashes(db)
        events = await db.scalar(select(func.count()).select_from(models.AuditEvent)) or 0
        answer = (await writer.data(UPDATE, {"input": variables}))["updateInitiative"]
        errors = {(e["field"], e["code"]) for e in answer["userErrors"]}

        if stale or expected_errors:
            assert await table_hashes(db) == hashes, (variables, answer)
            if stale:
                assert errors == {("expectedVersion", "CONFLICT")}, (variables, answer)
                fresh = (await writer.data(READ, {"id": global_id}))["node"]
                assert answer["initiative"] == fresh
                outcomes["conflict"] += 1
            else:
                assert errors == expected_errors, (variables, answer)
                assert answer["initiative"] is None
                outcomes["invalid"] += 1
            continue

        assert answer["userErrors"] == [], (variables, answer)
        after_row = await stored(db, target.id)
        changed = {
            name: value
            for name, value in state.items()
            if name in before_row and before_row[name] != value
        }
        new_events = (
            await db.scalars(
                select(models.AuditEvent).order_by(models.AuditEvent.id.desc()).limit(1)
            )
        ).all()
        count = await db.scalar(select(func.count()).select_from(models.AuditEvent))
        if not changed:
            assert after_row == before_row
            assert count == events
            assert await table_hashes(db) == hashes
            outcomes["unchanged"] += 1
        else:
            expected_row = {**before_row, **changed, "version": version + 1}
            expected_row["updated_at"] = after_row["updated_at"]
            assert after_row == expected_row
            assert count == events + 1
            (event,) = new_events
            assert event.action is models.AuditAction.UPDATE
            assert event.entity_type == "Initiative" and event.entity_id == target.id
            # The audit trail records what was sent, as sent (the old path did the same).
            expected_changes = {
                name: {
                    "before": as_json(name, before_row[name]),
                    "after": _sent_json(name, sent[name]),
                }
                for name in changed
            }
            expected_changes["version"] = {"before": version, "after": version + 1}
            assert event.changes == expected_changes
            outcomes["accepted"] += 1
        fresh = (await writer.data(READ, {"id": global_id}))["node"]
        assert answer["initiative"] == fresh

    # The seed exercises every outcome.
    assert all(outcomes.values()), outcomes


def _sent_json(name: str, value: Any) -> Any:
    """What the audit trail records as ``after``: the value the service was given."""
    if isinstance(value, date):
        return value.isoformat()
    if name == "estimated_cost" and value is not None:
        return str(Decimal(value))
    return value
