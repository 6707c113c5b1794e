"""Set-based writes: ids reserved from the tables' identity sequences, rows sent by COPY.

Reserving ids up front lets a caller wire foreign keys (parents, links, measurements)
in Python and then send each table in one COPY, instead of one round trip per row
or per parent level. Everything runs on the session's connection, inside the
caller's transaction.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Table, exists, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase

Row = dict[str, Any]


def table_of(target: type[DeclarativeBase] | Table) -> Table:
    table = target if isinstance(target, Table) else target.__table__
    assert isinstance(table, Table)
    return table


async def key_exists(session: AsyncSession, model: type[DeclarativeBase], key: str) -> bool:
    column = table_of(model).c.key
    return bool(await session.scalar(select(exists().where(column == key))))


async def reserve_ids(session: AsyncSession, table: Table, count: int) -> list[int]:
    """``count`` fresh ids from the table's identity sequence; later inserts never collide."""
    if count == 0:
        return []
    result = await session.execute(
        text("SELECT nextval(pg_get_serial_sequence(:table, 'id')) FROM generate_series(1, :n)"),
        {"table": table.name, "n": count},
    )
    return list(result.scalars())


async def copy_rows(
    session: AsyncSession, target: type[DeclarativeBase] | Table, rows: Sequence[Mapping[str, Any]]
) -> int:
    """COPY rows (dicts with the same keys) into the table; columns left out take their
    server defaults (version, timestamps) and generated columns are computed."""
    if not rows:
        return 0
    table = table_of(target)
    columns = list(rows[0])
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    driver = raw.driver_connection  # the asyncpg connection under SQLAlchemy's adapter
    assert driver is not None
    if not driver.is_in_transaction():
        # SQLAlchemy's asyncpg adapter begins its transaction lazily, on the first statement;
        # start it now so the COPY belongs to the caller's transaction and rolls back with it.
        await connection.execute(text("SELECT 1"))
    await driver.copy_records_to_table(
        table.name,
        records=[tuple(row[c] for c in columns) for row in rows],
        columns=columns,
        schema_name=table.schema or "public",
    )
    return len(rows)


async def assign_ids(session: AsyncSession, table: Table, rows: Sequence[Row]) -> dict[str, int]:
    """Give each row (which has a ``key``) a reserved ``id``; return key → id, so rows that
    point at each other (parents) can be wired before anything is sent."""
    ids = await reserve_ids(session, table, len(rows))
    for row, new_id in zip(rows, ids, strict=True):
        row["id"] = new_id
    return {row["key"]: row["id"] for row in rows}


async def insert_keyed(
    session: AsyncSession, model: type[DeclarativeBase], rows: Sequence[Row]
) -> dict[str, int]:
    """Insert rows that have a ``key``; return key → id."""
    ids = await assign_ids(session, table_of(model), rows)
    await copy_rows(session, model, rows)
    return ids
