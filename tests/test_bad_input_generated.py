"""Text PostgreSQL cannot store, generated over the whole schema rather than picked by
hand: every String or ID position of every argument of every root field (queries and
mutations, nested input objects and list items included) is given a NUL character, as a
variable and as a literal of the document. Each is refused before any statement runs,
with a precise code and message, and the database is left as it was."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from graphql import (
    GraphQLEnumType,
    GraphQLField,
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLScalarType,
    is_composite_type,
)
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from schema.build import schema
from schema.ids import encode_id
from tests.conftest import ALL_SCOPES, make_client

GRAPHQL_RESPONSE = "application/graphql-response+json"
NUL = "a\x00b"
TEXT = {"String", "ID"}
# A value of each scalar that the type accepts (the NUL is the only fault of a request).
SAMPLES: dict[str, Any] = {
    "String": "x",
    "ID": encode_id("Product", 1),
    "Int": 1,
    "Float": 1.5,
    "Boolean": False,
    "Date": "2026-01-01",
    "DateTime": "2026-01-01T00:00:00Z",
    "Decimal": "1.00",
    "JSON": {},
}


@dataclass(frozen=True)
class Position:
    """One String or ID position: a root field, its argument and the path inside it."""

    operation: str  # query or mutation
    field: str
    argument: str
    path: tuple[str | int, ...]  # inside the argument's value

    @property
    def name(self) -> str:
        inside = "".join(f".{step}" for step in self.path)
        return f"{self.field}({self.argument}{inside})"


def _unwrap(kind: Any) -> Any:
    while isinstance(kind, GraphQLNonNull | GraphQLList):
        kind = kind.of_type
    return kind


def _paths(kind: GraphQLInputType, seen: frozenset[str]) -> Iterator[tuple[str | int, ...]]:
    """Paths to every text position of a value of ``kind`` (lists: their first item)."""
    if isinstance(kind, GraphQLNonNull):
        yield from _paths(kind.of_type, seen)
    elif isinstance(kind, GraphQLList):
        for path in _paths(kind.of_type, seen):
            yield (0, *path)
    elif isinstance(kind, GraphQLScalarType) and kind.name in TEXT:
        yield ()
    elif isinstance(kind, GraphQLInputObjectType) and kind.name not in seen:
        for name, field in kind.fields.items():
            for path in _paths(field.type, seen | {kind.name}):
                yield (name, *path)


def positions() -> list[Position]:
    found = []
    roots = [("query", schema._schema.query_type), ("mutation", schema._schema.mutation_type)]
    for operation, root in roots:
        assert root is not None
        for field_name, field in root.fields.items():
            for argument, definition in field.args.items():
                for path in _paths(definition.type, frozenset()):
                    found.append(Position(operation, field_name, argument, path))
    return found


POSITIONS = positions()


def sample(kind: GraphQLInputType, path: tuple[str | int, ...] | None = None) -> Any:
    """A value of ``kind`` with its required fields filled, and the NUL at ``path`` (none
    without one)."""
    if isinstance(kind, GraphQLNonNull):
        return sample(kind.of_type, path)
    if isinstance(kind, GraphQLList):
        return [sample(kind.of_type, path[1:] if path else None)]
    if path == () and isinstance(kind, GraphQLScalarType) and kind.name in TEXT:
        return NUL
    if isinstance(kind, GraphQLEnumType):
        return next(iter(kind.values))
    if isinstance(kind, GraphQLScalarType):
        return SAMPLES[kind.name]
    assert isinstance(kind, GraphQLInputObjectType)
    value = {
        name: sample(field.type)
        for name, field in kind.fields.items()
        if isinstance(field.type, GraphQLNonNull)
    }
    if path:
        head = path[0]
        assert isinstance(head, str)
        value[head] = sample(kind.fields[head].type, path[1:])
    return value


def _field(position: Position) -> GraphQLField:
    root = getattr(schema._schema, f"{position.operation}_type")
    return root.fields[position.field]


def _arguments(position: Position) -> dict[str, Any]:
    """The argument holding the NUL and every required one, by name."""
    field = _field(position)
    return {
        name: sample(argument.type, position.path if name == position.argument else None)
        for name, argument in field.args.items()
        if name == position.argument or isinstance(argument.type, GraphQLNonNull)
    }


def _selection(position: Position) -> str:
    return " { __typename }" if is_composite_type(_unwrap(_field(position).type)) else ""


def with_variables(position: Position) -> tuple[str, dict[str, Any]]:
    field = _field(position)
    values = _arguments(position)
    declared = ", ".join(f"${name}: {field.args[name].type}" for name in values)
    passed = ", ".join(f"{name}: ${name}" for name in values)
    query = (
        f"{position.operation}({declared}) {{ {position.field}({passed}){_selection(position)} }}"
    )
    return query, values


def literal(value: Any, kind: GraphQLInputType) -> str:
    """``value`` written in the document (GraphQL's string escapes are JSON's)."""
    if isinstance(kind, GraphQLNonNull):
        return literal(value, kind.of_type)
    if isinstance(kind, GraphQLList):
        return "[" + ", ".join(literal(item, kind.of_type) for item in value) + "]"
    if isinstance(kind, GraphQLEnumType):
        return str(value)
    if isinstance(kind, GraphQLInputObjectType):
        inner = ", ".join(f"{k}: {literal(v, kind.fields[k].type)}" for k, v in value.items())
        return "{" + inner + "}"
    if isinstance(value, dict):  # the JSON scalar
        return "{}"
    return json.dumps(value)


def inline(position: Position) -> str:
    field = _field(position)
    values = _arguments(position)
    passed = ", ".join(
        f"{name}: {literal(value, field.args[name].type)}" for name, value in values.items()
    )
    return f"{position.operation} {{ {position.field}({passed}){_selection(position)} }}"


@pytest.fixture
async def http(engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]) -> Any:
    """Every scope, so that nothing but the NUL is refused."""
    async with make_client(
        engine, sessions, anonymous_scopes=ALL_SCOPES, headers={"accept": GRAPHQL_RESPONSE}
    ) as client:
        yield client


async def fingerprint(db: AsyncSession) -> dict[str, int]:
    """The number of rows of every table: what any write would change."""
    tables = await db.scalars(
        text("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename")
    )
    counts = {}
    for table in tables.all():
        counts[table] = int(await db.scalar(text(f'SELECT count(*) FROM "{table}"')) or 0)
    return counts


def test_every_text_position_is_generated() -> None:
    """The walk reaches what the issue named: keys, key filters, the glossary lookup,
    mutation text fields and the ingest's source."""
    names = {position.name for position in POSITIONS}
    assert {
        "product(key)",
        "products(filter.keys.0)",
        "glossaryTerm(term)",
        "node(id)",
        "nodes(ids.0)",
        "createTeam(input.name)",
        "recordKpiMeasurements(input.measurements.0.source)",
        "archiveProduct(input.id)",
    } <= names
    mutations = {p.field for p in POSITIONS if p.operation == "mutation"}
    assert len(mutations) == len(schema._schema.mutation_type.fields)  # type: ignore[union-attr]
    assert len(POSITIONS) > 150


async def test_a_nul_in_any_variable_is_refused_before_graphql_runs(
    http: httpx.AsyncClient, db: AsyncSession
) -> None:
    before = await fingerprint(db)
    wrong = {}
    for position in POSITIONS:
        query, variables = with_variables(position)
        response = await http.post("/graphql", json={"query": query, "variables": variables})
        inside = "".join(f".{step}" for step in position.path)
        expected = {
            "errors": [
                {
                    "message": f"`variables.{position.argument}{inside}` contains a NUL "
                    "character (U+0000), which text may not hold.",
                    "extensions": {"code": "BAD_USER_INPUT"},
                }
            ]
        }
        if response.status_code != 400 or response.json() != expected:
            wrong[position.name] = (response.status_code, response.text[:300])
    assert wrong == {}
    assert await fingerprint(db) == before


async def test_a_nul_in_any_string_literal_is_a_validation_error(
    http: httpx.AsyncClient, db: AsyncSession
) -> None:
    before = await fingerprint(db)
    wrong = {}
    for position in POSITIONS:
        response = await http.post("/graphql", json={"query": inline(position)})
        body = response.json()
        errors = body.get("errors") or [{}]
        if (
            response.status_code != 400
            or "data" in body
            or {error.get("message") for error in errors}
            != {"String literals may not contain the NUL character (U+0000)."}
            or {(error.get("extensions") or {}).get("code") for error in errors}
            != {"GRAPHQL_VALIDATION_FAILED"}
        ):
            wrong[position.name] = (response.status_code, response.text[:300])
    assert wrong == {}
    assert await fingerprint(db) == before
