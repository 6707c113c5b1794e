"""Scalars whose every value PostgreSQL can store.

strawberry's DateTime accepts any instant Python can write, and Python writes years 1
to 9999 in the value's own offset: `9999-12-31T23:59:59-01:00` is year 10000 in UTC,
which PostgreSQL is sent as, so it failed in the database (an internal error). Such a
value is now refused where every other malformed DateTime is, as a coercion error.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import dateutil.parser
from strawberry.schema.types.base_scalars import DateTimeDefinition, wrap_parser
from strawberry.types.scalar import ScalarDefinition


def storable(value: datetime) -> bool:
    """Whether an instant is within years 1–9999 once in UTC (naive ones are UTC)."""
    if value.tzinfo is None:
        return True
    try:
        value.astimezone(UTC)
    except OverflowError:
        return False
    return True


def _parse_datetime(text: str) -> datetime:
    value = dateutil.parser.isoparse(text)
    if not storable(value):
        raise ValueError("It is outside the years 1 to 9999 once in UTC.")
    return value


DATETIME: ScalarDefinition = dataclasses.replace(
    DateTimeDefinition, parse_value=wrap_parser(_parse_datetime, "DateTime")
)
SCALAR_OVERRIDES = {datetime: DATETIME}
