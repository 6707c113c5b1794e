"""The change feed: every create, update, archive, link and unlink of the portfolio, in
an order a client can resume from without missing or repeating an event.

The feed reads the audit trail, which every portfolio change writes in its own
transaction (``domain.services.audit``): no second log to keep in step. Its order is
``(transaction_id, id)``: the writing transaction (``pg_current_xact_id()``, recorded by
the column's default, migration 0011), then the event's id.

Why not ``id`` alone: ids are taken at insert, so a transaction that inserts early and
commits late makes its events visible *behind* events a reader has already passed.
Here a read serves only events of transactions older than the oldest transaction still
running (``pg_snapshot_xmin(pg_current_snapshot())``): all of those have finished
(committed or rolled back), and every transaction that writes later gets a larger id.
So the events below a position never change once it has been served, and a cursor
(the last position served) resumes exactly after it.

The cost: the feed lags behind the oldest running writing transaction of the whole
PostgreSQL server (transaction ids are server-wide); a transaction left open holds it
back until it ends (``idle_in_transaction_session_timeout`` bounds that). Within one
transaction the events are in insert order, and one transaction's events are together.

A transaction's own uncommitted events are shown to itself, as PostgreSQL shows a
transaction its own writes; the API's reads write no events, so a client's cursor never
rests on one.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Text,
    case,
    cast,
    func,
    literal_column,
    or_,
    select,
    tuple_,
)
from sqlalchemy.ext.asyncio import AsyncSession

from domain.errors import InvalidInput
from domain.models import (
    AuditAction,
    AuditEvent,
    Initiative,
    Kpi,
    Product,
    TechnicalConstraint,
)

# The types the feed covers (audit trail name -> model); each has a ``key``.
FEED_MODELS: dict[str, Any] = {
    "Product": Product,
    "Initiative": Initiative,
    "TechnicalConstraint": TechnicalConstraint,
    "Kpi": Kpi,
}
FEED_ACTIONS = (
    AuditAction.CREATE,
    AuditAction.UPDATE,
    AuditAction.ARCHIVE,
    AuditAction.LINK,
    AuditAction.UNLINK,
)
_CURSOR_PREFIX = "feed:"
DEFAULT_PAGE = 100
MAX_PAGE = 100


@dataclass(frozen=True, order=True)
class Position:
    """Where an event stands in the feed; the start of the feed is (0, 0)."""

    transaction_id: int
    event_id: int

    def encode(self) -> str:
        raw = f"{_CURSOR_PREFIX}{self.transaction_id}:{self.event_id}".encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, cursor: str, argument: str = "since") -> Position:
        """The position a cursor of this feed names; INVALID for anything else."""
        try:
            padded = cursor + "=" * (-len(cursor) % 4)
            text = base64.urlsafe_b64decode(padded.encode("ascii")).decode()
            if not text.startswith(_CURSOR_PREFIX):
                raise ValueError(text)
            transaction, event = text.removeprefix(_CURSOR_PREFIX).split(":")
            position = cls(int(transaction), int(event))
            if position.transaction_id < 0 or position.event_id < 0:
                raise ValueError(text)
        except (ValueError, UnicodeError, binascii.Error):
            raise InvalidInput(
                f"`{argument}` is not a cursor of the change feed.", field=argument
            ) from None
        return position


START = Position(0, 0)


def check_first(first: int) -> int:
    """A page's size as the caller asked it, INVALID outside 0 to ``MAX_PAGE``."""
    if not 0 <= first <= MAX_PAGE:
        raise InvalidInput(f"`first` must be between 0 and {MAX_PAGE}; got {first}.", field="first")
    return first


@dataclass(frozen=True)
class FeedEvent:
    """One event of the feed, with its object's key and archive time as they are now."""

    position: Position
    event: AuditEvent
    key: str | None
    archived_at: datetime | None


@dataclass(frozen=True)
class FeedPage:
    events: list[FeedEvent]
    position: Position  # resume from here: the last event served, else where it started
    has_more: bool


def _bigint(xid8: ColumnElement[Any]) -> ColumnElement[Any]:
    """An ``xid8`` as the bigint the audit trail stores (``transaction_id``)."""
    return cast(cast(xid8, Text), BigInteger)


def _finished_before() -> ColumnElement[Any]:
    """The oldest transaction still running, as the statement's snapshot sees it."""
    return _bigint(func.pg_snapshot_xmin(func.pg_current_snapshot()))


# The SQL function the horizon reads: an answer holding it moves with transactions that
# end, with no change notification (a rollback sends none), so it is never cached.
HORIZON_FUNCTION = "pg_current_snapshot"


# The SQL pieces of a page, shared by ``read`` and the compiled path
# (``schema.compiled.feed``): one definition of the feed's horizon, order and cursor.


def ready(event: Any = AuditEvent) -> ColumnElement[bool]:
    """Events the feed may serve now: those of transactions older than every running
    one (finished, and never joined by a later event below them), and the reader's own."""
    return or_(
        event.transaction_id < _finished_before(),
        event.transaction_id == _bigint(func.pg_current_xact_id_if_assigned()),
    )


def after(transaction_id: Any, event_id: Any, event: Any = AuditEvent) -> ColumnElement[bool]:
    """Events after the position (``transaction_id``, ``event_id``) in feed order."""
    return tuple_(event.transaction_id, event.id) > tuple_(transaction_id, event_id)


def order(event: Any = AuditEvent) -> tuple[Any, Any]:
    """The feed's order: transaction, then event."""
    return event.transaction_id, event.id


def cursor_sql(transaction_id: Any, event_id: Any) -> ColumnElement[str]:
    """``Position.encode`` in SQL: base64url of ``feed:<transaction>:<event>`` without
    padding (PostgreSQL's base64 wraps long lines: the newlines go)."""
    raw = (
        literal_column(f"'{_CURSOR_PREFIX}'", Text)
        + cast(transaction_id, Text)
        + literal_column("':'", Text)
        + cast(event_id, Text)
    )
    encoded = func.encode(func.convert_to(raw, "UTF8"), "base64")
    unwrapped = func.translate(encoded, literal_column("E'+/\\n'", Text), "-_")
    return func.rtrim(unwrapped, "=")


def object_column(column: str, event: Any = AuditEvent) -> ColumnElement[Any]:
    """The event's object's ``column`` (key, archived_at), for every feed type, as it
    is now."""
    return case(
        *(
            (
                event.entity_type == name,
                select(getattr(model, column)).where(model.id == event.entity_id).scalar_subquery(),
            )
            for name, model in FEED_MODELS.items()
        ),
        else_=None,
    )


async def read(
    session: AsyncSession, since: Position, types: Sequence[str], first: int
) -> FeedPage:
    """Up to ``first`` events of ``types`` after ``since``, in feed order."""
    if not types or first == 0:
        return FeedPage([], since, False)
    statement = (
        select(
            AuditEvent,
            object_column("key").label("key"),
            object_column("archived_at").label("archived_at"),
        )
        .where(
            AuditEvent.entity_type.in_(list(types)),
            AuditEvent.action.in_(FEED_ACTIONS),
            after(since.transaction_id, since.event_id),
            ready(),
        )
        .order_by(*order())
        .limit(first + 1)
    )
    rows = (await session.execute(statement)).all()
    events = [
        FeedEvent(Position(row[0].transaction_id, row[0].id), row[0], row.key, row.archived_at)
        for row in rows[:first]
    ]
    position = events[-1].position if events else since
    return FeedPage(events, position, len(rows) > first)
