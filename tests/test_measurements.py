"""Bulk KPI ingest over GraphQL and from files: set-based, idempotent, reported per item."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
from typer.testing import CliRunner

from api.cli import app as cli
from domain import models
from tests.conftest import GraphQL
from tests.fixtures import factories
from tests.fixtures.database import StatementCounter
from tests.test_cli import fresh_database  # noqa: F401  (fixture)

RECORD = """mutation($m: [KpiMeasurementInput!]!) { recordKpiMeasurements(input: {measurements: $m})
  { received inserted duplicates rejected userErrors { field code message } } }"""


def batch(kpi_key: str, count: int, source: str = "test", start: int = 0) -> list[dict[str, Any]]:
    return factories.measurement_items(kpi_key, count, source, start)


async def stored(db: AsyncSession, kpi: models.Kpi) -> int:
    return (
        await db.scalar(
            select(func.count())
            .select_from(models.KpiMeasurement)
            .where(models.KpiMeasurement.kpi_id == kpi.id)
        )
        or 0
    )


async def test_five_thousand_in_one_statement_then_idempotent(
    writer: GraphQL, db: AsyncSession, statements: StatementCounter
) -> None:
    kpi = await factories.kpi(db)
    await db.commit()
    measurements = batch(kpi.key, 5000)
    statements.reset()
    first = (await writer.data(RECORD, {"m": measurements}))["recordKpiMeasurements"]
    assert first == {
        "received": 5000,
        "inserted": 5000,
        "duplicates": 0,
        "rejected": 0,
        "userErrors": [],
    }
    inserts = [s for s in statements.statements if "INSERT INTO kpi_measurements" in s]
    assert len(inserts) == 1
    assert await stored(db, kpi) == 5000

    again = (await writer.data(RECORD, {"m": measurements}))["recordKpiMeasurements"]
    assert (again["inserted"], again["duplicates"]) == (0, 5000)
    assert await stored(db, kpi) == 5000

    events = (
        await db.scalars(
            select(models.AuditEvent).where(
                models.AuditEvent.entity_type == "Kpi",
                models.AuditEvent.entity_id == kpi.id,
                models.AuditEvent.action == models.AuditAction.RECORD,
            )
        )
    ).all()
    assert [event.changes for event in events] == [{"measurements": 5000}]


async def test_bad_items_are_reported_and_the_rest_stored(
    writer: GraphQL, db: AsyncSession
) -> None:
    kpi = await factories.kpi(db)
    await db.commit()
    items = batch(kpi.key, 3)
    items[1] = {**items[1], "kpiKey": "NO-SUCH-KPI"}
    items[2] = {**items[2], "source": " ", "externalId": "x" * 201}
    items.append({**batch(kpi.key, 1, start=9)[0], "observedAt": "2026-06-01T10:00:00"})
    result = (await writer.data(RECORD, {"m": items}))["recordKpiMeasurements"]
    assert (result["received"], result["inserted"], result["rejected"]) == (4, 1, 3)
    assert result["userErrors"] == [
        {
            "field": "measurements.1.kpiKey",
            "code": "NOT_FOUND",
            "message": "No KPI with key 'NO-SUCH-KPI'.",
        },
        {
            "field": "measurements.2.source",
            "code": "INVALID",
            "message": "`source` must be 1 to 100 characters, not blank.",
        },
        {
            "field": "measurements.2.externalId",
            "code": "INVALID",
            "message": "`externalId` must be 1 to 200 characters, not blank.",
        },
        {
            "field": "measurements.3.observedAt",
            "code": "INVALID",
            "message": "`observedAt` needs a time zone.",
        },
    ]
    assert await stored(db, kpi) == 1


async def test_more_than_ten_thousand_is_refused_whole(writer: GraphQL, db: AsyncSession) -> None:
    kpi = await factories.kpi(db)
    await db.commit()
    result = (await writer.data(RECORD, {"m": batch(kpi.key, 10_001)}))["recordKpiMeasurements"]
    assert result == {
        "received": 10_001,
        "inserted": 0,
        "duplicates": 0,
        "rejected": 10_001,
        "userErrors": [
            {
                "field": "measurements",
                "code": "INVALID",
                "message": "At most 10000 measurements per call; got 10001. Split the batch.",
            }
        ],
    }
    assert await stored(db, kpi) == 0


async def test_ingest_needs_its_scope(caller: Any, db: AsyncSession) -> None:
    kpi = await factories.kpi(db)
    await db.commit()
    api = await caller(["portfolio:read", "kpis:write"])
    body = await api(RECORD, {"m": batch(kpi.key, 2)})
    assert body["data"] == {"recordKpiMeasurements": None}
    assert body["errors"][0]["extensions"] == {
        "code": "FORBIDDEN",
        "requiredScopes": ["kpis:ingest"],
    }
    assert await stored(db, kpi) == 0


def test_import_measurements_from_csv_and_ndjson(
    fresh_database: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    runner = CliRunner()
    assert runner.invoke(cli, ["migrate", "upgrade"]).exit_code == 0

    async def make_kpi() -> None:
        engine = create_async_engine(fresh_database)
        async with AsyncSession(engine) as session, session.begin():
            await factories.kpi(session, key="FILE-KPI")
        await engine.dispose()

    asyncio.run(make_kpi())
    csv_file = tmp_path / "m.csv"
    csv_file.write_text(
        "kpiKey,observedAt,value,source,externalId\n"
        + "".join(
            f"FILE-KPI,2026-06-01T0{i}:00:00+00:00,{99 + i / 10},csv,c{i}\n" for i in range(5)
        ),
        encoding="utf-8",
    )
    first = runner.invoke(cli, ["import-measurements", str(csv_file), "--batch-size", "2"])
    assert first.exit_code == 0, first.output
    assert "received 5, inserted 5, duplicates 0, rejected 0" in first.output
    again = runner.invoke(cli, ["import-measurements", str(csv_file)])
    assert "received 5, inserted 0, duplicates 5, rejected 0" in again.output

    ndjson = tmp_path / "m.ndjson"
    lines = [
        {
            "kpi_key": "FILE-KPI",
            "observed_at": "2026-07-01T00:00:00+00:00",
            "value": 1,
            "source": "nd",
            "external_id": "n1",
        },
        {
            "kpiKey": "FILE-KPI",
            "observedAt": "not a date",
            "value": 1,
            "source": "nd",
            "externalId": "n2",
        },
        {
            "kpiKey": "MISSING",
            "observedAt": "2026-07-01T00:00:00+00:00",
            "value": 1,
            "source": "nd",
            "externalId": "n3",
        },
    ]
    ndjson.write_text(
        "\n".join(json.dumps(line) for line in lines) + "\n{broken\n", encoding="utf-8"
    )
    mixed = runner.invoke(cli, ["import-measurements", str(ndjson)])
    assert mixed.exit_code == 1
    assert "received 4, inserted 1, duplicates 0, rejected 3" in mixed.output
    assert "line 2: Invalid isoformat string: 'not a date'" in mixed.output
    assert "line 3: No KPI with key 'MISSING'." in mixed.output
    assert "line 4: invalid JSON" in mixed.output
