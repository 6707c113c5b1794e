"""A document seen for the first time is parsed, validated and planned once, and its
plan rendered to SQL without SQLAlchemy's ORM layer and with its JSON concatenations
flat: what keeps a first-seen document within a few milliseconds of CPU (issue #17,
item 2; docs/performance.md). Counted, never timed."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import Integer, String, Text, cast, column, func, literal, select
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.sql.base import CompileState
from sqlalchemy.sql.util import ClauseAdapter

from domain import models
from schema.compiled import extension, jsontext
from schema.compiled.extension import PLANS
from schema.compiled.templates import filled
from schema.limits import documents
from tests.conftest import GraphQL, make_client
from tests.fixtures import factories

READ_SCOPES = ["portfolio:read", "finance:read"]


@pytest.fixture
async def compiled(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> AsyncIterator[GraphQL]:
    async with make_client(engine, sessions, anonymous_scopes=READ_SCOPES) as client:
        yield GraphQL(client)


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """How often each stage of answering a document ran."""
    counted: Counter[str] = Counter()

    def counting(name: str, function: Any) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            counted[name] += 1
            return function(*args, **kwargs)

        return wrapper

    monkeypatch.setattr(documents, "parse", counting("parse", documents.parse))
    monkeypatch.setattr(
        documents, "validate_document", counting("validate", documents.validate_document)
    )
    monkeypatch.setattr(extension, "_render", counting("render", extension._render))
    # The ORM's compile state for a SELECT (what ``select(Model.column)`` asks for).
    orm_select = CompileState.plugins[("orm", "select")]
    orm_state = orm_select.create_for_statement.__func__  # type: ignore[attr-defined]
    monkeypatch.setattr(
        orm_select,
        "create_for_statement",
        classmethod(counting("orm compile state", orm_state)),
    )
    return counted


def _new_document() -> str:
    """A document no other test sends: the process has never planned it."""
    alias = "p" + uuid.uuid4().hex
    return f"""{{
      {alias}: products(first: 5) {{
        nodes {{ key name kpis {{ nodes {{ key status }} }}
                 initiatives(first: 3) {{ nodes {{ key riceScore isBlocked }} }} }}
      }}
      teams(first: 2) {{ nodes {{ key }} }}
    }}"""


async def test_a_first_seen_document_is_parsed_validated_and_planned_once(
    compiled: GraphQL, db: AsyncSession, calls: Counter[str]
) -> None:
    await factories.initiative(db, products=[await factories.product(db)])
    query = _new_document()
    planned = PLANS.compilations

    first = await compiled(query)
    assert first["extensions"]["answeredBy"] == "compiled"
    assert PLANS.compilations - planned == 1
    # One statement rendered per root field, none by the ORM's compile state (which
    # builds a second SELECT for every SELECT of mapped columns).
    assert calls == Counter({"parse": 1, "validate": 1, "render": 2})

    again = await compiled(query)
    assert again["extensions"]["answeredBy"] == "repeated"
    assert again["data"] == first["data"]
    assert PLANS.compilations - planned == 1
    assert calls == Counter({"parse": 1, "validate": 1, "render": 2})


def test_json_concatenations_are_one_flat_list() -> None:
    """Nested objects and lists are spliced into their parent's concatenation and
    neighbouring constants joined: no ``((a || b) || c)`` for SQLAlchemy to walk."""
    inner = jsontext.json_list([column("tag", String), jsontext.constant("1")])
    written = jsontext.json_object(
        [("a", column("x", Integer)), ("b", inner), ("c", jsontext.NULL)]
    )
    sql = str(written.compile(dialect=postgresql.dialect()))
    assert sql == (
        "'{\"a\":' || coalesce(CAST(x AS TEXT), 'null') || ',\"b\":['"
        " || coalesce(CAST(to_json(tag) AS TEXT), 'null') || ',1],\"c\":null}'"
    )


def test_a_template_is_the_sql_of_its_expression_and_follows_an_alias() -> None:
    """``templates.filled`` writes what the expression it stands for would, for a column
    and, in parentheses, for anything else; adapted onto an alias (as the compiler does
    for a row's alias), its value follows."""

    def build(value: Any) -> Any:
        return func.coalesce(cast(func.to_json(value), Text), literal("null"))

    table = models.Product.__table__
    dialect = postgresql.dialect()

    def sql(expression: Any) -> str:
        return str(expression.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))

    key = ("test", "coalesce to_json")
    assert sql(filled(key, table.c.key, build, Text())) == sql(build(table.c.key))
    lowered = filled(key, func.lower(table.c.key), build, Text())
    assert sql(lowered) == "coalesce(CAST(to_json((lower(products.key))) AS TEXT), 'null')"

    alias = table.alias("p")
    adapted = ClauseAdapter(alias).traverse(filled(key, table.c.key, build, Text()))
    assert sql(adapted) == sql(build(alias.c.key))


def test_a_subquery_named_in_several_places_is_compiled_once_per_context(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A page is read by its rows and by each cursor: the same subquery in one statement
    is written once per context, and the SQL is what SQLAlchemy writes place by place."""
    table = models.Product.__table__
    page = select(table.c.id, table.c.key).order_by(table.c.key).limit(3).subquery("page")
    first = select(page.c.key).order_by(page.c.key).limit(1).scalar_subquery()
    last = select(page.c.key).order_by(page.c.key.desc()).limit(1).scalar_subquery()
    statement = select(func.concat(first, ",", last))
    expected = str(
        statement.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True})
    )

    compiled: Counter[str] = Counter()
    visit = extension._PlanCompiler.visit_select

    def counting(self: Any, select_statement: Any, **kwargs: Any) -> Any:
        compiled["select"] += 1
        return visit(self, select_statement, **kwargs)

    monkeypatch.setattr(extension._PlanCompiler, "visit_select", counting)
    rendered = extension._render(statement)
    assert " ".join(rendered.sql.split()) == " ".join(expected.split())
    assert rendered.sql.count("AS page") == 2
    # The outer SELECT, the two scalar subqueries, and the page once: 4, not 5.
    assert compiled == Counter({"select": 4})
