"""KPI measurement corrections (``recordKpiMeasurements(input: {onConflict})``) and
deletes (``deleteKpiMeasurements``): what each item did, the audit trail that keeps the
old values, and bad input refused precisely with nothing changed."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from domain import models
from schema.ids import encode_id
from schema.mutations import bulk
from tests.conftest import GraphQL

RECORD = """mutation($input: RecordKpiMeasurementsInput!) { recordKpiMeasurements(input: $input) {
  received inserted duplicates rejected corrected
  outcomes { index status measurementId }
  userErrors { field code message } } }"""
DELETE = """mutation($input: DeleteKpiMeasurementsInput!) { deleteKpiMeasurements(input: $input) {
  deleted outcomes { index status measurementId } userErrors { field code message } } }"""
KPI = "PAY-UPTIME"


def item(external_id: str, value: float, at: str = "2026-03-01T10:00:00Z", **more: Any) -> Any:
    return {
        "kpiKey": more.get("kpi", KPI),
        "observedAt": at,
        "value": value,
        "source": more.get("source", "corrections-test"),
        "externalId": external_id,
    }


async def _record(api: GraphQL, items: list[Any], mode: str | None = None) -> dict[str, Any]:
    input_: dict[str, Any] = {"measurements": items}
    if mode is not None:
        input_["onConflict"] = mode
    return (await api.data(RECORD, {"input": input_}))["recordKpiMeasurements"]


async def _stored(db: AsyncSession, external_id: str) -> models.KpiMeasurement | None:
    db.expire_all()
    return await db.scalar(
        select(models.KpiMeasurement).where(
            models.KpiMeasurement.source == "corrections-test",
            models.KpiMeasurement.external_id == external_id,
        )
    )


async def _state(db: AsyncSession) -> tuple[int, int, list[tuple[str, float]]]:
    """Measurements and audit events in all, and this test source's values."""
    db.expire_all()
    measurements = await db.scalar(select(func.count()).select_from(models.KpiMeasurement))
    events = await db.scalar(select(func.count()).select_from(models.AuditEvent))
    rows = await db.execute(
        select(models.KpiMeasurement.external_id, models.KpiMeasurement.value)
        .where(models.KpiMeasurement.source == "corrections-test")
        .order_by(models.KpiMeasurement.external_id)
    )
    return measurements or 0, events or 0, [(r[0], r[1]) for r in rows]


async def test_the_default_keeps_todays_behaviour(writer: GraphQL, db: AsyncSession) -> None:
    await _record(writer, [item("c-1", 99.5)])
    again = await _record(writer, [item("c-1", 12.0)])
    assert again["inserted"] == 0
    assert again["duplicates"] == 1
    assert again["corrected"] == 0
    assert again["outcomes"] is None  # the counting fast path
    stored = await _stored(db, "c-1")
    assert stored is not None and stored.value == 99.5


async def test_correct_replaces_the_value_and_the_audit_trail_keeps_the_old(
    writer: GraphQL, db: AsyncSession
) -> None:
    first = await _record(writer, [item("c-1", 99.5), item("c-2", 98.0)], "CORRECT")
    assert [o["status"] for o in first["outcomes"]] == ["CREATED", "CREATED"]
    created = await _stored(db, "c-1")
    assert created is not None
    measurement_id = encode_id("KpiMeasurement", created.id)
    assert first["outcomes"][0]["measurementId"] == measurement_id

    result = await _record(
        writer,
        [item("c-1", 97.25, at="2026-03-01T10:05:00Z"), item("c-2", 98.0), item("c-3", 1.0)],
        "CORRECT",
    )
    assert [(o["index"], o["status"]) for o in result["outcomes"]] == [
        (0, "CORRECTED"),
        (1, "UNCHANGED"),
        (2, "CREATED"),
    ]
    assert result["outcomes"][0]["measurementId"] == measurement_id
    assert (result["inserted"], result["duplicates"], result["corrected"]) == (1, 1, 1)
    assert result["userErrors"] == []
    stored = await _stored(db, "c-1")
    assert stored is not None and stored.value == 97.25 and stored.id == created.id

    trail = await writer.data(
        '{ auditEvents(filter: {entityTypes: ["KpiMeasurement"]}, last: 5) '
        "{ nodes { action entityId changes } } }"
    )
    events = trail["auditEvents"]["nodes"]
    assert len(events) == 1
    assert events[0]["action"] == "UPDATE"
    assert events[0]["entityId"] == measurement_id
    assert events[0]["changes"]["value"] == {"before": 99.5, "after": 97.25}
    assert events[0]["changes"]["observedAt"]["before"].startswith("2026-03-01T10:00:00")
    assert events[0]["changes"]["observedAt"]["after"].startswith("2026-03-01T10:05:00")


async def test_refuse_reports_a_conflict_and_keeps_the_stored_value(
    writer: GraphQL, db: AsyncSession
) -> None:
    await _record(writer, [item("c-1", 99.5)])
    before = await _state(db)
    result = await _record(writer, [item("c-1", 12.0), item("c-1b", 5.0)], "REFUSE")
    assert [o["status"] for o in result["outcomes"]] == ["REFUSED", "CREATED"]
    assert result["userErrors"] == [
        {
            "field": "measurements.0.value",
            "code": "CONFLICT",
            "message": "A measurement with this (source, externalId) is stored with another "
            "value; send onConflict: CORRECT to replace it.",
        }
    ]
    assert (result["rejected"], result["inserted"]) == (1, 1)
    stored = await _stored(db, "c-1")
    assert stored is not None and stored.value == 99.5
    after = await _state(db)
    assert after[0] == before[0] + 1  # only c-1b
    # The same value again is no conflict.
    same = await _record(writer, [item("c-1", 99.5)], "REFUSE")
    assert [o["status"] for o in same["outcomes"]] == ["UNCHANGED"]
    assert same["userErrors"] == []


async def test_a_repeat_within_one_call_is_refused_with_corrections(writer: GraphQL) -> None:
    result = await _record(writer, [item("c-9", 1.0), item("c-9", 2.0)], "CORRECT")
    assert [o["status"] for o in result["outcomes"]] == ["CREATED", "REFUSED"]
    assert result["userErrors"] == [
        {
            "field": "measurements.1.externalId",
            "code": "INVALID",
            "message": "Measurement 0 has the same (source, externalId): with onConflict "
            "CORRECT each may appear once per call.",
        }
    ]


async def test_invalid_items_are_refused_beside_the_valid_ones(
    writer: GraphQL, db: AsyncSession
) -> None:
    result = await _record(writer, [item("c-5", 1.0, kpi="NOPE-KPI"), item("c-6", 2.0)], "REFUSE")
    assert [o["status"] for o in result["outcomes"]] == ["REFUSED", "CREATED"]
    assert result["userErrors"] == [
        {
            "field": "measurements.0.kpiKey",
            "code": "NOT_FOUND",
            "message": "No KPI with key 'NOPE-KPI'.",
        }
    ]
    assert await _stored(db, "c-5") is None


async def test_bad_conflict_mode_is_refused_and_changes_nothing(
    writer: GraphQL, db: AsyncSession
) -> None:
    before = await _state(db)
    body = await writer(
        RECORD, {"input": {"measurements": [item("c-7", 1.0)], "onConflict": "OVERWRITE"}}
    )
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert (
        "Value 'OVERWRITE' does not exist in 'MeasurementConflict' enum"
        in (body["errors"][0]["message"])
    )
    assert await _state(db) == before


# --- deletes --------------------------------------------------------------------------


async def test_delete_by_id_and_by_reference_keeps_the_values_in_the_audit_trail(
    writer: GraphQL, db: AsyncSession
) -> None:
    await _record(writer, [item("d-1", 10.0), item("d-2", 20.0), item("d-3", 30.0)])
    first = await _stored(db, "d-1")
    assert first is not None
    first_id = encode_id("KpiMeasurement", first.id)
    first_kpi = encode_id("Kpi", first.kpi_id)
    result = (
        await writer.data(
            DELETE,
            {
                "input": {
                    "measurements": [
                        {"id": first_id},
                        {"source": "corrections-test", "externalId": "d-2"},
                        {"source": "corrections-test", "externalId": "gone"},
                    ]
                }
            },
        )
    )["deleteKpiMeasurements"]
    assert result["deleted"] == 2
    assert [(o["status"], o["measurementId"] is not None) for o in result["outcomes"]] == [
        ("DELETED", True),
        ("DELETED", True),
        ("REFUSED", False),
    ]
    assert result["outcomes"][0]["measurementId"] == first_id
    assert result["userErrors"] == [
        {"field": "measurements.2", "code": "NOT_FOUND", "message": "No measurement matches this."}
    ]
    assert [r[0] for r in (await _state(db))[2]] == ["d-3"]
    trail = await writer.data(
        '{ auditEvents(filter: {entityTypes: ["KpiMeasurement"]}, last: 5) '
        "{ nodes { action entityId changes } } }"
    )
    deletes = [e for e in trail["auditEvents"]["nodes"] if e["action"] == "DELETE"]
    assert [e["entityId"] for e in deletes][0] == first_id
    assert deletes[0]["changes"]["value"] == {"before": 10.0, "after": None}
    assert deletes[0]["changes"]["externalId"] == {"before": "d-1", "after": None}
    assert deletes[0]["changes"]["kpi"]["before"] == first_kpi
    assert deletes[0]["changes"]["kpi"]["after"] is None


@pytest.mark.parametrize(
    ("selectors", "errors"),
    [
        (
            [],
            [("measurements", "INVALID", "Name 1 to 1000 measurements per call; got 0.")],
        ),
        (
            [{"source": "corrections-test"}],
            [("measurements.0", "INVALID", "Give either `id`, or both `source` and `externalId`.")],
        ),
        (
            [{"source": "", "externalId": "d-1"}],
            [("measurements.0", "INVALID", "Give either `id`, or both `source` and `externalId`.")],
        ),
        (
            [{}],
            [("measurements.0", "INVALID", "Give either `id`, or both `source` and `externalId`.")],
        ),
        (
            [{"source": "corrections-test", "externalId": "d-1"}, {"id": "WRONG"}],
            [("measurements.1.id", "INVALID", "`WRONG` is not a valid global ID.")],
        ),
        (
            [{"source": "corrections-test", "externalId": "d-1"}, {"id": "TEAM_ID"}],
            [("measurements.1.id", "INVALID", "`measurements.1.id` expects a KpiMeasurement ID.")],
        ),
    ],
)
async def test_bad_delete_input_is_refused_whole_and_changes_nothing(
    writer: GraphQL, db: AsyncSession, selectors: list[Any], errors: list[tuple[str, str, str]]
) -> None:
    await _record(writer, [item("d-1", 10.0)])
    team = await db.scalar(select(models.Team.id).limit(1))
    assert team is not None
    for selector in selectors:
        if selector.get("id") == "TEAM_ID":
            selector["id"] = encode_id("Team", team)
    before = await _state(db)
    result = (await writer.data(DELETE, {"input": {"measurements": selectors}}))[
        "deleteKpiMeasurements"
    ]
    assert [(e["field"], e["code"], e["message"]) for e in result["userErrors"]] == errors
    assert result["deleted"] == 0
    assert {o["status"] for o in result["outcomes"]} <= {"REFUSED"}
    assert await _state(db) == before


async def test_deleting_needs_kpis_ingest(caller: Any, db: AsyncSession) -> None:
    before = await _state(db)
    reader = await caller(["portfolio:read", "kpis:write"])
    body = await reader(
        DELETE, {"input": {"measurements": [{"source": "corrections-test", "externalId": "x"}]}}
    )
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert "kpis:ingest" in body["errors"][0]["message"]
    assert await _state(db) == before


async def test_a_prevalidated_batch_beside_an_on_conflict_literal_is_corrected(
    writer: GraphQL, db: AsyncSession
) -> None:
    """``{measurements: $m, onConflict: CORRECT}``: the fast path takes the list (the
    variable) and the resolver still honours the literal mode."""
    taken = bulk.COUNTERS.prevalidated
    await _record(writer, [item("p-1", 1.0)])
    result = (
        await writer.data(
            "mutation($m: [KpiMeasurementInput!]!) { recordKpiMeasurements(input: "
            "{measurements: $m, onConflict: CORRECT}) { corrected outcomes { status } } }",
            {"m": [item("p-1", 2.0)]},
        )
    )["recordKpiMeasurements"]
    assert bulk.COUNTERS.prevalidated == taken + 2
    assert result == {"corrected": 1, "outcomes": [{"status": "CORRECTED"}]}
    stored = await _stored(db, "p-1")
    assert stored is not None and stored.value == 2.0
