"""A value guarded by a scope is guarded on every path it can be read from.

The guard is declared once, next to the field; the audit trail (``auditEvents``,
every ``history``, ``node`` of an AuditEvent, the change feed ``changes``) derives its
redaction from that declaration (``schema.guards``). The property test seeds a unique sentinel into every
guarded stored value, generates queries over the whole schema (``tests.schema_walk``)
and sends them under random scope sets to both read paths: a sentinel never reaches a
caller who lacks its field's scopes.
"""

from __future__ import annotations

import random
import re
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from auth.scopes import Scope
from domain import models
from schema.build import schema
from schema.guards import NODE_TYPES, AuditChanges
from schema.ids import encode_id
from tests.conftest import GraphQL
from tests.schema_walk import Arguments, QueryWalker

PRESENTER = AuditChanges(schema)
READ_LIKE = [
    Scope.PORTFOLIO_READ.value,
    Scope.FINANCE_READ.value,
    Scope.AUDIT_READ.value,
    Scope.ADMIN_USERS.value,
    Scope.ADMIN_CLIENTS.value,
]
HISTORY = "history { nodes { action changes } }"
# The change feed: the one field named `changes` with a selection (AuditEvent's is a leaf).
FEED = re.compile(r"\bchanges(?:\([^)]*\))? \{")
COST = "918273.64"
NEW_COST = "828282.17"

# Guarded stored values that cannot carry a sentinel: their values come from a closed
# set (every role and client has some of the same scopes), so finding one in an answer
# proves nothing.
CLOSED_SETS = {
    ("Role", "scopes"),
    ("OAuthClient", "scopes"),
    ("OAuthClient", "grant_types"),
    ("AuditEvent", "entity_type"),
}


def guard(type_name: str, column: str) -> frozenset[str]:
    return PRESENTER.table(type_name)[column].scopes


def guarded_columns() -> set[tuple[str, str]]:
    """Every stored text, money or list value whose field needs more than reading the
    portfolio, as declared on the schema."""
    found = set()
    for type_name, (model, _) in NODE_TYPES.items():
        for column, stored in PRESENTER.table(type_name).items():
            table_column = model.__table__.c.get(column)
            if table_column is None or stored.scopes <= {Scope.PORTFOLIO_READ.value}:
                continue
            if table_column.type.python_type in (str, Decimal, list):
                found.add((type_name, column))
    return found


async def _seed_sentinels(writer: GraphQL, db: AsyncSession) -> dict[str, tuple[str, str]]:
    """Sentinel -> (type, column) it is stored in; written through the API, so the
    audit trail holds them too (before and after values, creations, links)."""
    initiative = await db.scalar(select(models.Initiative).order_by(models.Initiative.key))
    assert initiative is not None
    initiative_id = encode_id("Initiative", initiative.id)
    await writer.data(
        "mutation($id: ID!) { updateInitiative(input: {id: $id, estimatedCost: "
        f'"{COST}"}}) {{ userErrors {{ code }} initiative {{ id }} }} }}',
        {"id": initiative_id},
    )
    await writer.data(
        'mutation($p: ID!) { createInitiative(input: {key: "SENT-1", title: "Sentinel child", '
        f'parentId: $p, estimatedCost: "{NEW_COST}"}}) {{ initiative {{ id }} }} }}',
        {"p": initiative_id},
    )
    role = await writer.data(
        'mutation { createRole(input: {name: "sentinel-role-5521", scopes: ["portfolio:read"], '
        'description: "Sentinel role text 5521"}) { role { id } userErrors { message } } }'
    )
    assert role["createRole"]["role"], role
    user = await writer.data(
        'mutation { createUser(input: {email: "sentinel-user-7731@leak.test", displayName: '
        '"Sentinel Person 7731", roles: ["sentinel-role-5521"]}) { user { id } '
        "userErrors { message } } }"
    )
    assert user["createUser"]["user"], user
    client = await writer.data(
        'mutation { createOAuthClient(input: {name: "Sentinel Client 4412", grantTypes: '
        '["authorization_code"], scopes: ["portfolio:read"], redirectUris: '
        '["https://sentinel-4412.example/cb"], confidential: false}) '
        "{ client { clientId } userErrors { message } } }"
    )
    client_id = client["createOAuthClient"]["client"]["clientId"]
    return {
        COST: ("Initiative", "estimated_cost"),
        NEW_COST: ("Initiative", "estimated_cost"),
        "sentinel-role-5521": ("Role", "name"),
        "Sentinel role text 5521": ("Role", "description"),
        "sentinel-user-7731@leak.test": ("User", "email"),
        "Sentinel Person 7731": ("User", "display_name"),
        "Sentinel Client 4412": ("OAuthClient", "name"),
        client_id: ("OAuthClient", "client_id"),
        "sentinel-4412.example": ("OAuthClient", "redirect_uris"),
    }


async def walk_arguments(db: AsyncSession) -> Arguments:
    ids: list[str] = []
    for type_name, (model, _) in NODE_TYPES.items():
        # The newest rows: the sentinels' objects and every audit event their writes made.
        newest = 12 if model is models.AuditEvent else 4
        rows = await db.scalars(select(model.id).order_by(model.id.desc()).limit(newest))
        ids.extend(encode_id(type_name, pk) for pk in rows)
    first = await db.scalar(select(models.Initiative.id).order_by(models.Initiative.key))
    assert first is not None
    ids.append(encode_id("Initiative", first))
    keys = {
        "product": list(await db.scalars(select(models.Product.key).limit(3))),
        "initiative": [
            "SENT-1",
            *await db.scalars(
                select(models.Initiative.key).order_by(models.Initiative.key).limit(1)
            ),
        ],
        "team": list(await db.scalars(select(models.Team.key).limit(2))),
        "kpi": list(await db.scalars(select(models.Kpi.key).limit(2))),
        "technicalConstraint": list(
            await db.scalars(select(models.TechnicalConstraint.key).limit(2))
        ),
    }
    return Arguments(ids=ids, keys=keys)


async def test_every_guarded_value_has_a_sentinel(writer: GraphQL, db: AsyncSession) -> None:
    """The property below covers every guarded stored value the schema declares: a new
    guarded field without a sentinel fails here."""
    sentinels = await _seed_sentinels(writer, db)
    assert guarded_columns() - CLOSED_SETS == set(sentinels.values())


async def test_no_sentinel_reaches_a_caller_without_its_scope(
    writer: GraphQL, db: AsyncSession, pair: Any
) -> None:
    sentinels = await _seed_sentinels(writer, db)
    required = {value: guard(*where) for value, where in sentinels.items()}
    rng = random.Random(17)
    walker = QueryWalker(schema._schema, rng, await walk_arguments(db), max_depth=3)
    apps: dict[frozenset[str], tuple[GraphQL, GraphQL]] = {}
    seen_with_scope: set[str] = set()
    seen_in_changes: set[str] = set()
    seen_in_feed: set[str] = set()
    cases = 0
    while cases < 300:
        document = walker.document()
        if not document:
            continue
        cases += 1
        scopes = frozenset(s for s in READ_LIKE if rng.random() < 0.5)
        if scopes not in apps:
            apps[scopes] = pair(sorted(scopes))
        for path in apps[scopes]:
            await path(document, status=None)
            body = path.last_body.decode()
            for value, needs in required.items():
                if value not in body:
                    continue
                assert needs <= scopes, (
                    f"{value!r} ({sentinels[value]}) reached a caller with {sorted(scopes)}, "
                    f"which lacks {sorted(needs - scopes)}: {document}"
                )
                seen_with_scope.add(value)
                if '"changes"' in body:
                    seen_in_changes.add(value)
                if FEED.search(document):
                    seen_in_feed.add(value)
    # Not vacuous: the generator reached every sentinel, through the audit trail too.
    assert seen_with_scope == set(required)
    assert len(seen_in_changes) >= len(required) // 2, seen_in_changes
    # The change feed showed the money sentinels its events carry (values before and
    # after, the object itself) to callers holding their scopes.
    assert {COST, NEW_COST} <= seen_in_feed, seen_in_feed


async def test_audit_trail_redacts_money_for_callers_without_finance_read(
    writer: GraphQL, db: AsyncSession, caller: Any
) -> None:
    await _seed_sentinels(writer, db)
    query = (
        '{ initiative(key: "SENT-1") { id parent { id } ' + HISTORY + " } "
        'auditEvents(filter: {entityTypes: ["Initiative"]}, last: 50) '
        "{ nodes { changes } } }"
    )
    auditor = await caller(["portfolio:read", "audit:read"])
    seen = await auditor.data(query)
    created = seen["initiative"]["history"]["nodes"][0]
    assert created["action"] == "CREATE"
    assert "estimatedCost" not in created["changes"]
    assert "estimated_cost" not in created["changes"]
    # GraphQL names and global IDs, not columns and primary keys.
    assert created["changes"]["parent"] == {
        "before": None,
        "after": seen["initiative"]["parent"]["id"],
    }
    assert created["changes"]["title"] == {"before": None, "after": "Sentinel child"}
    assert COST not in auditor.last_body.decode()
    assert NEW_COST not in auditor.last_body.decode()

    finance = await caller(["portfolio:read", "audit:read", "finance:read"])
    shown = await finance.data(query)
    cost = shown["initiative"]["history"]["nodes"][0]["changes"]["estimatedCost"]
    assert cost == {"before": None, "after": NEW_COST}
    updates = [
        e["changes"] for e in shown["auditEvents"]["nodes"] if "estimatedCost" in e["changes"]
    ]
    assert COST in [c["estimatedCost"]["after"] for c in updates]


async def test_audit_trail_of_users_and_clients_needs_the_admin_scopes(
    writer: GraphQL, db: AsyncSession, caller: Any
) -> None:
    sentinels = await _seed_sentinels(writer, db)
    client_id = next(v for v, where in sentinels.items() if where[1] == "client_id")
    query = (
        '{ auditEvents(filter: {entityTypes: ["User", "OAuthClient"]}, last: 50) '
        "{ nodes { entityType action changes } } }"
    )
    auditor = await caller(["audit:read"])
    events = (await auditor.data(query))["auditEvents"]["nodes"]
    assert {e["entityType"] for e in events} == {"User", "OAuthClient"}
    assert all(e["changes"] == {} for e in events), events
    for value in ("sentinel-user-7731@leak.test", client_id, "sentinel-role-5521"):
        assert value not in auditor.last_body.decode()

    users_admin = await caller(["audit:read", "admin:users"])
    events = (await users_admin.data(query))["auditEvents"]["nodes"]
    user_events = [e for e in events if e["entityType"] == "User"]
    client_events = [e for e in events if e["entityType"] == "OAuthClient"]
    assert {"before": None, "after": "sentinel-user-7731@leak.test"} in [
        e["changes"].get("email") for e in user_events
    ]
    assert {"role": "sentinel-role-5521"} in [e["changes"] for e in user_events]
    assert all(e["changes"] == {} for e in client_events)

    clients_admin = await caller(["audit:read", "admin:clients"])
    events = (await clients_admin.data(query))["auditEvents"]["nodes"]
    created = [e["changes"] for e in events if e["entityType"] == "OAuthClient"]
    assert {"before": None, "after": client_id} in [c.get("clientId") for c in created]
    assert "sentinel-user-7731@leak.test" not in clients_admin.last_body.decode()


async def test_link_events_show_the_target_by_global_id(
    writer: GraphQL, db: AsyncSession, caller: Any
) -> None:
    product = await db.scalar(select(models.Product).order_by(models.Product.key))
    initiative = await db.scalar(select(models.Initiative).order_by(models.Initiative.key.desc()))
    assert product is not None and initiative is not None
    ids = {"i": encode_id("Initiative", initiative.id), "p": encode_id("Product", product.id)}
    await writer.data(
        "mutation($i: ID!, $p: ID!) { unlinkInitiativeProduct(input: "
        "{initiativeId: $i, productId: $p}) { initiative { id } } }",
        ids,
    )
    await writer.data(
        "mutation($i: ID!, $p: ID!) { linkInitiativeProduct(input: "
        "{initiativeId: $i, productId: $p}) { initiative { id } } }",
        ids,
    )
    auditor = await caller(["portfolio:read", "audit:read"])
    history = await auditor.data(
        "query($i: ID!) { node(id: $i) { ... on Initiative { " + HISTORY + " } } }", ids
    )
    links = [e for e in history["node"]["history"]["nodes"] if e["action"] == "LINK"]
    assert links[-1]["changes"]["target"] == {"type": "Product", "id": ids["p"], "key": product.key}
    # Each end's version change is recorded with the link (asOf replays it).
    version = links[-1]["changes"]["version"]
    assert version["after"] == version["before"] + 1
    assert set(links[-1]["changes"]) == {"target", "version"}
    # The product's trail records the same link, naming the initiative.
    product_history = await auditor.data(
        "query($p: ID!) { node(id: $p) { ... on Product { " + HISTORY + " } } }", ids
    )
    product_links = [
        e for e in product_history["node"]["history"]["nodes"] if e["action"] == "LINK"
    ]
    assert product_links[-1]["changes"]["target"] == {
        "type": "Initiative",
        "id": ids["i"],
        "key": initiative.key,
    }
