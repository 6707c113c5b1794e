"""A KPI's status counts its target, its freshness its expected interval, and its
importance to IT and product is a level lists filter and sort by: each read on the
compiled path and on the resolvers alike, and each checked against the documented
table (docs/api.md) written here as a plain Python rule."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any, NamedTuple

import orjson
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from domain import models
from schema.ids import encode_id
from tests.conftest import GraphQL
from tests.fixtures import factories
from tests.test_mutations import mutate

HIGHER = models.KpiDirection.HIGHER_IS_BETTER
LOWER = models.KpiDirection.LOWER_IS_BETTER
READ_SCOPES = ["portfolio:read"]


def documented_status(
    direction: models.KpiDirection,
    target: float | None,
    warning: float | None,
    critical: float | None,
    value: float | None,
) -> str:
    """docs/api.md's table: the first row that holds wins."""
    if value is None:
        return "NO_DATA"
    higher = direction == HIGHER

    def at_or_worse(limit: float | None) -> bool:
        return limit is not None and (value <= limit if higher else value >= limit)

    if at_or_worse(critical):
        return "CRITICAL"
    if at_or_worse(warning):
        return "WARNING"
    if target is None or (value >= target if higher else value <= target):
        return "ON_TARGET"
    return "OFF_TARGET"


async def both(pair: Any, query: str, variables: dict[str, Any]) -> dict[str, Any]:
    """The answer of the compiled path, asserted byte-identical to the resolvers'."""
    compiled, reference = pair(READ_SCOPES)
    got = await compiled(query, variables)
    expected = await reference(query, variables)
    assert got.pop("extensions")["answeredBy"] in {"compiled", "repeated"}, query
    assert expected.pop("extensions")["answeredBy"] != "compiled"
    assert orjson.dumps(got) == orjson.dumps(expected), query
    assert "errors" not in got, got
    data: dict[str, Any] = got["data"]
    return data


async def database_now(db: AsyncSession) -> datetime:
    """The clock of staleness: the test's transaction's, which every request joins."""
    now = await db.scalar(select(func.now()))
    assert now is not None
    return now


class Case(NamedTuple):
    direction: models.KpiDirection
    target: float | None
    warning: float | None
    critical: float | None
    value: float | None
    status: str


UP, DOWN = HIGHER, LOWER
# The status table of docs/api.md, row by row, at and around each boundary.
TABLE = {
    "higher, above target": Case(UP, 99.9, 99.5, 99.0, 99.95, "ON_TARGET"),
    "higher, at target": Case(UP, 99.9, 99.5, 99.0, 99.9, "ON_TARGET"),
    "higher, short of target": Case(UP, 99.9, 99.5, 99.0, 99.7, "OFF_TARGET"),
    "higher, just better than warning": Case(UP, 99.9, 99.5, 99.0, 99.51, "OFF_TARGET"),
    "higher, at warning": Case(UP, 99.9, 99.5, 99.0, 99.5, "WARNING"),
    "higher, between warning and critical": Case(UP, 99.9, 99.5, 99.0, 99.2, "WARNING"),
    "higher, at critical": Case(UP, 99.9, 99.5, 99.0, 99.0, "CRITICAL"),
    "higher, beyond critical": Case(UP, 99.9, 99.5, 99.0, 97.0, "CRITICAL"),
    "lower, better than target": Case(DOWN, 1500, 2500, 4000, 1200, "ON_TARGET"),
    "lower, at target": Case(DOWN, 1500, 2500, 4000, 1500, "ON_TARGET"),
    "lower, short of target": Case(DOWN, 1500, 2500, 4000, 1501, "OFF_TARGET"),
    "lower, at warning": Case(DOWN, 1500, 2500, 4000, 2500, "WARNING"),
    "lower, at critical": Case(DOWN, 1500, 2500, 4000, 4000, "CRITICAL"),
    "lower, beyond critical": Case(DOWN, 1500, 2500, 4000, 9000, "CRITICAL"),
    "no target: better than warning is on target": Case(UP, None, 99.5, 99.0, 99.6, "ON_TARGET"),
    "no thresholds, short of target": Case(DOWN, 0.5, None, None, 3.0, "OFF_TARGET"),
    "no thresholds, target met": Case(DOWN, 0.5, None, None, 0.5, "ON_TARGET"),
    "nothing set": Case(UP, None, None, None, -5.0, "ON_TARGET"),
    "a target worse than warning: warning wins": Case(UP, 20, 30, 10, 25, "WARNING"),
    "no measurement": Case(UP, 99.9, 99.5, 99.0, None, "NO_DATA"),
}

STATUS = """query($key: String!, $statuses: [KpiStatus!]) {
  kpi(key: $key) { key status latestValue }
  kpis(filter: {keys: [$key], statuses: $statuses}) { nodes { key status } }
}"""


async def _kpi_with(db: AsyncSession, case: Case, observed: datetime | None = None) -> Any:
    kpi = await factories.kpi(
        db,
        direction=case.direction,
        target=case.target,
        warning_threshold=case.warning,
        critical_threshold=case.critical,
    )
    if case.value is not None:
        db.add(
            models.KpiMeasurement(
                kpi_id=kpi.id,
                observed_at=observed or datetime.fromisoformat("2026-06-01T00:00:00+00:00"),
                value=case.value,
                source="test",
                external_id=f"{kpi.key}-latest",
            )
        )
    await db.flush()
    return kpi


@pytest.mark.parametrize("case", list(TABLE.values()), ids=list(TABLE))
async def test_the_status_table_on_both_paths(pair: Any, db: AsyncSession, case: Case) -> None:
    assert documented_status(*case[:5]) == case.status  # the oracle is the table
    kpi = await _kpi_with(db, case)
    data = await both(pair, STATUS, {"key": kpi.key, "statuses": [case.status]})
    assert data["kpi"] == {"key": kpi.key, "status": case.status, "latestValue": case.value}
    # The status filter uses the same definition: it finds the KPI by its status...
    assert data["kpis"]["nodes"] == [{"key": kpi.key, "status": case.status}]
    # ...and only by it.
    others = [s for s in ("ON_TARGET", "OFF_TARGET", "WARNING", "CRITICAL", "NO_DATA")]
    others.remove(case.status)
    data = await both(pair, STATUS, {"key": kpi.key, "statuses": others})
    assert data["kpis"]["nodes"] == []


def _generated_case(rng: random.Random) -> Case:
    """Thresholds ordered along the direction (as the database requires), any of them
    possibly missing; the value often exactly on one of them."""
    direction = rng.choice([HIGHER, LOWER])
    worse = -1 if direction == HIGHER else 1
    target = round(rng.uniform(-50, 50), 1)
    warning = round(target + worse * rng.choice([0, rng.uniform(0, 30)]), 1)
    critical = round(warning + worse * rng.choice([0, rng.uniform(0, 30)]), 1)
    if rng.random() < 0.15:  # a target on the wrong side of warning
        target = round(warning + worse * rng.uniform(0, 5), 1)
    limits = [target, warning, critical]
    value = rng.choice([*limits, round(rng.uniform(-100, 100), 2)])
    value = round(value + rng.choice([0, 0, 0.1, -0.1]), 2)
    return Case(
        direction,
        None if rng.random() < 0.15 else target,
        None if rng.random() < 0.15 else warning,
        None if rng.random() < 0.15 else critical,
        None if rng.random() < 0.05 else value,
        "",
    )


GENERATED = """query($keys: [String!]) {
  kpis(first: 100, filter: {keys: $keys}, orderBy: {field: KEY}) { nodes {
    key direction target warningThreshold criticalThreshold latestValue status
    expectedIntervalSeconds freshness isStale latest { observedAt }
  } }
}"""


async def test_generated_kpis_agree_on_both_paths_and_with_the_table(
    pair: Any, db: AsyncSession
) -> None:
    """Hundreds of generated measurements, targets, thresholds, directions, intervals
    and ages: both paths answer alike, and as the documented rules say."""
    rng = random.Random(2126)
    now = await database_now(db)
    keys: list[str] = []
    ages: dict[str, timedelta] = {}
    for _ in range(300):
        case = _generated_case(rng)
        interval = rng.choice([60, 3600, 86_400, 7 * 86_400])
        # Ages around the interval, exactly on it included (still fresh).
        age = timedelta(seconds=interval * rng.choice([0, 0.5, 1, 1, 1.5, 3]))
        age += timedelta(seconds=rng.choice([0, 0, 1, -1]))
        kpi = await _kpi_with(db, case, observed=now - age)
        kpi.expected_interval_seconds = interval
        keys.append(kpi.key)
        ages[kpi.key] = age
    await db.flush()
    seen: dict[str, int] = {}
    for start in range(0, len(keys), 100):
        data = await both(pair, GENERATED, {"keys": keys[start : start + 100]})
        nodes = data["kpis"]["nodes"]
        assert len(nodes) == 100
        for node in nodes:
            expected = documented_status(
                models.KpiDirection(node["direction"]),
                node["target"],
                node["warningThreshold"],
                node["criticalThreshold"],
                node["latestValue"],
            )
            assert node["status"] == expected, node
            seen[expected] = seen.get(expected, 0) + 1
            expected_interval = timedelta(seconds=node["expectedIntervalSeconds"])
            if node["latest"] is None:
                freshness = "NO_DATA"
            else:
                freshness = "STALE" if ages[node["key"]] > expected_interval else "FRESH"
            assert node["freshness"] == freshness, (node, ages[node["key"]])
            assert node["isStale"] is (freshness != "FRESH")
            seen[freshness] = seen.get(freshness, 0) + 1
    # Not vacuous: every status and freshness was generated, each many times.
    assert set(seen) == {
        "ON_TARGET",
        "OFF_TARGET",
        "WARNING",
        "CRITICAL",
        "NO_DATA",
        "FRESH",
        "STALE",
    }
    assert min(seen.values()) >= 10, seen


FRESHNESS = """query($keys: [String!], $stale: Boolean) {
  kpis(filter: {keys: $keys, isStale: $stale}, orderBy: {field: KEY}) {
    nodes { key freshness isStale expectedIntervalSeconds }
  }
}"""


async def test_is_stale_and_its_filter_on_both_paths(pair: Any, db: AsyncSession) -> None:
    now = await database_now(db)
    hourly = Case(HIGHER, 99.9, 99.5, 99.0, 99.95, "ON_TARGET")
    fresh = await _kpi_with(db, hourly, observed=now - timedelta(minutes=30))
    late = await _kpi_with(db, hourly, observed=now - timedelta(hours=2))
    on_the_dot = await _kpi_with(db, hourly, observed=now - timedelta(hours=1))
    never = await _kpi_with(db, hourly._replace(value=None))
    for kpi in (fresh, late, on_the_dot, never):
        kpi.expected_interval_seconds = 3600
    await db.flush()
    keys = sorted(k.key for k in (fresh, late, on_the_dot, never))
    every = await both(pair, FRESHNESS, {"keys": keys, "stale": None})
    assert {n["key"]: (n["freshness"], n["isStale"]) for n in every["kpis"]["nodes"]} == {
        fresh.key: ("FRESH", False),
        late.key: ("STALE", True),
        on_the_dot.key: ("FRESH", False),  # older than the interval, not as old: fresh
        never.key: ("NO_DATA", True),
    }
    assert {n["expectedIntervalSeconds"] for n in every["kpis"]["nodes"]} == {3600}
    stale = await both(pair, FRESHNESS, {"keys": keys, "stale": True})
    assert [n["key"] for n in stale["kpis"]["nodes"]] == sorted([late.key, never.key])
    current = await both(pair, FRESHNESS, {"keys": keys, "stale": False})
    assert [n["key"] for n in current["kpis"]["nodes"]] == sorted([fresh.key, on_the_dot.key])
    # A fresh measurement makes a stale KPI fresh; its status is its value's.
    db.add(
        models.KpiMeasurement(
            kpi_id=late.id, observed_at=now, value=98.0, source="test", external_id="late-now"
        )
    )
    await db.flush()
    again = await both(pair, FRESHNESS, {"keys": [late.key], "stale": False})
    assert again["kpis"]["nodes"] == [
        {"key": late.key, "freshness": "FRESH", "isStale": False, "expectedIntervalSeconds": 3600}
    ]


DEMO = """{
  kpis(first: 100, orderBy: {field: KEY}) { totalCount nodes {
    key direction target warningThreshold criticalThreshold latestValue status
    itImportanceLevel productImportanceLevel expectedIntervalSeconds
  } }
}"""


async def test_no_demo_kpi_claims_its_target_while_missing_it(pair: Any) -> None:
    data = await both(pair, DEMO, {})
    nodes = data["kpis"]["nodes"]
    assert data["kpis"]["totalCount"] == len(nodes) == 40
    for node in nodes:
        higher = node["direction"] == "HIGHER_IS_BETTER"
        value, target = node["latestValue"], node["target"]
        meets = value >= target if higher else value <= target
        if node["status"] == "ON_TARGET":
            assert meets, node
        assert node["status"] == documented_status(
            models.KpiDirection(node["direction"]),
            target,
            node["warningThreshold"],
            node["criticalThreshold"],
            value,
        )
    statuses = [n["status"] for n in nodes]
    # The nine that used to say ON_TARGET while missing their target now say so.
    assert statuses.count("OFF_TARGET") == 9, statuses
    assert statuses.count("ON_TARGET") == 20
    # Every demo KPI is rated and measured daily.
    assert all(n["itImportanceLevel"] and n["productImportanceLevel"] for n in nodes)
    assert {n["expectedIntervalSeconds"] for n in nodes} == {86_400}


IMPORTANCE = """query($it: [KpiImportance!], $product: [KpiImportance!], $field: KpiOrderField!,
  $direction: OrderDirection!, $first: Int, $after: String) {
  kpis(first: $first, after: $after, orderBy: {field: $field, direction: $direction},
    filter: {itImportanceLevels: $it, productImportanceLevels: $product}) {
    totalCount
    pageInfo { hasNextPage endCursor }
    nodes { key itImportanceLevel productImportanceLevel }
  }
}"""
RANK = {"CRITICAL": 1, "HIGH": 2, "MEDIUM": 3, "INDIRECT": 4, None: 5}


async def test_importance_levels_filter_and_sort_on_both_paths(pair: Any, db: AsyncSession) -> None:
    unrated = await factories.kpi(db, key="ZZ-UNRATED")
    await db.flush()
    base = {"it": None, "product": None, "first": 100, "after": None}
    # The demo rates adoption INDIRECT to IT and CRITICAL to product.
    indirect = await both(
        pair, IMPORTANCE, base | {"it": ["INDIRECT"], "field": "KEY", "direction": "ASC"}
    )
    nodes = indirect["kpis"]["nodes"]
    assert len(nodes) == 10
    assert all(n["key"].endswith("-ADOPTION") for n in nodes)
    assert {n["productImportanceLevel"] for n in nodes} == {"CRITICAL"}
    both_high = await both(
        pair,
        IMPORTANCE,
        base | {"it": ["HIGH"], "product": ["HIGH"], "field": "KEY", "direction": "ASC"},
    )
    assert {n["key"].split("-", 1)[1] for n in both_high["kpis"]["nodes"]} == {
        "LOAD-TIME",
        "INCIDENTS",
    }
    for field, attribute in (
        ("IT_IMPORTANCE", "itImportanceLevel"),
        ("PRODUCT_IMPORTANCE", "productImportanceLevel"),
    ):
        for direction in ("ASC", "DESC"):
            # Walked a page of 7 at a time: the cursors carry the rank.
            walked: list[dict[str, Any]] = []
            after = None
            while True:
                variables = base | {
                    "field": field,
                    "direction": direction,
                    "first": 7,
                    "after": after,
                }
                page = (await both(pair, IMPORTANCE, variables))["kpis"]
                walked += page["nodes"]
                if not page["pageInfo"]["hasNextPage"]:
                    break
                after = page["pageInfo"]["endCursor"]
            ranks = [RANK[n[attribute]] for n in walked]
            assert ranks == sorted(ranks, reverse=direction == "DESC"), (field, direction)
            assert len(walked) == 41
            last = walked[-1] if direction == "ASC" else walked[0]
            assert last["key"] == unrated.key  # unrated sorts after INDIRECT


CREATE = "kpi { key itImportanceLevel productImportanceLevel expectedIntervalSeconds }"


async def _kpi_count(db: AsyncSession) -> int:
    return int(await db.scalar(select(func.count()).select_from(models.Kpi)) or 0)


async def test_new_fields_are_written_and_read_back(writer: GraphQL, pair: Any) -> None:
    created = await mutate(
        writer,
        "createKpi",
        {
            "key": "NEW-HOURLY",
            "name": "Hourly",
            "unit": "%",
            "direction": "HIGHER_IS_BETTER",
            "itRelevance": "IT.",
            "productRelevance": "Product.",
            "itImportanceLevel": "MEDIUM",
            "productImportanceLevel": "INDIRECT",
            "expectedIntervalSeconds": 3600,
        },
        CREATE.replace("kpi {", "kpi { id", 1),
    )
    assert created["userErrors"] == []
    kpi = created["kpi"]
    assert kpi["itImportanceLevel"] == "MEDIUM"
    assert kpi["expectedIntervalSeconds"] == 3600
    updated = await mutate(
        writer,
        "updateKpi",
        {"id": kpi["id"], "itImportanceLevel": None, "expectedIntervalSeconds": 60},
        CREATE,
    )
    assert updated["userErrors"] == []
    assert updated["kpi"] == {
        "key": "NEW-HOURLY",
        "itImportanceLevel": None,
        "productImportanceLevel": "INDIRECT",
        "expectedIntervalSeconds": 60,
    }
    read = await both(pair, "{ " + CREATE.replace("kpi", 'kpi(key: "NEW-HOURLY")', 1) + " }", {})
    assert read["kpi"] == updated["kpi"]
    # Left out on creation: a day, unrated.
    default = await mutate(
        writer,
        "createKpi",
        {
            "key": "NEW-DAILY",
            "name": "Daily",
            "unit": "%",
            "direction": "LOWER_IS_BETTER",
            "itRelevance": "IT.",
            "productRelevance": "Product.",
        },
        CREATE,
    )
    assert default["kpi"] == {
        "key": "NEW-DAILY",
        "itImportanceLevel": None,
        "productImportanceLevel": None,
        "expectedIntervalSeconds": 86_400,
    }


INTERVAL_ERROR = (
    "`expectedIntervalSeconds` must be between 60 (a minute) and 31622400 (366 days); got {}."
)


@pytest.mark.parametrize("interval", [59, 0, -3600, 31_622_401])
async def test_an_expected_interval_out_of_range_is_refused(
    writer: GraphQL, db: AsyncSession, interval: int
) -> None:
    before = await _kpi_count(db)
    refused = await mutate(
        writer,
        "createKpi",
        {
            "key": "BAD-INTERVAL",
            "name": "Bad",
            "unit": "%",
            "direction": "HIGHER_IS_BETTER",
            "itRelevance": "IT.",
            "productRelevance": "Product.",
            "expectedIntervalSeconds": interval,
        },
        "kpi { key }",
    )
    assert refused["kpi"] is None
    assert refused["userErrors"] == [
        {
            "field": "expectedIntervalSeconds",
            "code": "INVALID",
            "message": INTERVAL_ERROR.format(interval),
        }
    ]
    assert await _kpi_count(db) == before
    kpi = await factories.kpi(db)
    await db.commit()
    kpi_id = encode_id("Kpi", kpi.id)
    for value, message in (
        (interval, INTERVAL_ERROR.format(interval)),
        (None, "`expectedIntervalSeconds` cannot be null."),
    ):
        changed = await mutate(
            writer,
            "updateKpi",
            {"id": kpi_id, "expectedIntervalSeconds": value},
            "kpi { version }",
        )
        assert changed["userErrors"] == [
            {"field": "expectedIntervalSeconds", "code": "INVALID", "message": message}
        ]
    await db.refresh(kpi)
    assert kpi.version == 1 and kpi.expected_interval_seconds == 86_400


async def test_an_unknown_importance_level_is_refused_before_anything_runs(
    writer: GraphQL, db: AsyncSession
) -> None:
    before = await _kpi_count(db)
    body = await writer(
        'mutation { createKpi(input: {key: "BAD-LEVEL", name: "Bad", unit: "%", '
        'direction: HIGHER_IS_BETTER, itRelevance: "IT.", productRelevance: "P.", '
        "itImportanceLevel: VITAL}) { kpi { key } } }"
    )
    assert "data" not in body  # refused at validation: nothing ran
    [error] = body["errors"]
    assert error["message"] == "Value 'VITAL' does not exist in 'KpiImportance' enum."
    assert error["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    assert await _kpi_count(db) == before
    body = await writer("{ kpis(filter: {itImportanceLevels: [LOW]}) { totalCount } }")
    assert body["errors"][0]["message"] == "Value 'LOW' does not exist in 'KpiImportance' enum."
