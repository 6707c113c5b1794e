"""Scalar values written in SQL as the resolvers write them in JSON: timestamps, floats,
money, global IDs. Each is the SQL twin of a Python serialiser, byte for byte."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    ColumnElement,
    Double,
    Text,
    case,
    cast,
    func,
    literal,
    literal_column,
    type_coerce,
)

from schema.compiled import jsontext
from schema.compiled.templates import filled


def python_type(column: Any) -> Any:
    """The Python type a column's values are read as, or None if SQLAlchemy cannot say."""
    try:
        return column.type.python_type
    except (NotImplementedError, AttributeError):
        return None


def iso_timestamp(column: Any) -> ColumnElement[Any]:
    """A timestamptz as JSON, written as Python's ``isoformat()`` writes it in UTC (what
    the resolvers send). On whole seconds (nearly every value) that is PostgreSQL's own
    JSON form, since the connection's TimeZone is UTC (``domain.database``); ``to_char``
    costs ~0.7 µs a value, so it only writes values with a fraction, which Python pads
    to six digits and PostgreSQL does not."""
    return filled("iso_timestamp", column, _iso_timestamp, JSON())


def _iso_timestamp(column: Any) -> ColumnElement[Any]:
    utc = column.op("AT TIME ZONE")(literal("UTC"))
    written = case(
        (column == func.date_trunc("second", column), func.to_json(column)),
        else_=func.to_json(func.to_char(utc, 'YYYY-MM-DD"T"HH24:MI:SS.US') + "+00:00"),
    )
    return type_coerce(written, JSON)


def json_float(column: Any) -> ColumnElement[Any]:
    """A float as GraphQL's Float (and Python's ``repr``) writes it: ``1500.0``, not
    PostgreSQL's ``1500`` (``graphql_float``, migration 0004)."""
    return func.graphql_float(cast(column, Double), type_=JSON)


def global_id(type_name: str, id_column: Any) -> ColumnElement[str]:
    """``schema.ids.encode_id`` in SQL: base64url of ``Type:pk`` without padding, as a
    JSON string (base64url needs no escaping)."""
    return jsontext.written(
        filled(("global_id", type_name), id_column, lambda c: _global_id(type_name, c), Text())
    )


def _global_id(type_name: str, id_column: Any) -> ColumnElement[str]:
    raw = func.convert_to(literal(f"{type_name}:") + cast(id_column, Text), "UTF8")
    encoded = func.rtrim(func.translate(func.encode(raw, "base64"), "+/", "-_"), "=")
    return jsontext.plain_string(encoded)


def global_id_of(type_column: Any, id_column: Any) -> ColumnElement[str]:
    """``global_id`` of a type named by a column (an audit event's entity): a long type
    name makes PostgreSQL's base64 wrap its lines, and the newlines go."""
    raw = func.convert_to(type_column + literal(":") + cast(id_column, Text), "UTF8")
    encoded = func.encode(raw, "base64")
    unwrapped = func.translate(encoded, literal_column("E'+/\\n'", Text), "-_")
    return jsontext.plain_string(func.rtrim(unwrapped, "="))


def optional_global_id(type_name: str, id_column: Any) -> ColumnElement[Any]:
    """``global_id``, or null when the column is."""
    return case((id_column.is_(None), jsontext.NULL), else_=global_id(type_name, id_column))


def column_value(column: Any) -> Any:
    """A stored column as the resolvers send it: floats as GraphQL writes them, instants
    in UTC, money as a decimal string; anything else as ``jsontext`` writes its type."""
    kind = python_type(column)
    if kind is float:
        return json_float(column)
    if kind is datetime:
        return iso_timestamp(column)
    if kind is Decimal:
        return cast(column, Text)  # money is sent as a decimal string
    return column
