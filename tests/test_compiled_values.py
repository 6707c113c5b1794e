"""No value of a variable plans a document again: every variable that does not change
the statement's shape is a parameter (pages, cursors, enum lists, search text, dates,
instants, booleans), at the root and nested, and each request's answer is still the
resolvers' answer, byte for byte, errors included."""

from __future__ import annotations

import random
import string
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import orjson
import pytest
from graphql import (
    GraphQLEnumType,
    GraphQLField,
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLScalarType,
    get_named_type,
)
from graphql.pyutils import Undefined
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from auth import models as auth_models
from auth.scopes import Scope
from domain import models
from domain.models import KpiMeasurement
from domain.models.enums import (
    ConstraintCategory,
    ConstraintSeverity,
    ConstraintStatus,
    InitiativeStatus,
    KpiStatus,
    TeamKind,
)
from domain.models.external_refs import ExternalRef
from domain.services import filters
from schema.build import schema
from schema.compiled.extension import PLANS
from schema.ids import encode_id
from tests.conftest import ALL_SCOPES
from tests.fixtures import factories

BOARD = """
query Board($statuses: [InitiativeStatus!], $first: Int, $search: String, $from: Date,
            $to: Date, $blocked: Boolean, $severities: [ConstraintSeverity!], $last: Int,
            $kinds: [TeamKind!], $nested: Int, $since: DateTime, $kpiStatuses: [KpiStatus!],
            $after: String) {
  initiatives(first: $first, after: $after, orderBy: {field: TARGET_START, direction: DESC},
              filter: {statuses: $statuses, search: $search, targetStartFrom: $from,
                       targetStartTo: $to, isBlocked: $blocked}) {
    totalCount
    edges { cursor node { key status isBlocked targetStart } }
    pageInfo { hasNextPage hasPreviousPage endCursor }
  }
  technicalConstraints(last: $last, filter: {severities: $severities}) {
    totalCount nodes { key severity }
  }
  teams(filter: {kinds: $kinds}) {
    nodes { key products(first: $nested) { totalCount nodes { key } } }
  }
  kpis(filter: {statuses: $kpiStatuses}) {
    nodes {
      key status
      measurements(last: $nested, filter: {observedFrom: $since}) {
        totalCount nodes { value observedAt }
      }
    }
  }
}"""

# Quotes, LIKE's wildcards, backslashes, accents, emoji, tsquery's operators.
AWKWARD = string.ascii_letters[:8] + string.digits[:3] + " '\"%_\\&|!:*()éüß漢😀-"


def _subset(rng: random.Random, members: list[Any]) -> list[str]:
    return [m.name for m in rng.sample(members, k=rng.randint(1, len(members)))]


def _day(rng: random.Random) -> date:
    return date(2025, 1, 1) + timedelta(days=rng.randint(0, 1000))


def _values(rng: random.Random, after: str | None) -> dict[str, Any]:
    start, end = _day(rng), _day(rng)
    if rng.random() < 0.8:
        start, end = min(start, end), max(start, end)  # else a range the service refuses
    search = "".join(rng.choice(AWKWARD) for _ in range(rng.randint(0, 12)))
    since = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=rng.randint(0, 10**8))
    return {
        "statuses": _subset(rng, list(InitiativeStatus)),
        "first": rng.randint(0, 100),
        "search": search if rng.random() < 0.7 else rng.choice(["pay", "check", "a"]),
        "from": start.isoformat(),
        "to": end.isoformat(),
        "blocked": rng.random() < 0.5,
        "severities": _subset(rng, list(ConstraintSeverity)),
        "last": rng.randint(0, 100),
        "kinds": _subset(rng, list(TeamKind)),
        "nested": rng.randint(0, 100),
        "since": since.isoformat().replace("+00:00", "Z"),
        "kpiStatuses": _subset(rng, list(KpiStatus)),
        "after": after,
    }


def _before_extensions(body: bytes) -> bytes:
    return body.split(b',"extensions":', 1)[0]


async def _rows(db: AsyncSession) -> None:
    """Initiatives with dates and titles a search may find, blocked ones among them."""
    product = await factories.product(db)
    for number in range(12):
        initiative = await factories.initiative(
            db,
            title=f"Pay check {number} 'quoted' 50% é",
            products=[product],
            target_start=date(2025, 6, 1) + timedelta(days=70 * number),
        )
        if number % 4 == 0:
            await factories.constraint(db, initiatives=[initiative])


async def test_new_values_of_every_parameter_reuse_one_plan_and_answer_alike(
    pair: Any, db: AsyncSession
) -> None:
    """Forty requests of one document, each with values of its own (random enum subsets,
    page sizes, search texts, date ranges, instants, booleans, and the cursor of an
    earlier answer): planned once, and every answer (refusals included) is the
    resolvers' answer byte for byte."""
    await _rows(db)
    compiled, reference = pair(["portfolio:read"])
    rng = random.Random(17)
    cursors: list[str] = []
    planned = PLANS.compilations
    paths: dict[str, int] = {}
    first = {**_values(rng, None), "search": "pay", "from": "2025-01-01", "to": "2027-12-31"}
    for number in range(40):
        after = rng.choice(cursors) if cursors and number % 2 else None
        variables = first if number == 0 else _values(rng, after)
        got = await compiled(BOARD, variables, status=None)
        await reference(BOARD, variables, status=None)
        assert _before_extensions(compiled.last_body) == _before_extensions(reference.last_body), (
            variables
        )
        path = (got.get("extensions") or {}).get("answeredBy", "refused")
        paths[path] = paths.get(path, 0) + 1
        data = got.get("data") or {}
        edges = (data.get("initiatives") or {}).get("edges") or []
        cursors += [edge["cursor"] for edge in edges]
    # The null cursor of the first request and the cursors of the others: two shapes.
    assert PLANS.compilations - planned == 2, paths
    assert paths.get("repeated", 0) >= 25, paths
    # Values the service refuses (a range ending before it starts, a search without a
    # word) are answered by the resolvers, with their error.
    assert paths.get("resolvers", 0) >= 3, paths


REFUSABLE = """
query Refusable($first: Int, $last: Int, $from: Date, $to: Date, $search: String,
                $products: [ID!], $statuses: [InitiativeStatus!]) {
  initiatives(first: $first, last: $last, filter: {targetStartFrom: $from,
              targetStartTo: $to, search: $search, products: $products,
              statuses: $statuses}) {
    totalCount nodes { key }
  }
}"""


async def test_values_the_resolvers_refuse_are_refused_as_ever_once_a_plan_serves_the_shape(
    pair: Any, db: AsyncSession
) -> None:
    """A plan bound for a shape serves only the values the resolvers accept: a page
    over the cap, `first` with `last`, a range ending before it starts, a search
    without a word, an ID of another type, an enum it does not know get the resolvers'
    error (its code and message), and a valid request after them the plan again."""
    product = await factories.product(db)
    compiled, reference = pair(["portfolio:read"])
    valid: dict[str, Any] = {
        "first": 3,
        "last": None,
        "from": "2025-01-01",
        "to": "2027-01-01",
        "search": "pay",
        "products": [encode_id("Product", product.id)],
        "statuses": ["PROPOSED"],
    }
    for expected in ("compiled", "repeated"):
        got = await compiled(REFUSABLE, valid)
        assert got["extensions"]["answeredBy"] == expected
    planned = PLANS.compilations
    refused: list[tuple[dict[str, Any], str, str | None]] = [
        ({"first": 101}, "INVALID", "`first` must be between 0 and 100; got 101."),
        ({"last": 2}, "INVALID", "Pass either `first` or `last`, not both."),
        ({"to": "2024-01-01"}, "INVALID", "`targetStart`: the end is before the start."),
        ({"search": "'% !-"}, "INVALID", "`search` must contain at least one letter or digit."),
        ({"search": "x" * 201}, "INVALID", "`search` is limited to 200 characters."),
        ({"products": [encode_id("Team", 1)]}, "INVALID", None),
        ({"statuses": ["NOPE"]}, "BAD_USER_INPUT", None),
    ]
    for change, code, message in refused:
        variables = {**valid, **change}
        got = await compiled(REFUSABLE, variables, status=None)
        await reference(REFUSABLE, variables, status=None)
        assert _before_extensions(compiled.last_body) == _before_extensions(reference.last_body), (
            change
        )
        (error,) = got["errors"]
        assert error["extensions"]["code"] == code, change
        if message is not None:
            assert error["message"] == message, change
    # Only `last` beside `first` is a shape of its own (planned, refused, kept for no
    # other value); nothing else was planned, and the plan still serves valid values.
    assert PLANS.compilations == planned + 1
    got = await compiled(REFUSABLE, {**valid, "first": 0})
    assert got["extensions"]["answeredBy"] == "repeated"
    assert got["data"]["initiatives"]["nodes"] == []


SERIES = """
query Series($key: String!, $from: DateTime!, $to: DateTime!) {
  kpi(key: $key) {
    key
    series(from: $from, to: $to, bucket: DAY) { bucketStart average minimum maximum count }
  }
}"""


async def test_a_series_window_is_a_parameter(pair: Any, db: AsyncSession) -> None:
    """A dashboard moves its window: every `from`/`to` shares one plan, and each answer
    is its own window's, as the resolvers give it; a window the resolvers refuse (its
    end first, too many buckets) gets their error."""
    kpi = await factories.kpi(db)
    start = datetime(2026, 3, 1, tzinfo=UTC)
    for hour in range(0, 24 * 40, 7):
        db.add(
            KpiMeasurement(
                kpi_id=kpi.id,
                observed_at=start + timedelta(hours=hour, seconds=hour % 3 * 0.25),
                value=hour / 7 + 0.5,
                source="test",
                external_id=f"s-{hour}",
            )
        )
    await db.flush()
    compiled, reference = pair(["portfolio:read"])
    rng = random.Random(5)
    planned = PLANS.compilations
    paths: dict[str, int] = {}
    for number in range(12):
        begin = start + timedelta(hours=rng.randint(-48, 24 * 30))
        end = begin + timedelta(days=rng.randint(1, 12))
        if number % 5 == 4:
            begin, end = end, begin  # refused: it ends before it starts
        variables = {"key": kpi.key, "from": begin.isoformat(), "to": end.isoformat()}
        got = await compiled(SERIES, variables, status=None)
        await reference(SERIES, variables, status=None)
        assert _before_extensions(compiled.last_body) == _before_extensions(reference.last_body), (
            variables
        )
        path = got["extensions"]["answeredBy"]
        paths[path] = paths.get(path, 0) + 1
        if path != "resolvers":
            assert got["data"]["kpi"]["series"], variables
    assert PLANS.compilations - planned == 1, paths
    assert paths == {"compiled": 1, "repeated": 9, "resolvers": 2}, paths


# --- every filter field of every connection, with values no request sent before -------

# The type of the objects an ID field of a filter names (a field added tomorrow without
# an entry here fails the test: its IDs must be generated of the right type).
ID_TYPES = {
    "products": "Product",
    "ownerTeams": "Team",
    "parents": "Initiative",
    "initiatives": "Initiative",
    "actorUsers": "User",
    "actorClients": "OAuthClient",
    "entity": "Product",
}
ENTITY_TYPES = ["Product", "Initiative", "TechnicalConstraint", "Kpi", "Team", "Nope"]
UNSEEN_VALUES = 3  # per filter field, after the one its plan is made with
# Not a parameter (an input object): each value is planned, and answered, on its own.
PLANNED_PER_VALUE = {"externalRef"}
# A global ID whose type the service writes into the statement as a constant (the audit
# filter's entity type): a plan serves IDs of the type it was made with, and an ID of
# another type is planned anew (or answered by the resolvers), never answered wrong.
PLANNED_PER_TYPE = {"entity"}


@dataclass(frozen=True)
class Position:
    """A connection taking a filter: its root field and, if nested, its field on the
    root's nodes."""

    root: str
    nested: str | None
    node_type: str

    def named(self, field: str) -> str:
        return f"{self.root}.{self.nested}({field})" if self.nested else f"{self.root}({field})"


@dataclass
class Samples:
    """Values of the demo data the generated filters pick from."""

    ids: dict[str, list[str]]
    keys: dict[str, list[str]]
    words: list[str]
    refs: list[tuple[str, str]]
    sources: list[str]
    roles: list[str]


def _connection_node(field: GraphQLField) -> str | None:
    """The node type of a connection field, or None for another field."""
    kind = get_named_type(field.type)
    if not isinstance(kind, GraphQLObjectType) or "nodes" not in kind.fields:
        return None
    return get_named_type(kind.fields["nodes"].type).name


def _optional_arguments(field: GraphQLField) -> bool:
    return not any(
        isinstance(argument.type, GraphQLNonNull) and argument.default_value is Undefined
        for argument in field.args.values()
    )


def _filter_positions() -> dict[str, list[Position]]:
    """Filter input -> every connection taking it: at the root, and on a root's nodes."""
    graphql_schema = schema._schema
    found: dict[str, list[Position]] = {}
    assert graphql_schema.query_type is not None
    for root_name, root in graphql_schema.query_type.fields.items():
        node_type = _connection_node(root)
        if node_type is None or not _optional_arguments(root):
            continue
        if "filter" in root.args:
            name = get_named_type(root.args["filter"].type).name
            found.setdefault(name, []).append(Position(root_name, None, node_type))
        node = graphql_schema.get_type(node_type)
        assert isinstance(node, GraphQLObjectType)
        for nested_name, nested in node.fields.items():
            nested_node = _connection_node(nested)
            if nested_node is None or "filter" not in nested.args:
                continue
            if not _optional_arguments(nested):
                continue
            name = get_named_type(nested.args["filter"].type).name
            found.setdefault(name, []).append(Position(root_name, nested_name, nested_node))
    return found


def _unseen_document(field: str, kind: str, positions: list[Position]) -> str:
    """Every connection taking the filter, filtered by ``field`` as the variable $v."""
    parts = []
    for number, position in enumerate(positions):
        inner = f"(first: 4, filter: {{{field}: $v}}) {{ totalCount nodes {{ id }} }}"
        if position.nested is None:
            parts.append(f"p{number}: {position.root}{inner}")
        else:
            parts.append(
                f"p{number}: {position.root}(first: 3) "
                f"{{ nodes {{ id n: {position.nested}{inner} }} }}"
            )
    return f"query Unseen($v: {kind}) {{\n  " + "\n  ".join(parts) + "\n}"


def _text(rng: random.Random, samples: Samples) -> str:
    """A search text: a prefix of a word of the data, sometimes two, awkward characters
    or nothing to search (refused)."""
    word = rng.choice(samples.words)
    text = word[: rng.randint(1, len(word))]
    roll = rng.random()
    if roll < 0.2:
        text += " " + rng.choice(samples.words)[:3]
    elif roll < 0.4:
        text += "".join(rng.choice(AWKWARD) for _ in range(rng.randint(1, 4)))
    elif roll < 0.45:
        text = rng.choice(["'% !-", "x" * 201])
    return text


def _unseen_value(
    rng: random.Random, kind: GraphQLInputType, field: str, node_type: str, samples: Samples
) -> Any:
    """A value of ``kind`` for the filter field ``field``: mostly valid, some refused."""
    if isinstance(kind, GraphQLNonNull):
        return _unseen_value(rng, kind.of_type, field, node_type, samples)
    if isinstance(kind, GraphQLList):
        count = rng.choice([0, 1, 1, 2, 2, 3, 4])
        return [_unseen_value(rng, kind.of_type, field, node_type, samples) for _ in range(count)]
    if isinstance(kind, GraphQLEnumType):
        return rng.choice(list(kind.values))
    if isinstance(kind, GraphQLInputObjectType):  # an external reference
        system, external_id = rng.choice(samples.refs)
        return {"system": system, "externalId": external_id}
    assert isinstance(kind, GraphQLScalarType), kind
    if kind.name == "Boolean":
        return rng.random() < 0.5
    if kind.name == "Date":
        return _day(rng).isoformat()
    if kind.name == "DateTime":
        instant = datetime(2024, 1, 1, tzinfo=UTC) + timedelta(seconds=rng.randint(0, 10**8))
        text = instant.isoformat()
        return text.replace("+00:00", "") if rng.random() < 0.1 else text  # naive: refused
    if kind.name == "ID":
        id_type = ID_TYPES[field]
        if rng.random() < 0.1:  # an object of another type: refused
            id_type = "Team" if id_type != "Team" else "Product"
        return rng.choice(samples.ids[id_type])
    assert kind.name == "String", kind
    if field == "search":
        return _text(rng, samples)
    choices = {
        "keys": samples.keys.get(node_type, []) + ["NOPE"],
        "sources": samples.sources + ["nope"],
        "entityTypes": ENTITY_TYPES,
        "roles": samples.roles + ["nope"],
        "scope": [scope.value for scope in Scope] + ["nope:read"],
    }
    return rng.choice(choices[field])


async def _samples(db: AsyncSession) -> Samples:
    ids: dict[str, list[str]] = {}
    keys: dict[str, list[str]] = {}
    for type_name, model in (
        ("Product", models.Product),
        ("Initiative", models.Initiative),
        ("Team", models.Team),
        ("Kpi", models.Kpi),
        ("TechnicalConstraint", models.TechnicalConstraint),
    ):
        rows = (await db.execute(select(model.id, model.key).order_by(model.id).limit(12))).all()
        ids[type_name] = [encode_id(type_name, pk) for pk, _ in rows]
        keys[type_name] = [key for _, key in rows]
    for type_name, account in (
        ("User", auth_models.User),
        ("OAuthClient", auth_models.OAuthClient),
    ):
        pks = (await db.scalars(select(account.id).order_by(account.id).limit(6))).all()
        ids[type_name] = [encode_id(type_name, pk) for pk in pks] or [encode_id(type_name, 1)]
    titles = (await db.scalars(select(models.Initiative.title).limit(40))).all()
    words = sorted({w for title in titles for w in title.lower().split() if w.isalpha()})
    refs = (await db.execute(select(ExternalRef.system, ExternalRef.external_id).limit(8))).all()
    sources = (await db.scalars(select(KpiMeasurement.source).distinct().limit(6))).all()
    roles = (await db.scalars(select(auth_models.Role.name).limit(6))).all()
    return Samples(
        ids,
        keys,
        words or ["pay"],
        [(system, external) for system, external in refs] or [("jira", "NOPE-1")],
        list(sources),
        list(roles),
    )


async def test_unseen_values_of_every_filter_field_of_every_connection_answer_alike(
    pair: Any, db: AsyncSession
) -> None:
    """Every field of every filter input, at every connection that takes it (generated
    over the schema): a plan is made with one value, then each request sends a value
    never sent before (enum lists, search texts, keys, IDs, dates, instants, booleans,
    references; some the service refuses). Each answer is the resolvers' byte for byte,
    and every valid value of a field bound as a parameter is served by its plan."""
    samples = await _samples(db)
    compiled, reference = pair(ALL_SCOPES)
    rng = random.Random(23)
    graphql_schema = schema._schema
    served: dict[str, int] = {}
    declined_valid: list[str] = []
    fields = 0
    for input_name, positions in sorted(_filter_positions().items()):
        filter_input = graphql_schema.get_type(input_name)
        assert isinstance(filter_input, GraphQLInputObjectType)
        for field, definition in filter_input.fields.items():
            fields += 1
            document = _unseen_document(field, str(definition.type), positions)
            expected = "compiled" if field in PLANNED_PER_VALUE else "repeated"
            sent: set[bytes] = set()
            planned = False
            for _ in range(200):
                if len(sent) > UNSEEN_VALUES:
                    break
                value = _unseen_value(rng, definition.type, field, positions[0].node_type, samples)
                if value in ([], None) or orjson.dumps(value) in sent:
                    continue
                sent.add(orjson.dumps(value))
                variables = {"v": value}
                got = await compiled(document, variables, status=None)
                answer = await reference(document, variables, status=None)
                where = f"{input_name}.{field} = {value!r}"
                assert _before_extensions(compiled.last_body) == _before_extensions(
                    reference.last_body
                ), where
                path = (got.get("extensions") or {}).get("answeredBy", "refused")
                served[path] = served.get(path, 0) + 1
                if not planned:
                    planned = path == "compiled"
                elif path != expected and "errors" not in answer and field not in PLANNED_PER_TYPE:
                    declined_valid.append(f"{input_name}.{field} {path}")
    assert fields >= 50, fields
    # Each field planned once and then served by its plan for each value it accepts.
    assert not declined_valid, sorted(set(declined_valid))
    assert served.get("repeated", 0) >= fields * (UNSEEN_VALUES - 2), served


def _refusals(filter_input: GraphQLInputObjectType) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Values of the fields of a filter the service checks (ranges, search, time zones,
    IDs): valid ones, and changes it refuses, one fault or several at once."""
    fields = filter_input.fields
    valid: dict[str, Any] = {}
    refused: list[dict[str, Any]] = []
    for name, definition in fields.items():
        kind = get_named_type(definition.type).name
        stem = name.removesuffix("From")
        if name.endswith("From") and f"{stem}To" in fields:
            early, late = (
                ("2025-01-01", "2027-01-01")
                if kind == "Date"
                else ("2025-01-01T00:00:00Z", "2027-01-01T00:00:00+02:00")
            )
            valid |= {name: early, f"{stem}To": late}
            refused.append({name: late, f"{stem}To": early})
        elif name == "search":
            valid[name] = "pay"
            refused += [{name: "'% !-"}, {name: "x" * 201}]
        elif name == "updatedSince":
            valid[name] = "2020-01-01T00:00:00Z"
            refused.append({name: "2020-01-01T00:00:00"})
        elif name in ID_TYPES and isinstance(definition.type, GraphQLList):
            valid[name] = [encode_id(ID_TYPES[name], 1)]
            other = "Team" if ID_TYPES[name] != "Team" else "Product"
            refused.append({name: [encode_id(other, 1)]})
    if len(refused) > 1:  # every fault at once: the service's first is the answer
        refused.append({k: v for change in refused for k, v in change.items()})
        refused.append({k: v for change in reversed(refused[:-1]) for k, v in change.items()})
    return valid, refused


async def test_refused_filters_are_refused_on_the_known_path_as_on_the_first(
    pair: Any,
) -> None:
    """For every filter with values the service refuses (generated over the filter
    inputs: ranges ending before they start, searches without a word or too long, an
    instant without a time zone, IDs of another type, several at once), a plan made
    for valid values is not made again and does not answer them: the request gets the
    error, code and message, the resolvers give, and the plan serves valid values
    after it."""
    compiled, reference = pair(ALL_SCOPES)
    graphql_schema = schema._schema
    checked = 0
    for input_name, positions in sorted(_filter_positions().items()):
        root = next((p for p in positions if p.nested is None), None)
        filter_input = graphql_schema.get_type(input_name)
        assert isinstance(filter_input, GraphQLInputObjectType)
        valid, refused = _refusals(filter_input)
        if root is None or not refused:
            continue
        definitions = ", ".join(f"${n}: {filter_input.fields[n].type}" for n in valid)
        given = ", ".join(f"{n}: ${n}" for n in valid)
        document = (
            f"query Refused({definitions}) {{ {root.root}(first: 3, filter: {{{given}}}) "
            "{ totalCount nodes { id } } }"
        )
        for expected in ("compiled", "repeated"):
            got = await compiled(document, valid)
            assert got["extensions"]["answeredBy"] == expected, (input_name, got)
        planned = PLANS.compilations
        for change in refused:
            variables = {**valid, **change}
            got = await compiled(document, variables, status=None)
            answer = await reference(document, variables, status=None)
            assert _before_extensions(compiled.last_body) == _before_extensions(
                reference.last_body
            ), (input_name, change)
            if "errors" not in answer:
                continue  # this filter takes it (a user's search is any text)
            (error,) = got["errors"]
            assert error["extensions"]["code"] == "INVALID", (input_name, change, error)
            assert error["message"], (input_name, change)
            checked += 1
        assert PLANS.compilations == planned, input_name
        got = await compiled(document, {**valid, "search": "check"} if "search" in valid else valid)
        assert got["extensions"]["answeredBy"] == "repeated", input_name
    assert checked >= 25, checked


BOARD_WORDS = ["payments", "checkout", "ledger", "quoted"]
UNSEEN_BOARD = """
query Board($severities: [ConstraintSeverity!], $statuses: [ConstraintStatus!],
            $categories: [ConstraintCategory!], $search: String, $products: [ID!]) {
  technicalConstraints(first: 20, filter: {severities: $severities, statuses: $statuses,
                       categories: $categories, search: $search, products: $products}) {
    totalCount nodes { key severity status category }
  }
}"""


async def test_an_unseen_enum_list_or_search_is_bound_without_building_the_filters_sql(
    pair: Any, db: AsyncSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once a plan serves the board, a request with enum lists and a search text it
    never saw is bound without asking the service to write its filter's SQL (its
    ``apply`` is not called), and answers as the resolvers do; a field the plan cannot
    compute directly (a list of IDs, decoded by the input) still asks the service."""
    owner = await factories.product(db)
    for number in range(36):
        await factories.constraint(
            db,
            products=[owner],
            title=f"{BOARD_WORDS[number % 4]} limit {number}",
            severity=list(ConstraintSeverity)[number % 4],
            status=list(ConstraintStatus)[number // 4 % 4],
            category=list(ConstraintCategory)[number % 9],
        )
    compiled, reference = pair(["portfolio:read"])
    product = encode_id("Product", owner.id)
    calls: list[str] = []
    written = filters.ConstraintFilter.apply

    def counted(self: filters.ConstraintFilter, statement: Any) -> Any:
        calls.append("apply")
        return written(self, statement)

    monkeypatch.setattr(filters.ConstraintFilter, "apply", counted)
    rng = random.Random(41)
    valid = {
        "severities": ["BLOCKER"],
        "statuses": ["OPEN"],
        "categories": ["SECURITY"],
        "search": "pay",
        "products": [product],
    }
    got = await compiled(UNSEEN_BOARD, valid)
    assert got["extensions"]["answeredBy"] == "compiled"
    assert calls, "the plan is made with the service's SQL"
    sent: list[dict[str, Any]] = []
    bodies: list[bytes] = []
    found = 0  # answers with rows: each compared below
    for number in range(20):
        variables = {
            **valid,
            "severities": _subset(rng, list(ConstraintSeverity)),
            "statuses": _subset(rng, list(ConstraintStatus)),
            "categories": _subset(rng, list(ConstraintCategory)),
            # A word of the rows, or a prefix of one, never sent in this text before.
            "search": rng.choice(BOARD_WORDS)[: rng.randint(1, 6)] + " " + "!" * number,
        }
        calls.clear()
        got = await compiled(UNSEEN_BOARD, variables)
        assert got["extensions"]["answeredBy"] == "repeated", variables
        assert calls == [], variables
        found += got["data"]["technicalConstraints"]["totalCount"] > 0
        sent.append(variables)
        bodies.append(_before_extensions(compiled.last_body))
    calls.clear()
    got = await compiled(UNSEEN_BOARD, {**valid, "products": [product, product]})
    assert got["extensions"]["answeredBy"] == "repeated"
    assert calls, "a list of IDs is asked of the service"
    for variables, body in zip(sent, bodies, strict=True):
        await reference(UNSEEN_BOARD, variables)
        assert body == _before_extensions(reference.last_body), variables
    assert found >= 5, found
