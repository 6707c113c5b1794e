"""The known-mutation path (``schema.known_writes``) against strawberry's path: for many
generated entity updates (random entities, fields, values, versions, IDs, selections and
scopes) both answer byte for byte alike and leave the database alike (rows, versions,
audit events, outbox rows); it is taken when it can be, and a title edit is BEGIN, one
statement and COMMIT."""

from __future__ import annotations

import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
from graphql import (
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLList,
    GraphQLObjectType,
    GraphQLScalarType,
    get_named_type,
    get_nullable_type,
)
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker
from starlette.applications import Starlette

from api.app import assemble_app
from auth import models as auth_models
from domain import models
from domain.models.webhooks import WebhookEndpoint
from schema.ids import encode_id
from schema.known_writes import KnownUpdates
from schema.mutations.portfolio import UPDATES
from tests.conftest import ALL_SCOPES, settings_for
from tests.fixtures import factories
from tests.fixtures.auth import bearer
from tests.fixtures.database import StatementCounter

# The entity each update mutation changes, by its GraphQL type name.
TABLES = {
    "Team": "teams",
    "Product": "products",
    "Initiative": "initiatives",
    "TechnicalConstraint": "technical_constraints",
    "Kpi": "kpis",
    "GlossaryTerm": "glossary_terms",
}
READ_ONLY = ["portfolio:read"]
CASES = 150


def _updates(app: Starlette) -> KnownUpdates:
    updates: KnownUpdates = app.state.view.updates
    return updates


async def _never(*_: Any) -> None:
    return None


def _apps(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession], **settings: Any
) -> tuple[Starlette, Starlette]:
    """The same server twice: with the known-mutation path, and with it declining all.

    Both budgets' clocks stand still: a budget is a fixed window of the wall clock (an
    hour, ``domain.ratelimit``), and one that ended between the two servers' charges
    made their ``remaining`` differ though each had charged the same (seen once). With
    one instant, ``remaining`` still tells whether both paths charged alike."""
    fast = assemble_app(settings_for(environment="production", **settings), engine, sessions)
    normal = assemble_app(settings_for(environment="production", **settings), engine, sessions)
    _updates(normal).answer = _never  # type: ignore[method-assign,assignment]
    instant = time.time()
    for app in (fast, normal):
        app.state.rate_limiter.clock = lambda: instant
    return fast, normal


@pytest.fixture
async def portfolio(db: AsyncSession) -> dict[str, list[int]]:
    """A few objects of every entity, and a webhook endpoint taking every update event
    (so that outbox rows are written)."""
    teams = [await factories.team(db) for _ in range(2)]
    products = [await factories.product(db) for _ in range(2)]
    initiatives = [await factories.initiative(db, products=products[:1]) for _ in range(3)]
    constraints = [
        await factories.constraint(db, initiatives=initiatives[:1], products=products[1:])
        for _ in range(2)
    ]
    kpis = [await factories.kpi(db, product_id=products[0].id) for _ in range(2)]
    terms = [
        await factories.add(
            db, models.GlossaryTerm(term=f"Term {n}", definition="Means.", version=1)
        )
        for n in range(2)
    ]
    owner = await factories.add(db, auth_models.OAuthClient(client_id="known-writes", name="KW"))
    await factories.add(
        db,
        WebhookEndpoint(
            owner_client_id=owner.id,
            url="https://hooks.example/all",
            event_types=[
                f"{kind}.updated" for kind in ("product", "initiative", "constraint", "kpi")
            ],
            secret="whsec_test",
        ),
    )
    await db.commit()
    return {
        "Team": [t.id for t in teams],
        "Product": [p.id for p in products],
        "Initiative": [i.id for i in initiatives],
        "TechnicalConstraint": [c.id for c in constraints],
        "Kpi": [k.id for k in kpis],
        "GlossaryTerm": [t.id for t in terms],
    }


async def _footprint(connection: AsyncConnection) -> dict[str, Any]:
    """Every entity row, every audit event and outbox row (their ids left out: sequences
    are not rolled back), in one statement (it runs twice per case)."""
    tables = [
        f"'{table}', (SELECT coalesce(jsonb_agg(to_jsonb(t) - 'id' - 'search_document' "
        f"ORDER BY t.id), '[]') FROM {table} t)"
        for table in (*TABLES.values(), "audit_events")
    ]
    # An outbox row's message is stamped with the clock's time and a random id of its own.
    deliveries = (
        "'webhook_deliveries', (SELECT coalesce(jsonb_agg(jsonb_build_array("
        "to_jsonb(t) - 'id' - 'message_id' - 'payload', t.payload::jsonb - 'timestamp' - 'id'"
        ") ORDER BY t.id), '[]') FROM webhook_deliveries t)"
    )
    found = await connection.scalar(
        text(f"SELECT jsonb_build_object({', '.join([*tables, deliveries])})::text")
    )
    return dict(orjson.loads(found))


async def _versions(connection: AsyncConnection, ids: dict[str, list[int]]) -> dict[Any, int]:
    """The version of every object of the portfolio, in one statement."""
    rows = await connection.execute(
        text(
            " UNION ALL ".join(
                f"SELECT '{type_name}', id, version FROM {TABLES[type_name]} "
                f"WHERE id = ANY(:{type_name})"
                for type_name in ids
            )
        ),
        ids,
    )
    return {(type_name, pk): version for type_name, pk, version in rows}


# Values every rule takes, by GraphQL type (the ``clean`` cases).
CLEAN: dict[str, list[Any]] = {
    "String": ["Renamed", "Changed again"],
    "Int": [1, 5, 12],
    "Float": [0.5, 1],
    "Date": ["2026-01-01"],
    "Decimal": ["12.34"],
}


def _value(kind: Any, rng: random.Random, ids: dict[str, list[int]], clean: bool) -> Any:
    """A value for an input field: valid, out of the rules' range, or not of its type."""
    named = get_named_type(kind)
    if isinstance(named, GraphQLEnumType):
        return rng.choice(list(named.values) if clean else [*named.values, "NOT_A_MEMBER", None])
    if clean and named.name in CLEAN:
        return rng.choice(CLEAN[named.name])
    choices: dict[str, list[Any]] = {
        "String": ["Renamed", "Changed again", "", "  ", "x" * 400, None, 7],
        "Int": [0, 1, 5, 12, 20, 21, -1, None, "5", 2**40],
        "Float": [0.0, 0.25, 0.5, 1, 3, 3.5, -1.0, None],
        "Date": ["2026-01-01", "2025-06-30", "2027-12-31", "31/12/2026", None],
        "Decimal": ["12.34", "0", "-1", "1.005", "abc", None],
        "ID": [None, "bogus"]
        + [encode_id(type_name, pk) for type_name, pks in ids.items() for pk in pks[:1]],
    }
    return rng.choice(choices.get(named.name, [None]))


def _selection(entity_type: GraphQLObjectType, rng: random.Random) -> str:
    """Some leaf fields of the entity (its scoped and computed ones too), maybe aliased."""
    leaves = [
        name
        for name, field in entity_type.fields.items()
        if not field.args
        and isinstance(get_named_type(field.type), GraphQLScalarType | GraphQLEnumType)
        and not isinstance(get_nullable_type(field.type), GraphQLList)
    ]
    chosen = rng.sample(leaves, k=rng.randint(1, min(6, len(leaves))))
    if rng.random() < 0.2:
        chosen.append("__typename")
    if rng.random() < 0.1:
        chosen.append("externalRefs { system }")
    return " ".join(
        f"a{n}: {name}" if rng.random() < 0.15 else name for n, name in enumerate(chosen)
    )


def _request(
    schema: Any, ids: dict[str, list[int]], versions: dict[tuple[str, int], int], rng: random.Random
) -> tuple[str, dict[str, Any]]:
    name = rng.choice(list(UPDATES))
    field = schema.mutation_type.fields[name]
    payload = get_named_type(field.type)
    input_type = get_named_type(field.args["input"].type)
    assert isinstance(payload, GraphQLObjectType) and isinstance(input_type, GraphQLInputObjectType)
    entity = next(key for key in payload.fields if key != "userErrors")
    entity_type = get_named_type(payload.fields[entity].type)
    assert isinstance(entity_type, GraphQLObjectType)
    type_name = entity_type.name
    target = rng.choice(ids[type_name])
    given: dict[str, Any] = {}
    clean = rng.random() < 0.5
    draw = 1.0 if clean else rng.random()
    if draw < 0.15:
        given["id"] = encode_id(type_name, 987654)  # unknown
    elif draw < 0.25:
        given["id"] = encode_id("Team" if type_name != "Team" else "Kpi", target)  # wrong type
    else:
        given["id"] = encode_id(type_name, target)
    version = versions.get((type_name, target), 1)
    stale = [] if clean else [version - 1, version + 3]
    given["expectedVersion"] = rng.choice([None, version, version, *stale])
    settable = [
        (key, field)
        for key, field in input_type.fields.items()
        if key not in ("id", "key", "expectedVersion", "externalRefs")
        and not isinstance(get_named_type(field.type), GraphQLInputObjectType)
        and not (clean and get_named_type(field.type).name == "ID")
    ]
    for key, input_field in rng.sample(settable, k=rng.randint(0, min(3, len(settable)))):
        given[key] = _value(input_field.type, rng, ids, clean)
    parts = []
    if rng.random() < 0.9:
        parts.append(f"{entity} {{ {_selection(entity_type, rng)} }}")
    if rng.random() < 0.9:
        parts.append("userErrors { field code message }")
    if rng.random() < 0.1 or not parts:
        parts.append("__typename")
    rng.shuffle(parts)
    alias = "changed: " if rng.random() < 0.2 else ""
    document = (
        f"mutation Change($input: {input_type.name}!) "
        f"{{ {alias}{name}(input: $input) {{ {' '.join(parts)} }} }}"
    )
    return document, {"input": given}


async def _post(
    client: httpx.AsyncClient, document: str, variables: dict[str, Any]
) -> httpx.Response:
    return await client.post("/graphql", json={"query": document, "variables": variables})


async def _twice(
    connection: AsyncConnection,
    client: httpx.AsyncClient,
    document: str,
    variables: dict[str, Any],
) -> httpx.Response:
    await _post(client, document, variables)
    await connection.exec_driver_sql("ROLLBACK TO SAVEPOINT known_writes")
    return await _post(client, document, variables)


async def test_the_fast_path_answers_and_writes_as_strawberry_does(
    engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
    connection: AsyncConnection,
    portfolio: dict[str, list[int]],
) -> None:
    """Each generated request, repeated so that its document is known, is sent to the
    server without the fast path and to the one with it, from the same database state:
    the same status, body and headers' content type, and the same rows after."""
    rng = random.Random(17)
    fast, normal = _apps(engine, sessions, anonymous_scopes=ALL_SCOPES)
    read_only_fast, read_only_normal = _apps(engine, sessions, anonymous_scopes=READ_ONLY)
    schema = _updates(fast).schema._schema
    versions: dict[tuple[str, int], int] = {}
    taken = 0
    transport = httpx.ASGITransport
    async with (
        httpx.AsyncClient(transport=transport(app=fast), base_url="http://t") as with_path,
        httpx.AsyncClient(transport=transport(app=normal), base_url="http://t") as without,
        httpx.AsyncClient(transport=transport(app=read_only_fast), base_url="http://t") as ro_with,
        httpx.AsyncClient(
            transport=transport(app=read_only_normal), base_url="http://t"
        ) as ro_without,
        httpx.AsyncClient(
            transport=transport(app=_apps(engine, sessions)[1]), base_url="http://t"
        ) as warm,
    ):
        for case in range(CASES):
            document, variables = _request(schema, portfolio, versions, rng)
            refused_scope = rng.random() < 0.1
            pair = (ro_without, ro_with) if refused_scope else (without, with_path)
            await connection.exec_driver_sql("SAVEPOINT known_writes")
            # Parsed once by a third (parsing is charged to whoever parses it first).
            await _post(warm, document, variables)
            await connection.exec_driver_sql("ROLLBACK TO SAVEPOINT known_writes")
            # Each server is sent it twice from the same state, the first time undone:
            # the document is then known, and both charged the caller alike.
            expected = await _twice(connection, pair[0], document, variables)
            expected_rows = await _footprint(connection)
            await connection.exec_driver_sql("ROLLBACK TO SAVEPOINT known_writes")
            answered = _updates(fast).answered
            got = await _twice(connection, pair[1], document, variables)
            taken += _updates(fast).answered - answered > 0
            assert (got.status_code, got.content) == (expected.status_code, expected.content), (
                case,
                document,
                variables,
            )
            assert got.headers["content-type"] == expected.headers["content-type"]
            assert await _footprint(connection) == expected_rows, (case, document, variables)
            await connection.exec_driver_sql("RELEASE SAVEPOINT known_writes")
            versions = await _versions(connection, portfolio)
    # Many generated updates are refused or need the row; a good share is not.
    assert taken >= CASES // 5, taken
    assert _updates(read_only_fast).answered == 0


TITLE = """mutation {name}($id: ID!, $version: Int, $title: String) {{
  updateInitiative(input: {{id: $id, expectedVersion: $version, title: $title}}) {{
    initiative {{ id version title }} userErrors {{ code }}
  }}
}}"""


@pytest.fixture
async def token_client(
    app: Starlette,
    engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
    db: AsyncSession,
) -> AsyncIterator[Callable[[list[str]], Awaitable[httpx.AsyncClient]]]:
    """``await token_client(scopes)``: a client sending a real token with those scopes."""
    clients: list[httpx.AsyncClient] = []

    async def make(scopes: list[str]) -> httpx.AsyncClient:
        headers = await bearer(app, db, scopes)
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://t", headers=headers
        )
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()


async def test_a_known_title_edit_is_one_statement_with_a_token(
    app: Starlette,
    db: AsyncSession,
    connection: AsyncConnection,
    statements: StatementCounter,
    token_client: Callable[[list[str]], Awaitable[httpx.AsyncClient]],
) -> None:
    """The bench's document with a bearer token: the first request runs strawberry's
    path, the next ones this path: one statement, the version bumped, the event written,
    the response cache dropped."""
    initiative = await factories.initiative(db, title="Before")
    await db.commit()
    client = await token_client(["initiatives:write", "portfolio:read"])
    global_id = encode_id("Initiative", initiative.id)
    document = TITLE.format(name="WithToken")  # new to this process
    first = await _post(client, document, {"id": global_id, "version": 1, "title": "First"})
    assert first.json()["data"]["updateInitiative"]["userErrors"] == []
    updates = _updates(app)
    dropped = updates.responses.generation
    statements.statements.clear()
    driver = (await connection.get_raw_connection()).driver_connection
    assert driver is not None
    sent: list[str] = []

    def log(record: Any) -> None:
        sent.append(record.query)

    driver.add_query_logger(log)
    second = await _post(client, document, {"id": global_id, "version": 2, "title": "Second"})
    assert second.status_code == 200
    assert second.json() == {
        "data": {
            "updateInitiative": {
                "initiative": {"id": global_id, "version": 3, "title": "Second"},
                "userErrors": [],
            }
        },
        "extensions": second.json()["extensions"],
    }
    assert updates.answered == 1
    # Besides the token's check (run per request in tests: no change feed tells the
    # principal cache of revocations), one statement: the write.
    [write] = [s for s in statements.statements if "oauth_revoked_access_tokens" not in s]
    assert write.startswith("WITH") and "INSERT INTO audit_events" in write
    assert updates.responses.generation == dropped + 1  # the response cache dropped
    events = await db.execute(
        text(
            "SELECT changes FROM audit_events WHERE entity_type = 'Initiative' "
            "AND entity_id = :id ORDER BY id"
        ),
        {"id": initiative.id},
    )
    assert [row[0] for row in events][-1] == {
        "title": {"before": "First", "after": "Second"},
        "version": {"before": 2, "after": 3},
    }
    # On the wire (asyncpg logs a query once done, the last one after the answer: read
    # once the checks above have awaited): its transaction (here a savepoint of the
    # test's), the write, the end of the transaction.
    driver.remove_query_logger(log)
    wire = [query.split()[0] for query in sent if "oauth_revoked_access_tokens" not in query]
    assert wire[:3] == ["SAVEPOINT", "WITH", "RELEASE"]


async def test_a_refused_scope_is_left_to_strawberry(
    app: Starlette,
    db: AsyncSession,
    token_client: Callable[[list[str]], Awaitable[httpx.AsyncClient]],
) -> None:
    initiative = await factories.initiative(db)
    await db.commit()
    writer = await token_client(["initiatives:write"])
    reader = await token_client(["portfolio:read"])
    variables = {"id": encode_id("Initiative", initiative.id), "version": None, "title": "T"}
    document = TITLE.format(name="Refused")
    await _post(writer, document, variables)  # known from now on
    answered = _updates(app).answered
    refused = await _post(reader, document, variables)
    assert refused.status_code == 200
    [error] = refused.json()["errors"]
    assert error["extensions"]["code"] == "FORBIDDEN"
    assert error["message"] == "Missing scope: this field requires initiatives:write."
    assert _updates(app).answered == answered


async def test_development_answers_say_which_path_answered(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession], db: AsyncSession
) -> None:
    initiative = await factories.initiative(db)
    await db.commit()
    app = assemble_app(settings_for(anonymous_scopes=ALL_SCOPES), engine, sessions)
    variables = {"id": encode_id("Initiative", initiative.id), "version": None}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        document = TITLE.format(name="InDevelopment")
        first = await _post(c, document, {**variables, "title": "One"})
        second = await _post(c, document, {**variables, "title": "Two"})
        unchanged = await _post(c, document, {**variables, "title": "Two"})
    assert first.json()["extensions"]["answeredBy"] == "resolvers"  # not known yet
    assert second.json()["extensions"]["answeredBy"] == "update"
    # Nothing to change: strawberry's path says so (no new version).
    assert unchanged.json()["extensions"]["answeredBy"] == "resolvers"
    assert unchanged.json()["data"]["updateInitiative"]["initiative"]["version"] == 3


async def test_a_stale_version_is_refused_by_the_fast_path(
    engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
    db: AsyncSession,
    statements: StatementCounter,
) -> None:
    """A CONFLICT is answered here too (the statement wrote nothing, then the row is
    read locked, as ``writes.lock`` does), with the row as stored; nothing is written."""
    initiative = await factories.initiative(db, title="Stored")
    await db.commit()
    app = assemble_app(settings_for(anonymous_scopes=ALL_SCOPES), engine, sessions)
    global_id = encode_id("Initiative", initiative.id)
    document = TITLE.format(name="Stale")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        await _post(c, document, {"id": global_id, "version": 5, "title": "Learnt"})
        statements.statements.clear()
        stale = await _post(c, document, {"id": global_id, "version": 5, "title": "Lost"})
    # The write, which wrote nothing, then the row read locked: as the service does.
    assert [query.split()[0] for query in statements.statements] == ["WITH", "SELECT"]
    assert stale.json()["data"] == {
        "updateInitiative": {
            "initiative": {"id": global_id, "version": 1, "title": "Stored"},
            "userErrors": [{"code": "CONFLICT"}],
        }
    }
    assert stale.json()["extensions"]["answeredBy"] == "update"
    events = await db.scalar(
        text("SELECT count(*) FROM audit_events WHERE entity_id = :id AND action = 'UPDATE'"),
        {"id": initiative.id},
    )
    assert events == 0


# A server wired as in production, on a database of its own: commits are real.
DOOMED = """
CREATE FUNCTION refuse_doomed() RETURNS trigger LANGUAGE plpgsql AS
  $$ BEGIN RAISE EXCEPTION 'doomed at commit'; END $$;
CREATE CONSTRAINT TRIGGER refuse_doomed AFTER UPDATE ON initiatives
  DEFERRABLE INITIALLY DEFERRED FOR EACH ROW
  WHEN (NEW.title = 'Doomed') EXECUTE FUNCTION refuse_doomed();
"""


def _dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


async def test_a_failed_commit_is_answered_503(wired_app: Starlette, own_database: str) -> None:
    """A check deferred to COMMIT fails it: the answer is the endpoint's 503, never the
    success the payload would tell, and nothing is written."""
    connection = await asyncpg.connect(_dsn(own_database))
    try:
        await connection.execute(DOOMED)
        pk = await connection.fetchval("SELECT min(id) FROM initiatives WHERE archived_at IS NULL")
    finally:
        await connection.close()
    global_id = encode_id("Initiative", pk)
    document = TITLE.format(name="Doomed")
    transport = httpx.ASGITransport(app=wired_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        await _post(client, document, {"id": global_id, "version": None, "title": "Known"})
        answered = _updates(wired_app).answered
        doomed = await _post(
            client, document, {"id": global_id, "version": None, "title": "Doomed"}
        )
        failed = _updates(wired_app).answered
        later = await _post(client, document, {"id": global_id, "version": None, "title": "Later"})
    # The path was open to the document before and after: it ran the doomed one, whose
    # commit failed (nothing counted as answered).
    assert (failed, _updates(wired_app).answered) == (answered, answered + 1)
    assert later.status_code == 200
    assert doomed.status_code == 503
    assert doomed.headers["retry-after"]
    assert doomed.json() == {
        "errors": [
            {
                "message": "The database is unavailable or busy; retry shortly.",
                "extensions": {"code": "SERVICE_UNAVAILABLE"},
            }
        ]
    }
    connection = await asyncpg.connect(_dsn(own_database))
    try:
        title = await connection.fetchval("SELECT title FROM initiatives WHERE id = $1", pk)
        assert title == "Later"
        assert not await connection.fetchval(
            "SELECT count(*) FROM audit_events WHERE changes -> 'title' ->> 'after' = 'Doomed'"
        )
    finally:
        await connection.close()
