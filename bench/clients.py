"""Workloads shaped like a frontend's requests (issue #17): a Relay pagination walk, a
KPI dashboard page, a filter board and documents generated over the whole schema.

Each request's whole body is one pool entry (the template is the pick), so a request
may vary its variables, or its document, in any way. bench/README.md ("Client
workloads") tells what each sends and what the PostGraphile documents return.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

import orjson
from graphql import GraphQLSchema, build_schema, parse, validate

from bench.database import Dataset
from bench.limit_sql import CLIENT_LIMITS
from bench.workloads import (
    CLIENT_WORKLOADS,
    PICK_JSON,
    SERIES_TO,
    ReadPlan,
    Target,
    body,
    compact,
)
from schema.ids import encode_id
from tests.schema_walk import Arguments, QueryWalker

__all__ = ["CLIENT_WORKLOADS", "WALKS", "client_plans", "with_walked"]
PAGE = 20
DASHBOARD_KPIS = 10
DASHBOARD_FROM = SERIES_TO - timedelta(days=91)
# Documents per generated run: more than any run here answers (16 connections, 20 s).
GENERATED_DOCUMENTS = 6000
# The fixed variant of the generated workload: these many documents over and over.
GENERATED_REPEATED = 64

# --- a Relay pagination walk over initiatives ---------------------------------------

OURS_PAGE = compact("""
query Page($first: Int, $after: String, $last: Int, $before: String) {
  initiatives(first: $first, after: $after, last: $last, before: $before) {
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    edges {
      cursor
      node {
        key title status
        ownerTeam { key name }
        products(first: 5) { nodes { key name } }
        constraints(first: 5) { nodes { key severity status } }
      }
    }
  }
}""")

PEER_PAGE = compact("""
query Page($first: Int, $after: Cursor, $last: Int, $before: Cursor) {
  allInitiatives(first: $first, after: $after, last: $last, before: $before, orderBy: KEY_ASC) {
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    edges {
      cursor
      node {
        key title status
        teamByOwnerTeamId { key name }
        initiativeProductsByInitiativeId(first: 5) { nodes { productByProductId { key name } } }
        constraintInitiativesByInitiativeId(first: 5) {
          nodes { technicalConstraintByConstraintId { key severity status } }
        }
      }
    }
  }
}""")

# --- a product's KPI page: trend, the latest measurements, a quarter's weekly series --

OURS_DASHBOARD = compact("""
query Dashboard($key: String!, $from: DateTime!, $to: DateTime!) {
  product(key: $key) {
    key name lifecycleStage
    kpis(first: 10) {
      totalCount
      nodes {
        key name unit target status latestValue
        trend(windowDays: 30) { currentAverage previousAverage changePercent direction }
        measurements(last: 10) { nodes { observedAt value } }
        series(from: $from, to: $to, bucket: WEEK) { bucketStart average count }
      }
    }
  }
}""")

# No trend, status or buckets in PostGraphile: the raw values they come from (the
# quarter's measurements cover the trend's two 30-day windows).
PEER_DASHBOARD = compact("""
query Dashboard($key: String!, $from: Datetime!, $to: Datetime!) {
  productByKey(key: $key) {
    key name lifecycleStage
    kpisByProductId(first: 10, orderBy: KEY_ASC) {
      totalCount
      nodes {
        key name unit target direction warningThreshold criticalThreshold
        latest: kpiMeasurementsByKpiId(first: 10, orderBy: OBSERVED_AT_DESC) {
          nodes { observedAt value }
        }
        window: kpiMeasurementsByKpiId(
          filter: {observedAt: {greaterThanOrEqualTo: $from, lessThan: $to}}
          orderBy: OBSERVED_AT_ASC
        ) { nodes { observedAt value } }
      }
    }
  }
}""")

# --- a constraint board: enum-list filters and search text varying per request -------

OURS_BOARD = compact("""
query Board(
  $severities: [ConstraintSeverity!], $statuses: [ConstraintStatus!],
  $categories: [ConstraintCategory!], $search: String
) {
  technicalConstraints(
    first: 50,
    filter: {severities: $severities, statuses: $statuses, categories: $categories, search: $search}
  ) {
    totalCount
    nodes {
      key title severity status category dueDate
      products(first: 5) { nodes { key name } }
      initiatives(first: 5) { nodes { key title status isBlocked } }
    }
  }
}""")

PEER_BOARD = compact("""
query Board($filter: TechnicalConstraintFilter) {
  allTechnicalConstraints(first: 50, filter: $filter, orderBy: KEY_ASC) {
    totalCount
    nodes {
      key title severity status category dueDate
      constraintProductsByConstraintId(first: 5) { nodes { productByProductId { key name } } }
      constraintInitiativesByConstraintId(first: 5) {
        nodes { initiativeByInitiativeId { key title status } }
      }
    }
  }
}""")

SEVERITIES = ["BLOCKER", "HIGH", "MEDIUM", "LOW"]
STATUSES = ["OPEN", "MITIGATING", "RESOLVED", "ACCEPTED"]
CATEGORIES = [
    "SECURITY",
    "COMPLIANCE",
    "SCALABILITY",
    "PERFORMANCE",
    "ARCHITECTURE",
    "INFRASTRUCTURE",
    "DATA",
    "LEGAL",
    "OTHER",
]


def _bodies(query: str, variables: list[dict[str, Any]]) -> list[str]:
    return [body(query, v).decode() for v in variables]


def _limit_bodies(workload: str, picks: list[dict[str, Any]]) -> list[str]:
    """The limit over HTTP's bodies: the workload and the request's variables."""
    return [orjson.dumps({"workload": workload, "pick": pick}).decode() for pick in picks]


def _whole(bodies: list[str], fixed: bool) -> Target:
    """Whole bodies: fixed sends the first, varied any."""
    return Target(bodies[0], []) if fixed else Target(PICK_JSON, bodies)


def _plan(
    workload: str,
    variant: str,
    ours: list[str],
    peer: list[str] | None,
    picks: list[dict[str, Any]] | None = None,
    **changes: Any,
) -> ReadPlan:
    """A plan whose requests are whole bodies: fixed sends the first, varied any.
    ``picks``: each request's variables, for the workload's limit (none: no limit)."""
    fixed = variant == "fixed"
    limit = CLIENT_LIMITS[workload] if picks is not None else None
    return ReadPlan(
        workload,
        variant,
        0 if fixed else 1,
        False,
        _whole(ours, fixed),
        _whole(peer, fixed) if peer is not None else Target("", []),
        _whole(_limit_bodies(workload, picks), fixed) if picks is not None else Target("", []),
        limit.sql if limit else "",
        list(picks) if picks is not None else list(range(len(ours))),
        limit.args(picks[0]) if limit and picks else (),
        (lambda picked: limit.args(picked[0])) if limit else (lambda picked: ()),
        has_limit=limit is not None,
        has_peer=peer is not None,
        **changes,
    )


# --- pagination: the pages a client walking the list asks for -------------------------


@dataclass(frozen=True)
class Walk:
    """Walk a connection to its end forward (``first``/``after``) and back to its start
    (``last``/``before``), keeping each page's request: the pool of the varied variant."""

    query: str
    root: str

    async def bodies(self, post: Callable[[bytes], Awaitable[dict[str, Any]]]) -> list[str]:
        requests: list[str] = []
        for forward in (True, False):
            cursor: str | None = None
            for _ in range(10_000):
                variables = (
                    {"first": PAGE, "after": cursor}
                    if forward
                    else {"last": PAGE, "before": cursor}
                )
                request = body(self.query, variables)
                answer = await post(request)
                if answer.get("errors") or not answer.get("data"):
                    raise RuntimeError(f"the walk's page failed: {str(answer)[:300]}")
                requests.append(request.decode())
                info = answer["data"][self.root]["pageInfo"]
                if forward and not info["hasNextPage"]:
                    break
                if not forward and not info["hasPreviousPage"]:
                    break
                cursor = info["endCursor"] if forward else info["startCursor"]
        return requests


WALKS = {"ours": Walk(OURS_PAGE, "initiatives"), "peer": Walk(PEER_PAGE, "allInitiatives")}


def walk_for(target: str) -> Walk:
    return WALKS["ours"] if target.startswith("ours") else WALKS["peer"]


def _pagination() -> list[ReadPlan]:
    first = {"first": PAGE, "after": None}
    ours, peer = _bodies(OURS_PAGE, [first]), _bodies(PEER_PAGE, [first])
    # The varied pool is walked on each server before its run (``with_walked``).
    return [
        _plan("pagination", variant, ours, peer, [first], walked=True)
        for variant in ("fixed", "varied")
    ]


def with_walked(plan: ReadPlan, target: str, bodies: list[str]) -> ReadPlan:
    """The varied pagination plan with the pages walked on ``target``. The limits take
    our walk's pages: its cursors are ours, which the limit's statement reads."""
    pool = Target(PICK_JSON, bodies)
    if not target.startswith("ours"):
        return replace(plan, peer=pool, limit_pool=list(range(len(bodies))))
    picks = [orjson.loads(page)["variables"] for page in bodies]
    return replace(
        plan,
        ours=pool,
        limit_http=Target(PICK_JSON, _limit_bodies(plan.workload, picks)),
        limit_pool=picks,
    )


# --- dashboard and board ---------------------------------------------------------------


def _dashboard(dataset: Dataset) -> list[ReadPlan]:
    window = {"from": DASHBOARD_FROM.isoformat(), "to": SERIES_TO.isoformat()}
    keys = dataset.product_keys
    variables = [{"key": key} | window for key in keys]
    ours, peer = _bodies(OURS_DASHBOARD, variables), _bodies(PEER_DASHBOARD, variables)
    return [_plan("dashboard", variant, ours, peer, variables) for variant in ("fixed", "varied")]


def _some(rng: random.Random, values: list[str]) -> list[str] | None:
    """A non-empty subset in declaration order, or (one time in four) no filter."""
    if rng.random() < 0.25:
        return None
    chosen = set(rng.sample(values, rng.randint(1, len(values))))
    return [v for v in values if v in chosen]


def _board(dataset: Dataset, requests: int = 4000) -> list[ReadPlan]:
    rng = random.Random(17)
    ours_variables, peer_filters = [], []
    for index in range(requests):
        severities, statuses = _some(rng, SEVERITIES), _some(rng, STATUSES)
        categories = _some(rng, CATEGORIES)
        # The first request (the fixed variant) filters by enums only.
        search = rng.choice(dataset.constraint_words) if index and rng.random() < 0.5 else None
        ours_variables.append(
            {
                "severities": severities,
                "statuses": statuses,
                "categories": categories,
                "search": search,
            }
        )
        found: dict[str, Any] = {"archivedAt": {"isNull": True}}
        for column, chosen in (
            ("severity", severities),
            ("status", statuses),
            ("category", categories),
        ):
            if chosen is not None:
                found[column] = {"in": chosen}
        if search is not None:
            found["title"] = {"includesInsensitive": search}
        peer_filters.append({"filter": found})
    ours, peer = _bodies(OURS_BOARD, ours_variables), _bodies(PEER_BOARD, peer_filters)
    return [_plan("board", variant, ours, peer, ours_variables) for variant in ("fixed", "varied")]


# --- generated documents: every request a document never seen before -------------------


def generated_documents(
    schema: GraphQLSchema, dataset: Dataset, count: int, seed: int = 23
) -> list[str]:
    """Distinct valid documents walked over the whole read schema (tests/schema_walk.py),
    with the benchmark database's IDs and keys. The walker may put one field name with
    two types side by side (inline fragments on an interface): such a document fails
    validation, cheaply, so it is left out rather than measured."""
    arguments = Arguments(
        ids=[encode_id("Initiative", pk) for pk in dataset.initiative_ids[:50]]
        + [encode_id("Product", pk) for pk in dataset.product_ids[:50]],
        keys={
            "product": dataset.product_keys[:20],
            "initiative": dataset.initiative_keys[:20],
            "kpi": dataset.kpi_keys[:20],
            "team": dataset.team_keys[:10],
            "technicalConstraint": dataset.constraint_keys[:20],
        },
        instants=["2026-06-01T00:00:00Z", "2099-01-01T00:00:00Z"],
    )
    walker = QueryWalker(
        schema,
        random.Random(seed),
        arguments,
        max_depth=3,
        # Budgets (each request spends some) and what a reading token may not see.
        skip=frozenset({"rateLimit", "users", "roles", "oauthClients"}),
    )
    documents: dict[str, None] = {}
    for _ in range(count * 20):
        document = walker.document()
        if document and document not in documents and not validate(schema, parse(document)):
            documents[document] = None
        if len(documents) == count:
            break
    return list(documents)


def _generated(dataset: Dataset, schema_text: str) -> list[ReadPlan]:
    documents = generated_documents(build_schema(schema_text), dataset, GENERATED_DOCUMENTS)
    bodies = [orjson.dumps({"query": d}).decode() for d in documents]
    # fixed: the same few documents over and over (planned once, then reused);
    # varied: each request a document the server has not seen (each thread walks its
    # own share of the pool in order, so none repeats while the pool lasts).
    repeated = _plan("generated", "varied", bodies[:GENERATED_REPEATED], None)
    fresh = _plan("generated", "varied", bodies[GENERATED_REPEATED:], None, sequential=True)
    return [replace(repeated, variant="fixed", prime=True), fresh]


def client_plans(dataset: Dataset, workload: str, schema_text: str) -> list[ReadPlan]:
    if workload == "pagination":
        return _pagination()
    if workload == "dashboard":
        return _dashboard(dataset)
    if workload == "board":
        return _board(dataset)
    return _generated(dataset, schema_text)
