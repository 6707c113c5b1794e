"""Keyset-paginated connections, batched over many parents in one statement.

One SQL statement answers a page for every parent at once (window functions
partitioned by the parent key), so nested connections cost one statement per
level of the query, whatever the number of rows.

Cursors are opaque: base64 of ``[ordering, sort value, id]``. A cursor is only
valid with the ordering it was issued for.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import Enum
from typing import Any, Generic, TypeVar

import orjson
from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    func,
    literal,
    not_,
    or_,
    select,
    true,
    tuple_,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from domain.errors import InvalidInput

T = TypeVar("T")

DEFAULT_PAGE_SIZE = 20


@dataclass(frozen=True)
class Ordering:
    """A sort key: a non-null SQL expression and a direction; ``id`` breaks ties."""

    name: str
    expression: ColumnElement[Any]
    descending: bool = False


@dataclass(frozen=True)
class Cursor:
    ordering: str
    value: Any
    id: int


@dataclass(frozen=True)
class PageRequest:
    first: int | None = None
    after: Cursor | None = None
    last: int | None = None
    before: Cursor | None = None

    @property
    def size(self) -> int:
        if self.last is not None:
            return self.last
        return self.first if self.first is not None else DEFAULT_PAGE_SIZE

    @property
    def backwards(self) -> bool:
        return self.last is not None


@dataclass
class Page(Generic[T]):
    rows: list[T] = field(default_factory=list)
    cursors: list[str] = field(default_factory=list)
    total_count: int = 0
    has_next_page: bool = False
    has_previous_page: bool = False


def encode_cursor(ordering: str, value: Any, row_id: int) -> str:
    if isinstance(value, date | datetime):
        value = value.isoformat()
    raw = orjson.dumps([ordering, value, row_id])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(text: str, argument: str) -> Cursor:
    try:
        padded = text + "=" * (-len(text) % 4)
        ordering, value, row_id = orjson.loads(base64.urlsafe_b64decode(padded))
        if not isinstance(ordering, str) or not isinstance(row_id, int):
            raise ValueError
    except (ValueError, TypeError, binascii.Error, orjson.JSONDecodeError):
        raise InvalidInput(f"`{argument}` is not a valid cursor.", field=argument) from None
    return Cursor(ordering, value, row_id)


def page_request(
    *,
    first: int | None,
    after: str | None,
    last: int | None,
    before: str | None,
    max_page_size: int,
) -> PageRequest:
    """Validate Relay pagination arguments."""
    if first is not None and last is not None:
        raise InvalidInput("Pass either `first` or `last`, not both.", field="first")
    for name, value in (("first", first), ("last", last)):
        if value is not None and not 0 <= value <= max_page_size:
            raise InvalidInput(
                f"`{name}` must be between 0 and {max_page_size}; got {value}.", field=name
            )
    return PageRequest(
        first=first,
        after=decode_cursor(after, "after") if after is not None else None,
        last=last,
        before=decode_cursor(before, "before") if before is not None else None,
    )


def _coerce(value: Any, sample: ColumnElement[Any], argument: str) -> Any:
    """Turn a cursor's JSON value back into the sort expression's Python type."""
    try:
        python_type = sample.type.python_type
    except NotImplementedError:
        return value
    try:
        if python_type is datetime:
            return datetime.fromisoformat(value)
        if python_type is date:
            return date.fromisoformat(value)
        if issubclass(python_type, Enum):
            return python_type(value)
        if python_type is float and isinstance(value, int | float):
            return float(value)
        if isinstance(value, python_type):
            return value
    except (TypeError, ValueError):
        pass
    raise InvalidInput(f"`{argument}` is not a valid cursor.", field=argument)


def _beyond(
    ordering: Ordering, cursor: Cursor, id_column: ColumnElement[int], *, after: bool, argument: str
) -> ColumnElement[bool]:
    if cursor.ordering != ordering.name:
        raise InvalidInput(
            f"`{argument}` was issued for ordering {cursor.ordering}, not {ordering.name}.",
            field=argument,
        )
    value = literal(_coerce(cursor.value, ordering.expression, argument), ordering.expression.type)
    row = tuple_(ordering.expression, id_column)
    bound = tuple_(value, literal(cursor.id))
    forward = after != ordering.descending
    return row > bound if forward else row < bound


async def fetch_pages(
    session: AsyncSession,
    statement: Select[Any],
    *,
    entity: type[T],
    id_column: ColumnElement[int],
    ordering: Ordering,
    page: PageRequest,
    partition: ColumnElement[Any] | None = None,
    parents: Sequence[Hashable] = (),
) -> dict[Hashable, Page[T]]:
    """Run one statement returning a page of ``entity`` per parent.

    ``statement`` selects ``entity`` with every filter applied; ``partition`` is
    the parent key column (None for a root list, whose single page has key None).
    """
    part = partition if partition is not None else literal(0)
    after = (
        _beyond(ordering, page.after, id_column, after=True, argument="after")
        if page.after
        else true()
    )
    before = (
        _beyond(ordering, page.before, id_column, after=False, argument="before")
        if page.before
        else true()
    )
    ranked = statement.add_columns(
        part.label("page_parent"),
        ordering.expression.label("page_sort"),
        func.count().over(partition_by=part).label("page_total"),
        func.count().filter(not_(after)).over(partition_by=part).label("page_before"),
        func.count().filter(not_(before)).over(partition_by=part).label("page_after"),
        and_(after, before).label("page_in_window"),
        # One row of each partition is kept even when the cursors leave none in the
        # window: it carries the counts (a page after the last item still has a
        # totalCount and a previous page), not an item.
        func.row_number().over(partition_by=part).label("page_any"),
    ).subquery("ranked")

    reverse = ordering.descending != page.backwards
    sort_order = [ranked.c.page_sort, ranked.c.id]
    numbered = (
        select(
            ranked,
            func.row_number()
            .over(
                partition_by=ranked.c.page_parent,
                order_by=[
                    ranked.c.page_in_window.desc(),  # items first, the counting row last
                    *(c.desc() if reverse else c.asc() for c in sort_order),
                ],
            )
            .label("page_rn"),
        )
        .where(or_(ranked.c.page_in_window, ranked.c.page_any == 1))
        .subquery("numbered")
    )
    row = aliased(entity, numbered)
    size = page.size
    final = (
        select(
            row,
            numbered.c.page_parent,
            numbered.c.page_sort,
            numbered.c.page_total,
            numbered.c.page_before,
            numbered.c.page_after,
            numbered.c.page_in_window,
        )
        .where(numbered.c.page_rn <= size + 1)
        .order_by(numbered.c.page_parent, numbered.c.page_rn)
    )
    result = await session.execute(final)

    pages: dict[Hashable, Page[T]] = {
        key: Page() for key in (parents if partition is not None else [None])
    }
    counted: dict[Hashable, int] = {}
    for obj, parent, sort_value, total, n_before, n_after, in_window in result:
        key = parent if partition is not None else None
        current = pages.setdefault(key, Page())
        current.total_count = total
        current.has_previous_page = current.has_previous_page or (bool(page.after) and n_before > 0)
        current.has_next_page = current.has_next_page or (bool(page.before) and n_after > 0)
        if not in_window:
            continue  # the counting row of a partition with no item in the window
        counted[key] = counted.get(key, 0) + 1
        if counted[key] > size:
            # The extra row only says that there is more in the direction of travel.
            if page.backwards:
                current.has_previous_page = True
            else:
                current.has_next_page = True
            continue
        current.rows.append(obj)
        current.cursors.append(encode_cursor(ordering.name, sort_value, obj.id))
    if page.backwards:
        for current in pages.values():
            current.rows.reverse()
            current.cursors.reverse()
    return pages
