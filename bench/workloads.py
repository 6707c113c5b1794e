"""The workloads: the GraphQL documents for us and for PostGraphile, the hand-written SQL
"limit" (and the body its HTTP server takes), and the variables each request picks from.

Each read workload comes in two variants: ``fixed`` (every request is the same) and
``varied`` (each request picks its variables at random from the keys or IDs of the
database, so they practically never repeat and no cache can answer all of them). bench/README.md explains how the PostGraphile documents relate to
ours.
"""

from __future__ import annotations

import base64
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from bench.database import Dataset
from bench.limit_sql import LIMIT_NODE, LIMIT_OVERVIEW, LIMIT_SERIES, Limit
from domain.seed.kpi_kinds import HISTORY_DAYS, REFERENCE_DATE
from schema.ids import encode_id

READ_WORKLOADS = ("overview", "node", "series")
# Ours only, with a bearer token (PostGraphile runs without authentication).
TOKEN_WORKLOADS = ("node-token",)
WRITE_WORKLOADS = ("mutation", "ingest")
# Shaped like a frontend's requests (bench/clients.py); generated has no limit.
CLIENT_WORKLOADS = ("pagination", "dashboard", "board", "generated")
ALL_WORKLOADS = READ_WORKLOADS + TOKEN_WORKLOADS + CLIENT_WORKLOADS + WRITE_WORKLOADS
VARIANTS = ("fixed", "varied")
OVERVIEW_PRODUCTS = 50
SERIES_KPIS = 20
SERIES_FROM = datetime.combine(
    REFERENCE_DATE - timedelta(days=HISTORY_DAYS), datetime.min.time(), UTC
)
SERIES_TO = datetime.combine(REFERENCE_DATE + timedelta(days=1), datetime.min.time(), UTC)
# The limit of each original read workload: the pick (the first argument: product keys
# or null, an initiative's pk, KPI keys) and the fixed series window.
LIMITS = {
    "overview": Limit(LIMIT_OVERVIEW, lambda pick: (pick,)),
    "node": Limit(LIMIT_NODE, lambda pick: (pick,)),
    "series": Limit(LIMIT_SERIES, lambda pick: (pick, SERIES_FROM, SERIES_TO)),
}


def compact(document: str) -> str:
    """One line, single spaces: the same document text for every request."""
    return re.sub(r"\s+", " ", document).strip()


# --- Portfolio Graph -----------------------------------------------------------------

OURS_OVERVIEW = compact("""
query Overview($keys: [String!]) {
  products(first: 50, filter: {keys: $keys}) {
    nodes {
      key name
      initiatives(first: 10) { nodes { key title status riceScore isBlocked } }
      kpis { nodes { key latestValue status } }
    }
  }
}""")

OURS_NODE = compact("""
query Node($id: ID!) {
  node(id: $id) {
    ... on Initiative {
      key title
      products { nodes { key name } }
      constraints { nodes { key severity status } }
    }
  }
}""")

OURS_SERIES = compact("""
query Series($keys: [String!], $from: DateTime!, $to: DateTime!) {
  kpis(first: 20, filter: {keys: $keys}) {
    nodes { key series(from: $from, to: $to, bucket: WEEK) { bucketStart average count } }
  }
}""")

OURS_MUTATION = compact("""
mutation Update($id: ID!, $version: Int, $title: String) {
  updateInitiative(input: {id: $id, expectedVersion: $version, title: $title}) {
    initiative { id version }
    userErrors { code }
  }
}""")

OURS_INGEST = compact("""
mutation Ingest($input: RecordKpiMeasurementsInput!) {
  recordKpiMeasurements(input: $input) {
    received inserted duplicates rejected userErrors { code message }
  }
}""")

# --- PostGraphile 4 (+ postgraphile-plugin-connection-filter) ------------------------

PEER_OVERVIEW = compact("""
query Overview($filter: ProductFilter) {
  allProducts(first: 50, filter: $filter, orderBy: KEY_ASC) {
    nodes {
      key name
      initiativeProductsByProductId(first: 10) {
        nodes {
          initiativeByInitiativeId {
            key title status reach impact confidence effort
            constraintInitiativesByInitiativeId {
              nodes { technicalConstraintByConstraintId { severity status } }
            }
          }
        }
      }
      kpisByProductId(orderBy: KEY_ASC) {
        nodes {
          key direction warningThreshold criticalThreshold
          kpiMeasurementsByKpiId(first: 1, orderBy: OBSERVED_AT_DESC) { nodes { value } }
        }
      }
    }
  }
}""")

PEER_NODE = compact("""
query Node($id: ID!) {
  initiative(nodeId: $id) {
    key title
    initiativeProductsByInitiativeId { nodes { productByProductId { key name } } }
    constraintInitiativesByInitiativeId {
      nodes { technicalConstraintByConstraintId { key severity status } }
    }
  }
}""")

PEER_SERIES = compact("""
query Series($keys: [String!], $from: Datetime!, $to: Datetime!) {
  allKpis(first: 20, filter: {key: {in: $keys}}, orderBy: KEY_ASC) {
    nodes {
      key
      kpiMeasurementsByKpiId(
        filter: {observedAt: {greaterThanOrEqualTo: $from, lessThan: $to}}
        orderBy: OBSERVED_AT_ASC
      ) { nodes { observedAt value } }
    }
  }
}""")


def body(query: str, variables: dict[str, Any] | None = None) -> bytes:
    return orjson.dumps({"query": query, "variables": variables or {}})


def peer_node_id(table: str, pk: int) -> str:
    """PostGraphile 4's nodeId: base64 of ``["<table>", pk]``."""
    return base64.b64encode(orjson.dumps([table, pk])).decode()


# Where a varied request's picked values go in a body template: the JSON string
# "@@PICK@@" is replaced by the pick (a JSON string, or an array of them).
PICK = "@@PICK@@"
PICK_JSON = orjson.dumps(PICK).decode()


@dataclass(frozen=True)
class Target:
    """How one server receives a request: the body, with PICK_JSON standing for the
    picked value(s), and the value each pool entry stands for, JSON-encoded."""

    template: str
    pool: list[str]

    def body(self, indices: Sequence[int], array: bool) -> bytes:
        if not indices:
            return self.template.encode()
        values = [self.pool[i] for i in indices]
        pick = f"[{','.join(values)}]" if array else values[0]
        return self.template.replace(PICK_JSON, pick, 1).encode()


@dataclass(frozen=True)
class ReadPlan:
    """One read workload variant. ``fixed``: every request the same. ``varied``: each
    request picks ``picks`` distinct entries of a pool (product keys, initiative IDs, KPI
    keys) at random, in wrk's Lua script and in the limit's client alike, so the
    variables practically never repeat and no cache keyed on them can answer."""

    workload: str
    variant: str
    picks: int  # 0: fixed
    array: bool  # the pick is a list (keys) rather than one value (an ID)
    ours: Target
    peer: Target
    limit_http: Target  # the limit over HTTP (bench/limit_http.py)
    limit_sql: str
    limit_pool: list[Any]
    limit_fixed: tuple[Any, ...]
    limit_args: Callable[[list[Any]], tuple[Any, ...]]
    # Sent with a bearer token of a registered client, to our server only: what every
    # production caller pays (the token's signature, its client and revocation checked).
    token: bool = False
    has_limit: bool = True  # a hand-written statement exists (both limits run it)
    has_peer: bool = True  # PostGraphile has an equivalent document
    walked: bool = False  # the varied pool is walked on each server first (pagination)
    # Each thread sends its share of the pool in order, not at random: no request repeats
    # while the pool lasts (generated documents).
    sequential: bool = False
    # Before its timed run, every pool entry is sent once: the repeated documents are
    # then all known, whatever the warm-up happened to pick.
    prime: bool = False

    @property
    def label(self) -> str:
        return f"{self.workload}/{self.variant}"

    @property
    def pool_size(self) -> int:
        return len(self.limit_pool)

    def sample(self, rng: random.Random) -> list[int]:
        return rng.sample(range(self.pool_size), self.picks) if self.picks else []

    def target(self, name: str) -> Target:
        """``ours`` (also ``ours-cached``), ``limit-http``, or (any other name)
        PostGraphile's (4 and 5 take the same documents)."""
        if name.startswith("ours"):
            return self.ours
        if name == "limit-http":
            return self.limit_http
        return self.peer

    def body(self, target: str, indices: Sequence[int]) -> bytes:
        return self.target(target).body(indices, self.array)

    def args(self, indices: Sequence[int]) -> tuple[Any, ...]:
        if not indices:
            return self.limit_fixed
        return self.limit_args([self.limit_pool[i] for i in indices])


def read_plans(dataset: Dataset, workloads: Sequence[str]) -> list[ReadPlan]:
    plans = []
    for workload in workloads:
        if workload in READ_WORKLOADS:
            plans += _PLANNERS[workload](dataset)
        elif workload == "node-token":
            plans += [replace(plan, workload=workload, token=True) for plan in _node(dataset)]
    return plans


def _json_strings(values: Sequence[str]) -> list[str]:
    return [orjson.dumps(v).decode() for v in values]


def _template(query: str, variables: dict[str, Any]) -> str:
    return body(query, variables).decode()


def _limit_http(workload: str, pick: Any, pool: Sequence[str] = ()) -> Target:
    """The limit over HTTP's body: the workload and the pick, the statement's first
    argument (bench/limit_http.py adds the series window itself)."""
    return Target(orjson.dumps({"workload": workload, "pick": pick}).decode(), list(pool))


def _overview(dataset: Dataset) -> list[ReadPlan]:
    keys = _json_strings(dataset.product_keys)
    fixed = ReadPlan(
        "overview",
        "fixed",
        0,
        True,
        Target(_template(OURS_OVERVIEW, {"keys": None}), []),
        Target(_template(PEER_OVERVIEW, {"filter": None}), []),
        _limit_http("overview", None),
        LIMIT_OVERVIEW,
        [],
        LIMITS["overview"].args(None),
        LIMITS["overview"].args,
    )
    varied = ReadPlan(
        "overview",
        "varied",
        OVERVIEW_PRODUCTS,
        True,
        Target(_template(OURS_OVERVIEW, {"keys": PICK}), keys),
        Target(_template(PEER_OVERVIEW, {"filter": {"key": {"in": PICK}}}), keys),
        _limit_http("overview", PICK, keys),
        LIMIT_OVERVIEW,
        list(dataset.product_keys),
        LIMITS["overview"].args(None),
        LIMITS["overview"].args,
    )
    return [fixed, varied]


def _node(dataset: Dataset) -> list[ReadPlan]:
    ids = dataset.initiative_ids
    ours = _json_strings([encode_id("Initiative", pk) for pk in ids])
    peer = _json_strings([peer_node_id("initiatives", pk) for pk in ids])
    pks = [orjson.dumps(pk).decode() for pk in ids]
    first = ids[0]
    fixed = ReadPlan(
        "node",
        "fixed",
        0,
        False,
        Target(_template(OURS_NODE, {"id": encode_id("Initiative", first)}), []),
        Target(_template(PEER_NODE, {"id": peer_node_id("initiatives", first)}), []),
        _limit_http("node", first),
        LIMIT_NODE,
        [],
        LIMITS["node"].args(first),
        lambda picked: LIMITS["node"].args(picked[0]),
    )
    varied = ReadPlan(
        "node",
        "varied",
        1,
        False,
        Target(_template(OURS_NODE, {"id": PICK}), ours),
        Target(_template(PEER_NODE, {"id": PICK}), peer),
        _limit_http("node", PICK, pks),
        LIMIT_NODE,
        list(ids),
        LIMITS["node"].args(first),
        lambda picked: LIMITS["node"].args(picked[0]),
    )
    return [fixed, varied]


def _series(dataset: Dataset) -> list[ReadPlan]:
    window = {"from": SERIES_FROM.isoformat(), "to": SERIES_TO.isoformat()}
    first = dataset.kpi_keys[:SERIES_KPIS]
    keys = _json_strings(dataset.kpi_keys)
    fixed = ReadPlan(
        "series",
        "fixed",
        0,
        True,
        Target(_template(OURS_SERIES, {"keys": first} | window), []),
        Target(_template(PEER_SERIES, {"keys": first} | window), []),
        _limit_http("series", first),
        LIMIT_SERIES,
        [],
        LIMITS["series"].args(first),
        LIMITS["series"].args,
    )
    varied = ReadPlan(
        "series",
        "varied",
        SERIES_KPIS,
        True,
        Target(_template(OURS_SERIES, {"keys": PICK} | window), keys),
        Target(_template(PEER_SERIES, {"keys": PICK} | window), keys),
        _limit_http("series", PICK, keys),
        LIMIT_SERIES,
        list(dataset.kpi_keys),
        LIMITS["series"].args(first),
        LIMITS["series"].args,
    )
    return [fixed, varied]


_PLANNERS = {"overview": _overview, "node": _node, "series": _series}


@dataclass(frozen=True)
class MutationPlan:
    """updateInitiative with optimistic locking: the client keeps the version it last saw
    for each initiative (from the database at the start, then from every answer, which
    carries the stored version also on CONFLICT) and sends it as ``expectedVersion``."""

    variant: str
    global_ids: list[str]
    versions: dict[str, int]

    def next_body(self, rng: random.Random, counter: int) -> tuple[str, bytes]:
        global_id = self.global_ids[0] if self.variant == "fixed" else rng.choice(self.global_ids)
        variables = {
            "id": global_id,
            "version": self.versions[global_id],
            "title": f"Bench edit {counter}",
        }
        return global_id, body(OURS_MUTATION, variables)

    def observe(self, answer: dict[str, Any]) -> str:
        """Learn the stored version from an answer; ``ok``, ``conflict`` or ``error``."""
        payload = (answer.get("data") or {}).get("updateInitiative") or {}
        initiative = payload.get("initiative")
        if initiative:
            self.versions[initiative["id"]] = initiative["version"]
        if answer.get("errors"):
            return "error"
        codes = [e.get("code") for e in payload.get("userErrors") or []]
        if not codes and initiative:
            return "ok"
        return "conflict" if codes == ["CONFLICT"] else "error"


def mutation_plans(dataset: Dataset, versions: dict[int, int]) -> list[MutationPlan]:
    plans = []
    for variant in VARIANTS:
        # The fixed variant updates one initiative from every connection (row contention
        # and conflicts); the varied one spreads over all of them.
        ids = dataset.initiative_ids[1:2] if variant == "fixed" else dataset.initiative_ids
        global_ids = [encode_id("Initiative", pk) for pk in ids]
        plans.append(
            MutationPlan(
                variant,
                global_ids,
                {g: versions[pk] for g, pk in zip(global_ids, ids, strict=True)},
            )
        )
    return plans
