"""Subscriptions over a real WebSocket (graphql-transport-ws), against two server
processes (``portfolio serve``) on one database: a write on either, or in psql, reaches
subscribers on both; events are read with each subscriber's scopes; tokens, limits and
slow consumers end what they must, with the documented close codes.

Synchronisation: each subscription is known to be listening when its server logs
``subscription_started`` for its caller; a slow consumer, when its server logs
``subscription_too_slow``. Nothing waits on a clock, except the one token that is
made to expire."""

from __future__ import annotations

import asyncio
import itertools
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlencode

import asyncpg
import httpx
import orjson
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait
from sqlalchemy import make_url, select
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from api.app import create_app
from domain import models
from domain.database import create_engine
from domain.events import (
    Change,
    Entity,
    EntityChanged,
    LinkChanged,
    TableChanged,
    events_from_notification,
)
from tests.conftest import GraphQL, settings_for
from tests.fixtures.auth import service_client
from tests.fixtures.database import demo_database, run_sql
from tests.fixtures.server import LiveServer, live_servers
from tests.test_graphiql import POLL_SECONDS, _chromium, _result_containing

PROTOCOL = Subprotocol("graphql-transport-ws")
# A bound on how long a message may take to come, so that a lost one fails the test
# rather than hanging it; never a wait for something to happen.
PATIENCE = 30
SERVER_SETTINGS = {
    "PORTFOLIO_MAX_SUBSCRIPTIONS_PER_CONNECTION": "3",
    "PORTFOLIO_MAX_SUBSCRIPTIONS_PER_CALLER": "4",
    "PORTFOLIO_SUBSCRIPTION_QUEUE_SIZE": "4",
    "PORTFOLIO_RATE_LIMIT_POINTS": "100000000",
    "PORTFOLIO_ISSUER": "http://127.0.0.1:8000",  # the tests' tokens' (settings' default)
}
_ids = itertools.count(1)


@pytest.fixture(scope="module")
async def database(database_server: str) -> AsyncIterator[str]:
    async with demo_database(database_server) as url:
        yield url


@pytest.fixture(scope="module")
def servers(database: str) -> Iterator[tuple[LiveServer, LiveServer]]:
    with live_servers(2, database, **SERVER_SETTINGS) as (first, second):
        yield first, second


class Tokens:
    """Real tokens for real clients, signed by the key store the servers read."""

    def __init__(self, database: str, ttl_seconds: int | None = None) -> None:
        self.app = create_app(settings_for(), database_url=database)
        if ttl_seconds is not None:  # shorter than settings allow: copied, not validated
            service = self.app.state.auth.tokens
            service.settings = service.settings.model_copy(
                update={"access_token_ttl_seconds": ttl_seconds}
            )

    async def issue(self, *scopes: str) -> tuple[dict[str, str], str]:
        """``{"Authorization": "Bearer …"}`` for a new client, and the client's id."""
        async with self.app.state.sessions() as session:
            client = await service_client(session, scopes)
            await session.commit()
        token, _ = await self.app.state.auth.tokens.issue(
            client_id=client.client_id, user_id=None, scopes=set(scopes)
        )
        return {"Authorization": f"Bearer {token}"}, client.client_id

    async def close(self) -> None:
        await self.app.state.reads.close()
        await self.app.state.engine.dispose()


@pytest.fixture(scope="module")
async def tokens(database: str) -> AsyncIterator[Tokens]:
    issued = Tokens(database)
    yield issued
    await issued.close()


def ws_url(server: LiveServer) -> str:
    return server.url.replace("http://", "ws://") + "/graphql"


@asynccontextmanager
async def connected(
    server: LiveServer, payload: dict[str, Any], **options: Any
) -> AsyncIterator[ClientConnection]:
    """A WebSocket that has sent ``connection_init`` (not yet acknowledged)."""
    async with connect(ws_url(server), subprotocols=[PROTOCOL], **options) as ws:
        await ws.send(orjson.dumps({"type": "connection_init", "payload": payload}).decode())
        yield ws


@asynccontextmanager
async def acknowledged(
    server: LiveServer, payload: dict[str, Any], **options: Any
) -> AsyncIterator[ClientConnection]:
    async with connected(server, payload, **options) as ws:
        assert await receive(ws) == {"type": "connection_ack"}
        yield ws


async def receive(ws: ClientConnection) -> Any:
    async with asyncio.timeout(PATIENCE):
        return orjson.loads(await ws.recv())


async def closed(ws: ClientConnection) -> tuple[int, str]:
    """Reads until the server closes; the close code and reason."""
    async with asyncio.timeout(PATIENCE):
        try:
            while True:
                await ws.recv()
        except ConnectionClosed as closing:
            assert closing.rcvd is not None, "closed without a close frame"
            return closing.rcvd.code, closing.rcvd.reason


async def subscribe(ws: ClientConnection, server: LiveServer, caller: str, document: str) -> str:
    """Subscribes and waits until the server says the subscription listens."""
    id = str(next(_ids))
    message = {"id": id, "type": "subscribe", "payload": {"query": document}}
    await ws.send(orjson.dumps(message).decode())
    await asyncio.to_thread(server.wait_for, f"subscription_started           caller={caller} ")
    return id


async def post(server: LiveServer, headers: dict[str, str], query: str, **variables: Any) -> Any:
    async with httpx.AsyncClient(base_url=server.url, timeout=PATIENCE) as client:
        response = await client.post(
            "/graphql", json={"query": query, "variables": variables}, headers=headers
        )
    assert response.status_code == 200, response.text
    body = response.json()
    assert "errors" not in body, body
    return body["data"]


async def initiative(database: str, key: str) -> tuple[str, int]:
    """An initiative's global ID and version."""
    from schema.ids import encode_id

    engine = create_engine(database, settings_for())
    async with engine.connect() as connection:
        row = (
            await connection.execute(
                select(models.Initiative.id, models.Initiative.version).where(
                    models.Initiative.key == key
                )
            )
        ).one()
    await engine.dispose()
    return encode_id("Initiative", row.id), row.version


UPDATE_INITIATIVE = """
mutation($id: ID!, $title: String!) {
  updateInitiative(input: {id: $id, title: $title}) { userErrors { code message } }
}"""
WATCH_COST = """
subscription { initiativeChanged(key: "TH-CHECKOUT") {
  change id initiative { key title estimatedCost } } }"""


async def test_a_write_on_one_server_reaches_subscribers_on_both_with_their_own_scopes(
    servers: tuple[LiveServer, LiveServer], tokens: Tokens, database: str
) -> None:
    first, second = servers
    finance, finance_id = await tokens.issue("portfolio:read", "finance:read")
    reader, reader_id = await tokens.issue("portfolio:read")
    writer, _ = await tokens.issue("initiatives:write", "portfolio:read")
    global_id, _ = await initiative(database, "TH-CHECKOUT")
    async with (
        acknowledged(second, finance) as with_finance,
        acknowledged(second, reader) as without_finance,
        acknowledged(first, reader) as on_the_writer,
        acknowledged(second, {}) as anonymous,
    ):
        await subscribe(with_finance, second, f"client:{finance_id}", WATCH_COST)
        await subscribe(without_finance, second, f"client:{reader_id}", WATCH_COST)
        await subscribe(on_the_writer, first, f"client:{reader_id}", WATCH_COST)
        # Development: anonymous callers read with the read scopes, as in queries.
        await subscribe(anonymous, second, "address:127.0.0.1", WATCH_COST)

        data = await post(first, writer, UPDATE_INITIATIVE, id=global_id, title="Checkout, v2")
        assert data["updateInitiative"]["userErrors"] == []

        for ws in (with_finance, anonymous):
            seen = await receive(ws)
            assert seen["type"] == "next"
            event = seen["payload"]["data"]["initiativeChanged"]
            assert event["change"] == "UPDATED" and event["id"] == global_id
            assert event["initiative"]["title"] == "Checkout, v2"
            assert event["initiative"]["estimatedCost"] is not None
            assert "errors" not in seen["payload"]

        for ws in (without_finance, on_the_writer):
            seen = await receive(ws)
            event = seen["payload"]["data"]["initiativeChanged"]
            assert event["initiative"]["title"] == "Checkout, v2"
            assert event["initiative"]["estimatedCost"] is None
            [error] = seen["payload"]["errors"]
            assert error["extensions"]["code"] == "FORBIDDEN"
            assert error["message"] == "Missing scope: this field requires finance:read."
            assert error["path"] == ["initiativeChanged", "initiative", "estimatedCost"]

        # A write outside the API (psql, another tool) reaches them too.
        await run_sql(
            database, "UPDATE initiatives SET title = 'Checkout, v3' WHERE key = 'TH-CHECKOUT'"
        )
        for ws in (with_finance, without_finance, on_the_writer, anonymous):
            event = (await receive(ws))["payload"]["data"]["initiativeChanged"]
            assert event["initiative"]["title"] == "Checkout, v3"


async def test_a_products_neighbourhood_hears_of_its_initiatives_links_and_measurements(
    servers: tuple[LiveServer, LiveServer], tokens: Tokens, database: str
) -> None:
    first, second = servers
    reader, reader_id = await tokens.issue("portfolio:read")
    kpi_key = await run_sql(
        database,
        "SELECT k.key FROM kpis k JOIN products p ON p.id = k.product_id"
        " WHERE p.key = 'PAY' ORDER BY k.id LIMIT 1",
    )
    other = await run_sql(
        database, "SELECT id FROM products WHERE key <> 'PAY' ORDER BY id LIMIT 1"
    )
    async with acknowledged(second, reader) as ws:
        await subscribe(
            ws,
            second,
            f"client:{reader_id}",
            'subscription { productChanged(key: "PAY") { change typename id linkedId'
            " product { key } node { __typename ... on Kpi { key } } } }",
        )
        # Another product's change is not heard; PAY's KPI measured is.
        await run_sql(database, f"UPDATE products SET name = name WHERE id = {other}")
        await run_sql(
            database,
            "INSERT INTO kpi_measurements (kpi_id, observed_at, value, source, external_id)"
            f" SELECT id, now(), 1, 'test', 'neighbourhood-1' FROM kpis WHERE key = '{kpi_key}'",
        )
        event = (await receive(ws))["payload"]["data"]["productChanged"]
        assert event["change"] == "CREATED"
        assert event["typename"] == "KpiMeasurement"
        assert event["product"] == {"key": "PAY"}
        assert event["node"] == {"__typename": "KpiMeasurement"}
        # A link to the product, told from the product's side with the other end.
        await run_sql(
            database,
            "DELETE FROM initiative_products WHERE product_id = (SELECT id FROM products"
            " WHERE key = 'PAY') AND initiative_id = (SELECT min(initiative_id)"
            " FROM initiative_products ip JOIN products p ON p.id = ip.product_id"
            " WHERE p.key = 'PAY')",
        )
        event = (await receive(ws))["payload"]["data"]["productChanged"]
        assert event["change"] == "UNLINKED" and event["typename"] == "Product"
        assert event["linkedId"] is not None


async def test_kpis_hear_of_measurements_and_constraints_of_their_status(
    servers: tuple[LiveServer, LiveServer], tokens: Tokens, database: str
) -> None:
    first, _ = servers
    reader, reader_id = await tokens.issue("portfolio:read")
    caller = f"client:{reader_id}"
    async with acknowledged(first, reader) as ws:
        kpi = await subscribe(
            ws,
            first,
            caller,
            'subscription { kpiChanged(key: "PAY-ADOPTION") { change kpi { key latestValue } } }',
        )
        recorded = await subscribe(
            ws,
            first,
            caller,
            'subscription { measurementsRecorded(kpiKey: "PAY-ADOPTION") {'
            " kpi { key } measurements { value source } } }",
        )
        constraint = await subscribe(
            ws,
            first,
            caller,
            'subscription { constraintChanged(key: "TC-03") { change constraint { status } } }',
        )
        # Two measurements in one statement: one MEASURED, one batch of two.
        await run_sql(
            database,
            "INSERT INTO kpi_measurements (kpi_id, observed_at, value, source, external_id)"
            " SELECT k.id, now() + n * interval '1 second', 40 + n, 'test', 'kpi-' || n"
            " FROM kpis k CROSS JOIN generate_series(1, 2) AS n WHERE k.key = 'PAY-ADOPTION'",
        )
        await run_sql(
            database, "UPDATE technical_constraints SET status = 'MITIGATING' WHERE key = 'TC-03'"
        )
        by_id: dict[str, list[Any]] = {kpi: [], recorded: [], constraint: []}
        for _ in range(3):
            message = await receive(ws)
            by_id[message["id"]].append(message["payload"]["data"])
    assert by_id[kpi] == [
        {"kpiChanged": {"change": "MEASURED", "kpi": {"key": "PAY-ADOPTION", "latestValue": 42.0}}}
    ]
    assert by_id[recorded] == [
        {
            "measurementsRecorded": {
                "kpi": {"key": "PAY-ADOPTION"},
                "measurements": [
                    {"value": 41.0, "source": "test"},
                    {"value": 42.0, "source": "test"},
                ],
            }
        }
    ]
    assert by_id[constraint] == [
        {"constraintChanged": {"change": "UPDATED", "constraint": {"status": "MITIGATING"}}}
    ]


async def test_a_bad_token_at_connection_init_is_refused_with_4401(
    servers: tuple[LiveServer, LiveServer],
) -> None:
    first, _ = servers
    for payload, reason in [
        ({"Authorization": "Bearer not-a-token"}, "Unauthorized: "),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, 'Unauthorized: Use {"Authorization": "Bearer'),
    ]:
        async with connected(first, payload) as ws:
            code, said = await closed(ws)
        assert code == 4401
        assert said.startswith(reason), said


async def test_a_token_revoked_or_expired_mid_subscription_ends_it_with_4401(
    servers: tuple[LiveServer, LiveServer], tokens: Tokens, database: str
) -> None:
    first, _ = servers
    reader, reader_id = await tokens.issue("portfolio:read")
    async with acknowledged(first, reader) as ws:
        await subscribe(ws, first, f"client:{reader_id}", WATCH_COST)
        await run_sql(
            database, f"UPDATE oauth_clients SET is_active = false WHERE client_id = '{reader_id}'"
        )
        assert await closed(ws) == (4401, "Unauthorized: The client of this token is disabled.")

    short = Tokens(database, ttl_seconds=3)
    try:
        expiring, expiring_id = await short.issue("portfolio:read")
    finally:
        await short.close()
    async with acknowledged(first, expiring) as ws:
        # The server's timer ends it: the close is what the test waits for.
        assert await closed(ws) == (4401, "Unauthorized: the token has expired.")


async def test_a_caller_that_loses_the_scope_is_told_forbidden_and_hears_no_more(
    servers: tuple[LiveServer, LiveServer], tokens: Tokens, database: str
) -> None:
    first, _ = servers
    reader, reader_id = await tokens.issue("portfolio:read")
    async with acknowledged(first, reader) as ws:
        id = await subscribe(ws, first, f"client:{reader_id}", WATCH_COST)
        await run_sql(
            database,
            f"UPDATE oauth_clients SET scopes = '{{finance:read}}' WHERE client_id = '{reader_id}'",
        )
        await asyncio.to_thread(
            first.wait_for, f"subscription_caller_changed    caller=client:{reader_id}"
        )
        await run_sql(database, "UPDATE initiatives SET title = title WHERE key = 'TH-CHECKOUT'")
        # The protocol's `error` ends the subscription; not even the ID of what changed.
        assert await receive(ws) == {
            "id": id,
            "type": "error",
            "payload": [
                {
                    "message": "Missing scope: this field requires portfolio:read.",
                    "extensions": {"code": "FORBIDDEN", "requiredScopes": ["portfolio:read"]},
                }
            ],
        }


async def test_limits_refuse_the_next_subscription_and_too_costly_ones(
    servers: tuple[LiveServer, LiveServer], tokens: Tokens
) -> None:
    first, _ = servers
    reader, reader_id = await tokens.issue("portfolio:read")
    caller = f"client:{reader_id}"
    async with acknowledged(first, reader) as ws, acknowledged(first, reader) as again:
        for _ in range(3):
            await subscribe(ws, first, caller, WATCH_COST)
        await ws.send(
            orjson.dumps(
                {"id": "over", "type": "subscribe", "payload": {"query": WATCH_COST}}
            ).decode()
        )
        refused = await receive(ws)
        assert refused["type"] == "error" and refused["id"] == "over"
        [error] = refused["payload"]
        assert error["extensions"] == {"code": "TOO_MANY_SUBSCRIPTIONS", "limit": 3}
        assert error["message"].startswith("This connection has 3 subscriptions open")

        # The caller's fourth anywhere on this server is its last.
        await subscribe(again, first, caller, WATCH_COST)
        await again.send(
            orjson.dumps(
                {"id": "fifth", "type": "subscribe", "payload": {"query": WATCH_COST}}
            ).decode()
        )
        refused = await receive(again)
        [error] = refused["payload"]
        assert error["extensions"] == {"code": "TOO_MANY_SUBSCRIPTIONS", "limit": 4}
        assert error["message"].startswith("You have 4 subscriptions open on this server")

    costly = (
        'subscription { productChanged(key: "PAY") { product {'
        " initiatives(first: 100) { nodes { products(first: 100) { nodes { key } } } } } } }"
    )
    async with acknowledged(first, reader) as ws:
        await ws.send(
            orjson.dumps({"id": "c", "type": "subscribe", "payload": {"query": costly}}).decode()
        )
        refused = await receive(ws)
        assert refused["type"] == "error"
        [error] = refused["payload"]
        assert error["extensions"]["code"] == "QUERY_TOO_COSTLY"
        assert error["message"].startswith("This query costs ")
        # Queries and mutations go over HTTP.
        await ws.send(
            orjson.dumps(
                {
                    "id": "q",
                    "type": "subscribe",
                    "payload": {"query": "{ products { totalCount } }"},
                }
            ).decode()
        )
        [error] = (await receive(ws))["payload"]
        assert error["extensions"] == {"code": "OPERATION_NOT_SUPPORTED"}
        assert error["message"] == (
            "Only subscriptions run over WebSocket; send queries and mutations over HTTP."
        )


def _small_socket(server: LiveServer) -> socket.socket:
    """A socket that takes little from the network until it is read, so that a client
    that does not read soon makes the server's sends wait."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    host, port = server.url.removeprefix("http://").split(":")
    sock.connect((host, int(port)))
    return sock


async def test_a_consumer_that_does_not_read_is_disconnected_with_4413(
    servers: tuple[LiveServer, LiveServer], tokens: Tokens
) -> None:
    first, second = servers
    reader, reader_id = await tokens.issue("portfolio:read")
    ingest, _ = await tokens.issue("kpis:ingest")
    kpi_key = "PAY-UPTIME"
    # Each event is large (the measurements ten times over, ~200 KB), so that the
    # buffers between the server and the client fill after a few of them.
    measurements = " ".join(
        f"m{n}: measurements {{ id observedAt value source externalId }}" for n in range(10)
    )
    document = f'subscription {{ measurementsRecorded(kpiKey: "{kpi_key}") {{ {measurements} }} }}'
    async with acknowledged(second, reader, sock=_small_socket(second), max_queue=1) as ws:
        await subscribe(ws, second, f"client:{reader_id}", document)
        # Batches of measurements, written on the other server, until the subscriber's
        # server gives up on it; the client reads nothing meanwhile.
        for batch in range(100):
            rows = [
                {
                    "kpiKey": kpi_key,
                    "observedAt": f"2026-01-01T00:{batch % 60:02d}:{i % 60:02d}Z",
                    "value": float(i),
                    "source": "slow-consumer-test",
                    "externalId": f"{batch}-{i}",
                }
                for i in range(1500)
            ]
            await post(
                first,
                ingest,
                "mutation($m: [KpiMeasurementInput!]!) { recordKpiMeasurements("
                "input: {measurements: $m}) { inserted } }",
                m=rows,
            )
            if any("subscription_too_slow" in line for line in second.log):
                break
        else:
            raise AssertionError("the server never found the subscriber too slow")
        code, reason = await closed(ws)
    assert code == 4413
    assert reason == "Too slow: over 4 changes waited unread."
    async with httpx.AsyncClient(base_url=second.url) as http:
        metrics = (await http.get("/metrics")).text
    assert "portfolio_subscribers_too_slow_total 1.0" in metrics.splitlines()


async def test_notifications_name_the_rows_that_changed_and_both_ends_of_links(
    database: str,
) -> None:
    listener = await asyncpg.connect(
        make_url(database).set(drivername="postgresql").render_as_string(hide_password=False)
    )
    heard: asyncio.Queue[str] = asyncio.Queue()
    await listener.add_listener("portfolio_changes", lambda *args: heard.put_nowait(args[3]))
    try:
        await run_sql(
            database,
            "WITH moved AS (DELETE FROM constraint_products WHERE (constraint_id, product_id) ="
            " (SELECT constraint_id, product_id FROM constraint_products ORDER BY 1, 2 LIMIT 1)"
            " RETURNING *) INSERT INTO constraint_products SELECT * FROM moved",
        )
        payloads = [await asyncio.wait_for(heard.get(), PATIENCE) for _ in range(2)]
    finally:
        await listener.close()
    [unlinked], [linked] = sorted(
        (events_from_notification(p) for p in payloads),
        key=lambda e: getattr(e[0], "change", None) != Change.UNLINKED,
    )
    assert isinstance(unlinked, LinkChanged) and isinstance(linked, LinkChanged)
    assert unlinked.change is Change.UNLINKED and linked.change is Change.LINKED
    assert unlinked.ends == linked.ends
    assert [end[0] for end in linked.ends] == [Entity.CONSTRAINT, Entity.PRODUCT]

    assert events_from_notification(
        '{"table" : "kpi_measurements", "op" : "INSERT", "rows" : [[7, 3]]}'
    ) == [EntityChanged(Entity.MEASUREMENT, Change.CREATED, 7, 3)]
    assert events_from_notification("users") == [TableChanged("users")]
    assert events_from_notification('{"table": 1}') == [TableChanged("?")]


async def test_a_subscription_over_http_is_refused(gql: GraphQL) -> None:
    body = await gql("subscription { initiativeChanged { id } }")
    assert body == {
        "errors": [
            {
                "message": "Subscriptions run over WebSocket (graphql-transport-ws) at /graphql.",
                "extensions": {"code": "OPERATION_NOT_SUPPORTED"},
            }
        ]
    }


async def test_graphiql_shows_a_subscriptions_events(
    servers: tuple[LiveServer, LiveServer], database: str
) -> None:
    """In headless Chromium, GraphiQL subscribes over WebSocket (anonymous, development)
    and shows the event of a change committed elsewhere."""
    first, _ = servers
    document = (
        'subscription { initiativeChanged(key: "TH-CHECKOUT") { change initiative { title } } }'
    )
    with _chromium() as browser:
        browser.get(f"{first.url}/graphql?{urlencode({'q': document})}")
        execute = WebDriverWait(browser, PATIENCE, poll_frequency=POLL_SECONDS).until(
            expected_conditions.element_to_be_clickable((By.CLASS_NAME, "graphiql-execute-button"))
        )
        execute.click()
        await asyncio.to_thread(
            first.wait_for, "subscription_started           caller=address:127.0.0.1 "
        )
        await run_sql(
            database, "UPDATE initiatives SET title = 'Seen in GraphiQL' WHERE key = 'TH-CHECKOUT'"
        )
        shown = WebDriverWait(browser, PATIENCE, poll_frequency=POLL_SECONDS).until(
            _result_containing("Seen in GraphiQL")
        )
    assert orjson.loads(shown) == {
        "data": {
            "initiativeChanged": {"change": "UPDATED", "initiative": {"title": "Seen in GraphiQL"}}
        }
    }
