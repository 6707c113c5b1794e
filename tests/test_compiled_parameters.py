"""Plans that bind variables as SQL parameters: one plan per document and shape of
values, never an answer that belongs to other values."""

from __future__ import annotations

import base64
import gc
import tracemalloc
from typing import Any

import orjson
import pytest
from graphql import FieldNode, OperationDefinitionNode, parse
from graphql.execution.values import get_variable_values
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from domain import models
from schema.build import schema
from schema.compiled.binding import (
    REMEMBERED_BINDINGS_BYTES,
    REMEMBERED_VALUE_BYTES,
    Binder,
    Declined,
    Site,
)
from schema.compiled.compiler import Compiler, NotBound
from schema.compiled.extension import PLANS
from schema.compiled.parameters import (
    CURSOR,
    FILTER,
    LIMIT,
    NODE_ID,
    STRING,
    STRINGS,
    candidates,
)
from schema.compiled.selection import Walk
from schema.ids import encode_id
from tests.conftest import GraphQL, make_client
from tests.fixtures.database import StatementCounter

READ_SCOPES = ["portfolio:read", "finance:read"]

DASHBOARD = """
query Dashboard($keys: [String!], $id: ID!, $product: String!) {
  products(first: 10, filter: {keys: $keys}) {
    totalCount
    nodes { key name initiatives(first: 3) { nodes { key riceScore isBlocked } } }
  }
  node(id: $id) { ... on Initiative { key title products { nodes { key } } } }
  product(key: $product) { key kpis { nodes { key latestValue status } } }
}"""


async def _keys_and_ids(db: AsyncSession) -> tuple[list[str], list[str]]:
    products = (await db.scalars(select(models.Product.key).order_by(models.Product.id))).all()
    initiatives = (
        await db.scalars(select(models.Initiative.id).order_by(models.Initiative.id))
    ).all()
    return list(products), [encode_id("Initiative", pk) for pk in initiatives]


async def _both(
    apps: tuple[GraphQL, GraphQL], query: str, variables: dict[str, Any]
) -> tuple[str, dict[str, Any]]:
    """Asks both apps; returns which path answered the compiling one and its body,
    after checking that both bodies are byte-identical."""
    compiled, reference = apps
    got = await compiled(query, variables, status=None)
    expected = await reference(query, variables, status=None)
    path = got.pop("extensions", {}).get("answeredBy", "?")
    expected.pop("extensions", None)
    assert orjson.dumps(got) == orjson.dumps(expected), variables
    return path, got


async def test_new_values_of_a_known_shape_reuse_the_plan(pair: Any, db: AsyncSession) -> None:
    apps = pair(READ_SCOPES)
    products, initiatives = await _keys_and_ids(db)
    paths = []
    for i in range(6):
        variables = {
            "keys": products[i : i + 3],
            "id": initiatives[i],
            "product": products[-1 - i],
        }
        path, body = await _both(apps, DASHBOARD, variables)
        paths.append(path)
        data = body["data"]
        # Each answer is for its own values, not for those the plan was made with.
        assert [p["key"] for p in data["products"]["nodes"]] == sorted(products[i : i + 3])
        assert data["products"]["totalCount"] == 3
        assert data["product"]["key"] == products[-1 - i]
        assert data["node"]["key"] is not None
    # First sight planned once (its text rendered at once), then the text serves every
    # new value without planning (strawberry skipped).
    assert paths == ["compiled", "repeated", "repeated", "repeated", "repeated", "repeated"]


async def test_another_shape_gets_its_own_plan(pair: Any, db: AsyncSession) -> None:
    apps = pair(READ_SCOPES)
    products, initiatives = await _keys_and_ids(db)
    for i in range(3):
        await _both(
            apps, DASHBOARD, {"keys": products[:2], "id": initiatives[i], "product": products[0]}
        )
    product_id = encode_id("Product", 1)
    unknown_type = encode_id("Nothing", 1)
    for variables in (
        {"keys": None, "id": initiatives[0], "product": products[0]},  # no key filter at all
        {"keys": [], "id": initiatives[0], "product": products[0]},  # an empty list
        {"keys": products[0], "id": initiatives[0], "product": products[0]},  # one string
        {"keys": products[:2], "id": product_id, "product": products[0]},  # a Product ID
        {"keys": products[:2], "id": unknown_type, "product": products[0]},
        {"keys": products[:2], "id": initiatives[1], "product": "NO-SUCH-KEY"},
    ):
        _, body = await _both(apps, DASHBOARD, variables)
        assert "errors" not in body, body
    _, body = await _both(
        apps, DASHBOARD, {"keys": None, "id": initiatives[0], "product": products[0]}
    )
    assert body["data"]["products"]["totalCount"] == len(products)
    _, body = await _both(
        apps, DASHBOARD, {"keys": [], "id": initiatives[0], "product": products[0]}
    )
    assert body["data"]["products"]["nodes"] == []
    _, body = await _both(apps, DASHBOARD, {"keys": products[:2], "id": product_id, "product": "X"})
    assert body["data"]["node"] == {}
    assert body["data"]["product"] is None


async def test_values_of_the_wrong_type_are_refused_as_ever(pair: Any, db: AsyncSession) -> None:
    apps = pair(READ_SCOPES)
    products, initiatives = await _keys_and_ids(db)
    for i in range(3):  # the plan is known and served without strawberry
        await _both(
            apps, DASHBOARD, {"keys": products[:2], "id": initiatives[i], "product": products[0]}
        )
    for variables, message in (
        ({"keys": [1], "id": initiatives[0], "product": products[0]}, "String cannot represent"),
        ({"keys": products[:2], "id": 12.5, "product": products[0]}, "ID cannot represent"),
        (
            {"keys": products[:2], "id": "not-an-id", "product": products[0]},
            "not a valid global ID",
        ),
    ):
        _, body = await _both(apps, DASHBOARD, variables)
        (error,) = body["errors"]
        assert message in error["message"]
        assert error["extensions"]["code"] in {"BAD_USER_INPUT", "INVALID"}


async def test_a_variable_used_elsewhere_too_keys_by_value(pair: Any, db: AsyncSession) -> None:
    """``$key`` also feeds a search: its value shapes the SQL, so each value plans anew."""
    apps = pair(READ_SCOPES)
    query = """query($key: String!) {
      product(key: $key) { key }
      products(filter: {search: $key}) { nodes { key } }
    }"""
    assert candidates(parse(query), None) == {}
    products, _ = await _keys_and_ids(db)
    paths = []
    for key in products[:4]:
        path, body = await _both(apps, query, {"key": key})
        assert body["data"]["product"]["key"] == key
        assert key in [p["key"] for p in body["data"]["products"]["nodes"]]
        paths.append(path)
    assert paths == ["compiled"] * 4


async def test_a_known_shape_costs_one_statement(
    engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
    db: AsyncSession,
    statements: StatementCounter,
) -> None:
    products, initiatives = await _keys_and_ids(db)
    async with make_client(engine, sessions, anonymous_scopes=READ_SCOPES) as client:
        gql = GraphQL(client)
        query = "query($id: ID!) { node(id: $id) { ... on Initiative { key title } } }"
        for pk in initiatives[:2]:
            await gql(query, {"id": pk})
        await statements.delivered()
        statements.reset()
        body = await gql(query, {"id": initiatives[5]})
    await statements.delivered()
    assert body["extensions"]["answeredBy"] == "repeated"
    assert body["data"]["node"]["key"] is not None
    assert statements.count == 1, statements.statements
    assert "$1" in statements.statements[0]


async def test_a_first_sight_is_planned_once_and_runs_its_rendered_text(
    engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
    db: AsyncSession,
    statements: StatementCounter,
) -> None:
    """A document seen for the first time is planned once and its statement rendered at
    once: the first request already runs the text with `$1` (in its transaction), the
    next ones the same text on a pooled connection; nothing is planned again."""
    _, initiatives = await _keys_and_ids(db)
    async with make_client(engine, sessions, anonymous_scopes=READ_SCOPES) as client:
        gql = GraphQL(client)
        query = "query($id: ID!) { node(id: $id) { ... on Initiative { key } } }"
        await statements.delivered()
        statements.reset()
        before = PLANS.compilations
        first = await gql(query, {"id": initiatives[0]})
        await statements.delivered()
        ran_first = list(statements.statements)
        statements.reset()
        for pk in initiatives[1:4]:
            repeated = await gql(query, {"id": pk})
        await statements.delivered()
    assert PLANS.compilations - before == 1
    assert first["extensions"]["answeredBy"] == "compiled"
    assert repeated["extensions"]["answeredBy"] == "repeated"
    (text,) = ran_first
    assert "$1" in text
    assert statements.statements == [text] * 3


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        (DASHBOARD, {"keys": STRINGS, "id": NODE_ID, "product": STRING}),
        # Not at the root: the node field of an edge does not take an id.
        (
            "query($k: [String!]) { products { nodes { kpis(filter: {keys: $k}) { nodes { key } } } } }",
            {"k": STRINGS},
        ),
        # Deeper than the filter's own fields: not the filter's key list.
        ("query($k: [String!]) { products(filter: {other: {keys: $k}}) { totalCount } }", {}),
        ("query($k: String!) { products(filter: {keys: [$k]}) { totalCount } }", {}),
        # Used as keys and as a list of something else: keyed by value.
        (
            "query($k: [String!]) { products(filter: {keys: $k}) { totalCount } teams(filter: {search: $k}) { totalCount } }",
            {},
        ),
        ("query($first: Int) { products(first: $first) { totalCount } }", {"first": LIMIT}),
        # Any connection's page and cursors, any field of a filter given as a variable.
        (
            "query($n: Int, $a: String, $s: [InitiativeStatus!], $d: Date, $b: Boolean) "
            "{ products { nodes { initiatives(last: $n, before: $a, filter: {statuses: $s, "
            "targetStartFrom: $d, isBlocked: $b}) { totalCount } } } }",
            {"n": LIMIT, "a": CURSOR, "s": FILTER, "d": FILTER, "b": FILTER},
        ),
        # The whole filter, or an item of a list: keyed by value.
        ("query($f: ProductFilter) { products(filter: $f) { totalCount } }", {}),
        (
            "query($s: InitiativeStatus!) { initiatives(filter: {statuses: [$s]}) { totalCount } }",
            {},
        ),
        ("mutation($id: ID!) { deleteProduct(input: {id: $id}) { userErrors { code } } }", {}),
    ],
)
def test_candidates_are_variables_used_only_where_they_can_be_bound(
    document: str, expected: dict[str, str]
) -> None:
    assert candidates(parse(document), None) == expected


def test_a_parameter_the_compiler_would_inline_is_refused() -> None:
    """Should a parameter reach a place the compiler inlines (here an ordering, which
    makes the statement), planning stops instead of making a plan that would serve other
    values wrongly."""
    document = parse(
        "query($n: ProductOrderField!) { products(orderBy: {field: $n}) { nodes { key } } }"
    )
    (operation,) = document.definitions
    assert isinstance(operation, OperationDefinitionNode)
    (root,) = operation.selection_set.selections
    assert isinstance(root, FieldNode)
    assert operation.variable_definitions is not None  # parse always gives a tuple
    variables = get_variable_values(schema._schema, operation.variable_definitions, {"n": "NAME"})
    assert not isinstance(variables, list)
    walk = Walk(schema._schema, {}, variables)
    compiler = Compiler(walk, schema, frozenset(READ_SCOPES), 100, frozenset({"n"}))
    with pytest.raises(NotBound) as refused:
        compiler.root(root)
    assert refused.value.names == {"n"}


WALK = """
query Walk($after: String) {
  initiatives(first: 2, after: $after, orderBy: {field: RICE_SCORE, direction: DESC}) {
    edges { cursor node { key riceScore } }
    pageInfo { hasNextPage hasPreviousPage endCursor }
  }
}"""


async def test_cursors_are_bound_so_every_page_of_a_walk_shares_one_plan(pair: Any) -> None:
    """`after: $after` is a parameter: the pages after the first share one plan (and
    their answers are each their own page, as the resolvers give them)."""
    apps = pair(READ_SCOPES)
    paths, keys = [], []
    after = None
    for _ in range(6):
        path, body = await _both(apps, WALK, {"after": after})
        paths.append(path)
        page = body["data"]["initiatives"]
        keys += [edge["node"]["key"] for edge in page["edges"]]
        assert page["pageInfo"]["hasNextPage"]
        after = page["pageInfo"]["endCursor"]
    assert len(set(keys)) == 12
    # The first page has no cursor (keyed by its null); the next planned once with the
    # cursor bound, and its text serves every later cursor.
    assert paths == ["compiled", "compiled", "repeated", "repeated", "repeated", "repeated"]


def _cursor(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize(
    ("ordering", "after", "message"),
    [
        ("RICE_SCORE", _cursor(b'["KEY","A",1]'), "issued for ordering KEY, not RICE_SCORE"),
        ("RICE_SCORE", _cursor(b'["RICE_SCORE","high",1]'), "is not a valid cursor"),
        ("RICE_SCORE", _cursor(b'["RICE_SCORE",true,1]'), None),
        ("RICE_SCORE", "!!" + _cursor(b'["RICE_SCORE",1.5,1]'), None),
        ("RICE_SCORE", _cursor(b'["RICE_SCORE",1.5,1]') + "==", None),
        ("RICE_SCORE", _cursor(b'["RICE_SCORE", 1.50, 1]'), None),
        ("STATUS", _cursor(b'["STATUS","NOPE",1]'), "is not a valid cursor"),
        ("STATUS", _cursor(b'["STATUS","DONE",1]'), None),
        ("TARGET_START", _cursor(b'["TARGET_START","20260101",1]'), None),
        ("TARGET_START", _cursor(b'["TARGET_START","2026-01-01",1]'), None),
        ("TARGET_START", _cursor(b'["TARGET_START","0001-01-01",1]'), None),
        ("UPDATED_AT", _cursor(b'["UPDATED_AT","2026-01-01T00:00:00",1]'), None),
        ("UPDATED_AT", _cursor(b'["UPDATED_AT","2026-01-01T10:00:00+02:00",1]'), None),
        ("KEY", _cursor(b'["KEY","TI\\u00e9\\"",1]'), None),
        ("KEY", "not a cursor", "is not a valid cursor"),
        ("KEY", "", "is not a valid cursor"),
    ],
)
async def test_cursors_of_every_shape_are_answered_as_the_resolvers_answer(
    pair: Any, ordering: str, after: str, message: str | None
) -> None:
    """Cursors the server never wrote (another ordering, another type, another JSON or
    base64 spelling, a date-time without zone) get the resolvers' answer: their page or
    their error. Each is asked after a well-formed cursor of its ordering, so that a plan
    bound for that shape exists and must not serve it wrongly."""
    apps = pair(READ_SCOPES)
    document = WALK.replace("RICE_SCORE", ordering).replace("riceScore", "title")
    path, first = await _both(apps, document, {"after": None})
    assert path in {"compiled", "repeated"}  # plans outlive the apps: another case's
    well_formed = first["data"]["initiatives"]["pageInfo"]["endCursor"]
    for _ in range(3):  # planned, rendered, then repeated
        await _both(apps, document, {"after": well_formed})
    path, body = await _both(apps, document, {"after": after})
    if message is None:
        assert "errors" not in body, body
    else:
        assert path == "resolvers"
        (error,) = body["errors"]
        assert error["extensions"]["code"] == "INVALID"
        assert message in error["message"]


BACK = """
query Back($before: String) {
  initiatives(last: 2, before: $before, orderBy: {field: UPDATED_AT, direction: DESC}) {
    edges { cursor node { key } }
    pageInfo { hasPreviousPage startCursor }
  }
}"""


async def test_before_cursors_are_bound_too(pair: Any) -> None:
    """A backward walk (`last`/`before`) shares one plan as the forward one does."""
    apps = pair(READ_SCOPES)
    paths: list[str] = []
    keys: list[str] = []
    before = None
    for _ in range(6):
        path, body = await _both(apps, BACK, {"before": before})
        paths.append(path)
        page = body["data"]["initiatives"]
        keys = [edge["node"]["key"] for edge in page["edges"]] + keys
        assert page["pageInfo"]["hasPreviousPage"]
        before = page["pageInfo"]["startCursor"]
    assert len(set(keys)) == 12
    assert paths == ["compiled", "compiled", "repeated", "repeated", "repeated", "repeated"]


FILTERED_PAGE = """
query FilteredPage($n: Int, $statuses: [InitiativeStatus!], $search: String) {
  initiatives(first: $n, filter: {statuses: $statuses, search: $search}) {
    totalCount
    nodes { key status }
  }
}"""


async def test_values_bound_before_are_reused_only_for_the_same_values(pair: Any) -> None:
    """A plan keeps what it computed for the values of its latest requests (``Binder``):
    asked again with those values, the answer is the same; with others, each request
    gets its own page; a value the resolvers refuse is refused every time, before and
    after values of that shape were kept."""
    apps = pair(READ_SCOPES)
    asked = [
        {"n": 2, "statuses": ["PROPOSED", "APPROVED"], "search": "a"},
        {"n": 2, "statuses": ["PROPOSED", "APPROVED"], "search": "a"},  # kept
        {"n": 3, "statuses": ["PROPOSED", "APPROVED"], "search": "a"},
        {"n": 2, "statuses": ["APPROVED"], "search": "a"},
        {"n": 2, "statuses": ["PROPOSED", "APPROVED"], "search": "e"},
        {"n": 2, "statuses": ["PROPOSED", "APPROVED"], "search": "a"},  # kept again
    ]
    answers = []
    for variables in asked:
        path, body = await _both(apps, FILTERED_PAGE, variables)
        assert "errors" not in body, body
        answers.append(body["data"]["initiatives"])
    assert path == "repeated"
    assert answers[1] == answers[0] == answers[5]
    assert len(answers[2]["nodes"]) == len(answers[0]["nodes"]) + 1 == 3
    assert {node["status"] for node in answers[3]["nodes"]} == {"APPROVED"}
    assert answers[4] != answers[0]
    for _ in range(2):
        path, body = await _both(
            apps, FILTERED_PAGE, {"n": -1, "statuses": ["PROPOSED"], "search": "a"}
        )
        assert path == "resolvers"
        (error,) = body["errors"]
        assert error["extensions"]["code"] == "INVALID"
        path, body = await _both(
            apps, FILTERED_PAGE, {"n": 2, "statuses": ["PROPOSED"], "search": "!"}
        )
        assert path == "resolvers"
        (error,) = body["errors"]
        assert "at least one letter or digit" in error["message"]


def test_a_plan_coerces_and_keys_only_the_variables_its_computed_parameters_read() -> None:
    """`$key` is bound as it is: it is neither coerced again nor part of the key of the
    values a plan keeps; `$n` and `$statuses` are."""
    document = parse(
        "query Q($key: String!, $n: Int, $statuses: [InitiativeStatus!]) {"
        " product(key: $key) { key }"
        " initiatives(first: $n, filter: {statuses: $statuses}) { nodes { key } } }"
    )
    operation = document.definitions[0]
    assert isinstance(operation, OperationDefinitionNode)
    (_, initiatives) = operation.selection_set.selections
    assert isinstance(initiatives, FieldNode)
    definition = schema._schema.query_type.fields["initiatives"]  # type: ignore[union-attr]
    binder = Binder(
        schema,
        operation.variable_definitions or (),
        {"key": STRING},
        [Site(definition, initiatives, [lambda arguments: {"n": arguments["first"]}])],
    )
    assert binder.used == ("n", "statuses")
    assert [d.variable.name.value for d in binder.used_definitions] == ["n", "statuses"]
    first = binder.values({"key": "P-1", "n": 2, "statuses": None})
    assert first == {"gqlvar_key": "P-1", "n": 2}
    assert binder.values({"key": "P-2", "n": 2, "statuses": None}) == {
        "gqlvar_key": "P-2",
        "n": 2,
    }
    assert binder.values({"key": "P-2", "n": 2}) == {"gqlvar_key": "P-2", "n": 2}
    assert binder.values({"key": "P-2", "n": 5}) == {"gqlvar_key": "P-2", "n": 5}
    # One entry per distinct values of $n and $statuses (omitted is not null); a scalar
    # and a list of enums are coerced by name, not kept one by one.
    assert len(binder._remembered) == 3
    assert binder._coerced_values == {}
    assert binder.remembered_bytes == REMEMBERED_BINDINGS_BYTES
    assert binder.values({"key": "P-3", "n": 5, "statuses": ["PROPOSED"]}) == {
        "gqlvar_key": "P-3",
        "n": 5,
    }
    with pytest.raises(Declined):
        binder.values({"key": "P-2", "n": "two"})
    assert len(binder._remembered) == 4  # a declined value is not kept


@pytest.mark.parametrize(
    ("document", "given", "kept_one_by_one"),
    [
        # A list of scalars: coerced by name, each time.
        ("query Q($keys: [String!]) { initiatives(filter: {keys: $keys}) { nodes { key } } }",
         lambda keys: {"keys": keys}, False),
        # An input object: its values coerced once by graphql-core, then kept.
        ("query Q($f: InitiativeFilter) { initiatives(filter: $f) { nodes { key } } }",
         lambda keys: {"f": {"keys": keys}}, True),
    ],
)  # fmt: skip
def test_what_a_plan_remembers_of_its_values_is_bounded_by_the_memory_it_holds(
    document: str, given: Any, kept_one_by_one: bool
) -> None:
    """The values a plan keeps for its latest requests are the callers': 500 lists of
    fifty texts each (under the 512 characters of JSON a kept value may have) are kept
    only as far as the budgets the plan cache counts for them, measured by the
    allocator, and the latest is still answered from memory."""
    operation = parse(document).definitions[0]
    assert isinstance(operation, OperationDefinitionNode)
    (initiatives,) = operation.selection_set.selections
    assert isinstance(initiatives, FieldNode)
    definition = schema._schema.query_type.fields["initiatives"]  # type: ignore[union-attr]
    binder = Binder(
        schema,
        operation.variable_definitions or (),
        {},
        [Site(definition, initiatives, [lambda arguments: {"k": arguments["filter"]["keys"]}])],
    )
    (name,) = binder.used
    one_by_one = REMEMBERED_VALUE_BYTES if kept_one_by_one else 0
    assert binder.remembered_bytes == REMEMBERED_BINDINGS_BYTES + one_by_one

    def values(number: int) -> dict[str, Any]:
        # Distinct texts, made anew for each request as a JSON decoder would.
        return dict(given([f"{number:x}{i}" for i in range(50)]))

    assert binder.values(values(0)) == {"k": [f"0{i}" for i in range(50)]}  # templates made
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for number in range(1, 500):
            binder.values(values(number))
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert held <= binder.remembered_bytes
    assert binder._remembered.bytes <= REMEMBERED_BINDINGS_BYTES
    if kept_one_by_one:
        assert 1 <= len(binder._coerced_values[name]) < 500
        assert binder._coerced_values[name].bytes <= REMEMBERED_VALUE_BYTES
    else:
        assert binder._coerced_values == {}
    kept = len(binder._remembered)
    assert 1 <= kept < 32  # the count alone (32 before) would have held more
    latest = orjson.dumps([(name, values(499)[name])], option=orjson.OPT_SORT_KEYS).decode()
    assert latest in binder._remembered
