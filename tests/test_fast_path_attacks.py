"""Attacks on the fast paths (known reads, their response cache, known updates,
persisted documents) with generated cases: for the same caller, a request answered
without strawberry must get exactly what strawberry's path gives it (the reference: the
same server with compiled reads off, or with the known-update path declining), and a
caller must never get what another caller's plan or cached answer held.

Each property runs many generated cases from a fixed seed, so a failure reproduces.
"""

from __future__ import annotations

import base64
import random
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker
from starlette.applications import Starlette

from api.app import assemble_app
from auth import models as auth_models
from auth.scopes import Scope
from domain import models
from domain.services.pagination import encode_cursor
from domain.services.persisted import digest
from schema.build import schema
from schema.ids import encode_id
from tests.conftest import ALL_SCOPES, GraphQL, settings_for
from tests.fixtures.auth import bearer, service_client, user_with_roles
from tests.schema_walk import QueryWalker
from tests.test_guarded_everywhere import _seed_sentinels, walk_arguments
from tests.test_known_writes import _apps, _footprint, _request, _updates, _versions
from tests.test_known_writes import portfolio as portfolio  # a fixture

READ_LIKE = [
    Scope.PORTFOLIO_READ.value,
    Scope.FINANCE_READ.value,
    Scope.AUDIT_READ.value,
    Scope.ADMIN_USERS.value,
    Scope.ADMIN_CLIENTS.value,
    Scope.ADMIN_WEBHOOKS.value,
]
# Root fields whose answers differ between two servers by design: each has its own
# rate limiter (``rateLimit`` reports the caller's budget).
PER_SERVER = frozenset({"rateLimit"})


@dataclass
class Servers:
    """The server under attack (compiled reads, known updates, response cache kept as
    in production: listening) and the reference (strawberry's path only)."""

    fast: Starlette
    reference: Starlette
    fast_client: httpx.AsyncClient
    reference_client: httpx.AsyncClient


@asynccontextmanager
async def served(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession], **overrides: Any
) -> AsyncIterator[Servers]:
    """The two servers, with these settings besides, and a client of each."""
    fast = assemble_app(settings_for(**overrides), engine, sessions)
    reference = assemble_app(settings_for(compiled_reads=False, **overrides), engine, sessions)
    # What the change feed does in production: answers and principals are kept.
    fast.state.responses.set_listening(True)
    fast.state.auth.principals.set_listening(True)
    transport = httpx.ASGITransport
    async with (
        httpx.AsyncClient(transport=transport(app=fast), base_url="http://t") as fast_client,
        httpx.AsyncClient(
            transport=transport(app=reference), base_url="http://t"
        ) as reference_client,
    ):
        yield Servers(fast, reference, fast_client, reference_client)


@pytest.fixture
async def servers(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> AsyncIterator[Servers]:
    async with served(engine, sessions) as both:
        yield both


@dataclass(frozen=True)
class Caller:
    name: str
    headers: dict[str, str]
    scopes: frozenset[str]


def answer(response: httpx.Response) -> tuple[int, Any]:
    """What the caller is told: the status and the body, without the extensions (the
    cost's budget is each server's own, and ``answeredBy`` names the path)."""
    body = response.json()
    if isinstance(body, dict):
        body.pop("extensions", None)
    return response.status_code, body


def answered_by(response: httpx.Response) -> str:
    body = response.json()
    return str((body.get("extensions") or {}).get("answeredBy", ""))


async def post(
    client: httpx.AsyncClient,
    caller: Caller,
    query: str,
    variables: dict[str, Any] | None = None,
    operation_name: str | None = None,
    accept: str | None = None,
) -> httpx.Response:
    payload: dict[str, Any] = {"query": query, "variables": variables or {}}
    if operation_name is not None:
        payload["operationName"] = operation_name
    headers = caller.headers if accept is None else {**caller.headers, "Accept": accept}
    return await client.post("/graphql", json=payload, headers=headers)


async def make_callers(
    app: Starlette, db: AsyncSession, rng: random.Random, count: int
) -> list[Caller]:
    """Service tokens and users' tokens with random read scope sets; two users with the
    same scopes (a cached answer keyed by scopes must still be each one's own); and the
    anonymous caller (every read scope in development)."""
    role = auth_models.Role(name=f"attack-all-{rng.randrange(10**9)}", scopes=ALL_SCOPES)
    db.add(role)
    await db.flush()
    callers = [
        Caller("anonymous", {}, frozenset(s.value for s in Scope if s.value.endswith(":read")))
    ]
    shared = frozenset(rng.sample(READ_LIKE, k=3))
    for n in range(count):
        scopes = shared if n < 2 else frozenset(s for s in READ_LIKE if rng.random() < 0.5)
        user = None
        if n < 2 or rng.random() < 0.4:
            user = await user_with_roles(db)
            db.add(auth_models.RoleGrant(user_id=user.id, role_id=role.id))
            await db.flush()
        headers = await bearer(app, db, scopes, user=user)
        callers.append(Caller(f"caller{n}{'-user' if user else ''}", headers, scopes))
    return callers


def named(document: str, rng: random.Random) -> tuple[str, str | None]:
    """The document as it is, or as a named operation, maybe next to another operation
    (the caller's): with the operation name given, left out, empty or naming the other."""
    shape = rng.choice(["anonymous", "named", "two"])
    if shape == "anonymous":
        return document, rng.choice([None, None, ""])
    text = f"query Walk {document}"
    if shape == "two":
        text += " query Other { viewer { scopes authenticated } }"
    return text, rng.choice(["Walk", "Walk", "Other", None, ""])


async def test_interleaved_callers_get_their_own_answers(
    servers: Servers, writer: GraphQL, db: AsyncSession
) -> None:
    """Each generated document is sent by callers with different scope sets (and by two
    users with the same scopes) in an interleaved order, A B A C B A..., so that its plan
    is known and its answers are cached for some while others ask: every answer equals
    the one strawberry's path gives the same caller."""
    await _seed_sentinels(writer, db)
    rng = random.Random(2026)
    callers = await make_callers(servers.fast, db, rng, 6)
    await db.commit()
    walker = QueryWalker(
        schema._schema, rng, await walk_arguments(db), max_depth=3, skip=PER_SERVER
    )
    paths: dict[str, int] = {}
    documents = 0
    while documents < 40:
        document = walker.document()
        if not document:
            continue
        documents += 1
        document, operation = named(document, rng)
        chosen = rng.sample(callers, k=3)
        order = [chosen[i] for i in (0, 1, 0, 2, 1, 0, 2, 0, 1)]
        expected: dict[str, tuple[int, Any]] = {}
        for caller in chosen:
            asked = await post(servers.reference_client, caller, document, None, operation)
            expected[caller.name] = answer(asked)
        for step, caller in enumerate(order):
            response = await post(servers.fast_client, caller, document, None, operation)
            path = answered_by(response)
            paths[path] = paths.get(path, 0) + 1
            assert answer(response) == expected[caller.name], (
                f"step {step}: {caller.name} {sorted(caller.scopes)} answered by {path}",
                document,
                operation,
            )
    # Not vacuous: the known path and the response cache answered many of them.
    assert paths.get("repeated", 0) >= 40, paths
    assert paths.get("cached", 0) >= 40, paths


# ---------------------------------------------------------------------- hostile variables

# Documents whose variables the known path binds as parameters (IDs, keys, cursors,
# pages, filter fields, a series' window), each with a valid value to make it known.
PARAMETERISED: list[tuple[str, dict[str, Any]]] = [
    (
        "query($id: ID!) { node(id: $id) { __typename id ... on Initiative { key title "
        "estimatedCost } ... on Product { key name } ... on AuditEvent { action changes } } }",
        {"id": "INITIATIVE"},
    ),
    (
        "query($ids: [ID!]!) { nodes(ids: $ids) { __typename id "
        "... on Initiative { key estimatedCost } } }",
        {"ids": ["INITIATIVE", "PRODUCT"]},
    ),
    ("query($key: String!) { product(key: $key) { key name version } }", {"key": "PRODUCT_KEY"}),
    (
        "query($key: String!) { initiative(key: $key) { key estimatedCost "
        "history { nodes { action changes } } } }",
        {"key": "INITIATIVE_KEY"},
    ),
    (
        "query($n: Int, $after: String) { initiatives(first: $n, after: $after) "
        "{ nodes { key estimatedCost } pageInfo { endCursor hasNextPage } } }",
        {"n": 2, "after": "INITIATIVE_CURSOR"},
    ),
    (
        "query($n: Int, $before: String) { products(last: $n, before: $before) "
        "{ nodes { key } pageInfo { startCursor hasPreviousPage } } }",
        {"n": 2, "before": "PRODUCT_CURSOR"},
    ),
    (
        "query($keys: [String!]) { products(filter: {keys: $keys}) { nodes { key name } } }",
        {"keys": ["PRODUCT_KEY"]},
    ),
    (
        "query($s: [InitiativeStatus!], $p: [ID!], $q: String, $top: Boolean, $from: Date) "
        "{ initiatives(first: 5, filter: {statuses: $s, products: $p, search: $q, "
        "topLevel: $top, targetStartFrom: $from}) { nodes { key status } } }",
        {"s": ["PROPOSED"], "p": ["PRODUCT"], "q": "test", "top": False, "from": "2020-01-01"},
    ),
    (
        "query($from: DateTime!, $to: DateTime!) { kpis(first: 2) { nodes { key "
        "series(from: $from, to: $to) { count } } } }",
        {"from": "2026-01-01T00:00:00Z", "to": "2026-02-01T00:00:00Z"},
    ),
    (
        "query($n: Int, $after: String) { auditEvents(first: $n, after: $after) "
        "{ nodes { entityType action changes } pageInfo { endCursor } } }",
        {"n": 3, "after": "AUDIT_CURSOR"},
    ),
]


def hostile_values(rng: random.Random, known: dict[str, Any]) -> list[Any]:
    """Values a caller may send for any variable: wrong types, nulls, huge lists, strings
    with NUL, quotes or ``$1``, enum names not in the enum, IDs of other types, cursors of
    other connections and orderings, forged or not canonical."""
    forged = [
        ["KEY", "x", 1],
        ["KEY", None, 1],
        ["RICE_SCORE", "not a number", 2],
        ["KEY", "a'; DROP TABLE products; --", 3],
        ["STATUS", "NOT_A_STATUS", 4],
        ["KEY", "x", 2**62],
        ["KEY", {"o": 1}, 1],
        ["NO_SUCH_ORDER", "x", 1],
        ["KEY", "é😀\\\"'$1", 5],
        ["KEY", "x", -3],
        ["KEY", 7, 1],
        ["KEY", 1.5, 1],
        ["ID", 10**6, 10**6],
        ["ID", "1", 1],
        ["TITLE", "2026-01-01", 1],
    ]
    cursors = [
        base64.urlsafe_b64encode(orjson.dumps(value)).decode().rstrip("=") for value in forged
    ]
    return [
        None,
        0,
        -1,
        2**31,
        2**63,
        1.5,
        True,
        {"a": 1},
        [],
        ["x"] * 3000,
        [None],
        [1, 2],
        "",
        "\x00",
        "a\x00b",
        "'",
        '"',
        "$1",
        "'); SELECT pg_sleep(0); --",
        "NOT_A_MEMBER",
        "PROPOSED",
        "x" * 5000,
        "not-base64!",
        "T25l",
        known["INITIATIVE"],
        known["PRODUCT"],
        known["AUDIT"],
        known["USER"],
        encode_id("Initiative", 2**62),
        encode_id("Initiative", -1),
        known["INITIATIVE_CURSOR"],
        known["PRODUCT_CURSOR"],
        known["AUDIT_CURSOR"],
        *cursors,
        [known["INITIATIVE"], known["PRODUCT"], known["USER"]],
        [known["PRODUCT_KEY"], "\x00", "$1"],
        ["PROPOSED", "NOT_A_MEMBER"],
        "2026-13-01",
        "2026-01-01T00:00:00",
        "2026-03-01T00:00:00+05:00",
    ]


def filled(value: Any, known: dict[str, Any]) -> Any:
    if isinstance(value, str) and value in known:
        return known[value]
    if isinstance(value, list):
        return [filled(item, known) for item in value]
    if isinstance(value, dict):
        return {name: filled(item, known) for name, item in value.items()}
    return value


async def known_values(db: AsyncSession) -> dict[str, Any]:
    initiative = await db.scalar(select(models.Initiative).order_by(models.Initiative.key))
    product = await db.scalar(select(models.Product).order_by(models.Product.key))
    audit = await db.scalar(select(models.AuditEvent.id).order_by(models.AuditEvent.id))
    user = await db.scalar(select(auth_models.User.id).order_by(auth_models.User.id))
    assert initiative is not None and product is not None
    # IDs of an audit event and a user whether or not one exists.
    audit, user = audit or 1, user or 1
    return {
        "INITIATIVE": encode_id("Initiative", initiative.id),
        "PRODUCT": encode_id("Product", product.id),
        "AUDIT": encode_id("AuditEvent", audit),
        "USER": encode_id("User", user),
        "INITIATIVE_KEY": initiative.key,
        "PRODUCT_KEY": product.key,
        "INITIATIVE_CURSOR": encode_cursor("KEY", initiative.key, initiative.id),
        "PRODUCT_CURSOR": encode_cursor("KEY", product.key, product.id),
        "AUDIT_CURSOR": encode_cursor("ID", audit, audit),
    }


async def test_hostile_variables_get_strawberrys_answer(
    servers: Servers, writer: GraphQL, db: AsyncSession
) -> None:
    """Each parameterised document is made known with a valid value (for the caller's
    scopes), then sent with hostile values in its variables: the known path answers
    what strawberry's path answers the same caller (the same error code and message)."""
    await _seed_sentinels(writer, db)
    rng = random.Random(4242)
    callers = await make_callers(servers.fast, db, rng, 4)
    await db.commit()
    known = await known_values(db)
    pool = hostile_values(rng, known)
    paths: dict[str, int] = {}
    for case in range(160):
        document, valid = PARAMETERISED[case % len(PARAMETERISED)]
        caller = rng.choice(callers)
        good = filled(valid, known)
        for _ in range(2):  # known, then repeated
            await post(servers.fast_client, caller, document, good)
        variables = dict(good)
        for name in rng.sample(list(good), k=rng.randint(1, len(good))):
            if rng.random() < 0.1:
                del variables[name]
            else:
                variables[name] = rng.choice(pool)
        # GraphQL over HTTP's own media type answers a request error 400.
        accept = rng.choice([None, "application/graphql-response+json"])
        expected = answer(
            await post(servers.reference_client, caller, document, variables, accept=accept)
        )
        for attempt in range(2):
            response = await post(servers.fast_client, caller, document, variables, accept=accept)
            path = answered_by(response)
            paths[path] = paths.get(path, 0) + 1
            assert answer(response) == expected, (case, attempt, path, caller.name, variables)
    # Not vacuous: hostile values of a known shape reached the known path and its cache.
    assert paths.get("repeated", 0) >= 20 and paths.get("cached", 0) >= 20, paths


async def test_a_refused_field_does_not_hide_invalid_variables(
    servers: Servers, db: AsyncSession
) -> None:
    """A caller without portfolio:read makes a series' document known (its root field
    refused, so no part of the plan reads `$from`); a later request with a `$from` that
    is no DateTime is a request error, as strawberry's path answers it, not the refusal
    (nor a cached refusal)."""
    scopes = frozenset({Scope.AUDIT_READ.value})
    caller = Caller("auditor", await bearer(servers.fast, db, scopes), scopes)
    document, valid = PARAMETERISED[8]
    for _ in range(2):
        await post(servers.fast_client, caller, document, valid)
    hostile = {**valid, "from": "PROPOSED"}
    for _ in range(2):
        response = await post(servers.fast_client, caller, document, hostile)
        assert response.status_code == 200
        (error,) = response.json()["errors"]
        assert error["extensions"] == {"code": "BAD_USER_INPUT"}
        assert error["message"].startswith(
            "Variable '$from' has invalid value: Value cannot represent a DateTime"
        )
        assert "data" not in response.json()


# ---------------------------------------------------------------------- revoked callers

VIEWER = "{ viewer { scopes authenticated user { id email } client { clientId } } }"
ACTIONS = [
    "disable client",
    "client scopes",
    "role scopes",
    "revoke role",
    "disable user",
    "password",
]


async def _admin(writer: GraphQL, mutation: str, value: dict[str, Any]) -> None:
    name = mutation.split("(", 1)[0]
    body = await writer.data(
        f"mutation($input: {value.pop('type')}!) {{ {name}(input: $input) "
        "{ userErrors { code message } } }",
        {"input": value},
    )
    assert body[name]["userErrors"] == [], body


async def test_a_caller_changed_after_its_document_became_known(
    servers: Servers, writer: GraphQL, db: AsyncSession
) -> None:
    """A caller's document is known and its answer cached (the principal remembered, as
    in production); then an admin disables its client or user, narrows its client's or
    role's scopes, or revokes its role: its next known request is refused or narrowed
    exactly as strawberry's path answers it, at once."""
    await _seed_sentinels(writer, db)
    rng = random.Random(99)
    walker = QueryWalker(
        schema._schema, rng, await walk_arguments(db), max_depth=2, skip=PER_SERVER
    )
    paths: dict[str, int] = {}
    known_before = 0
    for case in range(24):
        action = ACTIONS[case % len(ACTIONS)]
        held = frozenset(READ_LIKE)
        client = await service_client(db, held)
        user = role = None
        if action in ("role scopes", "revoke role", "disable user", "password"):
            role = auth_models.Role(name=f"attack-role-{case}", scopes=sorted(held))
            db.add(role)
            await db.flush()
            user = await user_with_roles(db, role.name)
        await db.commit()
        token, _ = await servers.fast.state.auth.tokens.issue(
            client_id=client.client_id,
            user_id=user.id if user is not None else None,
            scopes=set(held),
        )
        caller = Caller(f"case{case}", {"Authorization": f"Bearer {token}"}, held)
        document = VIEWER if case % 2 else ""
        while not document:
            document = walker.document()
        for _ in range(3):  # compiled, repeated, cached
            before = answered_by(await post(servers.fast_client, caller, document))
        known_before += before in ("repeated", "cached")
        narrowed = sorted(rng.sample(sorted(held), k=rng.randint(0, 2)))
        if action == "disable client":
            change = {"type": "SetActiveInput", "id": encode_id("OAuthClient", client.id)}
            await _admin(writer, "setOAuthClientActive", {**change, "active": False})
        elif action == "client scopes":
            change = {"type": "UpdateOAuthClientInput", "id": encode_id("OAuthClient", client.id)}
            await _admin(writer, "updateOAuthClient", {**change, "scopes": narrowed})
        elif action == "role scopes":
            assert role is not None
            change = {"type": "UpdateRoleInput", "id": encode_id("Role", role.id)}
            await _admin(writer, "updateRole", {**change, "scopes": narrowed})
        elif action == "revoke role":
            assert user is not None and role is not None
            change = {"type": "RoleGrantInput", "userId": encode_id("User", user.id)}
            await _admin(writer, "revokeRole", {**change, "role": role.name})
        elif action == "password":
            assert user is not None
            change = {"type": "SetUserPasswordInput", "id": encode_id("User", user.id)}
            await _admin(writer, "setUserPassword", {**change, "password": "a new long password"})
        else:
            assert user is not None
            change = {"type": "SetActiveInput", "id": encode_id("User", user.id)}
            await _admin(writer, "setUserActive", {**change, "active": False})
        expected = answer(await post(servers.reference_client, caller, document))
        for attempt in range(2):
            response = await post(servers.fast_client, caller, document)
            path = answered_by(response)
            paths[path] = paths.get(path, 0) + 1
            assert answer(response) == expected, (case, action, attempt, path, document)
        if action in ("disable client", "disable user", "password"):
            assert expected[0] == 401, expected
    # Not vacuous: most documents were answered by the known path before the change.
    assert known_before >= 16, known_before


# ---------------------------------------------------------------------- known updates

GUARDED_PAYLOAD = [
    "estimatedCost",
    "history { nodes { action changes } }",
    "auditEvents: history { nodes { changes } }",
    "createdAt updatedAt version",
]


async def test_known_updates_of_callers_with_random_scopes(
    engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
    connection: AsyncConnection,
    db: AsyncSession,
    portfolio: dict[str, list[int]],
) -> None:
    """Generated entity updates (``tests.test_known_writes``) sent with real tokens of
    random scope sets (with or without the write scope, finance:read, audit:read), their
    payloads sometimes selecting guarded fields and the audit trail: the known-update
    path answers and writes (rows, audit events with their actor, outbox) exactly as
    strawberry's path does for the same caller."""
    rng = random.Random(31337)
    fast, normal = _apps(engine, sessions)
    schema_ = _updates(fast).schema._schema
    versions: dict[tuple[str, int], int] = {}
    tokens: dict[frozenset[str], dict[str, str]] = {}
    taken = 0
    transport = httpx.ASGITransport
    async with (
        httpx.AsyncClient(transport=transport(app=fast), base_url="http://t") as with_path,
        httpx.AsyncClient(transport=transport(app=normal), base_url="http://t") as without,
        httpx.AsyncClient(
            transport=transport(app=_apps(engine, sessions)[1]), base_url="http://t"
        ) as warm,
    ):
        for case in range(70):
            document, variables = _request(schema_, portfolio, versions, rng)
            scopes = frozenset(s for s in ALL_SCOPES if rng.random() < 0.5)
            if rng.random() < 0.65:  # mostly allowed to make it and read it: the path is taken
                mutation = _updates(fast).mutations[re.findall(r"(update\w+)\(", document)[0]]
                scopes |= set(mutation.scopes) | set(mutation.entity_scopes)
            if case % 2:
                # An initiative's update by a caller allowed to make it, whose payload
                # reads a guarded field or the audit trail, with or without its scope.
                while "initiative { " not in document:
                    document, variables = _request(schema_, portfolio, versions, rng)
                extra = rng.choice(GUARDED_PAYLOAD)
                document = document.replace("initiative { ", f"initiative {{ {extra} ", 1)
                scopes |= {Scope.INITIATIVES_WRITE.value}
                if rng.random() < 0.7:  # mostly allowed to read the initiative itself
                    scopes |= {Scope.PORTFOLIO_READ.value}
            elif rng.random() < 0.4:
                extra = rng.choice(GUARDED_PAYLOAD)
                document = re.sub(r"(\w+) \{ (?!field code)", rf"\1 {{ {extra} ", document, count=1)
            if scopes not in tokens:
                tokens[scopes] = await bearer(fast, db, scopes)
            headers = tokens[scopes]
            await connection.exec_driver_sql("SAVEPOINT attack")
            # Parsed once by a third (parsing is charged to whoever parses it first).
            await _twice_with(connection, warm, document, variables, headers)
            await connection.exec_driver_sql("ROLLBACK TO SAVEPOINT attack")
            expected = await _twice_with(connection, without, document, variables, headers)
            expected_rows = await _footprint(connection)
            await connection.exec_driver_sql("ROLLBACK TO SAVEPOINT attack")
            answered = _updates(fast).answered
            got = await _twice_with(connection, with_path, document, variables, headers)
            taken += _updates(fast).answered - answered > 0
            assert (got.status_code, got.content) == (expected.status_code, expected.content), (
                case,
                sorted(scopes),
                document,
                variables,
            )
            assert await _footprint(connection) == expected_rows, (case, document, variables)
            await connection.exec_driver_sql("RELEASE SAVEPOINT attack")
            versions = await _versions(connection, portfolio)
    assert taken >= 10, taken


async def _twice_with(
    connection: AsyncConnection,
    client: httpx.AsyncClient,
    document: str,
    variables: dict[str, Any],
    headers: dict[str, str],
) -> httpx.Response:
    """Sent twice from the same state (the first undone): the second is a known one."""
    payload = {"query": document, "variables": variables}
    await client.post("/graphql", json=payload, headers=headers)
    await connection.exec_driver_sql("ROLLBACK TO SAVEPOINT attack")
    return await client.post("/graphql", json=payload, headers=headers)


# ---------------------------------------------------------------------- persisted documents


async def test_persisted_documents_by_hash_get_strawberrys_answer(
    servers: Servers,
    writer: GraphQL,
    db: AsyncSession,
    engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """Generated documents, stored as persisted ones, asked by hash (POST and GET), with
    their text and hash, and as plain text, by interleaved callers: each answer is the
    one strawberry's path gives the same caller. A server taking persisted documents only
    refuses the plain text of a document its fast path knows."""
    await _seed_sentinels(writer, db)
    rng = random.Random(777)
    callers = await make_callers(servers.fast, db, rng, 4)
    arguments = await walk_arguments(db)
    walker = QueryWalker(schema._schema, rng, arguments, max_depth=2, skip=PER_SERVER)
    known = await known_values(db)
    cases: list[tuple[str, dict[str, Any]]] = [
        (document, filled(variables, known)) for document, variables in PARAMETERISED
    ]
    while len(cases) < 25:
        document = walker.document()
        if document:
            cases.append((document, {}))
    for document, _ in cases:
        if await db.get(models.PersistedQuery, digest(document)) is None:
            db.add(models.PersistedQuery(sha256=digest(document), document=document))
    await db.commit()
    only = assemble_app(settings_for(persisted_queries_only=True), engine, sessions)
    paths: dict[str, int] = {}
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=only), base_url="http://t"
    ) as only_client:
        for document, variables in cases:
            chosen = rng.sample(callers, k=2)
            expected = {
                c.name: answer(await post(servers.reference_client, c, document, variables))
                for c in chosen
            }
            by_hash = {"persistedQuery": {"version": 1, "sha256Hash": digest(document)}}
            for step in range(8):
                caller = chosen[step % 2]
                how = rng.choice(["post hash", "get hash", "post both", "post text"])
                payload: dict[str, Any] = {"variables": variables, "extensions": by_hash}
                if how in ("post both", "post text"):
                    payload["query"] = document
                if how == "post text":
                    del payload["extensions"]
                if how == "get hash":
                    params = {k: orjson.dumps(v).decode() for k, v in payload.items()}
                    response = await servers.fast_client.get(
                        "/graphql", params=params, headers=caller.headers
                    )
                else:
                    response = await servers.fast_client.post(
                        "/graphql", json=payload, headers=caller.headers
                    )
                path = answered_by(response)
                paths[path] = paths.get(path, 0) + 1
                assert answer(response) == expected[caller.name], (step, how, caller.name, document)
            refused = await post(only_client, chosen[0], document, variables)
            assert refused.status_code == 400
            assert refused.json()["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_REQUIRED"
    assert paths.get("repeated", 0) + paths.get("cached", 0) >= 40, paths


async def test_anonymous_callers_in_production_are_challenged_alike(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession], db: AsyncSession
) -> None:
    """In production an anonymous caller holds no scope: a known document (and its
    cached answer) refuses it with the same status, body and challenge as strawberry's
    path, whatever the document reads."""
    fast = assemble_app(settings_for(environment="production"), engine, sessions)
    reference = assemble_app(
        settings_for(environment="production", compiled_reads=False), engine, sessions
    )
    fast.state.responses.set_listening(True)
    rng = random.Random(5)
    walker = QueryWalker(
        schema._schema, rng, await walk_arguments(db), max_depth=2, skip=PER_SERVER
    )
    known = await known_values(db)
    documents = [(document, filled(variables, known)) for document, variables in PARAMETERISED]
    while len(documents) < 40:
        document = walker.document()
        if document:
            documents.append((document, {}))
    transport = httpx.ASGITransport
    statuses: set[int] = set()
    async with (
        httpx.AsyncClient(transport=transport(app=fast), base_url="http://t") as fast_client,
        httpx.AsyncClient(
            transport=transport(app=reference), base_url="http://t"
        ) as reference_client,
    ):
        for document, variables in documents:
            payload = {"query": document, "variables": variables}
            expected = await reference_client.post("/graphql", json=payload)
            for _ in range(3):
                got = await fast_client.post("/graphql", json=payload)
                assert answer(got) == answer(expected), document
                assert got.headers.get("www-authenticate") == expected.headers.get(
                    "www-authenticate"
                )
            statuses.add(expected.status_code)
    assert 401 in statuses, statuses


# ---------------------------------------------------------------------- writes and the cache

WATCHED = [
    "{ initiatives(first: 100) { nodes { key title estimatedCost version "
    "products(first: 20) { nodes { key } } } } }",
    "{ roles(first: 100) { nodes { name scopes version } } }",
    "{ auditEvents(last: 5) { nodes { entityType action changes } } }",
]
UPDATE_TITLE = (
    "mutation($input: UpdateInitiativeInput!) { updateInitiative(input: $input) "
    "{ initiative { id title version } userErrors { code } } }"
)
UPDATE_ROLE = (
    "mutation($input: UpdateRoleInput!) { updateRole(input: $input) "
    "{ role { name } userErrors { code } } }"
)
LINK = (
    "mutation($i: ID!, $p: ID!) { {verb}InitiativeProduct(input: "
    "{initiativeId: $i, productId: $p}) { initiative { id } userErrors { code } } }"
)


async def test_no_cached_answer_outlives_a_write(
    servers: Servers, writer: GraphQL, db: AsyncSession
) -> None:
    """Reads cached for several callers, then a write on any path (a known update, the
    same update as a first-seen document, an admin change of a role, a link): the next
    known reads answer what strawberry's path reads after the write."""
    await _seed_sentinels(writer, db)
    rng = random.Random(8)
    callers = await make_callers(servers.fast, db, rng, 3)
    everything = frozenset(ALL_SCOPES)
    admin = Caller("admin", await bearer(servers.fast, db, everything), everything)
    role = auth_models.Role(name="attack-watched", scopes=[Scope.PORTFOLIO_READ.value])
    db.add(role)
    await db.flush()
    initiatives = list(await db.scalars(select(models.Initiative.id).limit(5)))
    products = list(await db.scalars(select(models.Product.id).limit(5)))
    await db.commit()
    paths: dict[str, int] = {}

    async def compare_all() -> None:
        for document in WATCHED:
            for caller in callers:
                expected = answer(await post(servers.reference_client, caller, document))
                for _ in range(2):
                    response = await post(servers.fast_client, caller, document)
                    path = answered_by(response)
                    paths[path] = paths.get(path, 0) + 1
                    assert answer(response) == expected, (write, caller.name, path, document)

    write = "none"
    await compare_all()
    for round_ in range(16):
        write = rng.choice(["known update", "first-seen update", "role", "link"])
        if write in ("known update", "first-seen update"):
            document = UPDATE_TITLE
            if write == "first-seen update":
                document = UPDATE_TITLE.replace("mutation(", f"mutation Round{round_}(")
            variables: dict[str, Any] = {
                "input": {
                    "id": encode_id("Initiative", rng.choice(initiatives)),
                    "title": f"Title {round_}",
                }
            }
        elif write == "role":
            document = UPDATE_ROLE
            scopes = rng.sample(READ_LIKE, k=rng.randint(1, 3))
            variables = {"input": {"id": encode_id("Role", role.id), "scopes": scopes}}
        else:
            document = LINK.replace("{verb}", rng.choice(["link", "unlink"]))
            variables = {
                "i": encode_id("Initiative", rng.choice(initiatives)),
                "p": encode_id("Product", rng.choice(products)),
            }
        written = await post(servers.fast_client, admin, document, variables)
        assert written.status_code == 200 and "errors" not in written.json(), written.text
        await compare_all()
    assert paths.get("cached", 0) >= 100, paths
    assert _updates(servers.fast).answered >= 2


# ---------------------------------------------------------------------- limits

NESTED = (
    "query($n: Int, $m: Int, $ids: [ID!]!, $skip: Boolean!) { "
    "initiatives(first: $n) { nodes { key products(first: $m) { nodes { key "
    "kpis(last: $m) { nodes { key } } } } } } "
    "nodes(ids: $ids) { id } viewer @skip(if: $skip) { scopes } }"
)


async def test_known_documents_are_measured_per_request(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession], db: AsyncSession
) -> None:
    """A document made known with small pages is sent again with larger ones, more IDs,
    or a field skipped no more: the known path measures each request against the cost
    limit as strawberry's path does, refusing what it refuses."""
    known = await known_values(db)
    rng = random.Random(11)
    pages = [0, 1, 2, 3, 5, 10, 20, 50, 100, 101, -1, None]
    codes: set[str] = set()
    async with served(engine, sessions, max_query_cost=400) as both:
        fast_client, reference_client = both.fast_client, both.reference_client
        small = {"n": 1, "m": 1, "ids": [known["INITIATIVE"]], "skip": True}
        for _ in range(2):
            await fast_client.post("/graphql", json={"query": NESTED, "variables": small})
        for case in range(60):
            variables = {
                "n": rng.choice(pages),
                "m": rng.choice(pages),
                "ids": [known["INITIATIVE"]] * rng.choice([0, 1, 5, 99, 101, 400]),
                "skip": rng.choice([True, False]),
            }
            payload = {"query": NESTED, "variables": variables}
            expected = answer(await reference_client.post("/graphql", json=payload))
            for _ in range(2):
                got = answer(await fast_client.post("/graphql", json=payload))
                assert got == expected, (case, variables)
            for error in expected[1].get("errors", []):
                codes.add(error["extensions"]["code"])
    assert "QUERY_TOO_COSTLY" in codes, codes


VIEWER_FIELDS = [
    "scopes",
    "authenticated",
    "user { id email displayName }",
    "client { id clientId name }",
    "__typename",
]


async def test_viewer_is_each_callers_own(
    servers: Servers, writer: GraphQL, db: AsyncSession
) -> None:
    """Generated documents reading ``viewer`` (next to another root field) asked in turn
    by callers of the same scopes, two users and two services among them: each caller
    reads itself, never the caller whose request made the plan or filled the cache."""
    await _seed_sentinels(writer, db)
    rng = random.Random(64)
    callers = await make_callers(servers.fast, db, rng, 4)
    same = callers[1:3]  # two users with the same scopes
    services = [
        Caller(f"service{n}", await bearer(servers.fast, db, same[0].scopes), same[0].scopes)
        for n in range(2)
    ]
    await db.commit()
    walker = QueryWalker(
        schema._schema, rng, await walk_arguments(db), max_depth=2, skip=PER_SERVER
    )
    pool = [*same, *services, callers[0], callers[3]]
    served = 0
    for _ in range(16):
        fields = rng.sample(VIEWER_FIELDS, k=rng.randint(1, len(VIEWER_FIELDS)))
        other = walker.document()[1:-1] if rng.random() < 0.5 else ""
        alias = rng.choice(["", "me: "])
        document = f"{{ {alias}viewer {{ {' '.join(fields)} }} {other} }}"
        order = rng.sample(pool, k=len(pool)) * 2
        expected = {c.name: answer(await post(servers.reference_client, c, document)) for c in pool}
        for caller in order:
            response = await post(servers.fast_client, caller, document)
            served += answered_by(response) in ("repeated", "cached")
            assert answer(response) == expected[caller.name], (caller.name, document)
    assert served >= 60, served
