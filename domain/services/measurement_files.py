"""Reading measurements from CSV or NDJSON files, for `portfolio import-measurements`.

Both formats carry the fields of the GraphQL input: kpiKey, observedAt (ISO 8601
with an offset), value, source, externalId (snake_case column names work too).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from domain.services.measurements import MeasurementIn

FIELDS = {
    "kpi_key": ("kpiKey", "kpi_key"),
    "observed_at": ("observedAt", "observed_at"),
    "value": ("value",),
    "source": ("source",),
    "external_id": ("externalId", "external_id"),
}


@dataclass(frozen=True)
class BadLine:
    message: str


def read_measurements(path: Path) -> Iterator[tuple[int, MeasurementIn | BadLine]]:
    """Yield (line number, record or why the line could not be read)."""
    with path.open(encoding="utf-8", newline="") as handle:
        if path.suffix.lower() in {".ndjson", ".jsonl"}:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                    if not isinstance(record, dict):
                        raise ValueError("not a JSON object")
                except ValueError as error:
                    yield number, BadLine(f"invalid JSON: {error}")
                    continue
                yield number, _parse(record)
        else:
            for number, record in enumerate(csv.DictReader(handle), start=2):
                yield number, _parse(record)


def _parse(record: dict[str, Any]) -> MeasurementIn | BadLine:
    values: dict[str, Any] = {}
    for field, names in FIELDS.items():
        found = next((record[n] for n in names if record.get(n) not in (None, "")), None)
        if found is None:
            return BadLine(f"missing {names[0]}")
        values[field] = found
    try:
        observed_at = datetime.fromisoformat(str(values["observed_at"]))
        value = float(values["value"])
    except ValueError as error:
        return BadLine(str(error))
    return MeasurementIn(
        kpi_key=str(values["kpi_key"]),
        observed_at=observed_at,
        value=value,
        source=str(values["source"]),
        external_id=str(values["external_id"]),
    )
