"""The dashboard's statement reads each KPI's measurements once per field that needs them:
a trend aggregates its two windows in one pass (``reads.trend_windows``) and its
averages feed the change and direction, never re-aggregated (issue #17). Counted on
the SQL sent, so a regression shows without timing anything."""

from __future__ import annotations

import re
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncConnection

from bench.clients import DASHBOARD_FROM, OURS_DASHBOARD
from bench.workloads import SERIES_TO
from tests.fixtures.database import StatementCounter

READS = ["portfolio:read", "finance:read", "audit:read"]
MEASUREMENTS = re.compile(r"\b(?:FROM|JOIN) kpi_measurements\b")
TRENDS = "{ kpis(first: 100) { nodes { key trend(windowDays: 30) { direction change } } } }"


async def _busiest_product(connection: AsyncConnection) -> str:
    """The demo product with the most measured KPIs (the dashboard shows 10 at most)."""
    return str(
        (
            await connection.exec_driver_sql(
                "SELECT p.key FROM products p JOIN kpis k ON k.product_id = p.id"
                " WHERE p.archived_at IS NULL AND k.archived_at IS NULL"
                " AND EXISTS (SELECT FROM kpi_measurements m WHERE m.kpi_id = k.id)"
                " GROUP BY p.key ORDER BY count(*) DESC, p.key LIMIT 1"
            )
        ).scalar_one()
    )


async def _sent(statements: StatementCounter, ask: Any) -> list[str]:
    statements.reset()
    await ask()
    await statements.delivered()
    return list(statements.statements)


async def test_the_compiled_dashboard_reads_measurements_once_per_field(
    pair: Any, connection: AsyncConnection, statements: StatementCounter
) -> None:
    compiled, reference = pair(READS)
    variables = {
        "key": await _busiest_product(connection),
        "from": DASHBOARD_FROM.isoformat(),
        "to": SERIES_TO.isoformat(),
    }
    [sql] = await _sent(statements, lambda: compiled(OURS_DASHBOARD, variables))
    got = compiled.last_body
    # The latest measurement (latestValue and status, and the trend's end), the trend's
    # two windows in one pass, the last 10 measurements, the series: 4 per KPI row (it
    # was 50: every trend output aggregated the windows again; then 5, the trend
    # looking up the latest measurement again).
    assert len(MEASUREMENTS.findall(sql)) == 4, sql
    assert sql.count("avg(") == 3  # the trend's two windows and the series' buckets

    await reference(OURS_DASHBOARD, variables)
    assert got.split(b',"extensions":')[0] == reference.last_body.split(b',"extensions":')[0]
    nodes = orjson.loads(got)["data"]["product"]["kpis"]["nodes"]
    assert any(node["trend"]["currentAverage"] is not None for node in nodes)  # data to read


async def test_the_resolvers_trend_aggregates_the_windows_once(
    pair: Any, statements: StatementCounter
) -> None:
    """The resolvers' statement: the latest measurement, then both windows in one pass."""
    _, reference = pair(READS)
    sent = await _sent(statements, lambda: reference.data(TRENDS))
    [trend] = [sql for sql in sent if "avg(" in sql]
    assert len(MEASUREMENTS.findall(trend)) == 2, trend
    assert trend.count("avg(") == 2
