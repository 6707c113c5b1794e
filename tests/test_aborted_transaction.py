"""A request whose transaction PostgreSQL aborted (a statement failed outside any
savepoint) cannot commit: PostgreSQL answers its COMMIT with ROLLBACK and no error. A
request that wrote is then answered as a failed commit is (503), never with the success
it would contradict; a read keeps its answer (its error is in it, nothing was lost)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest

from api.app import create_app
from schema.http import RETRY_AFTER_SECONDS
from tests.conftest import ALL_SCOPES, GraphQL, settings_for

RENAME = """mutation($id: ID!, $title: String!) {
  updateInitiative(input: {id: $id, title: $title}) {
    initiative { title externalRefs { system } } userErrors { code }
  }
}"""
RENAME_TWO = """mutation($first: ID!, $firstTitle: String!, $second: ID!, $secondTitle: String!) {
  first: updateInitiative(input: {id: $first, title: $firstTitle}) {
    initiative { title } userErrors { code }
  }
  second: updateInitiative(input: {id: $second, title: $secondTitle}) {
    initiative { title externalRefs { system } } userErrors { code }
  }
}"""
IDS = '{ a: initiative(key: "CHK-103") { id } b: initiative(key: "CHK-104") { id } }'
NOT_COMMITTED = {
    "errors": [
        {
            "message": "The database is unavailable or busy; retry shortly.",
            "extensions": {"code": "SERVICE_UNAVAILABLE"},
        }
    ]
}


@pytest.fixture
async def database(own_database: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection of the test's own to its database, with two triggers on initiatives:
    renamed "Poisoned", one hides the external references table for the rest of the
    transaction, so that the update succeeds and the payload's ``externalRefs``, read
    after it, fails outside any savepoint; renamed "Refused", the update itself fails."""
    connection = await asyncpg.connect(own_database.replace("+asyncpg", ""))
    await connection.execute(
        """
        CREATE FUNCTION hide_refs() RETURNS trigger LANGUAGE plpgsql AS
        $$ BEGIN ALTER TABLE external_refs RENAME TO hidden_refs; RETURN NULL; END $$;
        CREATE TRIGGER hide_refs AFTER UPDATE ON initiatives FOR EACH ROW
        WHEN (NEW.title = 'Poisoned') EXECUTE FUNCTION hide_refs();
        CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS
        $$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$;
        CREATE TRIGGER refuse BEFORE UPDATE ON initiatives FOR EACH ROW
        WHEN (NEW.title = 'Refused') EXECUTE FUNCTION refuse();
        """
    )
    yield connection
    await connection.close()


@pytest.fixture
async def live(own_database: str) -> AsyncIterator[GraphQL]:
    """The app as ``portfolio serve`` wires it, on the test's database: the request's
    transaction is really committed, or not. Reads by the resolvers, in the request's
    transaction (the compiled path reads on pooled connections of their own)."""
    app = create_app(
        settings_for(anonymous_scopes=ALL_SCOPES, compiled_reads=False),
        database_url=own_database,
    )
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                yield GraphQL(client)
    finally:
        await app.state.reads.close()
        await app.state.engine.dispose()


async def _stored(database: asyncpg.Connection) -> list[tuple[str, int, int]]:
    """The two initiatives as committed: title, version, and how many audit events."""
    rows = await database.fetch(
        "SELECT i.title, i.version, (SELECT count(*) FROM audit_events a "
        "WHERE a.entity_type = 'Initiative' AND a.entity_id = i.id) AS events "
        "FROM initiatives i WHERE i.key IN ('CHK-103', 'CHK-104') ORDER BY i.key"
    )
    return [tuple(row) for row in rows]


async def _ids(live: GraphQL) -> tuple[str, str]:
    found = await live.data(IDS)
    return found["a"]["id"], found["b"]["id"]


async def test_a_mutation_whose_transaction_was_aborted_is_answered_503(
    live: GraphQL, database: asyncpg.Connection
) -> None:
    """The update went through, then its payload's read failed: before the fix the
    answer was 200 with no user error while the commit silently rolled back."""
    first, _ = await _ids(live)
    before = await _stored(database)
    response = await live.client.post(
        "/graphql", json={"query": RENAME, "variables": {"id": first, "title": "Poisoned"}}
    )
    assert (response.status_code, response.json()) == (503, NOT_COMMITTED)
    assert response.headers["retry-after"] == RETRY_AFTER_SECONDS
    assert await _stored(database) == before
    assert before[0][:2] == ("Express checkout with digital wallets", 1)


async def test_a_field_failing_outside_its_savepoint_undoes_the_request(
    live: GraphQL, database: asyncpg.Connection
) -> None:
    """Two root fields, each in a savepoint: the second's payload fails after its
    savepoint was released, so the whole transaction, the first field's write with it,
    cannot commit."""
    first, second = await _ids(live)
    before = await _stored(database)
    variables = {"first": first, "firstTitle": "Kept", "second": second}
    response = await live.client.post(
        "/graphql",
        json={"query": RENAME_TWO, "variables": {**variables, "secondTitle": "Poisoned"}},
    )
    assert (response.status_code, response.json()) == (503, NOT_COMMITTED)
    assert await _stored(database) == before


async def test_a_failure_inside_a_rolled_back_savepoint_still_commits(
    live: GraphQL, database: asyncpg.Connection
) -> None:
    """A statement failed, but inside the second field's savepoint, rolled back: the
    transaction is alive, and the first field's write is committed and answered."""
    first, second = await _ids(live)
    before = await _stored(database)
    variables = {"first": first, "firstTitle": "Kept", "second": second}
    body = await live(RENAME_TWO, {**variables, "secondTitle": "Refused"})
    assert body["data"]["first"] == {"initiative": {"title": "Kept"}, "userErrors": []}
    assert body["data"]["second"] is None
    [error] = body["errors"]
    assert (error["path"], error["extensions"]["code"]) == (["second"], "INTERNAL_SERVER_ERROR")
    assert await _stored(database) == [("Kept", before[0][1] + 1, before[0][2] + 1), before[1]]


async def test_a_read_whose_statement_failed_answers_as_before(
    live: GraphQL, database: asyncpg.Connection
) -> None:
    """A read wrote nothing, so its aborted transaction loses nothing: its answer, the
    error in it, is sent (200), as for any failed field."""
    await database.execute("ALTER TABLE external_refs RENAME TO hidden_refs")
    body = await live('{ initiative(key: "CHK-103") { title externalRefs { system } } }')
    assert body["data"] == {"initiative": None}
    [error] = body["errors"]
    assert error["path"] == ["initiative", "externalRefs"]
    assert error["extensions"]["code"] == "INTERNAL_SERVER_ERROR"
    assert 'relation "external_refs" does not exist' in error["message"]
    assert body["extensions"]["answeredBy"] == "resolvers"
