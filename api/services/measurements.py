"""Bulk KPI ingest: thousands of measurements per call, idempotent by (source, externalId).

Valid items go to PostgreSQL in one set-based statement (INSERT ... SELECT FROM
unnest(...) ON CONFLICT DO NOTHING); invalid ones are reported per item and the
rest still land. One audit event per KPI touched records the batch.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from api.models import AuditAction, Kpi
from api.services import audit
from api.services.writes import Actor, Refused, UserError

MAX_BATCH = 10_000
MAX_SOURCE = 100
MAX_EXTERNAL_ID = 200

_INSERT = text(
    """
    INSERT INTO kpi_measurements (kpi_id, observed_at, value, source, external_id)
    SELECT * FROM unnest(
        CAST(:kpi_ids AS bigint[]), CAST(:observed_at AS timestamptz[]),
        CAST(:values AS double precision[]), CAST(:sources AS text[]),
        CAST(:external_ids AS text[])
    )
    ON CONFLICT (source, external_id) DO NOTHING
    RETURNING kpi_id
    """
)


@dataclass(frozen=True)
class MeasurementIn:
    kpi_key: str
    observed_at: datetime
    value: float
    source: str
    external_id: str


@dataclass
class IngestResult:
    received: int = 0
    inserted: int = 0
    duplicates: int = 0
    rejected: int = 0
    errors: list[UserError] = field(default_factory=list)


def _item_errors(index: int, item: MeasurementIn) -> list[UserError]:
    where = f"measurements.{index}"
    errors = []
    if item.observed_at.tzinfo is None:
        errors.append(
            UserError(f"{where}.observed_at", "INVALID", "`observedAt` needs a time zone.")
        )
    if not math.isfinite(item.value):
        errors.append(UserError(f"{where}.value", "INVALID", "`value` must be a finite number."))
    for name, value, limit in (
        ("source", item.source, MAX_SOURCE),
        ("external_id", item.external_id, MAX_EXTERNAL_ID),
    ):
        if not value.strip() or len(value) > limit:
            camel = "externalId" if name == "external_id" else name
            errors.append(
                UserError(
                    f"{where}.{name}",
                    "INVALID",
                    f"`{camel}` must be 1 to {limit} characters, not blank.",
                )
            )
    return errors


async def record(
    session: AsyncSession, actor: Actor, items: Sequence[MeasurementIn]
) -> IngestResult:
    if len(items) > MAX_BATCH:
        raise Refused(
            UserError(
                "measurements",
                "INVALID",
                f"At most {MAX_BATCH} measurements per call; got {len(items)}. Split the batch.",
            )
        )
    result = IngestResult(received=len(items))
    keys = {item.kpi_key for item in items}
    found = await session.execute(
        select(Kpi.key, Kpi.id).where(Kpi.key.in_(keys), Kpi.archived_at.is_(None))
    )
    kpi_ids: dict[str, int] = {key: kpi_id for key, kpi_id in found}

    valid: list[tuple[int, MeasurementIn]] = []
    for index, item in enumerate(items):
        errors = _item_errors(index, item)
        if item.kpi_key not in kpi_ids:
            errors.append(
                UserError(
                    f"measurements.{index}.kpi_key",
                    "NOT_FOUND",
                    f"No KPI with key {item.kpi_key!r}.",
                )
            )
        if errors:
            result.errors += errors
            result.rejected += 1
        else:
            valid.append((kpi_ids[item.kpi_key], item))
    if not valid:
        return result

    rows = await session.execute(
        _INSERT,
        {
            "kpi_ids": [kpi_id for kpi_id, _ in valid],
            "observed_at": [item.observed_at for _, item in valid],
            "values": [item.value for _, item in valid],
            "sources": [item.source for _, item in valid],
            "external_ids": [item.external_id for _, item in valid],
        },
    )
    per_kpi = Counter(kpi_id for (kpi_id,) in rows)
    result.inserted = sum(per_kpi.values())
    result.duplicates = len(valid) - result.inserted
    # One event per KPI touched, written in one statement.
    session.add_all(
        audit.event(actor, "Kpi", kpi_id, AuditAction.RECORD, {"measurements": count})
        for kpi_id, count in sorted(per_kpi.items())
    )
    await session.flush()
    return result
