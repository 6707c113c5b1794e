"""Differential tests: the compiled path and the resolvers answer byte for byte alike.

A seeded generator of our own builds hundreds of queries over the real schema and
the demo data (connections with arguments, lookups, nodes, edges both ways,
computed fields, fragments, aliases); each is sent to an app that may compile and
to one that may not, with and without each read scope.
"""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from api.app import assemble_app
from auth import models as auth_models
from domain import models
from domain.models.enums import AuditAction
from domain.models.webhooks import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from schema.build import schema
from schema.compiled.extension import PLANS
from schema.ids import encode_id
from tests.conftest import GraphQL, make_client, settings_for
from tests.fixtures import factories
from tests.fixtures.auth import bearer, user_with_roles
from tests.fixtures.database import StatementCounter
from tests.schema_walk import QueryWalker
from tests.test_guarded_everywhere import walk_arguments

SCALARS = {
    "Team": ["id", "key", "name", "kind", "description", "version", "createdAt"],
    "Product": ["id", "key", "name", "description", "lifecycleStage", "version", "updatedAt"],
    "Initiative": [
        "id",
        "key",
        "title",
        "status",
        "targetStart",
        "targetEnd",
        "reach",
        "impact",
        "confidence",
        "effort",
        "riceScore",
        "wsjfScore",
        "isBlocked",
        "estimatedCost",
        "version",
        "rice { score explanation }",
        "wsjf { explanation }",
        "blockedBy { key severity }",
    ],
    "TechnicalConstraint": ["id", "key", "title", "category", "severity", "status", "dueDate"],
    "Kpi": [
        "id",
        "key",
        "name",
        "unit",
        "direction",
        "target",
        "warningThreshold",
        "latestValue",
        "status",
        "freshness",
        "isStale",
        "itImportanceLevel",
        "productImportanceLevel",
        "expectedIntervalSeconds",
        "latest { value observedAt source externalId id }",
        'series(from: "2026-05-01T00:00:00Z", to: "2026-08-01T00:00:00Z", bucket: MONTH) '
        "{ bucketStart average minimum maximum count }",
        'series(from: "2026-10-01T00:00:00Z", to: "2026-11-02T00:00:00Z", bucket: WEEK) '
        "{ bucketStart count }",
    ],
    "GlossaryTerm": ["id", "term", "definition", "businessMeaning"],
}
EDGES = {
    "Team": [("products", "Product"), ("initiatives", "Initiative"), ("kpis", "Kpi")],
    "Product": [
        ("initiatives", "Initiative"),
        ("constraints", "TechnicalConstraint"),
        ("kpis", "Kpi"),
    ],
    "Initiative": [
        ("children", "Initiative"),
        ("products", "Product"),
        ("constraints", "TechnicalConstraint"),
        ("kpis", "Kpi"),
    ],
    "TechnicalConstraint": [("products", "Product"), ("initiatives", "Initiative")],
    "Kpi": [("initiatives", "Initiative")],
    "GlossaryTerm": [],
}
REFERENCES = {
    "Product": [("businessOwnerTeam", "Team"), ("technologyOwnerTeam", "Team")],
    "Initiative": [("parent", "Initiative"), ("ownerTeam", "Team")],
    "Kpi": [("product", "Product"), ("ownerTeam", "Team")],
}
ORDER_FIELDS = {
    "Team": ["KEY", "NAME"],
    "Product": ["KEY", "NAME", "UPDATED_AT"],
    "Initiative": ["KEY", "TITLE", "STATUS", "TARGET_START", "RICE_SCORE", "WSJF_SCORE"],
    "TechnicalConstraint": ["KEY", "SEVERITY", "DUE_DATE"],
    "Kpi": ["KEY", "NAME", "IT_IMPORTANCE", "PRODUCT_IMPORTANCE"],
    "GlossaryTerm": ["TERM"],
}
FILTERS = {
    "Initiative": [
        "{statuses: [APPROVED, IN_PROGRESS]}",
        "{isBlocked: true}",
        "{topLevel: true}",
        '{search: "checkout"}',
        '{targetStartFrom: "2026-01-01"}',
    ],
    "TechnicalConstraint": ["{severities: [BLOCKER]}", "{statuses: [OPEN, MITIGATING]}"],
    "Kpi": [
        "{statuses: [WARNING, CRITICAL]}",
        "{statuses: [ON_TARGET, OFF_TARGET]}",
        '{search: "uptime"}',
        "{isStale: true}",
        "{itImportanceLevels: [HIGH, INDIRECT]}",
        "{productImportanceLevels: [CRITICAL]}",
    ],
    "Product": ["{lifecycleStages: [GROWTH, MATURE]}", '{search: "pay"}'],
    "Team": ["{kinds: [TECHNOLOGY]}"],
    "GlossaryTerm": ['{search: "time"}'],
}
ROOTS = {
    "teams": "Team",
    "products": "Product",
    "initiatives": "Initiative",
    "technicalConstraints": "TechnicalConstraint",
    "kpis": "Kpi",
    "glossaryTerms": "GlossaryTerm",
}


class Generator:
    def __init__(self, seed: int, keys: dict[str, list[str]], ids: dict[str, list[str]]) -> None:
        self.random = random.Random(seed)
        self.keys = keys
        self.ids = ids
        self.aliases = 0

    def _alias(self, name: str) -> str:
        if self.random.random() < 0.2:
            self.aliases += 1
            return f"a{self.aliases}: {name}"
        return name

    def arguments(self, type_name: str) -> str:
        parts = []
        if self.random.random() < 0.7:
            parts.append(f"first: {self.random.randint(0, 6)}")
        if self.random.random() < 0.4:
            field = self.random.choice(ORDER_FIELDS[type_name])
            direction = self.random.choice(["ASC", "DESC"])
            parts.append(f"orderBy: {{field: {field}, direction: {direction}}}")
        if FILTERS.get(type_name) and self.random.random() < 0.3:
            parts.append(f"filter: {self.random.choice(FILTERS[type_name])}")
        return f"({', '.join(parts)})" if parts else ""

    def connection(self, type_name: str, depth: int) -> str:
        parts = []
        if self.random.random() < 0.5:
            parts.append("totalCount")
        if self.random.random() < 0.3:
            parts.append("pageInfo { hasNextPage hasPreviousPage }")
        body = self.object(type_name, depth)
        parts.append(f"edges {{ node {body} }}" if self.random.random() < 0.3 else f"nodes {body}")
        return "{ " + " ".join(parts) + " }"

    def object(self, type_name: str, depth: int) -> str:
        fields = self.random.sample(SCALARS[type_name], k=self.random.randint(1, 4))
        if self.random.random() < 0.15:
            fields.append("__typename")
        if depth < 3:
            for name, target in REFERENCES.get(type_name, []):
                if self.random.random() < 0.25:
                    fields.append(f"{self._alias(name)} {self.object(target, depth + 1)}")
            for name, target in EDGES[type_name]:
                if self.random.random() < 0.3:
                    fields.append(
                        f"{self._alias(name)}{self.arguments(target)} "
                        f"{self.connection(target, depth + 1)}"
                    )
        if self.random.random() < 0.1:
            return "{ ... on " + type_name + " { " + " ".join(fields) + " } }"
        return "{ " + " ".join(fields) + " }"

    def query(self) -> str:
        roots = []
        for _ in range(self.random.randint(1, 2)):
            kind = self.random.random()
            if kind < 0.55:
                name, type_name = self.random.choice(list(ROOTS.items()))
                roots.append(
                    f"{self._alias(name)}{self.arguments(type_name)} "
                    f"{self.connection(type_name, 1)}"
                )
            elif kind < 0.8:
                type_name = self.random.choice(["Product", "Initiative", "Kpi", "Team"])
                lookup = type_name[0].lower() + type_name[1:]
                key = self.random.choice(self.keys[type_name] + ["NOPE"])
                roots.append(f'{self._alias(lookup)}(key: "{key}") {self.object(type_name, 1)}')
            else:
                type_name = self.random.choice(list(self.ids))
                node_id = self.random.choice(self.ids[type_name])
                body = self.object(type_name, 1)
                roots.append(
                    f'{self._alias("node")}(id: "{node_id}") {{ ... on {type_name} {body} }}'
                )
        return "{ " + "\n".join(roots) + " }"


async def _samples(db: AsyncSession) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    keys, ids = {}, {}
    for type_name, model in (
        ("Product", models.Product),
        ("Initiative", models.Initiative),
        ("Kpi", models.Kpi),
        ("Team", models.Team),
        ("TechnicalConstraint", models.TechnicalConstraint),
    ):
        rows = (await db.execute(select(model.id, model.key).order_by(model.id).limit(8))).all()
        keys[type_name] = [key for _, key in rows]
        ids[type_name] = [encode_id(type_name, pk) for pk, _ in rows]
    return keys, ids


async def _first(db: AsyncSession, model: Any) -> Any:
    """The first row of ``model`` in the demo data."""
    row = await db.scalar(select(model).order_by(model.id).limit(1))
    assert row is not None
    return row


def _before_extensions(body: bytes) -> bytes:
    """The answer without its extensions (the cost and path differ by design)."""
    return body.split(b',"extensions":', 1)[0]


SCOPE_SETS = {
    "every read scope": ["portfolio:read", "finance:read", "audit:read"],
    "without finance:read": ["portfolio:read", "audit:read"],
    "without portfolio:read": ["finance:read", "audit:read"],
}


@pytest.mark.parametrize("scopes", list(SCOPE_SETS), ids=list(SCOPE_SETS))
async def test_both_paths_answer_alike(pair: Any, db: AsyncSession, scopes: str) -> None:
    compiled, reference = pair(SCOPE_SETS[scopes])
    keys, ids = await _samples(db)
    generator = Generator(list(SCOPE_SETS).index(scopes) + 7, keys, ids)
    answered: dict[str, int] = {}
    for _ in range(120):
        query = generator.query()
        got = await compiled(query, status=None)  # first seen: values bound
        again = await compiled(query, status=None)  # seen again: SQL text rendered
        fast = await compiled(query, status=None)  # and again: the text, strawberry skipped
        expected = await reference(query, status=None)
        path = got.pop("extensions", {}).get("answeredBy", "?")
        again.pop("extensions", None)
        fast_path = fast.pop("extensions", {}).get("answeredBy", "?")
        assert fast_path == ("repeated" if path == "compiled" else path), query
        expected.pop("extensions", None)
        answered[path] = answered.get(path, 0) + 1
        # Byte-identical: same keys in the same order, same number formatting.
        assert orjson.dumps(got) == orjson.dumps(expected), query
        assert orjson.dumps(again) == orjson.dumps(expected), query
        assert orjson.dumps(fast) == orjson.dumps(expected), query
        # And as sent: PostgreSQL writes the JSON orjson writes for the resolvers.
        sent, reference_sent = compiled.last_body, reference.last_body
        assert _before_extensions(sent) == _before_extensions(reference_sent), query
    # The comparison means something only if the compiler answered most queries; without
    # portfolio:read every portfolio field is refused, and the plan writes the FORBIDDEN
    # errors itself (schema/compiled/errors.py).
    assert answered.get("compiled", 0) >= 70, answered


PAGE_INFO_ONLY = """{
  products(first: 2) { pageInfo { hasNextPage hasPreviousPage } }
  teams { nodes { key products(first: 1) { pageInfo { hasNextPage } } } }
}"""


async def test_a_connection_of_page_info_alone(pair: Any) -> None:
    """`pageInfo` without `nodes` or `edges` (found by the schema walk of
    test_guarded_everywhere): one row, not one per row of the page."""
    compiled, reference = pair(SCOPE_SETS["every read scope"])
    got = await compiled(PAGE_INFO_ONLY)
    expected = await reference(PAGE_INFO_ONLY)
    assert got.pop("extensions")["answeredBy"] == "compiled"
    expected.pop("extensions")
    assert orjson.dumps(got) == orjson.dumps(expected)
    assert got["data"]["products"]["pageInfo"] == {"hasNextPage": True, "hasPreviousPage": False}


VARIED = """
query Varied($key: String!, $id: ID!, $first: Int) {
  product(key: $key) {
    key
    initiatives(first: 3) { nodes { key products { nodes { key } } } }
    kpis { totalCount nodes { key latestValue } }
  }
  node(id: $id) {
    ... on Initiative { key constraints(first: $first) { nodes { key } } products { totalCount } }
  }
}"""


async def test_variables_that_vary_reuse_only_what_does_not_depend_on_them(
    pair: Any, db: AsyncSession
) -> None:
    """One document, many variables: the subtrees without variables are built once and
    reused, the rest follows each request's variables; both paths still agree."""
    compiled, reference = pair(SCOPE_SETS["every read scope"])
    keys, ids = await _samples(db)
    paths = []
    planned = PLANS.compilations
    for key, global_id, first in zip(
        keys["Product"], ids["Initiative"], [1, 2, None, 0, 3, 1, 2, 5], strict=True
    ):
        variables = {"key": key, "id": global_id, "first": first}
        got = await compiled(VARIED, variables)
        expected = await reference(VARIED, variables)
        paths.append(got.pop("extensions")["answeredBy"])
        expected.pop("extensions")
        assert orjson.dumps(got) == orjson.dumps(expected), variables
        assert got["data"]["product"]["key"] == key
    # Every variable is a parameter: one plan for a `first`, one for its absence.
    assert PLANS.compilations - planned == 2
    assert paths == ["compiled", "repeated", "compiled", *["repeated"] * 5]


LATEST = """
query Latest($key: String!) {
  kpi(key: $key) { latest { observedAt value } series(from: "2040-01-01T00:00:00Z",
    to: "2040-02-01T00:00:00Z", bucket: MONTH) { bucketStart average count } }
}"""


@pytest.mark.parametrize(
    ("observed", "written"),
    [
        ("2040-01-02T03:04:05+00:00", "2040-01-02T03:04:05+00:00"),
        # PostgreSQL writes ".5"; Python, and so both paths, ".500000".
        ("2040-01-02T03:04:05.5+00:00", "2040-01-02T03:04:05.500000+00:00"),
        ("2040-01-02T03:04:05.000123+00:00", "2040-01-02T03:04:05.000123+00:00"),
    ],
)
async def test_timestamps_and_whole_floats_are_written_as_the_resolvers_write_them(
    pair: Any, db: AsyncSession, observed: str, written: str
) -> None:
    """Whole seconds take PostgreSQL's own JSON form, fractions Python's padded one; a
    whole float keeps its ``.0`` (graphql_float, inlined by the planner)."""
    compiled, reference = pair(SCOPE_SETS["every read scope"])
    kpi = await _first(db, models.Kpi)
    db.add(
        models.KpiMeasurement(
            kpi_id=kpi.id,
            observed_at=datetime.fromisoformat(observed),
            value=2.0,
            source="test",
            external_id="fraction",
        )
    )
    await db.flush()
    for _ in range(3):  # bound values, rendered text, then the fast path
        got = await compiled(LATEST, {"key": kpi.key})
        expected = await reference(LATEST, {"key": kpi.key})
        assert got.pop("extensions")["answeredBy"] in {"compiled", "repeated"}
        expected.pop("extensions")
        assert orjson.dumps(got) == orjson.dumps(expected)
    answer = orjson.loads(orjson.dumps(got))["data"]["kpi"]
    assert answer["latest"] == {"observedAt": written, "value": 2.0}
    assert answer["series"] == [
        {"bucketStart": "2040-01-01T00:00:00+00:00", "average": 2.0, "count": 1}
    ]
    assert b'"value":2.0' in orjson.dumps(got)


STATUSES = """
query Statuses($key: String!) {
  product(key: $key) { kpis { nodes { key latestValue status latest { value } } } }
  kpi(key: "DIFF-NO-DATA") { latestValue status }
}"""


async def test_kpi_status_and_latest_value_share_one_lookup_and_agree(
    pair: Any, db: AsyncSession, statements: Any
) -> None:
    """``latestValue`` and ``status`` come from one lateral lookup of the latest
    measurement on the compiled path; a KPI with none is NO_DATA on both paths."""
    compiled, reference = pair(SCOPE_SETS["every read scope"])
    product = await db.scalar(select(models.Product).order_by(models.Product.id).limit(1))
    assert product is not None
    db.add(
        models.Kpi(
            key="DIFF-NO-DATA",
            name="Never measured",
            unit="%",
            direction=models.KpiDirection.HIGHER_IS_BETTER,
            warning_threshold=90.0,
            critical_threshold=80.0,
            it_relevance="",
            product_relevance="",
            product_id=product.id,
        )
    )
    await db.flush()
    statements.reset()
    got = await compiled(STATUSES, {"key": product.key})
    assert got.pop("extensions")["answeredBy"] == "compiled"
    # One statement per root field; in each, one lookup of the latest measurement
    # (the lateral) besides ``latest { value }``'s own.
    product_sql, kpi_sql = statements.statements
    assert product_sql.count("LEFT OUTER JOIN LATERAL") == 1
    assert product_sql.count("FROM kpi_measurements") == 2
    assert kpi_sql.count("LEFT OUTER JOIN LATERAL") == 1
    assert kpi_sql.count("FROM kpi_measurements") == 1
    expected = await reference(STATUSES, {"key": product.key})
    expected.pop("extensions")
    assert orjson.dumps(got) == orjson.dumps(expected)
    assert got["data"]["kpi"] == {"latestValue": None, "status": "NO_DATA"}
    nodes = got["data"]["product"]["kpis"]["nodes"]
    assert {"key": "DIFF-NO-DATA", "latestValue": None, "status": "NO_DATA", "latest": None} in (
        nodes
    )
    assert any(n["status"] != "NO_DATA" and n["latestValue"] is not None for n in nodes)


ESCAPED = """
query Escaped($key: String!) { initiative(key: $key) { key title summary products(first: 3) { nodes { name } } } }"""

# What JSON must escape (quote, backslash, control characters) and what it must not
# (non-ASCII, U+2028, a slash): PostgreSQL's to_json and orjson agree on all of it.
AWKWARD = 'She said "ship it"\\ \n\t\r\b\f \x01\x1f\x7f ünïcødé 😀 \u2028 </script> it\'s'


async def test_text_that_json_escapes_is_written_as_the_resolvers_write_it(
    pair: Any, db: AsyncSession
) -> None:
    compiled, reference = pair(SCOPE_SETS["every read scope"])
    initiative = await _first(db, models.Initiative)
    initiative.title = AWKWARD
    initiative.summary = None  # a null between written values
    await db.flush()
    for _ in range(3):  # bound values, rendered text, then the fast path
        got = await compiled(ESCAPED, {"key": initiative.key})
        sent = compiled.last_body
        expected = await reference(ESCAPED, {"key": initiative.key})
        assert got.pop("extensions")["answeredBy"] in {"compiled", "repeated"}
        assert _before_extensions(sent) == _before_extensions(reference.last_body)
    assert got["data"]["initiative"]["title"] == AWKWARD
    assert got["data"]["initiative"]["summary"] is None
    assert expected["data"] == got["data"]


AUDIT = "{ auditEvents(first: 5) { nodes { id action entityType occurredAt changes } } }"


AWKWARD_CHANGES: list[tuple[str, dict[str, Any]]] = [
    ("Initiative", {"title": {"before": 'a "quoted" ünï', "after": 40.0}, "n": [1, None]}),
    # Floats PostgreSQL writes without an exponent and Python with one; control
    # characters, separators inside strings, nesting, an empty list and object.
    ("Initiative", {"reach": {"before": 1e-07, "after": 1.5e16}, "confidence": {"a": 0.1}}),
    ("Initiative", {"title": {"before": "a, b: c\n\t\u0001 \\ /", "after": ""}, "x": {}}),
    ("Initiative", {"parent_id": {"before": None, "after": 7}, "estimated_cost": "1.50"}),
    ("Initiative", {"target": {"type": "Product", "id": 3, "key": "P-3"}}),
    ("Initiative", {"target": {"type": "User", "id": 3, "key": "someone"}}),
    ("User", {"email": {"before": None, "after": "x@example.com"}, "role": "r"}),
    ("OAuthClient", {"client_id": {"before": None, "after": "c-1"}, "k": []}),
    ("Nonexistent", {"a": 1}),
]


@pytest.mark.parametrize("scopes", list(SCOPE_SETS), ids=list(SCOPE_SETS))
async def test_audit_changes_are_compiled_alike(pair: Any, db: AsyncSession, scopes: str) -> None:
    """``changes`` is presented per caller (GraphQL names, global IDs, guarded fields
    dropped) by the one rule of ``schema.guards``, run on the statement's answer
    (``schema.compiled.presented``): compiled, byte for byte the resolver's, for stored
    values PostgreSQL and Python write differently too."""
    compiled, reference = pair([*SCOPE_SETS[scopes], "admin:users"])
    initiative = await _first(db, models.Initiative)
    for number, (entity_type, changes) in enumerate(AWKWARD_CHANGES):
        db.add(
            models.AuditEvent(
                action=AuditAction.UPDATE,
                entity_type=entity_type,
                entity_id=initiative.id,
                changes=changes,
                # After every other event: the last page is these, in this order.
                occurred_at=datetime(2100, 1, 1, 0, 0, number, tzinfo=UTC),
            )
        )
    await db.flush()
    document = AUDIT.replace("first: 5", f"last: {len(AWKWARD_CHANGES)}")
    got = await compiled(document)
    expected = await reference(document)
    assert got.pop("extensions")["answeredBy"] == "compiled"
    assert expected.pop("extensions")["answeredBy"] == "resolvers"
    assert _before_extensions(compiled.last_body) == _before_extensions(reference.last_body)
    shown = [event["changes"] for event in got["data"]["auditEvents"]["nodes"]]
    held = set(SCOPE_SETS[scopes])
    titled = {"title": {"before": 'a "quoted" ünï', "after": 40.0}, "n": [1, None]}
    assert (titled in shown) == ("portfolio:read" in held)
    costs = [c["estimatedCost"] for c in shown if "estimatedCost" in c]
    assert costs == (["1.50"] if {"portfolio:read", "finance:read"} <= held else [])
    assert [c for c in shown if "email" in c] == [
        {"email": {"before": None, "after": "x@example.com"}, "role": "r"}
    ]
    assert not any("clientId" in c or "client_id" in c for c in shown)  # no admin:clients


async def test_documents_generated_over_the_whole_schema_answer_alike(
    pair: Any, db: AsyncSession
) -> None:
    """Documents walked over the whole read schema (tests.schema_walk), not over the
    lists above: whatever path answers, the bytes are the same. (`rateLimit` is left
    out: each app counts its own budget; so are `webhooks`, an admin list only resolvers
    answer on either app, which would shift the walk away from compiled reads, and
    `changes`, the change feed, likewise answered by the resolvers on both apps:
    tests/test_change_feed.py compares its bytes.)"""
    walker = QueryWalker(
        schema._schema,
        random.Random(17),
        await walk_arguments(db),
        max_depth=3,
        skip=frozenset({"rateLimit", "webhooks", "changes"}),
    )
    # Every scope, the admin ones too: admin reads are walked, not refused.
    compiled, reference = pair([*SCOPE_SETS["every read scope"], "admin:users", "admin:clients"])
    answered: dict[str, int] = {}
    for _ in range(100):
        document = walker.document()
        got = await compiled(document, status=None)
        await reference(document, status=None)
        path = (got.get("extensions") or {}).get("answeredBy", "refused")
        answered[path] = answered.get(path, 0) + 1
        assert _before_extensions(compiled.last_body) == _before_extensions(reference.last_body), (
            document
        )
    # Cursors, pageInfo's cursors, `after`, `last` and `before` pages, `nodes` beside
    # `edges { node }` compiled (issue #17) took this from 3 to 34 of the 100; admin
    # reads walked with their scopes, `nodes(ids:)`, an audit event's IDs, a user's
    # roles to 54 (plans outlive the apps: an answer may be a repeated plan's); a KPI's `trend`
    # (one SQL definition for both paths, reads.trend_columns) to 55; audit `changes`
    # (presented after the statement by schema.guards' rule), `viewer` and `webhooks`
    # to 85. Left to the resolvers: `asOf`, and invalid series or trend windows (errors).
    # The sync fields, KPI freshness and the change feed (resolvers only) changed what
    # seed 17 walks: 70.
    assert answered.get("compiled", 0) + answered.get("repeated", 0) >= 70, answered


ADMIN_READS = """query Admin($ids: [ID!]!) {
  nodes(ids: $ids) {
    __typename id
    ... on Initiative { key title }
    ... on Team { key }
    ... on AuditEvent { action entityId }
  }
  auditEvents(first: 20, orderBy: {field: OCCURRED_AT, direction: DESC}) {
    nodes { id action entityType entityId actorUserId actorClientId occurredAt }
  }
  users(first: 5) { nodes { email isActive roles { name scopes } } }
  oauthClients(first: 5) { nodes { clientId name isConfidential grantTypes } }
  roles { nodes { name scopes } }
}"""


async def test_nodes_audit_ids_and_admin_reads_are_compiled_and_alike(
    pair: Any, db: AsyncSession
) -> None:
    """`nodes(ids:)` (known, unknown and missing IDs, in the order given), an audit
    event's global IDs (a long entity type's too: PostgreSQL's base64 wraps it), a
    user's roles and a client's `isConfidential`: compiled, byte for byte alike."""
    initiative = await _first(db, models.Initiative)
    team = await _first(db, models.Team)
    tag = uuid.uuid4().hex[:8]
    user = await factories.add(
        db, auth_models.User(email=f"{tag}@example.com", display_name='Ada "Admin" ü')
    )
    for name, scopes in (("b-readers", ["portfolio:read"]), ("a-auditors", ["audit:read"])):
        role = await factories.add(db, auth_models.Role(name=f"{name}-{tag}", scopes=scopes))
        db.add(auth_models.RoleGrant(user_id=user.id, role_id=role.id))
    client = await factories.add(
        db,
        auth_models.OAuthClient(
            client_id=f"c-{tag}", name="Sync", secret_hash="x", grant_types=["client_credentials"]
        ),
    )
    await factories.add(db, auth_models.OAuthClient(client_id=f"p-{tag}", name="Public"))
    for entity_type, actor_user, actor_client in (
        ("Initiative", user.id, None),
        ("X" * 60, None, client.id),
        ("Team", None, None),
    ):
        db.add(
            models.AuditEvent(
                action=AuditAction.UPDATE,
                entity_type=entity_type,
                entity_id=initiative.id,
                actor_user_id=actor_user,
                actor_client_id=actor_client,
                changes={},
            )
        )
    await db.flush()
    event = await db.scalar(
        select(models.AuditEvent).order_by(models.AuditEvent.id.desc()).limit(1)
    )
    assert event is not None
    ids = [
        encode_id("Initiative", initiative.id),
        encode_id("Nothing", 1),
        encode_id("Team", team.id),
        encode_id("Initiative", 10**9),
        encode_id("AuditEvent", event.id),
        encode_id("Team", team.id),
    ]
    compiled, reference = pair([*SCOPE_SETS["every read scope"], "admin:users", "admin:clients"])
    for expected_path in ("compiled", "repeated"):
        got = await compiled(ADMIN_READS, {"ids": ids})
        await reference(ADMIN_READS, {"ids": ids})
        assert got["extensions"]["answeredBy"] == expected_path
        assert _before_extensions(compiled.last_body) == _before_extensions(reference.last_body)
    found = got["data"]["nodes"]
    assert [node and node["__typename"] for node in found] == [
        "Initiative",
        None,
        "Team",
        None,
        "AuditEvent",
        "Team",
    ]
    long_type = [e for e in got["data"]["auditEvents"]["nodes"] if e["entityType"] == "X" * 60]
    assert long_type and long_type[0]["entityId"] == encode_id("X" * 60, initiative.id)
    assert got["data"]["users"]["nodes"] and got["data"]["oauthClients"]["nodes"]


WALK_PAGE = (
    "totalCount edges {{ cursor node {{ key {fields} }} }} "
    "pageInfo {{ hasNextPage hasPreviousPage startCursor endCursor }}"
)
WALKS = [
    # (root field, node fields, ordering, direction, page size)
    ("initiatives", "riceScore", "RICE_SCORE", "DESC", 4),
    ("initiatives", "riceScore", "RICE_SCORE", "ASC", 5),
    ("initiatives", "targetStart", "TARGET_START", "ASC", 4),
    ("initiatives", "title", "TITLE", "DESC", 7),
    ("initiatives", "status", "STATUS", "ASC", 6),
    ("initiatives", "updatedAt", "UPDATED_AT", "DESC", 9),
    ("products", "name", "KEY", "ASC", 3),
    ("products", "updatedAt", "UPDATED_AT", "ASC", 4),
    ("technicalConstraints", "dueDate", "DUE_DATE", "DESC", 3),
    ("kpis", "name", "NAME", "ASC", 4),
]


async def _walk(
    compiled: Any, reference: Any, document: str, path: list[str]
) -> tuple[list[str], set[str]]:
    """Follows `endCursor` page by page to the end on both apps, comparing bytes; the
    keys seen, in order, and the paths that answered."""
    keys: list[str] = []
    paths: set[str] = set()
    after: str | None = None
    for _ in range(100):
        got = await compiled(document, {"after": after})
        expected = await reference(document, {"after": after})
        paths.add(got.pop("extensions")["answeredBy"])
        expected.pop("extensions")
        assert _before_extensions(compiled.last_body) == _before_extensions(reference.last_body), (
            document,
            after,
        )
        connection = got["data"]
        for name in path:
            connection = connection[name]
        keys += [edge["node"]["key"] for edge in connection["edges"]]
        if not connection["pageInfo"]["hasNextPage"]:
            return keys, paths
        assert connection["pageInfo"]["hasPreviousPage"] is (after is not None)
        after = connection["pageInfo"]["endCursor"]
    raise AssertionError("the walk did not end")


async def _awkward_rows(db: AsyncSession) -> None:
    """Rows whose sort values are hard to write alike: NULL scores and dates (sorted by
    their fallbacks), a score with a fraction, a long title that needs JSON escaping
    (its cursor's base64 is longer than PostgreSQL's 76-character lines), ties."""
    long_title = 'A "quoted", ünïcödé\\ title — ' + "long " * 20
    for number in range(3):
        await factories.initiative(db, title=long_title, reach=None)
        await factories.initiative(
            db,
            title=f"Tie {number % 2}",
            reach=1000,
            impact=1.5,
            confidence=0.8,
            effort=3.0,
            target_start=None,
        )


@pytest.mark.parametrize(
    ("root", "fields", "ordering", "direction", "size"),
    WALKS,
    ids=[f"{w[0]}-{w[2]}-{w[3]}" for w in WALKS],
)
async def test_a_relay_walk_over_root_connections_is_compiled_and_alike(
    pair: Any, db: AsyncSession, root: str, fields: str, ordering: str, direction: str, size: int
) -> None:
    """`edges { cursor }`, `pageInfo` with its cursors and `after` pages are answered by
    the compiled path, byte for byte as the resolvers answer them, to the end of the list."""
    await _awkward_rows(db)
    compiled, reference = pair(SCOPE_SETS["every read scope"])
    document = (
        "query Walk($after: String) { "
        f"{root}(first: {size}, after: $after, "
        f"orderBy: {{field: {ordering}, direction: {direction}}}) "
        "{ " + WALK_PAGE.format(fields=fields) + " } }"
    )
    keys, paths = await _walk(compiled, reference, document, [root])
    assert paths <= {"compiled", "repeated"} and "compiled" in paths, paths
    everything = await reference(
        f"{{ {root}(first: 100, orderBy: {{field: {ordering}, direction: {direction}}}) "
        "{ nodes { key } } }"
    )
    assert keys == [node["key"] for node in everything["data"][root]["nodes"]]
    assert len(keys) > size


NESTED_WALK = """query Nested($after: String, $product: String!) {
  product(key: $product) {
    initiatives(first: 2, after: $after, orderBy: {field: RICE_SCORE, direction: DESC}) {
      %s
    }
  }
  teams(first: 3) {
    nodes {
      key
      initiatives(first: 2, after: $after, orderBy: {field: RICE_SCORE, direction: DESC}) {
        totalCount edges { cursor node { key } } pageInfo { hasPreviousPage endCursor }
      }
    }
  }
}"""


async def test_a_relay_walk_over_a_nested_connection_is_compiled_and_alike(
    pair: Any, db: AsyncSession
) -> None:
    """The same walk on a product's initiatives, its cursor also applied to every
    team's initiatives (a cursor is valid on any list of the same ordering)."""
    product = await factories.product(db)
    await _awkward_rows(db)
    for number in range(5):
        await factories.initiative(
            db,
            products=[product],
            reach=None if number % 2 else 100 * number,
            impact=1.0,
            confidence=0.5,
            effort=1.0 + number,
        )
    compiled, reference = pair(SCOPE_SETS["every read scope"])
    document = NESTED_WALK % WALK_PAGE.format(fields="riceScore")

    async def both(after: str | None) -> dict[str, Any]:
        variables = {"after": after, "product": product.key}
        got = await compiled(document, variables)
        await reference(document, variables)
        assert _before_extensions(compiled.last_body) == _before_extensions(reference.last_body), (
            after
        )
        assert got.pop("extensions")["answeredBy"] in {"compiled", "repeated"}
        return got["data"]

    keys: list[str] = []
    after: str | None = None
    while True:
        page = (await both(after))["product"]["initiatives"]
        keys += [edge["node"]["key"] for edge in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert len(keys) == 5 and len(set(keys)) == 5


async def _walk_back(
    compiled: Any, reference: Any, document: str, root: str
) -> tuple[list[str], set[str]]:
    """Follows `startCursor` with `last`/`before` from the end to the start on both
    apps, comparing bytes; the keys seen in list order, and the paths that answered."""
    keys: list[str] = []
    paths: set[str] = set()
    before: str | None = None
    for _ in range(100):
        got = await compiled(document, {"before": before})
        expected = await reference(document, {"before": before})
        paths.add(got.pop("extensions")["answeredBy"])
        expected.pop("extensions")
        assert _before_extensions(compiled.last_body) == _before_extensions(reference.last_body), (
            document,
            before,
        )
        connection = got["data"][root]
        keys = [edge["node"]["key"] for edge in connection["edges"]] + keys
        assert connection["pageInfo"]["hasNextPage"] is (before is not None)
        if not connection["pageInfo"]["hasPreviousPage"]:
            return keys, paths
        before = connection["pageInfo"]["startCursor"]
    raise AssertionError("the walk did not end")


@pytest.mark.parametrize(
    ("root", "fields", "ordering", "direction", "size"),
    WALKS[::2],
    ids=[f"{w[0]}-{w[2]}-{w[3]}" for w in WALKS[::2]],
)
async def test_a_backward_relay_walk_is_compiled_and_alike(
    pair: Any, db: AsyncSession, root: str, fields: str, ordering: str, direction: str, size: int
) -> None:
    """`last`/`before` pages, from the end to the start: the same rows as the forward
    walk, each page in list order, answered by the compiled path alike."""
    await _awkward_rows(db)
    compiled, reference = pair(SCOPE_SETS["every read scope"])
    document = (
        "query Back($before: String) { "
        f"{root}(last: {size}, before: $before, "
        f"orderBy: {{field: {ordering}, direction: {direction}}}) "
        "{ " + WALK_PAGE.format(fields=fields) + " } }"
    )
    keys, paths = await _walk_back(compiled, reference, document, root)
    assert paths <= {"compiled", "repeated"} and "compiled" in paths, paths
    everything = await reference(
        f"{{ {root}(first: 100, orderBy: {{field: {ordering}, direction: {direction}}}) "
        "{ nodes { key } } }"
    )
    assert keys == [node["key"] for node in everything["data"][root]["nodes"]]


WINDOWS = """query Window($after: String, $before: String, $first: Int, $last: Int) {
  initiatives(first: $first, last: $last, after: $after, before: $before,
              orderBy: {field: TARGET_START, direction: DESC}) {
    totalCount edges { cursor node { key targetStart } }
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
  }
  teams(first: 2) {
    nodes {
      key
      initiatives(last: 2, orderBy: {field: RICE_SCORE, direction: ASC}) {
        totalCount edges { cursor node { key } } pageInfo { hasPreviousPage hasNextPage }
      }
    }
  }
}"""


async def test_pages_between_two_cursors_are_compiled_and_alike(
    pair: Any, db: AsyncSession
) -> None:
    """`after` and `before` together, with `first` or `last`, empty windows and pages
    of 0 included; and `last` on a nested connection."""
    await _awkward_rows(db)
    compiled, reference = pair(SCOPE_SETS["every read scope"])
    listed = await reference(
        "{ initiatives(first: 100, orderBy: {field: TARGET_START, direction: DESC}) "
        "{ edges { cursor } } }"
    )
    cursors = [edge["cursor"] for edge in listed["data"]["initiatives"]["edges"]]
    assert len(cursors) > 8
    cases: list[dict[str, Any]] = []
    for low, high in ((0, 6), (2, 3), (3, 3), (4, 2), (1, len(cursors) - 1)):
        for size in ({"first": 2}, {"last": 2}, {"first": 0}, {"last": 0}, {"last": 9}):
            cases.append({"after": cursors[low], "before": cursors[high], **size})
    cases += [{"before": cursors[5], "first": 3}, {"after": cursors[-1], "last": 3}, {"last": 4}]
    for variables in cases:
        got = await compiled(WINDOWS, variables)
        await reference(WINDOWS, variables)
        assert _before_extensions(compiled.last_body) == _before_extensions(reference.last_body), (
            variables
        )
        assert got["extensions"]["answeredBy"] in {"compiled", "repeated"}, variables


BOTH_LISTS = """{
  initiatives(first: 3, orderBy: {field: RICE_SCORE, direction: DESC}) {
    nodes { key riceScore }
    edges { __typename cursor node { title } ... on InitiativeEdge { n: node { status } } }
    more: edges { node { key } }
    pageInfo { endCursor }
  }
  products(first: 2) {
    edges { cursor }
    keys: nodes { key }
    nodes { name initiatives(last: 1) { nodes { key } edges { node { title } } } }
  }
}"""


async def test_nodes_and_edges_selected_together_are_compiled_and_alike(pair: Any) -> None:
    """`nodes` beside `edges { node }` (each with its own fields), aliased edges, an
    edge's `__typename` and a fragment on the edge: one row, one object per place."""
    compiled, reference = pair(SCOPE_SETS["every read scope"])
    got = await compiled(BOTH_LISTS)
    expected = await reference(BOTH_LISTS)
    assert got.pop("extensions")["answeredBy"] == "compiled"
    expected.pop("extensions")
    assert _before_extensions(compiled.last_body) == _before_extensions(reference.last_body)
    edge = got["data"]["initiatives"]["edges"][0]
    assert list(edge) == ["__typename", "cursor", "node", "n"]
    assert list(edge["node"]) == ["title"] and list(edge["n"]) == ["status"]


TRENDS = """query($days: Int!) {
  kpis(first: 100) { nodes { key
    trend(windowDays: $days) {
      __typename windowDays direction currentAverage previousAverage change changePercent }
    monthly: trend(windowDays: 30) { direction changePercent }
  } }
}"""


@pytest.mark.parametrize("days", [1, 7, 30, 90, 366])
async def test_kpi_trends_are_compiled_from_the_resolvers_sql_and_agree(
    pair: Any, days: int
) -> None:
    """`trend` is one SQL definition (``reads.trend_columns``) that the resolvers run
    and the compiled path inlines: every demo KPI, every window, byte for byte."""
    compiled, reference = pair(SCOPE_SETS["every read scope"])
    got = await compiled(TRENDS, {"days": days})
    assert got.pop("extensions")["answeredBy"] == "compiled"
    expected = await reference(TRENDS, {"days": days})
    assert _before_extensions(compiled.last_body) == _before_extensions(reference.last_body)
    directions = {n["trend"]["direction"] for n in expected["data"]["kpis"]["nodes"]}
    if days <= 90:
        assert len(directions) >= 2  # the demo's KPIs move in more than one way
    else:
        assert directions == {"NO_DATA"}  # the demo keeps a year: no window before this one
    assert got["data"] == expected["data"]


VIEWER = (
    "{ viewer { __typename authenticated scopes user { id email displayName isActive } "
    "client { id clientId name } } }"
)


async def test_viewer_is_compiled_for_each_caller_alike(
    engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
    db: AsyncSession,
    statements: StatementCounter,
) -> None:
    """`viewer` is compiled with who is calling bound per request (a plan is keyed by the
    scopes only): two users with the same scopes, then an anonymous caller, share one
    plan and each gets their own answer, byte for byte the resolvers', in one statement."""
    compiling = assemble_app(settings_for(), engine, sessions)
    resolving = assemble_app(settings_for(compiled_reads=False), engine, sessions)
    first, second = [await user_with_roles(db, "viewer") for _ in range(2)]
    seen: list[dict[str, Any]] = []
    for user in (first, second, None):
        answers: dict[str, dict[str, Any]] = {}
        bodies: list[bytes] = []
        # One token (one client) for both apps: they share the signing keys' table.
        headers = await bearer(compiling, db, ["portfolio:read"], user=user) if user else None
        for name, app in (("compiled", compiling), ("reference", resolving)):
            async with make_client(engine, sessions, app=app, headers=headers) as client:
                caller = GraphQL(client)
                answers[name] = await caller(VIEWER)
                if name == "compiled":
                    await statements.delivered()
                    before = statements.count
                    answers[name] = await caller(VIEWER)
                    await statements.delivered()
                    # The read (the token's revocation check here is the test app's).
                    sent = statements.statements[before:]
                    reads = [s for s in sent if "oauth_revoked_access_tokens" not in s]
                    assert len(reads) == 1, sent
                bodies.append(caller.last_body)
        assert answers["compiled"].pop("extensions")["answeredBy"] in ("compiled", "repeated")
        assert _before_extensions(bodies[0]) == _before_extensions(bodies[1])
        seen.append(answers["compiled"]["data"]["viewer"])
    assert [v["user"] and v["user"]["email"] for v in seen] == [first.email, second.email, None]
    assert [v["authenticated"] for v in seen] == [True, True, False]
    assert seen[0]["client"] is not None and seen[2]["client"] is None


WEBHOOKS = """{ webhooks { __typename id url eventTypes query active consecutiveFailures
  disabledAt createdAt
  deliveries(last: 2) { id webhookId eventType status attempts createdAt deliveredAt
    log { attemptedAt statusCode latencyMs error } }
  all: deliveries { id log { statusCode } } } }"""


async def test_webhooks_are_compiled_alike(pair: Any, db: AsyncSession) -> None:
    """`webhooks` with their latest deliveries (the `last` cap, oldest first) and each
    delivery's attempts: compiled, byte for byte the resolvers'; without
    `admin:webhooks` the resolvers refuse it, on both apps alike."""
    client = await factories.add(
        db, auth_models.OAuthClient(client_id=f"w-{uuid.uuid4().hex[:8]}", name="Hooks")
    )
    endpoints = [
        await factories.add(
            db,
            WebhookEndpoint(
                owner_client_id=client.id,
                url=f'https://hooks.example/{n}?q="ü"',
                event_types=["initiative.created", "kpi.updated"][: n + 1],
                secret="whsec_x",
                query=None if n else "query($id: ID!) { node(id: $id) { id } }",
                is_active=bool(n),
                consecutive_failures=3 - n,
                disabled_at=None if n else datetime(2026, 5, 1, 12, 0, 0, 123400, tzinfo=UTC),
            ),
        )
        for n in range(2)
    ]
    for number in range(3):
        delivery = await factories.add(
            db,
            WebhookDelivery(
                message_id=f"msg_{uuid.uuid4().hex}",
                endpoint_id=endpoints[0].id,
                event_type="initiative.created",
                payload="{}",
                status=["failed", "delivered", "pending"][number],
                attempts=number,
                delivered_at=datetime(2026, 5, 2, tzinfo=UTC) if number == 1 else None,
            ),
        )
        for status_code in [None, 500, 200][: number + 1]:
            db.add(
                WebhookAttempt(
                    delivery_id=delivery.id,
                    status_code=status_code,
                    latency_ms=12,
                    error=None if status_code == 200 else 'refused "x"',
                )
            )
    await db.flush()
    compiled, reference = pair(["admin:webhooks"])
    got = await compiled(WEBHOOKS)
    await reference(WEBHOOKS)
    assert got["extensions"]["answeredBy"] == "compiled"
    assert _before_extensions(compiled.last_body) == _before_extensions(reference.last_body)
    first = got["data"]["webhooks"][0]
    assert [d["status"] for d in first["deliveries"]] == ["delivered", "pending"]
    assert [len(d["log"]) for d in first["all"]] == [1, 2, 3]

    compiled, reference = pair(["portfolio:read"])
    refused = await compiled(WEBHOOKS, status=401)
    await reference(WEBHOOKS, status=401)
    assert refused["extensions"]["answeredBy"] == "compiled"  # its error written by the plan
    assert refused["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert _before_extensions(compiled.last_body) == _before_extensions(reference.last_body)


AS_OF_FIELDS = [f for f in SCALARS["Initiative"] if f != "isBlocked"]
AS_OF = (
    "query($key: String!, $at: DateTime) { initiative(key: $key, asOf: $at) { "
    + " ".join(AS_OF_FIELDS)
    + " parent { key isBlocked } ownerTeam { key } updatedAt } }"
)


@pytest.mark.parametrize("scopes", list(SCOPE_SETS), ids=list(SCOPE_SETS))
async def test_as_of_is_compiled_alike(pair: Any, db: AsyncSession, scopes: str) -> None:
    """`asOf` rebuilt in SQL as the service rebuilds it in Python: before a later update
    (its `before` values, the computed scores over them), after it (the row as stored),
    before a later creation and before the row existed (null); one plan for every
    instant. A naive instant is the resolvers' error, on both apps alike."""
    initiative = await _first(db, models.Initiative)
    created = await _first(db, models.Product)
    later = datetime(2100, 1, 1, tzinfo=UTC)
    db.add_all(
        [
            models.AuditEvent(
                action=AuditAction.UPDATE,
                entity_type="Initiative",
                entity_id=initiative.id,
                occurred_at=later,
                changes={
                    "title": {"before": 'Old "title" ü', "after": initiative.title},
                    "status": {"before": "CANCELLED", "after": initiative.status.value},
                    "estimated_cost": {"before": "1234.5", "after": None},
                    "impact": {"before": 3, "after": initiative.impact},
                    "reach": {"before": 77, "after": initiative.reach},
                    "target_start": {"before": "2025-02-03", "after": None},
                    "updated_at": {"before": "2025-02-03T04:05:06.789+00:00", "after": None},
                    "version": {"before": 1, "after": 2},
                    "target": {"type": "Product", "id": created.id, "key": created.key},
                },
            ),
            models.AuditEvent(  # a later event's `before` is undone after this one's
                action=AuditAction.UPDATE,
                entity_type="Initiative",
                entity_id=initiative.id,
                occurred_at=datetime(2100, 1, 2, tzinfo=UTC),
                changes={"title": {"before": "Between", "after": initiative.title}},
            ),
        ]
    )
    await db.flush()
    compiled, reference = pair(SCOPE_SETS[scopes])
    instants = ["2099-06-01T00:00:00Z", "2100-01-01T12:00:00+02:00", "2100-06-01T00:00:00Z"]
    answers = []
    for at in [*instants, "1999-01-01T00:00:00Z", None]:
        variables = {"key": initiative.key, "at": at}
        got = await compiled(AS_OF, variables, status=None)
        await reference(AS_OF, variables, status=None)
        assert _before_extensions(compiled.last_body) == _before_extensions(reference.last_body), at
        answers.append(got)
    if scopes != "every read scope":
        return  # `estimatedCost` or everything is FORBIDDEN: the resolvers say so
    assert {a["extensions"]["answeredBy"] for a in answers} <= {"compiled", "repeated"}
    titles = [(a["data"]["initiative"] or {}).get("title") for a in answers]
    assert titles == ['Old "title" ü', "Between", initiative.title, None, initiative.title]
    old = answers[0]["data"]["initiative"]
    assert (old["status"], old["reach"], old["targetStart"]) == ("CANCELLED", 77, "2025-02-03")
    assert old["estimatedCost"] == "1234.5"

    naive = {"key": initiative.key, "at": "2099-06-01T00:00:00"}
    refused = await compiled(AS_OF, naive, status=None)
    await reference(AS_OF, naive, status=None)
    assert refused["extensions"]["answeredBy"] == "resolvers"
    assert _before_extensions(compiled.last_body) == _before_extensions(reference.last_body)
