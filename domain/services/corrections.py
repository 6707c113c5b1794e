"""KPI measurements sent again with other values, and measurements deleted.

``recordKpiMeasurements`` is idempotent by (source, externalId). What a re-sent
measurement with another value (or instant, or KPI) does is the caller's choice
(``MeasurementConflict``): IGNORE keeps the stored one (the default, and the only behaviour
before; ``measurements.record``, the counting fast path), CORRECT replaces it and
records the old and new values in the audit trail (a ``KpiMeasurement`` UPDATE event),
REFUSE leaves it and reports a CONFLICT for that item. The two last report each item's
outcome. Deletes record the deleted values (a DELETE event), so nothing is lost.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from domain.database import session_driver
from domain.models import AuditAction
from domain.services import audit
from domain.services.measurements import (
    MAX_BATCH,
    Batch,
    IngestResult,
    ItemOutcome,
    MeasurementStatus,
    kpi_ids_by_key,
    valid_items,
)
from domain.services.writes import Actor, Refused, UserError

MAX_DELETE = 1_000


class MeasurementConflict(StrEnum):
    IGNORE = "IGNORE"
    CORRECT = "CORRECT"
    REFUSE = "REFUSE"


# The stored measurements the valid items name, locked: a concurrent correction of the
# same measurement waits, and then sees this one's values.
_STORED = """
SELECT i.position, m.id, m.kpi_id, m.observed_at, m.value
FROM unnest($1::int[], $2::text[], $3::text[]) AS i(position, source, external_id)
JOIN kpi_measurements m ON m.source = i.source AND m.external_id = i.external_id
ORDER BY m.id
FOR UPDATE OF m
"""
# New measurements and one RECORD event per KPI that gained any (as the fast path).
_INSERT = """
WITH inserted AS (
    INSERT INTO kpi_measurements (kpi_id, observed_at, value, source, external_id)
    SELECT * FROM unnest($1::bigint[], $2::timestamptz[], $3::float8[], $4::text[], $5::text[])
    ON CONFLICT (source, external_id) DO NOTHING
    RETURNING id, kpi_id, source, external_id
), audited AS (
    INSERT INTO audit_events
        (actor_user_id, actor_client_id, entity_type, entity_id, action, changes)
    SELECT $6::bigint, $7::bigint, 'Kpi', kpi_id, 'RECORD',
        jsonb_build_object('measurements', count(*))
    FROM inserted GROUP BY kpi_id ORDER BY kpi_id
)
SELECT id, source, external_id FROM inserted
"""
# Corrections and their UPDATE events (old and new values), in one statement.
_CORRECT = """
WITH corrected AS (
    UPDATE kpi_measurements m
    SET kpi_id = c.kpi_id, observed_at = c.observed_at, value = c.value
    FROM unnest($1::bigint[], $2::bigint[], $3::timestamptz[], $4::float8[], $5::text[])
        AS c(id, kpi_id, observed_at, value, changes)
    WHERE m.id = c.id
    RETURNING m.id, c.changes
)
INSERT INTO audit_events
    (actor_user_id, actor_client_id, entity_type, entity_id, action, changes)
SELECT $6::bigint, $7::bigint, 'KpiMeasurement', id, 'UPDATE', changes::jsonb
FROM corrected ORDER BY id
"""
_DELETE = """
DELETE FROM kpi_measurements m
USING unnest($1::bigint[], $2::text[], $3::text[]) AS w(id, source, external_id)
WHERE (w.id IS NOT NULL AND m.id = w.id)
   OR (w.id IS NULL AND m.source = w.source AND m.external_id = w.external_id)
RETURNING m.id, m.kpi_id, m.observed_at, m.value, m.source, m.external_id
"""
_EVENTS = """
INSERT INTO audit_events
    (actor_user_id, actor_client_id, entity_type, entity_id, action, changes)
SELECT $1::bigint, $2::bigint, 'KpiMeasurement', id, $3::audit_action, changes::jsonb
FROM unnest($4::bigint[], $5::text[]) AS e(id, changes) ORDER BY id
"""
_COMPARED = ("kpi_id", "observed_at", "value")


async def record_resolving(
    session: AsyncSession, actor: Actor, batch: Batch, mode: MeasurementConflict
) -> IngestResult:
    """Record ``batch`` (CORRECT or REFUSE), saying what happened to each item."""
    if len(batch) > MAX_BATCH:
        raise Refused(
            UserError(
                "measurements",
                "INVALID",
                f"At most {MAX_BATCH} measurements per call; got {len(batch)}. Split the batch.",
            )
        )
    result = IngestResult(received=len(batch))
    driver = await session_driver(session)
    kpi_ids = await kpi_ids_by_key(driver, batch)
    valid, ids, positions = valid_items(batch, [kpi_ids.get(k) for k in batch.kpi_keys], result)
    statuses: dict[int, ItemOutcome] = {}
    wanted: dict[int, tuple[int, Any, float, str, str]] = {}  # position -> new values
    first_of: dict[tuple[str, str], int] = {}
    for offset, position in enumerate(positions):
        reference = (valid.sources[offset], valid.external_ids[offset])
        earlier = first_of.setdefault(reference, position)
        if earlier != position:
            result.errors.append(
                UserError(
                    f"measurements.{position}.external_id",
                    "INVALID",
                    f"Measurement {earlier} has the same (source, externalId): with onConflict "
                    f"{mode.value} each may appear once per call.",
                )
            )
            result.rejected += 1
            continue
        wanted[position] = (
            ids[offset],
            valid.observed_at[offset],
            valid.values[offset],
            *reference,
        )

    stored = await driver.fetch(
        _STORED,
        list(wanted),
        [values[3] for values in wanted.values()],
        [values[4] for values in wanted.values()],
    )
    corrections: list[tuple[int, int, Any, float, str]] = []
    for row in stored:
        position = row["position"]
        kpi_id, observed_at, value, _, _ = wanted.pop(position)
        new = {"kpi_id": kpi_id, "observed_at": observed_at, "value": value}
        changed = {name: new[name] for name in _COMPARED if row[name] != new[name]}
        if not changed:
            statuses[position] = ItemOutcome(position, MeasurementStatus.UNCHANGED, row["id"])
            result.duplicates += 1
        elif mode is MeasurementConflict.REFUSE:
            statuses[position] = ItemOutcome(position, MeasurementStatus.REFUSED, row["id"])
            result.rejected += 1
            result.errors.append(
                UserError(
                    f"measurements.{position}.value",
                    "CONFLICT",
                    "A measurement with this (source, externalId) is stored with another "
                    f"{' and '.join(_camel(n) for n in changed)}; send onConflict: CORRECT to "
                    "replace it.",
                )
            )
        else:
            statuses[position] = ItemOutcome(position, MeasurementStatus.CORRECTED, row["id"])
            result.corrected += 1
            changes = {
                name: {"before": audit.to_json(row[name]), "after": audit.to_json(after)}
                for name, after in changed.items()
            }
            corrections.append((row["id"], kpi_id, observed_at, value, json.dumps(changes)))

    if wanted:
        inserted = await driver.fetch(
            _INSERT,
            *(list(column) for column in zip(*wanted.values(), strict=True)),
            actor.user_id,
            actor.client_id,
        )
        by_reference = {(r["source"], r["external_id"]): r["id"] for r in inserted}
        for position, (_, _, _, source, external_id) in wanted.items():
            new_id = by_reference.get((source, external_id))
            if new_id is None:  # stored meanwhile by a concurrent call: left as it is
                statuses[position] = ItemOutcome(position, MeasurementStatus.UNCHANGED)
                result.duplicates += 1
            else:
                statuses[position] = ItemOutcome(position, MeasurementStatus.CREATED, new_id)
                result.inserted += 1
    if corrections:
        await driver.execute(
            _CORRECT,
            *(list(column) for column in zip(*corrections, strict=True)),
            actor.user_id,
            actor.client_id,
        )
    result.outcomes = [
        statuses.get(index, ItemOutcome(index, MeasurementStatus.REFUSED))
        for index in range(len(batch))
    ]
    return result


@dataclass(frozen=True)
class MeasurementSelector:
    """One measurement to delete: by id, or by (source, externalId)."""

    measurement_id: int | None = None
    source: str | None = None
    external_id: str | None = None


@dataclass
class DeleteResult:
    deleted: int
    outcomes: list[ItemOutcome]
    errors: list[UserError]


async def delete(
    session: AsyncSession, actor: Actor, selectors: Sequence[MeasurementSelector]
) -> DeleteResult:
    """Delete the measurements named, each recorded with its values in a DELETE event;
    NOT_FOUND (and REFUSED) for those that name nothing."""
    _check_selectors(selectors)
    driver = await session_driver(session)
    rows = await driver.fetch(
        _DELETE,
        [s.measurement_id for s in selectors],
        [s.source for s in selectors],
        [s.external_id for s in selectors],
    )
    if rows:
        events = [
            (
                row["id"],
                json.dumps(
                    {
                        name: {"before": audit.to_json(row[name]), "after": None}
                        for name in ("kpi_id", "observed_at", "value", "source", "external_id")
                    }
                ),
            )
            for row in rows
        ]
        await driver.execute(
            _EVENTS,
            actor.user_id,
            actor.client_id,
            AuditAction.DELETE.value,
            [e[0] for e in events],
            [e[1] for e in events],
        )
    by_id = {row["id"]: row["id"] for row in rows}
    by_reference = {(row["source"], row["external_id"]): row["id"] for row in rows}
    outcomes: list[ItemOutcome] = []
    errors: list[UserError] = []
    for index, selector in enumerate(selectors):
        found = (
            by_id.get(selector.measurement_id)
            if selector.measurement_id is not None
            else by_reference.get((str(selector.source), str(selector.external_id)))
        )
        if found is None:
            outcomes.append(ItemOutcome(index, MeasurementStatus.REFUSED))
            errors.append(
                UserError(f"measurements.{index}", "NOT_FOUND", "No measurement matches this.")
            )
        else:
            outcomes.append(ItemOutcome(index, MeasurementStatus.DELETED, found))
    return DeleteResult(deleted=len(rows), outcomes=outcomes, errors=errors)


def _check_selectors(selectors: Sequence[MeasurementSelector]) -> None:
    """Each selector names one measurement one way; refused whole, before any delete."""
    errors = []
    if not selectors or len(selectors) > MAX_DELETE:
        raise Refused(
            UserError(
                "measurements",
                "INVALID",
                f"Name 1 to {MAX_DELETE} measurements per call; got {len(selectors)}.",
            )
        )
    for index, selector in enumerate(selectors):
        has_id = selector.measurement_id is not None
        has_reference = bool(selector.source) and bool(selector.external_id)
        partial = not has_reference and (
            selector.source is not None or selector.external_id is not None
        )
        if has_id == has_reference or partial:
            errors.append(
                UserError(
                    f"measurements.{index}",
                    "INVALID",
                    "Give either `id`, or both `source` and `externalId`.",
                )
            )
    if errors:
        raise Refused(*errors)


def _camel(name: str) -> str:
    return {"kpi_id": "KPI", "observed_at": "observedAt", "value": "value"}[name]
