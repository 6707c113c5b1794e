"""GET on the endpoint's lane (``GraphQLEndpoint._known_get``): a known read over GET is
answered without a request transaction or a Starlette request, and every GET (known,
persisted, refused, malformed, a mutation) is answered byte for byte as the whole path
answers it: status, headers, body and the budget charged."""

from __future__ import annotations

import hashlib
import json
import math
import random
import time
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from starlette.applications import Starlette

from api.app import assemble_app
from domain import models
from schema.get_requests import read_filled_in, read_get_request
from schema.ids import encode_id
from schema.persisted import query_string_of
from tests.conftest import ALL_SCOPES, settings_for
from tests.fixtures import factories
from tests.fixtures.paths import whole_path_counter

# The same id on every request: the answers' X-Request-ID headers are then alike too.
HEADERS = {"X-Request-ID": "get-lane"}
JSON = {"accept": "application/json"}
READ = "query {name}($first: Int) {{ teams(first: $first) {{ totalCount nodes {{ key }} }} }}"
TITLE = """mutation {name}($id: ID!, $title: String) {{
  updateInitiative(input: {{id: $id, title: $title}}) {{ initiative {{ title }} }}
}}"""


def _apps(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession], **settings: Any
) -> tuple[Starlette, Starlette]:
    """The same server twice: with GET on the lane, and with the lane for POST only
    (what it was before GET took it). Both budgets' clocks stand still at one instant,
    so that ``remaining`` and Retry-After tell whether both charged alike."""
    lane = assemble_app(settings_for(**settings), engine, sessions)
    whole = assemble_app(settings_for(**settings), engine, sessions)
    takes_known = whole.state.view.takes_known

    def post_only(method: str, accept: str | None) -> bool:
        return method == "POST" and bool(takes_known(method, accept))

    whole.state.view.takes_known = post_only
    instant = time.time()
    for app in (lane, whole):
        app.state.rate_limiter.clock = lambda: instant
    return lane, whole


def _client(app: Starlette) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test", headers=HEADERS
    )


@pytest.fixture
def made(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """What each request makes of the whole path: request transactions, Starlette
    requests."""
    return whole_path_counter(monkeypatch)


async def _alike(
    lane: httpx.AsyncClient, whole: httpx.AsyncClient, made: list[str], **request: Any
) -> tuple[httpx.Response, bool]:
    """The GET sent to both servers; asserts the answers are alike byte for byte.
    Returns the lane server's answer and whether its lane answered it (no transaction,
    no Starlette request made). Headers: the same fields and values; in the same order
    when both took the whole path. The lane's ``Answer`` writes Content-Type before
    Content-Length, strawberry's after, as for POST: fields of different names are
    not ordered (RFC 9110, 5.3)."""
    made.clear()
    answered = await lane.get("/graphql", **request)
    on_lane = made == []
    made.clear()
    expected = await whole.get("/graphql", **request)
    assert made[:1] == ["transaction"]  # the whole path
    assert answered.status_code == expected.status_code
    if on_lane:
        assert sorted(answered.headers.multi_items()) == sorted(expected.headers.multi_items())
    else:
        assert answered.headers.multi_items() == expected.headers.multi_items()
    assert answered.content == expected.content
    return answered, on_lane


async def _make_known(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession], **request: Any
) -> httpx.Response:
    """A GET of a document new to the process, sent to a third server: its plan is made
    (``answeredBy: compiled``) and kept for the process, and the fee for parsing a new
    document is charged to that server's budget, not to either compared one's."""
    async with _client(assemble_app(settings_for(), engine, sessions)) as warm:
        answered = await warm.get("/graphql", **request)
    assert answered.json()["extensions"]["answeredBy"] == "compiled", answered.text
    return answered


async def test_a_known_get_read_takes_the_lane_and_answers_as_the_whole_path(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession], made: list[str]
) -> None:
    lane_app, whole_app = _apps(engine, sessions)
    name = f"R{uuid.uuid4().hex}"  # new to this process
    document = READ.format(name=name)
    params = {"query": document, "variables": json.dumps({"first": 2})}
    first = await _make_known(engine, sessions, params=params)
    async with _client(lane_app) as lane, _client(whole_app) as whole:
        for accept in ("application/json", "application/graphql-response+json"):
            known, on_lane = await _alike(
                lane, whole, made, params=params, headers={"accept": accept}
            )
            assert on_lane, made
            assert known.status_code == 200
            assert known.headers["content-type"] == f"{accept}; charset=utf-8"
            body = known.json()
            assert body["extensions"]["answeredBy"] == "repeated"
            assert body["data"] == first.json()["data"]
            assert body["data"]["teams"]["nodes"]
        # The operation named: known once sent so (the name is part of the plan's key),
        # and then for values of the same shape too.
        await _make_known(engine, sessions, params={**params, "operationName": name})
        other = {**params, "variables": json.dumps({"first": 1}), "operationName": name}
        named, on_lane = await _alike(lane, whole, made, params=other)
        assert on_lane and len(named.json()["data"]["teams"]["nodes"]) == 1


async def test_persisted_gets_are_answered_as_the_whole_path(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession], made: list[str]
) -> None:
    """A hash whose document the store holds in memory is filled in on the lane; one it
    must look up, a mismatch and an unknown hash are answered alike."""
    lane_app, whole_app = _apps(engine, sessions)
    document = READ.format(name=f"P{uuid.uuid4().hex}")
    digest = hashlib.sha256(document.encode()).hexdigest()
    with_hash = {"persistedQuery": {"version": 1, "sha256Hash": digest}}
    # Sent with its hash, the document is registered (development), in the database.
    with_query = {"query": document, "extensions": json.dumps(with_hash)}
    await _make_known(engine, sessions, params=with_query)
    async with _client(lane_app) as lane, _client(whole_app) as whole:
        # Not in this store's memory yet: read from the database on the whole path, and
        # kept in memory from then on.
        registered, on_lane = await _alike(lane, whole, made, params=with_query)
        assert not on_lane and registered.json()["data"]["teams"]["totalCount"] >= 0
        hash_only, on_lane = await _alike(
            lane, whole, made, params={"extensions": json.dumps(with_hash)}
        )
        assert on_lane, made
        assert hash_only.json()["data"] == registered.json()["data"]
        assert hash_only.json()["extensions"]["answeredBy"] == "repeated"
        # In memory, the hash with its document: the lane too.
        again, on_lane = await _alike(lane, whole, made, params=with_query)
        assert on_lane and again.json()["data"] == registered.json()["data"]

        unknown = {"persistedQuery": {"version": 1, "sha256Hash": "0" * 64}}
        missing, on_lane = await _alike(
            lane, whole, made, params={"extensions": json.dumps(unknown)}
        )
        assert not on_lane  # the store reads the database, in the request's transaction
        assert missing.status_code == 200
        assert missing.json() == {
            "errors": [
                {
                    "message": "PersistedQueryNotFound",
                    "extensions": {"code": "PERSISTED_QUERY_NOT_FOUND"},
                }
            ]
        }
        mismatch = {"query": "{ __typename }", "extensions": json.dumps(with_hash)}
        wrong, _ = await _alike(lane, whole, made, params=mismatch)
        assert wrong.status_code == 400
        assert wrong.json()["errors"][0] == {
            "message": "sha256Hash does not match the query.",
            "extensions": {"code": "PERSISTED_QUERY_HASH_MISMATCH"},
        }


async def test_refused_gets_are_answered_as_the_whole_path(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession], made: list[str]
) -> None:
    """Malformed, missing or unknown parameters of a known document, and a subscription
    over GET, are answered by the whole path, in its words."""
    lane_app, whole_app = _apps(engine, sessions)
    document = READ.format(name=f"M{uuid.uuid4().hex}")
    await _make_known(engine, sessions, params={"query": document})
    async with _client(lane_app) as lane, _client(whole_app) as whole:

        async def refused(params: dict[str, str], status: int) -> dict[str, Any]:
            # Accept: JSON, not */*: a GET without a query from a browser gets GraphiQL.
            answer, on_lane = await _alike(lane, whole, made, params=params, headers=JSON)
            assert not on_lane
            assert answer.status_code == status
            error: dict[str, Any] = answer.json()["errors"][0]
            return error

        error = await refused({"query": document, "variables": "{first: 2"}, 400)
        assert error["extensions"]["code"] == "BAD_REQUEST"
        assert error["message"].startswith("Unable to parse request body as JSON")
        error = await refused({"query": document, "variables": ""}, 400)
        assert error["message"] == (
            "The GraphQL operation's `variables` must be an object or null, if provided."
        )
        error = await refused({"query": document, "variables": "[2]"}, 400)
        assert error["message"] == (
            "The GraphQL operation's `variables` must be an object or null, if provided."
        )
        error = await refused({"query": document, "variables": '{"first": "\\u0000"}'}, 400)
        assert error == {
            "message": "`first` contains a NUL character (U+0000), which text may not hold.",
            "extensions": {"code": "BAD_USER_INPUT"},
        }
        error = await refused({"query": document, "extensions": "[]"}, 400)
        assert error["message"] == (
            "The GraphQL operation's `extensions` must be an object or null, if provided."
        )
        error = await refused({"variables": "{}"}, 400)
        assert error["message"] == "No GraphQL query found in the request"
        error = await refused({"query": document, "operationName": "Elsewhere"}, 400)
        assert error["message"] == 'Unknown operation named "Elsewhere".'
        subscription = "subscription { initiativeChanged { change } }"
        error = await refused({"query": subscription}, 200)
        assert error == {
            "message": "Subscriptions run over WebSocket (graphql-transport-ws) at /graphql.",
            "extensions": {"code": "OPERATION_NOT_SUPPORTED"},
        }


async def test_a_known_mutation_over_get_is_refused_as_before_and_never_run(
    engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
    db: AsyncSession,
    made: list[str],
) -> None:
    """A mutation the known-update path answers over POST is refused over GET exactly
    as the whole path refuses it (405), and neither path writes: the known updates are
    not even asked."""
    initiative = await factories.initiative(db, title="Before")
    await db.commit()
    lane_app, whole_app = _apps(engine, sessions, anonymous_scopes=ALL_SCOPES)
    document = TITLE.format(name=f"W{uuid.uuid4().hex}")
    variables = {"id": encode_id("Initiative", initiative.id), "title": "Posted"}
    asked: list[Any] = []
    updates = lane_app.state.view.updates
    answer = updates.answer

    async def recorded(*args: Any) -> Any:
        asked.append(args)
        return await answer(*args)

    updates.answer = recorded
    async with _client(lane_app) as lane, _client(whole_app) as whole:
        body = {"query": document, "variables": variables}
        await lane.post("/graphql", json=body)  # strawberry's path: known from now on
        posted = await lane.post(
            "/graphql", json={**body, "variables": {**variables, "title": "Known"}}
        )
        assert posted.json()["extensions"]["answeredBy"] == "update"
        asked.clear()
        params = {"query": document, "variables": json.dumps({**variables, "title": "By GET"})}
        refused, on_lane = await _alike(lane, whole, made, params=params)
        assert not on_lane and asked == []
        assert refused.status_code == 405
        assert refused.headers["allow"] == "POST"
        assert refused.json() == {
            "errors": [
                {
                    "message": "GET runs queries only; send mutations with POST.",
                    "extensions": {"code": "METHOD_NOT_ALLOWED"},
                }
            ]
        }
    title = await db.scalar(
        text("SELECT title FROM initiatives WHERE id = :id"), {"id": initiative.id}
    )
    assert title == "Known"


async def test_a_spent_budget_refuses_a_known_get_as_the_whole_path(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession], made: list[str]
) -> None:
    """Charged alike, refused alike: the same 429, Retry-After and error once the budget
    is spent, the lane's refusal told by strawberry's path without a second charge."""
    lane_app, whole_app = _apps(engine, sessions, rate_limit_points=40)
    document = READ.format(name=f"B{uuid.uuid4().hex}")
    params = {"query": document, "variables": json.dumps({"first": 5})}
    await _make_known(engine, sessions, params=params)
    async with _client(lane_app) as lane, _client(whole_app) as whole:
        first, on_lane = await _alike(lane, whole, made, params=params)
        assert on_lane
        cost = first.json()["extensions"]["cost"]
        assert cost["requested"] > 0
        remaining = cost["remaining"]
        while remaining >= cost["requested"]:
            known, on_lane = await _alike(lane, whole, made, params=params)
            assert on_lane
            assert known.json()["extensions"]["cost"]["remaining"] == (
                remaining - cost["requested"]
            )
            remaining -= cost["requested"]
        spent, _ = await _alike(lane, whole, made, params=params)
        assert spent.status_code == 429
        assert spent.json()["errors"][0]["extensions"]["code"] == "RATE_LIMITED"
        assert (
            int(spent.headers["retry-after"])
            == spent.json()["errors"][0]["extensions"]["retryAfter"]
        )


async def test_persisted_only_gets_are_answered_as_the_whole_path(
    engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
    db: AsyncSession,
    made: list[str],
) -> None:
    """Where only persisted documents run, every GET is a hash: one the store holds in
    memory is answered on the lane; a free-form document is refused alike."""
    lane_app, whole_app = _apps(engine, sessions, persisted_queries_only=True)
    document = READ.format(name=f"O{uuid.uuid4().hex}")
    digest = hashlib.sha256(document.encode()).hexdigest()
    db.add(models.PersistedQuery(sha256=digest, document=document))
    await db.commit()
    by_hash = {"extensions": json.dumps({"persistedQuery": {"version": 1, "sha256Hash": digest}})}
    # Made known (a plan) by a server that takes free-form documents.
    await _make_known(engine, sessions, params={"query": document})
    async with _client(lane_app) as lane, _client(whole_app) as whole:
        first, on_lane = await _alike(lane, whole, made, params=by_hash)
        assert not on_lane  # the store reads it from the database, then holds it
        again, on_lane = await _alike(lane, whole, made, params=by_hash)
        assert on_lane, made
        assert again.json()["data"] == first.json()["data"]
        assert again.json()["extensions"]["answeredBy"] == "repeated"
        free_form, on_lane = await _alike(lane, whole, made, params={"query": document})
        assert on_lane  # refused by the lane, as the whole path refuses it
        assert free_form.status_code == 400
        assert free_form.json()["errors"][0]["extensions"] == {"code": "PERSISTED_QUERY_REQUIRED"}


def _text(rng: random.Random) -> str:
    alphabet = "ab Z09&=+%#?;/\"'{}[]:,\\\x00é€😀\u2028"
    return "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 8)))


def _json_value(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(8 if depth < 3 else 6)
    scalars: list[Any] = [
        None,
        rng.choice([True, False]),
        rng.randrange(-(2**63), 2**63),
        rng.choice([0.5, -0.0, 1e300, math.nan, math.inf, -math.inf]),
        _text(rng),
        "",
    ]
    if kind < 6:
        return scalars[kind]
    if kind == 6:
        return [_json_value(rng, depth + 1) for _ in range(rng.randrange(3))]
    return {_text(rng): _json_value(rng, depth + 1) for _ in range(rng.randrange(3))}


def test_a_filled_in_document_is_read_as_strawberry_reads_it_back() -> None:
    """``read_filled_in`` against what it stands for: the query string
    ``set_get_payload`` writes, read as strawberry reads it, for random payloads of
    every shape ``get_payload`` and ``resolve_persisted`` leave (texts, blanks, None,
    objects, lists, numbers JSON cannot hold)."""
    rng = random.Random(20261203)
    names = ["query", "variables", "extensions", "operationName", "other"]
    read = 0  # payloads read with variables: the comparison is not all refusals
    for _ in range(3000):
        payload: dict[str, Any] = {}
        for name in rng.sample(names, rng.randrange(len(names) + 1)):
            if name in ("variables", "extensions") and rng.random() < 0.5:
                payload[name] = {_text(rng): _json_value(rng) for _ in range(rng.randrange(4))}
            else:
                payload[name] = _json_value(rng) if rng.random() < 0.6 else _text(rng)
        expected = read_get_request(query_string_of(payload))
        read += isinstance(expected, dict) and bool(expected.get("variables"))
        # repr: NaN is not equal to itself, but prints alike.
        assert repr(read_filled_in(payload)) == repr(expected), payload
    assert read > 200
