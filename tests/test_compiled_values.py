"""No value of a variable plans a document again: every variable that does not change
the statement's shape is a parameter (pages, cursors, enum lists, search text, dates,
instants, booleans), at the root and nested, and each request's answer is still the
resolvers' answer, byte for byte, errors included."""

from __future__ import annotations

import random
import string
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from domain.models import KpiMeasurement
from domain.models.enums import (
    ConstraintSeverity,
    InitiativeStatus,
    KpiStatus,
    TeamKind,
)
from schema.compiled.extension import PLANS
from schema.ids import encode_id
from tests.fixtures import factories

BOARD = """
query Board($statuses: [InitiativeStatus!], $first: Int, $search: String, $from: Date,
            $to: Date, $blocked: Boolean, $severities: [ConstraintSeverity!], $last: Int,
            $kinds: [TeamKind!], $nested: Int, $since: DateTime, $kpiStatuses: [KpiStatus!],
            $after: String) {
  initiatives(first: $first, after: $after, orderBy: {field: TARGET_START, direction: DESC},
              filter: {statuses: $statuses, search: $search, targetStartFrom: $from,
                       targetStartTo: $to, isBlocked: $blocked}) {
    totalCount
    edges { cursor node { key status isBlocked targetStart } }
    pageInfo { hasNextPage hasPreviousPage endCursor }
  }
  technicalConstraints(last: $last, filter: {severities: $severities}) {
    totalCount nodes { key severity }
  }
  teams(filter: {kinds: $kinds}) {
    nodes { key products(first: $nested) { totalCount nodes { key } } }
  }
  kpis(filter: {statuses: $kpiStatuses}) {
    nodes {
      key status
      measurements(last: $nested, filter: {observedFrom: $since}) {
        totalCount nodes { value observedAt }
      }
    }
  }
}"""

# Quotes, LIKE's wildcards, backslashes, accents, emoji, tsquery's operators.
AWKWARD = string.ascii_letters[:8] + string.digits[:3] + " '\"%_\\&|!:*()éüß漢😀-"


def _subset(rng: random.Random, members: list[Any]) -> list[str]:
    return [m.name for m in rng.sample(members, k=rng.randint(1, len(members)))]


def _day(rng: random.Random) -> date:
    return date(2025, 1, 1) + timedelta(days=rng.randint(0, 1000))


def _values(rng: random.Random, after: str | None) -> dict[str, Any]:
    start, end = _day(rng), _day(rng)
    if rng.random() < 0.8:
        start, end = min(start, end), max(start, end)  # else a range the service refuses
    search = "".join(rng.choice(AWKWARD) for _ in range(rng.randint(0, 12)))
    since = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=rng.randint(0, 10**8))
    return {
        "statuses": _subset(rng, list(InitiativeStatus)),
        "first": rng.randint(0, 100),
        "search": search if rng.random() < 0.7 else rng.choice(["pay", "check", "a"]),
        "from": start.isoformat(),
        "to": end.isoformat(),
        "blocked": rng.random() < 0.5,
        "severities": _subset(rng, list(ConstraintSeverity)),
        "last": rng.randint(0, 100),
        "kinds": _subset(rng, list(TeamKind)),
        "nested": rng.randint(0, 100),
        "since": since.isoformat().replace("+00:00", "Z"),
        "kpiStatuses": _subset(rng, list(KpiStatus)),
        "after": after,
    }


def _before_extensions(body: bytes) -> bytes:
    return body.split(b',"extensions":', 1)[0]


async def _rows(db: AsyncSession) -> None:
    """Initiatives with dates and titles a search may find, blocked ones among them."""
    product = await factories.product(db)
    for number in range(12):
        initiative = await factories.initiative(
            db,
            title=f"Pay check {number} 'quoted' 50% é",
            products=[product],
            target_start=date(2025, 6, 1) + timedelta(days=70 * number),
        )
        if number % 4 == 0:
            await factories.constraint(db, initiatives=[initiative])


async def test_new_values_of_every_parameter_reuse_one_plan_and_answer_alike(
    pair: Any, db: AsyncSession
) -> None:
    """Forty requests of one document, each with values of its own (random enum subsets,
    page sizes, search texts, date ranges, instants, booleans, and the cursor of an
    earlier answer): planned once, and every answer (refusals included) is the
    resolvers' answer byte for byte."""
    await _rows(db)
    compiled, reference = pair(["portfolio:read"])
    rng = random.Random(17)
    cursors: list[str] = []
    planned = PLANS.compilations
    paths: dict[str, int] = {}
    first = {**_values(rng, None), "search": "pay", "from": "2025-01-01", "to": "2027-12-31"}
    for number in range(40):
        after = rng.choice(cursors) if cursors and number % 2 else None
        variables = first if number == 0 else _values(rng, after)
        got = await compiled(BOARD, variables, status=None)
        await reference(BOARD, variables, status=None)
        assert _before_extensions(compiled.last_body) == _before_extensions(reference.last_body), (
            variables
        )
        path = (got.get("extensions") or {}).get("answeredBy", "refused")
        paths[path] = paths.get(path, 0) + 1
        data = got.get("data") or {}
        edges = (data.get("initiatives") or {}).get("edges") or []
        cursors += [edge["cursor"] for edge in edges]
    # The null cursor of the first request and the cursors of the others: two shapes.
    assert PLANS.compilations - planned == 2, paths
    assert paths.get("repeated", 0) >= 25, paths
    # Values the service refuses (a range ending before it starts, a search without a
    # word) are answered by the resolvers, with their error.
    assert paths.get("resolvers", 0) >= 3, paths


REFUSABLE = """
query Refusable($first: Int, $last: Int, $from: Date, $to: Date, $search: String,
                $products: [ID!], $statuses: [InitiativeStatus!]) {
  initiatives(first: $first, last: $last, filter: {targetStartFrom: $from,
              targetStartTo: $to, search: $search, products: $products,
              statuses: $statuses}) {
    totalCount nodes { key }
  }
}"""


async def test_values_the_resolvers_refuse_are_refused_as_ever_once_a_plan_serves_the_shape(
    pair: Any, db: AsyncSession
) -> None:
    """A plan bound for a shape serves only the values the resolvers accept: a page
    over the cap, `first` with `last`, a range ending before it starts, a search
    without a word, an ID of another type, an enum it does not know get the resolvers'
    error (its code and message), and a valid request after them the plan again."""
    product = await factories.product(db)
    compiled, reference = pair(["portfolio:read"])
    valid: dict[str, Any] = {
        "first": 3,
        "last": None,
        "from": "2025-01-01",
        "to": "2027-01-01",
        "search": "pay",
        "products": [encode_id("Product", product.id)],
        "statuses": ["PROPOSED"],
    }
    for expected in ("compiled", "repeated"):
        got = await compiled(REFUSABLE, valid)
        assert got["extensions"]["answeredBy"] == expected
    planned = PLANS.compilations
    refused: list[tuple[dict[str, Any], str, str | None]] = [
        ({"first": 101}, "INVALID", "`first` must be between 0 and 100; got 101."),
        ({"last": 2}, "INVALID", "Pass either `first` or `last`, not both."),
        ({"to": "2024-01-01"}, "INVALID", "`targetStart`: the end is before the start."),
        ({"search": "'% !-"}, "INVALID", "`search` must contain at least one letter or digit."),
        ({"search": "x" * 201}, "INVALID", "`search` is limited to 200 characters."),
        ({"products": [encode_id("Team", 1)]}, "INVALID", None),
        ({"statuses": ["NOPE"]}, "BAD_USER_INPUT", None),
    ]
    for change, code, message in refused:
        variables = {**valid, **change}
        got = await compiled(REFUSABLE, variables, status=None)
        await reference(REFUSABLE, variables, status=None)
        assert _before_extensions(compiled.last_body) == _before_extensions(reference.last_body), (
            change
        )
        (error,) = got["errors"]
        assert error["extensions"]["code"] == code, change
        if message is not None:
            assert error["message"] == message, change
    # Only `last` beside `first` is a shape of its own (planned, refused, kept for no
    # other value); nothing else was planned, and the plan still serves valid values.
    assert PLANS.compilations == planned + 1
    got = await compiled(REFUSABLE, {**valid, "first": 0})
    assert got["extensions"]["answeredBy"] == "repeated"
    assert got["data"]["initiatives"]["nodes"] == []


SERIES = """
query Series($key: String!, $from: DateTime!, $to: DateTime!) {
  kpi(key: $key) {
    key
    series(from: $from, to: $to, bucket: DAY) { bucketStart average minimum maximum count }
  }
}"""


async def test_a_series_window_is_a_parameter(pair: Any, db: AsyncSession) -> None:
    """A dashboard moves its window: every `from`/`to` shares one plan, and each answer
    is its own window's, as the resolvers give it; a window the resolvers refuse (its
    end first, too many buckets) gets their error."""
    kpi = await factories.kpi(db)
    start = datetime(2026, 3, 1, tzinfo=UTC)
    for hour in range(0, 24 * 40, 7):
        db.add(
            KpiMeasurement(
                kpi_id=kpi.id,
                observed_at=start + timedelta(hours=hour, seconds=hour % 3 * 0.25),
                value=hour / 7 + 0.5,
                source="test",
                external_id=f"s-{hour}",
            )
        )
    await db.flush()
    compiled, reference = pair(["portfolio:read"])
    rng = random.Random(5)
    planned = PLANS.compilations
    paths: dict[str, int] = {}
    for number in range(12):
        begin = start + timedelta(hours=rng.randint(-48, 24 * 30))
        end = begin + timedelta(days=rng.randint(1, 12))
        if number % 5 == 4:
            begin, end = end, begin  # refused: it ends before it starts
        variables = {"key": kpi.key, "from": begin.isoformat(), "to": end.isoformat()}
        got = await compiled(SERIES, variables, status=None)
        await reference(SERIES, variables, status=None)
        assert _before_extensions(compiled.last_body) == _before_extensions(reference.last_body), (
            variables
        )
        path = got["extensions"]["answeredBy"]
        paths[path] = paths.get(path, 0) + 1
        if path != "resolvers":
            assert got["data"]["kpi"]["series"], variables
    assert PLANS.compilations - planned == 1, paths
    assert paths == {"compiled": 1, "repeated": 9, "resolvers": 2}, paths
