"""The compiled path writes the resolvers' errors itself: a field the caller's scopes
refuse (and an argument the resolver refuses) is null, with the error the resolvers
write, at its concrete path, and the null propagates as GraphQL propagates it. Each
answer is compared byte for byte (status and challenge header too) with the app that
only resolves, and must come from the compiled path."""

from __future__ import annotations

from typing import Any

import pytest

from auth.middleware import challenge
from schema.compiled.extension import PLANS
from schema.ids import encode_id
from tests.conftest import GraphQL
from tests.test_compiled_feed import history  # noqa: F401  (a fixture)

PORTFOLIO = ["portfolio:read"]
FORBIDDEN = "FORBIDDEN"


def _before_extensions(body: bytes) -> bytes:
    return body.split(b',"extensions":', 1)[0]


async def _both(
    apps: tuple[GraphQL, GraphQL], document: str, variables: dict[str, Any] | None = None
) -> tuple[str, dict[str, Any], Any]:
    """The compiled app's path and body, after checking the reference's body, status and
    headers are the same; and the compiled response."""
    compiled, reference = apps
    got = await compiled.client.post("/graphql", json={"query": document, "variables": variables})
    expected = await reference.client.post(
        "/graphql", json={"query": document, "variables": variables}
    )
    assert _before_extensions(got.content) == _before_extensions(expected.content), document
    assert got.status_code == expected.status_code, document
    assert got.headers.get("www-authenticate") == expected.headers.get("www-authenticate")
    body = got.json()
    return body["extensions"]["answeredBy"], body, got


def _error(message_scope: str, path: list[Any]) -> tuple[str, str, list[Any], list[str]]:
    return (
        f"Missing scope: this field requires {message_scope}.",
        FORBIDDEN,
        path,
        [message_scope],
    )


def _errors(body: dict[str, Any]) -> list[tuple[str, str, list[Any], list[str]]]:
    return [
        (
            e["message"],
            e["extensions"]["code"],
            e["path"],
            e["extensions"].get("requiredScopes"),
        )
        for e in body["errors"]
    ]


async def test_a_forbidden_root_field_is_answered_compiled(pair: Any) -> None:
    """`products` without portfolio:read, beside a root the caller may read: no
    statement for it, its FORBIDDEN error, the other root answered."""
    apps = pair(["audit:read"])
    document = "{ auditEvents(first: 1) { totalCount } products { totalCount } }"
    path, body, _ = await _both(apps, document)
    assert path == "compiled"
    assert body["data"]["products"] is None
    assert isinstance(body["data"]["auditEvents"]["totalCount"], int)
    assert _errors(body) == [_error("portfolio:read", ["products"])]
    assert body["errors"][0]["locations"] == [{"line": 1, "column": 40}]


async def test_a_node_of_a_type_the_caller_may_not_read(pair: Any) -> None:
    """`node(id:)` and `nodes(ids:)` refuse by the type of each ID: its own error, at
    its own index."""
    apps = pair(PORTFOLIO)
    event, user = encode_id("AuditEvent", 1), encode_id("User", 1)
    document = f'{{ node(id: "{event}") {{ id }} nodes(ids: ["{user}", "{event}"]) {{ id }} }}'
    path, body, _ = await _both(apps, document)
    assert path == "compiled"
    assert body["data"] == {"node": None, "nodes": [None, None]}
    assert _errors(body) == [
        _error("audit:read", ["node"]),
        _error("admin:users", ["nodes", 0]),
        _error("audit:read", ["nodes", 1]),
    ]


async def test_a_forbidden_scalar_in_a_list_has_an_error_per_item(pair: Any) -> None:
    """`estimatedCost` without finance:read: null on every initiative, one error each,
    with the list index in its path."""
    apps = pair(PORTFOLIO)
    document = "{ products(first: 2) { nodes { key initiatives(first: 2) { nodes { key estimatedCost } } } } }"
    path, body, _ = await _both(apps, document)
    assert path == "compiled"
    expected = [
        _error("finance:read", ["products", "nodes", p, "initiatives", "nodes", i, "estimatedCost"])
        for p, product in enumerate(body["data"]["products"]["nodes"])
        for i, _ in enumerate(product["initiatives"]["nodes"])
    ]
    assert len(expected) >= 2
    assert _errors(body) == expected
    costs = {
        initiative["estimatedCost"]
        for product in body["data"]["products"]["nodes"]
        for initiative in product["initiatives"]["nodes"]
    }
    assert costs == {None}


async def test_a_forbidden_non_null_field_nulls_the_whole_answer(pair: Any) -> None:
    """`webhooks: [Webhook!]!` without admin:webhooks: the null propagates to `data`,
    and the errors of fields below other roots are not written."""
    apps = pair(PORTFOLIO)
    document = "{ viewer { scopes user { roles { name } } } webhooks { id } }"
    path, body, _ = await _both(apps, document)
    assert path == "compiled"
    assert body["data"] is None
    assert _errors(body) == [_error("admin:webhooks", ["webhooks"])]


async def test_an_anonymous_caller_is_challenged(pair: Any, caller: Any) -> None:
    """Refused anonymously: 401 with the bearer challenge, as the resolvers answer;
    with a token, the same body with 200."""
    apps = pair(PORTFOLIO)
    document = "{ teams(first: 1) { totalCount } users { totalCount } }"
    path, body, response = await _both(apps, document)
    assert path == "compiled"
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == challenge()
    assert _errors(body) == [_error("admin:users", ["users"])]

    authenticated = await caller(PORTFOLIO)
    answered = await authenticated(document)
    assert answered["data"]["users"] is None
    assert _errors(answered) == [_error("admin:users", ["users"])]


async def test_a_repeated_refused_document_takes_the_fast_path(pair: Any) -> None:
    """Planned once; asked again, the known-query fast path answers with the same
    errors, status and header."""
    apps = pair(["audit:read"])
    document = "{ products { totalCount } kpis { totalCount } }"
    compilations = PLANS.compilations
    answers = [await _both(apps, document) for _ in range(3)]
    assert [path for path, _, _ in answers] == ["compiled", "repeated", "repeated"]
    assert PLANS.compilations - compilations <= 1
    for _, body, response in answers:
        assert response.status_code == 401
        assert _errors(body) == [
            _error("portfolio:read", ["products"]),
            _error("portfolio:read", ["kpis"]),
        ]


@pytest.mark.parametrize(
    ("window", "message", "field"),
    [
        (
            'from: "2026-01-02T00:00:00Z", to: "2026-01-01T00:00:00Z"',
            "`to` must be after `from`.",
            "to",
        ),
        (
            'from: "2026-01-01T00:00:00", to: "2026-01-02T00:00:00Z"',
            "`from` and `to` need a time zone offset.",
            "from",
        ),
    ],
)
async def test_an_invalid_series_window_is_answered_compiled(
    pair: Any, window: str, message: str, field: str
) -> None:
    """The resolver's own check (``reads.check_series_range``) refuses the window at
    planning: its INVALID error, and the null of `series: [KpiSeriesPoint!]!` propagates
    through the non-null KPI to the nullable `kpis`."""
    apps = pair(PORTFOLIO)
    document = f"{{ kpis(first: 2) {{ nodes {{ key series({window}) {{ count }} }} }} }}"
    path, body, _ = await _both(apps, document)
    assert path == "compiled"
    assert body["data"] == {"kpis": None}
    (error,) = body["errors"]
    assert (error["message"], error["path"]) == (message, ["kpis", "nodes", 0, "series"])
    assert error["extensions"] == {"code": "INVALID", "field": field}


async def test_an_invalid_trend_window_is_answered_compiled(pair: Any) -> None:
    """``reads.check_trend_window`` at planning, as for a series window."""
    apps = pair(PORTFOLIO)
    document = "{ kpis(first: 2) { nodes { key trend(windowDays: 0) { direction } } } }"
    path, body, _ = await _both(apps, document)
    assert path == "compiled"
    assert body["data"] == {"kpis": None}
    (error,) = body["errors"]
    assert error["message"] == "`windowDays` must be between 1 and 366; got 0."
    assert error["path"] == ["kpis", "nodes", 0, "trend"]
    assert error["extensions"] == {"code": "INVALID", "field": "windowDays"}


FEED_NODES = """query($since: String) { changes(since: $since) { events { change entityType
  node { id ... on Initiative { key estimatedCost } ... on Product { key } } } } }"""


async def test_a_forbidden_field_in_a_feed_events_node(
    pair: Any,
    history: dict[str, Any],  # noqa: F811
) -> None:
    """`estimatedCost` without finance:read on the initiatives the feed's `node` holds:
    an error per live initiative, none for the products (their objects have no such
    field) nor for the archived one (no object)."""
    apps = pair(PORTFOLIO)
    path, body, _ = await _both(apps, FEED_NODES, {"since": history["start"]})
    assert path == "compiled"
    events = body["data"]["changes"]["events"]
    live = [
        i
        for i, event in enumerate(events)
        if event["entityType"] == "INITIATIVE" and event["node"] is not None
    ]
    assert len(live) == 3  # created, linked, unlinked (the other initiative is archived)
    assert any(event["entityType"] == "PRODUCT" for event in events)
    assert _errors(body) == [
        _error("finance:read", ["changes", "events", i, "node", "estimatedCost"]) for i in live
    ]
    assert {events[i]["node"]["estimatedCost"] for i in live} == {None}


async def test_a_forbidden_feed_event_field_propagates_its_null(
    pair: Any,
    history: dict[str, Any],  # noqa: F811
) -> None:
    """`FeedEvent.changes: JSON!` without audit:read: its null propagates through the
    non-null events and `changes: FeedPage!` to `data`; the first event's error alone
    is written."""
    apps = pair(PORTFOLIO)
    document = "query($since: String) { changes(since: $since) { events { key changes } } }"
    path, body, _ = await _both(apps, document, {"since": history["start"]})
    assert path == "compiled"
    assert body["data"] is None
    assert _errors(body) == [_error("audit:read", ["changes", "events", 0, "changes"])]


async def test_a_refused_key_shared_by_two_feed_types_is_left_to_the_resolvers(
    pair: Any,
    history: dict[str, Any],  # noqa: F811
) -> None:
    """The answer does not say a node's type: a refused field whose response key
    another type selects too (each with its own location) is not told apart, so the
    resolvers answer."""
    apps = pair(PORTFOLIO)
    document = """query($since: String) { changes(since: $since) { events { node {
      ... on Initiative { history { totalCount } } ... on Product { history { totalCount } }
    } } } }"""
    path, body, _ = await _both(apps, document, {"since": history["start"]})
    assert path == "resolvers"
    line = document.splitlines()[1]
    columns = {line.index("history") + 1, line.rindex("history") + 1}  # one per type
    assert {(e["path"][-1], e["locations"][0]["line"]) for e in body["errors"]} == {
        ("history", 2),
    }
    assert {e["locations"][0]["column"] for e in body["errors"]} == columns


async def test_a_forbidden_field_of_an_as_of_lookup(pair: Any) -> None:
    """`history` (audit:read) of a product as it was: null with its error, the rest of
    the rebuilt row answered."""
    apps = pair(PORTFOLIO)
    document = (
        '{ product(key: "PAY", asOf: "2099-01-01T00:00:00Z") { key history { totalCount } } }'
    )
    path, body, _ = await _both(apps, document)
    assert path == "compiled"
    assert body["data"] == {"product": {"key": "PAY", "history": None}}
    assert _errors(body) == [_error("audit:read", ["product", "history"])]


async def test_viewer_and_webhooks_beside_a_forbidden_field(pair: Any) -> None:
    """`viewer` and `webhooks` (built field by field, their places recorded) answered
    beside a refused field of another root, in one compiled answer."""
    apps = pair(["admin:webhooks", *PORTFOLIO])
    document = """{ viewer { __typename scopes authenticated user { id } }
      webhooks { __typename id deliveries(last: 1) { id log { statusCode } } }
      initiatives(first: 1) { nodes { estimatedCost } } }"""
    path, body, _ = await _both(apps, document)
    assert path == "compiled"
    assert body["data"]["viewer"]["scopes"] == ["admin:webhooks", "portfolio:read"]
    assert _errors(body) == [_error("finance:read", ["initiatives", "nodes", 0, "estimatedCost"])]
