"""Running it: health, readiness, metrics, request ids, body and time limits, and what
callers see when the database is slow, busy or gone."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
from graphql import GraphQLError
from prometheus_client import CollectorRegistry
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from api.app import assemble_app
from domain.database import create_engine, create_session_factory
from domain.metrics import HTTPRequests
from schema.errors import with_code
from tests.conftest import GraphQL, in_pieces, make_client, settings_for
from tests.fixtures.auth import bearer


@pytest.fixture
async def own_engine(database_url: str) -> AsyncIterator[Any]:
    """Apps with their own engine (own pool), for pool and timeout behaviour."""
    engines: list[AsyncEngine] = []

    def make(**settings: Any) -> Any:
        configured = settings_for(**settings)
        engine = create_engine(database_url, configured)
        engines.append(engine)
        return assemble_app(configured, engine, create_session_factory(engine))

    yield make
    for engine in engines:
        await engine.dispose()


def client_for(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


async def test_readyz_reports_database_and_migrations(client: httpx.AsyncClient) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ready",
        "checks": {"database": "ok", "migrations": "ok"},
    }


async def test_readyz_and_graphql_when_the_database_is_gone() -> None:
    settings = settings_for(db_connect_timeout_seconds=1)
    engine = create_engine("postgresql+asyncpg://postgres@127.0.0.1:1/nowhere", settings)
    app = assemble_app(settings, engine, create_session_factory(engine))
    async with client_for(app) as client:
        ready = await client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"]["database"].startswith("unreachable: ")
        response = await client.post("/graphql", json={"query": "{ products { totalCount } }"})
    assert response.status_code == 503
    assert response.headers["retry-after"] == "2"
    assert response.json() == {
        "errors": [
            {
                "message": "The database is unavailable or busy; retry shortly.",
                "extensions": {"code": "SERVICE_UNAVAILABLE"},
            }
        ]
    }
    await engine.dispose()


async def test_pool_exhaustion_answers_503_instead_of_hanging(own_engine: Any) -> None:
    app = own_engine(db_pool_size=1, db_max_overflow=0, db_pool_timeout_seconds=0.2)
    engine = app.state.engine
    async with engine.connect() as held, client_for(app) as client:
        await held.execute(text("SELECT 1"))  # the only connection is taken
        response = await client.post("/graphql", json={"query": "{ products { totalCount } }"})
    assert response.status_code == 503
    assert response.json()["errors"][0]["extensions"] == {"code": "SERVICE_UNAVAILABLE"}
    async with client_for(app) as client:  # and it recovers once the connection is back
        again = await client.post("/graphql", json={"query": "{ products { totalCount } }"})
    assert again.status_code == 200


async def test_statement_timeout_is_set_on_every_connection(own_engine: Any) -> None:
    app = own_engine(statement_timeout_ms=1234)
    async with app.state.engine.connect() as connection:
        assert await connection.scalar(text("SHOW statement_timeout")) == "1234ms"


async def test_request_timeout(own_engine: Any) -> None:
    app = own_engine(request_timeout_seconds=0.000001)
    async with client_for(app) as client:
        response = await client.post("/graphql", json={"query": "{ products { totalCount } }"})
    assert response.status_code == 503
    assert response.json()["errors"][0] == {
        "message": "The request took longer than 1e-06 s and was stopped.",
        "extensions": {"code": "TIMEOUT"},
    }


async def test_body_limit(engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]) -> None:
    async with make_client(engine, sessions, max_body_bytes=1000) as client:
        response = await client.post("/graphql", json={"query": "{ __typename }" + " " * 2000})
    assert response.status_code == 413
    assert response.json()["errors"][0] == {
        "message": "Request bodies are limited to 1000 bytes.",
        "extensions": {"code": "REQUEST_TOO_LARGE"},
    }


async def test_body_limit_holds_for_chunked_bodies(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """Without a Content-Length the body is counted as it arrives: refused past the
    limit, and the large-request slot it took on the way is given back."""
    limits: dict[str, Any] = {
        "max_body_bytes": 1000,
        "large_body_bytes": 300,
        "large_requests_at_once": 1,
    }
    async with make_client(engine, sessions, **limits) as client:
        oversized = orjson.dumps({"query": "{ __typename }" + " " * 2000})
        response = await client.post(
            "/graphql",
            content=in_pieces(oversized, 100),
            headers={"content-type": "application/json"},
        )
        assert response.status_code == 413
        assert response.json()["errors"][0] == {
            "message": "Request bodies are limited to 1000 bytes.",
            "extensions": {"code": "REQUEST_TOO_LARGE"},
        }
        # Large (over 300 bytes) but within the limit: it gets the only slot.
        large = orjson.dumps({"query": "{ __typename }" + " " * 500})
        response = await client.post(
            "/graphql", content=in_pieces(large, 100), headers={"content-type": "application/json"}
        )
        assert response.status_code == 200, response.text
        assert response.json()["data"] == {"__typename": "Query"}


async def test_request_id_is_echoed_or_made(client: httpx.AsyncClient) -> None:
    given = await client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert given.headers["x-request-id"] == "abc-123"
    made = await client.get("/healthz", headers={"X-Request-ID": "bad id\nwith newline"})
    absent = await client.get("/healthz")
    ids = {made.headers["x-request-id"], absent.headers["x-request-id"]}
    assert len(ids) == 2
    assert all(len(made) == 32 and int(made, 16) >= 0 for made in ids)


async def test_metrics(client: httpx.AsyncClient, gql: GraphQL) -> None:
    await gql("{ products(first: 2) { totalCount } }")
    await gql("{ products(first: 500) { totalCount } }")
    body = (await client.get("/metrics")).text
    assert 'portfolio_http_requests_total{path="/graphql",status="200"} 2.0' in body
    assert 'portfolio_graphql_errors_total{code="INVALID"} 1.0' in body
    assert "portfolio_query_cost_points_total" in body
    assert "portfolio_db_pool_checked_out" in body
    assert 'portfolio_http_request_seconds_count{path="/graphql"} 2.0' in body
    assert 'portfolio_http_request_seconds_bucket{le="+Inf",path="/graphql"} 2.0' in body


def test_request_times_fall_in_the_first_bucket_whose_bound_they_do_not_pass() -> None:
    """Prometheus's buckets count the requests at or under their bound ("le"),
    cumulatively; each request counted once, its time added to the sum."""
    registry = CollectorRegistry()
    requests = HTTPRequests(registry)
    for seconds in (0.001, 0.005, 0.0051, 0.3, 11.0):
        requests.observe("/graphql", 200, seconds)
    requests.observe("/graphql", 503, 0.02)
    requests.observe("other", 404, 0.002)
    value = registry.get_sample_value
    assert value("portfolio_http_requests_total", {"path": "/graphql", "status": "200"}) == 5
    assert value("portfolio_http_requests_total", {"path": "/graphql", "status": "503"}) == 1
    assert value("portfolio_http_requests_total", {"path": "other", "status": "404"}) == 1
    at_most = {
        le: value("portfolio_http_request_seconds_bucket", {"path": "/graphql", "le": le})
        for le in ("0.005", "0.01", "0.025", "0.25", "0.5", "10.0", "+Inf")
    }
    assert at_most == {
        "0.005": 2, "0.01": 3, "0.025": 4, "0.25": 4, "0.5": 5, "10.0": 5, "+Inf": 6
    }  # fmt: skip
    assert value("portfolio_http_request_seconds_count", {"path": "/graphql"}) == 6
    assert value("portfolio_http_request_seconds_sum", {"path": "/graphql"}) == pytest.approx(
        0.001 + 0.005 + 0.0051 + 0.3 + 11.0 + 0.02
    )


def test_internal_errors_are_coded_and_timeouts_named() -> None:
    error = with_code(GraphQLError("boom", path=["x"], original_error=RuntimeError("secret")))
    assert error.extensions == {"code": "INTERNAL_SERVER_ERROR"}

    class Cancelled(Exception):
        sqlstate = "57014"

    timeout = with_code(GraphQLError("canceling statement", path=["x"], original_error=Cancelled()))
    assert timeout.extensions == {"code": "TIMEOUT"}
    assert timeout.message == "The database took too long to answer this field."


async def test_internal_error_is_masked_in_production(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    app = assemble_app(settings_for(environment="production"), engine, sessions)
    view = app.state.view
    error = with_code(GraphQLError("secret detail", path=["x"], original_error=KeyError("k")))
    public = view._public(error, {"request_id": "req-1"})
    assert public["message"] == "Internal server error; quote request id req-1."
    assert public["extensions"] == {"code": "INTERNAL_SERVER_ERROR", "requestId": "req-1"}


async def test_access_log_names_request_client_operation_and_cost(
    engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
    db: AsyncSession,
    capsys: pytest.CaptureFixture[str],
) -> None:
    app = assemble_app(settings_for(environment="production"), engine, sessions)  # JSON logs
    headers = await bearer(app, db, ["portfolio:read"])
    capsys.readouterr()
    async with make_client(engine, sessions, app=app, headers=headers) as client:
        response = await client.post(
            "/graphql", json={"query": "query TwoTeams { teams(first: 2) { nodes { key } } }"}
        )
    assert response.status_code == 200
    [entry] = [e for e in map(_log_entry, capsys.readouterr().out.splitlines()) if e]
    assert entry["request_id"] == response.headers["x-request-id"]
    assert entry["operation"] == "TwoTeams"
    assert str(entry["cost"]) == "3"
    assert str(entry["client_id"]).startswith("test-client")
    assert (entry["method"], entry["path"], str(entry["status"])) == ("POST", "/graphql", "200")


def _log_entry(line: str) -> dict[str, Any] | None:
    """The access log line as a dict, whether rendered as JSON (production) or for a
    console (development: the logger keeps the first configuration it is used with)."""
    if line.startswith("{"):
        entry: dict[str, Any] = orjson.loads(line)
        return entry if entry.get("event") == "request" else None
    plain = re.sub(r"\x1b\[[0-9;]*m", "", line)
    if "] request " not in plain:
        return None
    return dict(re.findall(r"(\w+)=(\S+)", plain))


async def test_answers_may_not_be_kept_by_caches_unless_their_route_says_so(
    app: Any, db: AsyncSession
) -> None:
    """A GraphQL answer depends on the caller's token and scopes, over GET as over POST,
    on the known-read lane as on the whole path: no browser or proxy may keep it. Routes
    that set their own policy keep it."""
    headers = await bearer(app, db, ["portfolio:read"])
    query = "{ products(first: 2) { totalCount } }"
    async with client_for(app) as client:
        answers = [
            await client.get("/graphql", params={"query": query}, headers=headers),
            await client.get("/graphql", params={"query": query}, headers=headers),  # known
            await client.post("/graphql", json={"query": query}, headers=headers),
            await client.post("/graphql", json={"query": query}, headers=headers),  # known
            await client.post("/graphql", json={"query": "{ nope }"}, headers=headers),
            await client.post("/graphql", json={"query": query}),  # no token: refused
            await client.get("/healthz"),
        ]
        assert [answer.status_code for answer in answers] == [200, 200, 200, 200, 200, 401, 200]
        for answer in answers:
            assert answer.headers.get_list("cache-control") == ["no-store"], answer.request
        jwks = await client.get("/.well-known/jwks.json")
        assert jwks.headers.get_list("cache-control") == ["public, max-age=300"]
