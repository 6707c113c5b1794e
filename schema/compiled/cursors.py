"""Relay cursors in SQL: written as ``encode_cursor`` writes them, and read back (a cursor
bound as its text is decoded by PostgreSQL) to narrow a page as ``pagination`` does."""

from __future__ import annotations

from datetime import date, datetime
from enum import Enum
from typing import TYPE_CHECKING, Any

from graphql import FieldNode
from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Date,
    DateTime,
    Double,
    Text,
    case,
    cast,
    func,
    literal,
    literal_column,
    select,
    tuple_,
)
from sqlalchemy.dialects.postgresql import JSONB

from domain.errors import DomainError
from domain.services.pagination import Cursor
from domain.services.pagination import _coerce as pagination_coerce
from schema.compiled import jsontext
from schema.compiled.selection import Unsupported
from schema.compiled.values import iso_timestamp, json_float, python_type

if TYPE_CHECKING:
    from schema.compiled.compiler import Compiler


def cursor_text(ordering: str, sort: Any, id_column: Any) -> ColumnElement[str]:
    """``domain.services.pagination.encode_cursor`` in SQL, as a JSON string: base64url
    without padding of ``["ORDERING",value,id]``, the value written as orjson writes
    the Python value the resolvers read (``_cursor_value``). PostgreSQL's base64 wraps
    lines every 76 characters: the newlines go."""
    raw = (
        literal_column("'" + '["' + jsontext.name(ordering) + '",' + "'", Text)
        + _cursor_value(sort)
        + literal_column("','", Text)
        + cast(id_column, Text)
        + literal_column("']'", Text)
    )
    encoded = func.encode(func.convert_to(raw, "UTF8"), "base64")
    unwrapped = func.translate(encoded, literal_column("E'+/\\n'", Text), "-_")
    return jsontext.plain_string(func.rtrim(unwrapped, "="))


def _cursor_value(sort: Any) -> ColumnElement[str]:
    """The JSON text of a sort value, as orjson writes what asyncpg reads of it."""
    kind = python_type(sort)
    if kind is date:
        # asyncpg reads the orderings' ±infinity fallbacks as date.min / date.max.
        return case(
            (
                sort == cast(literal_column("'-infinity'"), Date),
                literal_column("'\"0001-01-01\"'", Text),
            ),
            (
                sort == cast(literal_column("'infinity'"), Date),
                literal_column("'\"9999-12-31\"'", Text),
            ),
            else_=cast(func.to_json(sort), Text),
        )
    if kind is datetime:
        return cast(iso_timestamp(sort), Text)
    if kind is float:
        return cast(json_float(sort), Text)
    if kind is int:
        return cast(sort, Text)
    if kind is str or (isinstance(kind, type) and issubclass(kind, Enum)):
        return cast(func.to_json(sort), Text)  # an enum's value is its name
    raise Unsupported(f"cursor of {kind!r}")


_CURSOR_CASTS: dict[Any, Any] = {datetime: DateTime(timezone=True), float: Double, int: BigInteger}


def _decoded_cursor(parameter: Any, sort: Any) -> tuple[Any, Any]:
    """The sort value and id of a cursor bound as its text: ``decode_cursor`` in SQL,
    each an init plan (computed once). The parameter's shape (``parameters``) holds
    only cursors these casts read as the resolvers' coercion does."""
    padding = func.repeat("=", (4 - func.length(parameter) % 4) % 4)
    base64 = func.translate(parameter, "-_", "+/").op("||")(padding)
    decoded = cast(func.convert_from(func.decode(base64, "base64"), "UTF8"), JSONB)
    element = decoded[1].astext
    value: Any
    kind = python_type(sort)
    if kind is date:
        value = case(
            (element == "0001-01-01", cast(literal_column("'-infinity'"), Date)),
            (element == "9999-12-31", cast(literal_column("'infinity'"), Date)),
            else_=cast(element, Date),
        )
    elif kind is str:
        value = element
    elif kind in _CURSOR_CASTS:
        value = cast(element, _CURSOR_CASTS[kind])
    elif isinstance(kind, type) and issubclass(kind, Enum):
        value = cast(element, sort.type)  # the shape holds the member itself
    else:
        raise Unsupported(f"bound cursor of {kind!r}")
    row_id = cast(decoded[2].astext, BigInteger)
    return select(value).scalar_subquery(), select(row_id).scalar_subquery()


def beyond(
    c: Compiler,
    node: FieldNode,
    argument: str,
    text: str,
    cursor: Cursor,
    ordering_name: str,
    sort: Any,
    alias: Any,
    descending: bool,
) -> Any:
    """``pagination._beyond``: the rows after an `after` cursor, before a `before` one. A
    cursor the resolvers refuse is theirs to answer, with their error. A cursor variable
    is bound as its text, decoded in SQL (``_decoded_cursor``): its plan serves every
    cursor of the same shape (``parameters._cursor_token``)."""
    if cursor.ordering != ordering_name:
        raise Unsupported("cursor of another ordering")
    if isinstance(cursor.value, bool) or isinstance(cursor.id, bool):
        raise Unsupported("invalid cursor")
    if isinstance(cursor.value, str) and "\x00" in cursor.value:
        raise Unsupported("invalid cursor")  # PostgreSQL text cannot hold it
    try:
        value = pagination_coerce(cursor.value, sort, argument)
    except DomainError:
        raise Unsupported("invalid cursor") from None
    if isinstance(value, datetime) and value.tzinfo is None:
        raise Unsupported("cursor without time zone")
    if isinstance(value, date) and cursor.value != value.isoformat():
        # Only as encode_cursor writes them: the shape of a bound cursor says so.
        raise Unsupported("cursor not canonical")
    parameter = c.parameter(node, (argument,), text, Text)
    if parameter is not None:
        bound_value, bound_id = _decoded_cursor(parameter, sort)
    elif type(value) is date and value in (date.min, date.max):
        # asyncpg sends date.min and date.max as -infinity and infinity.
        infinity = "'-infinity'" if value == date.min else "'infinity'"
        bound_value = cast(literal_column(infinity), Date)
        bound_id = literal(cursor.id, BigInteger)
    else:
        bound_value, bound_id = literal(value, sort.type), literal(cursor.id, BigInteger)
    row = tuple_(sort, alias.id)
    bound = tuple_(bound_value, bound_id)
    forward = (argument == "after") != descending
    return row > bound if forward else row < bound
