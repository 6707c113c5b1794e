"""The bulk-ingest fast path: a well-formed batch skips per-item GraphQL coercion, and
answers exactly as the ordinary path does; anything else is left to the ordinary path.

The reference answer comes from the same app with ``prevalidate`` declining every
batch, which is the ordinary path that malformed batches take in production.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from graphql import (
    GraphQLFloat,
    GraphQLInputObjectType,
    GraphQLScalarType,
    GraphQLString,
    Undefined,
)
from sqlalchemy import delete, event, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from domain import models
from schema import build
from schema.mutations import bulk
from schema.types.scalars import DATETIME
from tests.conftest import ALL_SCOPES, GraphQL, make_client
from tests.fixtures import factories
from tests.fixtures.database import StatementCounter

SELECTION = "received inserted duplicates rejected userErrors { field code message }"
# What the bench and most clients send: the whole input as one variable.
BY_INPUT = f"""mutation Ingest($input: RecordKpiMeasurementsInput!) {{
  recordKpiMeasurements(input: $input) {{ {SELECTION} }} }}"""
# The list as a variable inside an input literal (tests/test_measurements.py's form).
BY_LIST = f"""mutation($m: [KpiMeasurementInput!]!) {{
  recordKpiMeasurements(input: {{measurements: $m}}) {{ {SELECTION} }} }}"""

REMAINING = re.compile(rb'"remaining":[0-9]+')


def batch(kpi_key: str, count: int, source: str = "bulk-test", start: int = 0) -> list[Any]:
    return factories.measurement_items(kpi_key, count, source, start, prefix="b")


def body(query: str, variables: dict[str, Any]) -> bytes:
    # Python's json writes NaN and Infinity, as some clients do; strawberry reads them.
    return json.dumps({"query": query, "variables": variables}).encode()


class Ingest:
    """Posts raw bodies; ``reference=True`` answers through the ordinary path."""

    def __init__(self, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch) -> None:
        self.client = client
        self.monkeypatch = monkeypatch

    async def __call__(self, payload: bytes, *, reference: bool = False) -> tuple[int, bytes]:
        """The status and the body, with the caller's remaining budget masked: each call
        spends some, so two calls never show the same number."""
        with self.monkeypatch.context() as patch:
            if reference:
                patch.setattr(bulk, "prevalidate", lambda raw: None)
            response = await self.client.post(
                "/graphql", content=payload, headers={"content-type": "application/json"}
            )
        return response.status_code, REMAINING.sub(b'"remaining":0', response.content)

    async def both(self, payload: bytes) -> tuple[tuple[int, bytes], tuple[int, bytes]]:
        """The fast path's answer, then the ordinary path's (nothing written between)."""
        return await self(payload), await self(payload, reference=True)


@pytest.fixture
async def ingest(
    engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[Ingest]:
    async with make_client(engine, sessions, anonymous_scopes=ALL_SCOPES) as client:
        yield Ingest(client, monkeypatch)


def counted() -> tuple[int, int]:
    return bulk.COUNTERS.prevalidated, bulk.COUNTERS.declined


async def stored(db: AsyncSession, source: str = "bulk-test") -> list[tuple[Any, ...]]:
    rows = await db.execute(
        select(
            models.KpiMeasurement.kpi_id,
            models.KpiMeasurement.observed_at,
            models.KpiMeasurement.value,
            models.KpiMeasurement.source,
            models.KpiMeasurement.external_id,
        )
        .where(models.KpiMeasurement.source == source)
        .order_by(models.KpiMeasurement.external_id)
    )
    return [tuple(row) for row in rows]


async def audited(db: AsyncSession, kpis: list[models.Kpi]) -> list[tuple[Any, ...]]:
    rows = await db.execute(
        select(
            models.AuditEvent.entity_type,
            models.AuditEvent.entity_id,
            models.AuditEvent.action,
            models.AuditEvent.changes,
            models.AuditEvent.actor_user_id,
            models.AuditEvent.actor_client_id,
        )
        .where(
            models.AuditEvent.entity_type == "Kpi",
            models.AuditEvent.entity_id.in_([k.id for k in kpis]),
        )
        .order_by(models.AuditEvent.id)
    )
    return [tuple(row) for row in rows]


async def forget(db: AsyncSession, kpis: list[models.Kpi], source: str = "bulk-test") -> None:
    """Undo a call's writes, so that the ordinary path meets the same database."""
    await db.execute(delete(models.KpiMeasurement).where(models.KpiMeasurement.source == source))
    await db.execute(
        delete(models.AuditEvent).where(
            models.AuditEvent.entity_type == "Kpi",
            models.AuditEvent.entity_id.in_([k.id for k in kpis]),
        )
    )
    await db.commit()


async def same_as_ordinary(
    ingest: Ingest, db: AsyncSession, kpis: list[models.Kpi], payload: bytes
) -> tuple[bytes, list[tuple[Any, ...]]]:
    """Sends ``payload`` through the fast path and, on the same database, through the
    ordinary path; asserts identical answers and writes; returns them."""
    before = counted()
    fast = await ingest(payload)
    assert counted() == (before[0] + 1, before[1])  # answered by the fast path
    fast_rows, fast_events = await stored(db), await audited(db, kpis)
    await forget(db, kpis)
    before = counted()
    ordinary = await ingest(payload, reference=True)
    assert counted() == (before[0], before[1] + 1)  # answered by the ordinary path
    assert fast == ordinary
    assert await stored(db) == fast_rows
    assert await audited(db, kpis) == fast_events
    return fast[1], fast_rows


async def test_a_well_formed_batch_takes_the_fast_path(
    ingest: Ingest, db: AsyncSession, statements: StatementCounter, engine: AsyncEngine
) -> None:
    kpi = await factories.kpi(db)
    await db.commit()
    items = batch(kpi.key, 500)
    # The driver looks up the types (arrays, the audit enum) once per connection.
    await ingest(body(BY_INPUT, {"input": {"measurements": batch(kpi.key, 1, "warm-up")}}))
    # Every statement through SQLAlchemy, DDL included (``statements`` counts data only,
    # on both): the KPI lookup goes by the driver before CREATE, the COPY between
    # CREATE and WITH.
    sent: list[str] = []

    def log(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        word = statement.split(None, 1)[0]
        if word not in {"SAVEPOINT", "RELEASE"}:  # the transaction's, as BEGIN and COMMIT
            sent.append(word)

    event.listen(engine.sync_engine, "before_cursor_execute", log)
    statements.reset()
    before = counted()
    status, answer = await ingest(body(BY_INPUT, {"input": {"measurements": items}}))
    assert counted() == (before[0] + 1, before[1])
    assert status == 200
    assert json.loads(answer)["data"]["recordKpiMeasurements"] == {
        "received": 500,
        "inserted": 500,
        "duplicates": 0,
        "rejected": 0,
        "userErrors": [],
    }
    # The KPIs are looked up, then measurements and audit events go in one statement.
    assert len(statements.statements) == 2, statements.statements
    assert "FROM kpis" in statements.statements[0]
    assert "INSERT INTO kpi_measurements" in statements.statements[1]
    assert "INSERT INTO audit_events" in statements.statements[1]
    event.remove(engine.sync_engine, "before_cursor_execute", log)
    assert sent == ["CREATE", "WITH"], sent
    assert len(await stored(db)) == 500
    assert (await audited(db, [kpi]))[1:] == [
        ("Kpi", kpi.id, models.AuditAction.RECORD, {"measurements": 500}, None, None)
    ]

    # Again, in the list form: all duplicates, in as many statements.
    statements.reset()
    status, answer = await ingest(body(BY_LIST, {"m": items}))
    assert counted() == (before[0] + 2, before[1])
    stats = json.loads(answer)["data"]["recordKpiMeasurements"]
    assert (stats["inserted"], stats["duplicates"]) == (0, 500)
    assert len(statements.statements) == 2
    assert len(await audited(db, [kpi])) == 2  # the warm-up's and the first call's


async def test_valid_batches_answer_and_store_as_the_ordinary_path(
    ingest: Ingest, db: AsyncSession
) -> None:
    first, second = await factories.kpi(db), await factories.kpi(db)
    await db.commit()
    items = batch(first.key, 6) + batch(second.key, 4, start=6)
    # Domain errors are the service's, on both paths.
    items[1]["kpiKey"] = "NO-SUCH-KPI"
    items[2] |= {"source": "   ", "externalId": "x" * 201}
    items[3]["observedAt"] = "2026-06-01T10:00:00"  # no time zone
    # Numbers and datetimes in every form both paths read alike.
    items[4] |= {"value": 7, "observedAt": "2026-06-01T10:00:00.5Z"}
    items[5] |= {"value": -(2**53), "observedAt": "2026-06-01T10:00:00.123456-05:30"}
    items[6]["observedAt"] = "2026-06-01T10:00:00+0200"  # dateutil's, not fromisoformat's
    items[7]["observedAt"] = "2026-06-01 10:00:00Z"  # any separator, in dateutil
    items[8]["observedAt"] = "2026-06-01T24:00:00+00:00"  # midnight at the end of the day
    items[9]["externalId"] = "b-0"  # sent twice in one batch: the first one stays
    answer, rows = await same_as_ordinary(
        ingest, db, [first, second], body(BY_INPUT, {"input": {"measurements": items}})
    )
    stats = json.loads(answer)["data"]["recordKpiMeasurements"]
    assert (stats["received"], stats["inserted"], stats["duplicates"], stats["rejected"]) == (
        10,
        6,
        1,
        3,
    )
    assert [e["field"] for e in stats["userErrors"]] == [
        "measurements.1.kpiKey",
        "measurements.2.source",
        "measurements.2.externalId",
        "measurements.3.observedAt",
    ]
    observed = {row[4]: row[1] for row in rows}
    assert [row[0] for row in rows if row[4] == "b-0"] == [first.id]
    assert observed["b-8"] == datetime(2026, 6, 2, tzinfo=UTC)  # 24:00 is the next day
    assert observed["b-6"] == datetime(2026, 6, 1, 8, tzinfo=UTC)

    # Re-sent through the list form: duplicates, the same on both paths.
    before = counted()
    fast, ordinary = await ingest.both(body(BY_LIST, {"m": items}))
    assert counted() == (before[0] + 1, before[1] + 1)
    assert fast == ordinary
    assert json.loads(fast[1])["data"]["recordKpiMeasurements"]["duplicates"] == 7  # b-0 twice


async def test_a_token_callers_audit_events_match(
    caller: Any,
    db: AsyncSession,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    kpi = await factories.kpi(db)
    await db.commit()
    api: GraphQL = await caller(["kpis:ingest"])
    answer, _ = await same_as_ordinary(
        Ingest(api.client, monkeypatch),
        db,
        [kpi],
        body(BY_INPUT, {"input": {"measurements": batch(kpi.key, 3)}}),
    )
    assert json.loads(answer)["data"]["recordKpiMeasurements"]["inserted"] == 3
    events = await audited(db, [kpi])
    assert len(events) == 1 and events[0][5] is not None  # the token's client


def malformed(kpi_key: str) -> dict[str, Any]:
    """Each kind of batch the fast path leaves to GraphQL, as its ``input`` variable."""

    def one(**changes: Any) -> dict[str, Any]:
        items = batch(kpi_key, 3)
        items[1] = {k: v for k, v in (items[1] | changes).items() if v is not ...}
        return {"measurements": items}

    return {
        "string value": one(value="12.5"),
        "boolean value": one(value=True),
        "integer a float cannot hold": one(value=2**53 + 1),
        "infinite value": one(value=float("inf")),
        "NaN value": one(value=float("nan")),
        "null value": one(value=None),
        "missing field": one(source=...),
        "unknown field": one(unit="%"),
        "number as kpiKey": one(kpiKey=12),
        "null externalId": one(externalId=None),
        "invalid date": one(observedAt="2026-02-30T00:00:00Z"),
        "not a date": one(observedAt="yesterday"),
        "offset minutes over 59": one(observedAt="2026-06-01T10:00:00+01:75"),
        "date as a number": one(observedAt=1780000000),
        "item not an object": {"measurements": [*batch(kpi_key, 1), "m"]},
        "null item": {"measurements": [*batch(kpi_key, 1), None]},
        "measurements null": {"measurements": None},
        "measurements missing": {},
        "extra input field": {"measurements": batch(kpi_key, 1), "dryRun": True},
        "input not an object": [batch(kpi_key, 1)],
    }


@pytest.mark.parametrize("kind", list(malformed("K")))
async def test_a_malformed_batch_gets_todays_graphql_error(
    ingest: Ingest, db: AsyncSession, kind: str
) -> None:
    kpi = await factories.kpi(db)
    await db.commit()
    payload = body(BY_INPUT, {"input": malformed(kpi.key)[kind]})
    before = counted()
    fast, ordinary = await ingest.both(payload)
    # Declined (or never a batch: input not an object) and answered by GraphQL, alike.
    assert counted()[0] == before[0]
    assert fast == ordinary
    status, answer = fast
    assert status == 200
    decoded = json.loads(answer)
    assert "data" not in decoded
    assert decoded["errors"][0]["message"].startswith("Variable '$input' has invalid value")
    assert await stored(db) == []
    assert await audited(db, [kpi]) == []


async def test_malformed_items_in_the_list_form_fall_back_too(
    ingest: Ingest, db: AsyncSession
) -> None:
    kpi = await factories.kpi(db)
    await db.commit()
    items = batch(kpi.key, 2)
    items[1]["value"] = "NaN"
    fast, ordinary = await ingest.both(body(BY_LIST, {"m": items}))
    assert fast == ordinary
    assert json.loads(fast[1])["errors"][0]["message"] == (
        "Variable '$m' has invalid value at [1].value: "
        "Float cannot represent non numeric value: 'NaN'"
    )
    assert await stored(db) == []


@pytest.mark.parametrize("kind", ["lone object", "large integer"])
async def test_unusual_but_valid_batches_are_left_to_graphql(
    ingest: Ingest, db: AsyncSession, kind: str
) -> None:
    """GraphQL reads a lone object as a list of one, and takes integers that a float
    holds exactly, however large: valid, but not the fast path's."""
    kpi = await factories.kpi(db)
    await db.commit()
    items = batch(kpi.key, 1)
    items[0]["value"] = 2**60
    measurements: Any = items[0] if kind == "lone object" else items
    before = counted()
    status, answer = await ingest(body(BY_INPUT, {"input": {"measurements": measurements}}))
    assert counted() == (before[0], before[1] + 1)
    assert json.loads(answer)["data"]["recordKpiMeasurements"]["inserted"] == 1
    assert [row[2] for row in await stored(db)] == [2.0**60]


async def test_over_ten_thousand_is_refused_as_today(ingest: Ingest, db: AsyncSession) -> None:
    kpi = await factories.kpi(db)
    await db.commit()
    payload = body(BY_INPUT, {"input": {"measurements": batch(kpi.key, 10_001)}})
    before = counted()
    fast, ordinary = await ingest.both(payload)
    assert counted() == (before[0], before[1] + 2)
    assert fast == ordinary
    assert json.loads(fast[1])["data"]["recordKpiMeasurements"]["userErrors"] == [
        {
            "field": "measurements",
            "code": "INVALID",
            "message": "At most 10000 measurements per call; got 10001. Split the batch.",
        }
    ]
    assert await stored(db) == []


async def test_several_root_fields_each_get_their_own_batch(
    ingest: Ingest, db: AsyncSession
) -> None:
    first, second = await factories.kpi(db), await factories.kpi(db)
    await db.commit()
    literal = batch(second.key, 1, start=50)[0]
    query = f"""mutation($input: RecordKpiMeasurementsInput!, $m: [KpiMeasurementInput!]!) {{
      a: recordKpiMeasurements(input: $input) {{ inserted duplicates }}
      b: recordKpiMeasurements(input: {{measurements: $m}}) {{ __typename inserted }}
      c: recordKpiMeasurements(input: $input) {{ ...counts }}
      d: recordKpiMeasurements(input: {{measurements: [{{kpiKey: "{literal["kpiKey"]}",
        observedAt: "{literal["observedAt"]}", value: 1, source: "bulk-test",
        externalId: "literal"}}]}}) {{ inserted }}
    }}
    fragment counts on RecordKpiMeasurementsPayload {{ inserted duplicates }}"""
    payload = body(
        query,
        {
            "input": {"measurements": batch(first.key, 3)},
            "m": batch(second.key, 2, start=10),
        },
    )
    before = counted()
    fast = await ingest(payload)
    assert counted() == (before[0] + 3, before[1])  # a, b and c; d is a literal
    assert json.loads(fast[1])["data"] == {
        "a": {"inserted": 3, "duplicates": 0},
        "b": {"__typename": "RecordKpiMeasurementsPayload", "inserted": 2},
        "c": {"inserted": 0, "duplicates": 3},
        "d": {"inserted": 1},
    }
    rows = await stored(db)
    await forget(db, [first, second])
    assert await ingest(payload, reference=True) == fast
    assert await stored(db) == rows


async def test_refusals_before_execution_are_unchanged(
    engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
    caller: Any,
    db: AsyncSession,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    kpi = await factories.kpi(db)
    await db.commit()
    payload = body(BY_INPUT, {"input": {"measurements": batch(kpi.key, 3)}})

    # Too costly: refused by the limits before the fast path looks at the batch.
    async with make_client(
        engine, sessions, anonymous_scopes=ALL_SCOPES, max_query_cost=5
    ) as costly:
        before = counted()
        fast, ordinary = await Ingest(costly, monkeypatch).both(payload)
        assert counted() == before
    assert fast == ordinary
    assert json.loads(fast[1])["errors"][0]["extensions"]["code"] == "QUERY_TOO_COSTLY"

    # Without kpis:ingest: the field is refused; the batch is never used.
    api: GraphQL = await caller(["portfolio:read", "kpis:write"])
    before = counted()
    fast, ordinary = await Ingest(api.client, monkeypatch).both(payload)
    assert counted()[0] == before[0]
    assert fast == ordinary
    assert json.loads(fast[1])["errors"][0]["extensions"] == {
        "code": "FORBIDDEN",
        "requiredScopes": ["kpis:ingest"],
    }
    assert await stored(db) == []


@pytest.mark.parametrize(
    "text",
    [
        "2026-06-01T10:00:00Z",
        "2026-06-01T10:00:00+00:00",
        "2026-06-01T10:00:00-00:00",
        "2026-06-01T10:00:00.1+23:59",
        "2026-06-01T10:00:00.123456-23:59",
        "2026-06-01T10:00:00",
        "0001-01-01T00:00:00Z",
        "9999-12-31T23:59:59.999999+00:00",
        "2024-02-29T00:00:00+01:00",
        "2026-06-01T10:00:00.1234567Z",
        "2026-06-01T10:00:00+24:00",
        "2026-06-01T10:00:60Z",
        "2026-06-01T23:59:60Z",
        "2026-06-01T24:00:00Z",
        "2026-06-01T24:00:01Z",
        "2026-13-01T10:00:00Z",
        "2026-06-01T10:00:00z",
        "2026-06-01T10:00Z",
        "20260601T100000Z",
        "2026-06-01",
        "2026-W22-1T10:00:00Z",
        "٢٠٢٦-06-01T10:00:00Z",
        "2026-06-01T10:00:00+01:00:00",
        "2026-06-01T10:00:00 ",
        "2026-06-01T10:00:00Z\n",
        "",
        "9999-12-31T23:59:59-01:00",  # year 10000 in UTC
        "0001-01-01T00:30:00+01:00",  # year 0 in UTC
    ],
)
def test_datetimes_are_read_as_strawberry_reads_them(text: str) -> None:
    parse = DATETIME.parse_value
    assert parse is not None
    try:
        expected = parse(text)
    except Exception:
        expected = None
    found = bulk._datetime(text)
    assert found == expected
    if found is not None:
        assert isinstance(expected, datetime)
        assert found.utcoffset() == expected.utcoffset()


def test_the_rules_mirrored_are_the_schemas() -> None:
    """The fast path mirrors these types and scalars; a change to them must change it."""
    types = build.schema._schema.type_map
    batch = types[bulk.BATCH_TYPE]
    item = types[bulk.ITEM_TYPE]
    assert isinstance(batch, GraphQLInputObjectType)
    assert isinstance(item, GraphQLInputObjectType)
    assert {name: str(f.type) for name, f in batch.fields.items()} == {
        "measurements": f"[{bulk.ITEM_TYPE}!]!",
        # Given, it sends the batch down the ordinary path (the default is IGNORE).
        "onConflict": "MeasurementConflict!",
    }
    assert {name: str(f.type) for name, f in item.fields.items()} == {
        "kpiKey": "String!",
        "observedAt": "DateTime!",
        "value": "Float!",
        "source": "String!",
        "externalId": "String!",
    }
    assert len(item.fields) == bulk.FIELD_COUNT
    assert all(f.default_value is Undefined for f in item.fields.values())
    assert types["String"] is GraphQLString and types["Float"] is GraphQLFloat
    date_time = types["DateTime"]
    assert isinstance(date_time, GraphQLScalarType)
    assert date_time.coerce_input_value is DATETIME.parse_value
    field = build.schema._schema.mutation_type.fields[bulk.FIELD]  # type: ignore[union-attr]
    assert str(field.args["input"].type) == f"{bulk.BATCH_TYPE}!"
