"""What a mutation request sends, and what a refused one leaves: a request whose only
root field is a mutation runs it without a savepoint, and the request's transaction is
rolled back when it is refused or fails; several mutation fields keep a savepoint each,
so that a refused one leaves the others' work in place."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from auth import models as auth_models
from domain import models
from domain.models.webhooks import WebhookDelivery, WebhookEndpoint
from schema.ids import encode_id
from tests.conftest import GraphQL
from tests.fixtures import factories
from tests.fixtures.database import StatementCounter
from tests.test_mutations import mutate

SEVERITY = """mutation($id: ID!) {
  updateTechnicalConstraint(input: {id: $id, severity: BLOCKER}) {
    technicalConstraint { severity } userErrors { code }
  }
}"""

BOTH = """mutation($kept: ID!, $failing: ID!) {
  kept: updateTechnicalConstraint(input: {id: $kept, title: "Kept"}) {
    technicalConstraint { title version } userErrors { code }
  }
  failing: updateTechnicalConstraint(input: {id: $failing, severity: BLOCKER}) {
    technicalConstraint { severity } userErrors { code }
  }
}"""


async def _guarded(db: AsyncSession) -> tuple[models.TechnicalConstraint, models.Initiative]:
    """A LOW constraint on an initiative whose every update fails (a trigger of the
    test's): making the constraint a BLOCKER writes it (its row, its audit event, a
    webhook delivery), then fails bumping the initiative it now blocks."""
    initiative = await factories.initiative(db, title="Guarded")
    constraint = await factories.constraint(
        db, severity=models.ConstraintSeverity.LOW, initiatives=[initiative]
    )
    owner = await factories.add(
        db, auth_models.OAuthClient(client_id="round-trips", name="Round trips")
    )
    await factories.add(
        db,
        WebhookEndpoint(
            owner_client_id=owner.id,
            url="https://hooks.example/constraints",
            event_types=["constraint.updated"],
            secret="whsec_test",
        ),
    )
    await db.execute(
        text(
            "CREATE FUNCTION refuse_guarded() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'guarded by the test'; END $$"
        )
    )
    await db.execute(
        text(
            "CREATE TRIGGER refuse_guarded BEFORE UPDATE ON initiatives FOR EACH ROW "
            "WHEN (OLD.title = 'Guarded') EXECUTE FUNCTION refuse_guarded()"
        )
    )
    await db.commit()
    return constraint, initiative


async def _footprint(db: AsyncSession, constraint_id: int) -> dict[str, Any]:
    """What a write of the constraint leaves: its row, audit events, outbox rows."""
    row = (
        await db.execute(
            select(models.TechnicalConstraint.severity, models.TechnicalConstraint.version).where(
                models.TechnicalConstraint.id == constraint_id
            )
        )
    ).one()
    return {
        "constraint": tuple(row),
        "audit": await db.scalar(select(func.count()).select_from(models.AuditEvent)),
        "outbox": await db.scalar(select(func.count()).select_from(WebhookDelivery)),
    }


async def test_a_failed_lone_mutation_leaves_nothing(writer: GraphQL, db: AsyncSession) -> None:
    """The constraint's row, its audit event and its outbox row were written before the
    mutation failed: without a savepoint, the request's rollback is what undoes them."""
    constraint_id = (await _guarded(db))[0].id
    before = await _footprint(db, constraint_id)
    body = await writer(SEVERITY, {"id": encode_id("TechnicalConstraint", constraint_id)})
    assert body["data"] == {"updateTechnicalConstraint": None}
    [error] = body["errors"]
    assert error["path"] == ["updateTechnicalConstraint"]
    assert (
        await _footprint(db, constraint_id)
        == before
        == {
            "constraint": (models.ConstraintSeverity.LOW, 1),
            "audit": before["audit"],
            "outbox": before["outbox"],
        }
    )


async def test_a_failed_second_field_keeps_the_first(writer: GraphQL, db: AsyncSession) -> None:
    """Two mutation fields: each in its savepoint; the second one's failure undoes its
    own writes only, and the first one's row, audit event and outbox row stay."""
    constraint_id = (await _guarded(db))[0].id
    other_id = (await factories.constraint(db, severity=models.ConstraintSeverity.LOW)).id
    await db.commit()
    before = await _footprint(db, constraint_id)
    body = await writer(
        BOTH,
        {
            "kept": encode_id("TechnicalConstraint", other_id),
            "failing": encode_id("TechnicalConstraint", constraint_id),
        },
    )
    assert body["data"] == {
        "kept": {"technicalConstraint": {"title": "Kept", "version": 2}, "userErrors": []},
        "failing": None,
    }
    assert [e["path"] for e in body["errors"]] == [["failing"]]
    assert await _footprint(db, constraint_id) == {
        "constraint": (models.ConstraintSeverity.LOW, 1),
        "audit": before["audit"] + 1,  # the first field's
        "outbox": before["outbox"] + 1,  # constraint.updated, of the first field's row
    }
    assert (
        await db.scalar(
            select(models.TechnicalConstraint.title).where(
                models.TechnicalConstraint.id == other_id
            )
        )
        == "Kept"
    )


async def test_a_refused_lone_mutation_is_answered_and_rolled_back(
    writer: GraphQL, db: AsyncSession, statements: StatementCounter
) -> None:
    """A DUPLICATE aborts the request's transaction (the UPDATE failed): the endpoint rolls
    it back instead of committing, so the caller hears the refusal (not a 503), and
    nothing of the request remains. No savepoint is sent for it."""
    await factories.add(db, models.GlossaryTerm(term="Taken term", definition="D."))
    term_id = (await factories.add(db, models.GlossaryTerm(term="Free term", definition="D."))).id
    await db.commit()
    audit = await db.scalar(select(func.count()).select_from(models.AuditEvent))
    statements.reset()
    refused = await mutate(
        writer,
        "updateGlossaryTerm",
        {"id": encode_id("GlossaryTerm", term_id), "term": "Taken term"},
        "glossaryTerm { term }",
    )
    assert refused == {
        "glossaryTerm": None,
        "userErrors": [
            {
                "field": "term",
                "code": "DUPLICATE",
                "message": "Another GlossaryTerm already has this term.",
            }
        ],
    }
    # The request's own transaction is a savepoint of the test's: the only one.
    savepoints = [s for s in statements.sent if s.startswith("SAVEPOINT")]
    assert len(savepoints) == 1, statements.sent
    assert any(s.startswith("ROLLBACK TO SAVEPOINT") for s in statements.sent)
    assert await db.scalar(select(func.count()).select_from(models.AuditEvent)) == audit
    assert (
        await db.scalar(select(models.GlossaryTerm.term).where(models.GlossaryTerm.id == term_id))
        == "Free term"
    )


async def test_round_trips_of_an_update(
    writer: GraphQL, db: AsyncSession, statements: StatementCounter
) -> None:
    """A lone update sends one statement and no savepoint of its own; two updates in one
    request send a savepoint (and its release) each."""
    initiative = await factories.initiative(db)
    await db.commit()
    initiative_id = encode_id("Initiative", initiative.id)
    statements.reset()
    # The request's transaction (a savepoint of the test's), the update, the commit: the
    # same on strawberry's path and, the document known, on the known-mutation path.
    for title in ("Once", "Once more"):
        changed = await mutate(
            writer,
            "updateInitiative",
            {"id": initiative_id, "title": title},
            "initiative { title }",
        )
        assert changed == {"initiative": {"title": title}, "userErrors": []}
        await statements.delivered()
        assert statements.count == 1, statements.statements
        assert [s.split()[0] for s in statements.sent] == ["SAVEPOINT", "WITH", "RELEASE"]
        statements.reset()

    statements.reset()
    body = await writer.data(
        "mutation($id: ID!) {"
        ' a: updateInitiative(input: {id: $id, title: "Twice"}) { userErrors { code } }'
        ' b: updateInitiative(input: {id: $id, title: "Thrice"}) { userErrors { code } } }',
        {"id": initiative_id},
    )
    assert body == {"a": {"userErrors": []}, "b": {"userErrors": []}}
    assert [s.split()[0] for s in statements.sent] == [
        "SAVEPOINT",  # the request's
        *("SAVEPOINT", "WITH", "RELEASE") * 2,
        "RELEASE",
    ]
