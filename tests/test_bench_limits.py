"""bench/limit_sql.py: each workload's hand-written limit statement gives our answer,
byte for byte as orjson writes the `data` (bench/runner.py checks the same before a run),
for requests like the benchmark's, on the demo portfolio."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from sqlalchemy.ext.asyncio import AsyncConnection

from bench.clients import (
    DASHBOARD_FROM,
    OURS_BOARD,
    OURS_DASHBOARD,
    PAGE,
    WALKS,
    client_plans,
    with_walked,
)
from bench.database import Dataset
from bench.limit_sql import CLIENT_LIMITS, Limit
from bench.workloads import (
    LIMITS,
    OURS_NODE,
    OURS_OVERVIEW,
    OURS_SERIES,
    SERIES_TO,
    ReadPlan,
    body,
)
from schema.ids import encode_id
from tests.conftest import GraphQL

WINDOW = {"from": DASHBOARD_FROM.isoformat(), "to": SERIES_TO.isoformat()}


async def _limit_data(connection: AsyncConnection, limit: Limit, pick: Any) -> bytes:
    driver = (await connection.get_raw_connection()).driver_connection
    assert driver is not None
    text = await driver.fetchval(limit.sql, *limit.args(pick))
    return orjson.dumps(orjson.loads(text)["data"])


async def _assert_same(
    gql: GraphQL, connection: AsyncConnection, limit: Limit, query: str, variables: Any, pick: Any
) -> dict[str, Any]:
    ours = await gql.data(query, variables)
    assert await _limit_data(connection, limit, pick) == orjson.dumps(ours), pick
    return ours


async def test_the_pagination_limit_answers_every_page_of_both_walks(
    gql: GraphQL, connection: AsyncConnection
) -> None:
    async def post(request: bytes) -> dict[str, Any]:
        sent = orjson.loads(request)
        return await gql(sent["query"], sent["variables"])

    pages = await WALKS["ours"].bodies(post)
    walked = [orjson.loads(page)["variables"] for page in pages]
    # Forward to the end, then back to the start: more than one page each way.
    assert sum("first" in v for v in walked) >= 3 and sum("last" in v for v in walked) >= 3
    assert walked[0] == {"first": PAGE, "after": None}
    for variables in walked:
        await _assert_same(
            gql, connection, CLIENT_LIMITS["pagination"], WALKS["ours"].query, variables, variables
        )


async def test_the_pagination_limit_leaves_archived_initiatives_out(
    gql: GraphQL, connection: AsyncConnection
) -> None:
    await connection.exec_driver_sql(
        "UPDATE initiatives SET archived_at = now() WHERE id IN "
        "(SELECT id FROM initiatives ORDER BY key, id OFFSET 1 LIMIT 2)"
    )
    variables = {"first": 3, "after": None}
    ours = await _assert_same(
        gql, connection, CLIENT_LIMITS["pagination"], WALKS["ours"].query, variables, variables
    )
    edges = ours["initiatives"]["edges"]
    keys = [
        k
        for (k,) in (
            await connection.exec_driver_sql(
                "SELECT key FROM initiatives WHERE archived_at IS NULL ORDER BY key, id LIMIT 3"
            )
        ).all()
    ]
    assert [edge["node"]["key"] for edge in edges] == keys


async def test_the_dashboard_limit_answers_every_product(
    gql: GraphQL, connection: AsyncConnection
) -> None:
    keys = [
        k
        for (k,) in (
            await connection.exec_driver_sql(
                "SELECT key FROM products WHERE archived_at IS NULL ORDER BY key"
            )
        ).all()
    ]
    answered = 0
    for key in [*keys, "NO-SUCH-PRODUCT"]:
        variables = {"key": key} | WINDOW
        ours = await _assert_same(
            gql, connection, CLIENT_LIMITS["dashboard"], OURS_DASHBOARD, variables, variables
        )
        answered += bool(ours["product"] and ours["product"]["kpis"]["nodes"])
    # Some products have KPIs with trends, measurements and series to compare.
    assert answered >= 3


@pytest.mark.parametrize(
    "variables",
    [
        {"severities": None, "statuses": None, "categories": None, "search": None},
        {"severities": ["BLOCKER", "HIGH"], "statuses": None, "categories": None, "search": "pay"},
        {
            "severities": None,
            "statuses": ["OPEN", "MITIGATING"],
            "categories": ["SECURITY", "COMPLIANCE", "DATA"],
            "search": None,
        },
        {"severities": ["LOW"], "statuses": ["ACCEPTED"], "categories": ["OTHER"], "search": None},
        {"severities": None, "statuses": None, "categories": None, "search": "TLS 1.0 gate"},
        {"severities": None, "statuses": None, "categories": None, "search": "zzzqqq"},
    ],
)
async def test_the_board_limit_answers_the_filters(
    gql: GraphQL, connection: AsyncConnection, variables: dict[str, Any]
) -> None:
    await _assert_same(gql, connection, CLIENT_LIMITS["board"], OURS_BOARD, variables, variables)


async def test_the_original_limits_still_answer_as_we_do(
    gql: GraphQL, connection: AsyncConnection
) -> None:
    first = (await connection.exec_driver_sql("SELECT min(id) FROM initiatives")).scalar_one()
    kpis = [
        k
        for (k,) in (
            await connection.exec_driver_sql("SELECT key FROM kpis ORDER BY key LIMIT 20")
        ).all()
    ]
    await _assert_same(gql, connection, LIMITS["overview"], OURS_OVERVIEW, {"keys": None}, None)
    node = {"id": encode_id("Initiative", first)}
    await _assert_same(gql, connection, LIMITS["node"], OURS_NODE, node, first)
    series = {"keys": kpis} | {"from": "2025-11-01T00:00:00+00:00", "to": SERIES_TO.isoformat()}
    await _assert_same(gql, connection, LIMITS["series"], OURS_SERIES, series, kpis)


DATASET = Dataset(
    product_keys=["PAY", "CHK", "ACCT"],
    initiative_ids=[1],
    initiative_versions={1: 1},
    kpi_keys=["K1"],
    postgres_version="15",
    constraint_words=["payment", "gateway"],
)


def _same_request_everywhere(plan: ReadPlan, index: int) -> None:
    """Ours, the limit over HTTP and the limit without HTTP carry one request's variables."""
    variables = orjson.loads(plan.body("ours", [index]))["variables"]
    sent = orjson.loads(plan.body("limit-http", [index]))
    assert sent == {"workload": plan.workload, "pick": variables}
    assert plan.args([index]) == CLIENT_LIMITS[plan.workload].args(variables)


@pytest.mark.parametrize("workload", ["dashboard", "board"])
def test_each_limit_request_carries_what_ours_varies(workload: str) -> None:
    fixed, varied = client_plans(DATASET, workload, "")
    assert fixed.has_limit and varied.has_limit and varied.limit_sql == CLIENT_LIMITS[workload].sql
    assert fixed.args([]) == CLIENT_LIMITS[workload].args(
        orjson.loads(fixed.body("ours", []))["variables"]
    )
    for index in range(varied.pool_size):
        _same_request_everywhere(varied, index)
    if workload == "board":  # search words and enum lists vary, nulls included
        picks = varied.limit_pool
        assert {p["search"] for p in picks} == {None, "payment", "gateway"}
        assert any(p["severities"] is None for p in picks)
        assert len({orjson.dumps(p) for p in picks}) > 1000


def test_the_limits_take_our_walk_and_the_peer_its_own() -> None:
    _, varied = client_plans(DATASET, "pagination", "")
    pages = [
        body(WALKS["ours"].query, v).decode()
        for v in (
            {"first": PAGE, "after": None},
            {"first": PAGE, "after": "abc"},
            {"last": PAGE, "before": "xyz"},
        )
    ]
    ours = with_walked(varied, "ours", pages)
    assert ours.pool_size == 3
    for index in range(3):
        _same_request_everywhere(ours, index)
    assert ours.args([2]) == (None, None, PAGE, "xyz")
    peer = with_walked(varied, "postgraphile", ["{}", "{}"])
    assert peer.peer.pool == ["{}", "{}"] and peer.limit_http == varied.limit_http
