"""Webhooks: the outbox is written in the writing transaction (migration 0009), the
worker delivers it signed (Standard Webhooks) to a real HTTP receiver on 127.0.0.1,
retries under the same id, disables an endpoint that keeps failing, and never calls a
target production forbids. Tests synchronise on deliveries (one ``deliver_due`` batch at
a time), never on time."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from domain.database import create_engine
from domain.errors import InvalidInput
from domain.settings import Environment
from domain.webhooks import worker
from domain.webhooks.endpoints import create_endpoint, redeliver, rotate_secret
from domain.webhooks.targets import TargetRefused, check_target
from schema.ids import encode_id
from tests.conftest import settings_for
from tests.fixtures.webhooks import (
    Receiver,
    create_initiative,
    deliver,
    deliveries,
    owner,
    receiving,
    register,
    verify,
)

pytestmark = pytest.mark.asyncio


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with receiving() as found:
        yield found


@pytest.fixture
async def committed(own_database: str) -> AsyncIterator[AsyncEngine]:
    """An engine on a database of the test's own: the worker's writes are committed."""
    engine = create_engine(own_database, settings_for())
    yield engine
    await engine.dispose()


async def test_a_committed_change_is_delivered_signed(
    committed: AsyncEngine, receiver: Receiver
) -> None:
    secret = await register(committed, receiver.url, ["initiative.created"])
    assert secret.startswith("whsec_") and len(base64.b64decode(secret[6:])) == 32
    pk = await create_initiative(committed, "HOOK-1")

    assert await deliver(committed) == 1
    [(headers, body)] = receiver.requests
    assert verify(secret, headers, body)
    assert not verify(secret, {**headers, "webhook-timestamp": "1"}, body)
    assert not verify(secret, headers, body.replace(b"Initiative", b"Kpi"))
    message = orjson.loads(body)
    assert message["type"] == "initiative.created"
    # Ids only, never fields: nothing the owner's scopes could fail to cover.
    assert message["data"] == {"__typename": "Initiative", "id": encode_id("Initiative", pk)}
    assert headers["content-type"] == "application/json"
    [row] = await deliveries(committed)
    assert row["message_id"] == headers["webhook-id"] and row["message_id"].startswith("msg_")
    assert (row["status"], row["attempts"], row["codes"]) == ("delivered", 1, [200])
    assert await deliver(committed) == 0  # nothing is sent twice


async def test_a_500_is_retried_under_the_same_id_then_succeeds(
    committed: AsyncEngine, receiver: Receiver
) -> None:
    secret = await register(committed, receiver.url, ["initiative.created"])
    receiver.statuses = [500]
    await create_initiative(committed, "HOOK-2")

    assert await deliver(committed, webhook_backoff_seconds=0) == 1
    [row] = await deliveries(committed)
    assert (row["status"], row["attempts"], row["codes"]) == ("pending", 1, [500])
    assert await deliver(committed, webhook_backoff_seconds=0) == 1

    first, second = receiver.requests
    assert first[0]["webhook-id"] == second[0]["webhook-id"] == row["message_id"]
    assert first[1] == second[1] and verify(secret, *second)
    [row] = await deliveries(committed)
    assert (row["status"], row["attempts"], row["codes"]) == ("delivered", 2, [500, 200])
    async with committed.connect() as connection:
        failures = await connection.scalar(
            text("SELECT consecutive_failures FROM webhook_endpoints")
        )
    assert failures == 0  # the success reset the count


async def test_a_failed_delivery_waits_for_its_backoff(
    committed: AsyncEngine, receiver: Receiver
) -> None:
    await register(committed, receiver.url, ["initiative.created"])
    receiver.statuses = [503]
    await create_initiative(committed, "HOOK-3")
    assert await deliver(committed, webhook_backoff_seconds=600) == 1
    assert await deliver(committed, webhook_backoff_seconds=600) == 0  # not due yet
    async with committed.connect() as connection:
        wait = await connection.scalar(
            text("SELECT extract(epoch FROM next_attempt_at - now()) FROM webhook_deliveries")
        )
    assert 300 - 5 <= wait <= 600  # between half and all of the first backoff (jitter)


async def test_a_rolled_back_change_produces_no_delivery(
    committed: AsyncEngine, receiver: Receiver
) -> None:
    await register(committed, receiver.url, ["initiative.created", "initiative.updated"])
    async with committed.connect() as connection:
        transaction = await connection.begin()
        await connection.execute(
            text("INSERT INTO initiatives (key, title, status) VALUES ('GONE', 'x', 'PROPOSED')")
        )
        # The trigger wrote the outbox row inside the transaction...
        assert await connection.scalar(text("SELECT count(*) FROM webhook_deliveries")) == 1
        await transaction.rollback()
    # ...and it went with the change.
    assert await deliveries(committed) == []
    assert await deliver(committed) == 0
    assert receiver.requests == []


async def test_a_failed_mutation_over_graphql_sends_nothing_and_a_good_one_sends_once(
    committed: AsyncEngine, receiver: Receiver, wired_app: Any
) -> None:
    await register(committed, receiver.url, ["initiative.created"])
    mutation = (
        "mutation($input: CreateInitiativeInput!) { createInitiative(input: $input)"
        " { initiative { id } userErrors { code } } }"
    )
    transport = httpx.ASGITransport(app=wired_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        bad = await client.post(
            "/graphql",
            json={"query": mutation, "variables": {"input": {"key": "bad key", "title": "x"}}},
        )
        assert bad.json()["data"]["createInitiative"]["userErrors"] == [{"code": "INVALID"}]
        good = await client.post(
            "/graphql",
            json={"query": mutation, "variables": {"input": {"key": "GOOD", "title": "x"}}},
        )
    created = good.json()["data"]["createInitiative"]["initiative"]["id"]
    assert await deliver(committed) == 1
    [(_, body)] = receiver.requests
    assert orjson.loads(body)["data"]["id"] == created


async def test_only_the_events_asked_for_are_queued(
    committed: AsyncEngine, receiver: Receiver
) -> None:
    await register(committed, receiver.url, ["initiative.updated"])
    pk = await create_initiative(committed, "HOOK-4")
    assert await deliveries(committed) == []
    async with committed.begin() as connection:
        await connection.execute(
            text("UPDATE initiatives SET title = 'Renamed' WHERE id = :id"), {"id": pk}
        )
    assert [row["event_type"] for row in await deliveries(committed)] == ["initiative.updated"]


async def test_an_endpoint_that_keeps_failing_is_disabled_and_that_is_told(
    committed: AsyncEngine, receiver: Receiver
) -> None:
    """Disabled after its failures: the audit trail records it, and another endpoint that
    asked for ``webhook.disabled`` is sent the event through the outbox."""
    failing_secret = await register(committed, receiver.url, ["initiative.created"])
    receiver.statuses = [500, 500, 500]
    async with receiving() as watcher:
        watcher_secret = await register(committed, watcher.url, ["webhook.disabled"])
        await create_initiative(committed, "HOOK-5")
        settings: dict[str, Any] = {
            "webhook_backoff_seconds": 0,
            "webhook_disable_after_failures": 2,
        }
        assert await deliver(committed, **settings) == 1
        assert await deliver(committed, **settings) == 1  # disables it, queues the event
        assert await deliver(committed, **settings) == 1  # the watcher's event only
        assert await deliver(committed, **settings) == 0  # disabled: nothing more is claimed
        [(headers, body)] = watcher.requests
    assert verify(watcher_secret, headers, body) and not verify(failing_secret, headers, body)
    async with committed.connect() as connection:
        failing, active, failures, disabled = (
            await connection.execute(
                text(
                    "SELECT id, is_active, consecutive_failures, disabled_at IS NOT NULL"
                    " FROM webhook_endpoints ORDER BY id LIMIT 1"
                )
            )
        ).one()
        audit = (
            await connection.execute(
                text(
                    "SELECT entity_type, entity_id, action::text, changes, actor_user_id"
                    " FROM audit_events WHERE entity_type = 'Webhook'"
                )
            )
        ).all()
    assert (active, failures, disabled) == (False, 2, True)
    assert len(receiver.requests) == 2
    event = orjson.loads(body)
    assert event["type"] == "webhook.disabled"
    assert event["data"] == {
        "__typename": "Webhook",
        "id": encode_id("Webhook", failing),
        "url": receiver.url,
        "consecutiveFailures": 2,
        "lastError": "HTTP 500",
    }
    assert [tuple(row) for row in audit] == [
        ("Webhook", failing, "UPDATE", {"is_active": {"before": True, "after": False}}, None)
    ]


async def test_a_delivery_fails_after_its_last_attempt_and_can_be_redelivered(
    committed: AsyncEngine, receiver: Receiver
) -> None:
    secret = await register(committed, receiver.url, ["initiative.created"])
    receiver.statuses = [500, 500]
    await create_initiative(committed, "HOOK-6")
    settings: dict[str, Any] = {"webhook_backoff_seconds": 0, "webhook_max_attempts": 2}
    assert await deliver(committed, **settings) == 1
    assert await deliver(committed, **settings) == 1
    assert await deliver(committed, **settings) == 0
    [row] = await deliveries(committed)
    assert (row["status"], row["codes"]) == ("failed", [500, 500])

    async with AsyncSession(committed) as session, session.begin():
        delivery_id, endpoint_id = (
            await session.execute(text("SELECT id, endpoint_id FROM webhook_deliveries"))
        ).one()
        new_secret = await rotate_secret(session, settings_for(), endpoint_id)
        await redeliver(session, delivery_id)
    assert new_secret != secret
    assert await deliver(committed, **settings) == 1
    [row] = await deliveries(committed)
    assert (row["status"], row["codes"]) == ("delivered", [500, 500, 200])
    headers, body = receiver.requests[-1]
    assert headers["webhook-id"] == row["message_id"]
    # During the overlap both secrets sign: receivers switch when they like.
    assert verify(new_secret, headers, body) and verify(secret, headers, body)
    assert len(headers["webhook-signature"].split(" ")) == 2

    async with AsyncSession(committed) as session, session.begin():
        newest = await rotate_secret(
            session, settings_for(webhook_secret_overlap_seconds=0), endpoint_id
        )
        await redeliver(session, delivery_id)
    assert await deliver(committed, **settings) == 1
    headers, body = receiver.requests[-1]
    assert verify(newest, headers, body)
    assert not verify(new_secret, headers, body) and not verify(secret, headers, body)


async def test_a_worker_lost_mid_delivery_loses_nothing_and_keeps_the_id(
    committed: AsyncEngine, receiver: Receiver
) -> None:
    await register(committed, receiver.url, ["initiative.created"])
    await create_initiative(committed, "HOOK-7")
    settings = settings_for()
    [claimed] = await worker.claim(committed, settings)  # then the worker dies
    assert await deliver(committed) == 0  # leased: no other worker takes it meanwhile
    async with committed.begin() as connection:  # the lease runs out
        await connection.execute(text("UPDATE webhook_deliveries SET next_attempt_at = now()"))
    assert await deliver(committed) == 1
    [(headers, _)] = receiver.requests
    assert headers["webhook-id"] == claimed.message_id
    [row] = await deliveries(committed)
    assert (row["status"], row["attempts"]) == ("delivered", 2)


async def test_concurrent_workers_never_claim_the_same_delivery(
    committed: AsyncEngine, receiver: Receiver
) -> None:
    await register(committed, receiver.url, ["initiative.created"])
    async with committed.begin() as connection:
        await connection.execute(
            text(
                "INSERT INTO initiatives (key, title, status)"
                " SELECT 'MANY-' || n, 'x', 'PROPOSED' FROM generate_series(1, 6) AS n"
            )
        )
    settings = settings_for(webhook_batch_size=2)
    batches = await asyncio.gather(*(worker.claim(committed, settings) for _ in range(4)))
    ids = [delivery.id for batch in batches for delivery in batch]
    assert len(ids) == 6 and len(set(ids)) == 6


async def test_bad_registrations_are_refused_with_a_reason(committed: AsyncEngine) -> None:
    user = await owner(committed)
    production = settings_for(environment=Environment.PRODUCTION)
    cases = [
        (
            ("ftp://example.com/x", ["kpi.created"]),
            "url",
            "A webhook URL must be an absolute http(s) URL.",
        ),
        (
            ("http://example.com/x", ["kpi.created"]),
            "url",
            "A webhook URL must use https.",
        ),
        (
            ("https://example.com/x", []),
            "eventTypes",
            "A webhook needs at least one event type.",
        ),
    ]
    for (url, events), field_name, message in cases:
        async with AsyncSession(committed) as session, session.begin():
            with pytest.raises(InvalidInput) as refused:
                await create_endpoint(
                    session, production, owner_user_id=user, url=url, event_types=events
                )
        assert (refused.value.code, refused.value.field, refused.value.message) == (
            "INVALID",
            field_name,
            message,
        )
    async with AsyncSession(committed) as session, session.begin():
        with pytest.raises(InvalidInput) as refused:
            await create_endpoint(
                session,
                production,
                owner_user_id=user,
                url="https://example.com",
                event_types=["kpi.exploded"],
            )
    assert refused.value.message.startswith("Unknown event type `kpi.exploded`; known: ")
    async with committed.connect() as connection:
        assert await connection.scalar(text("SELECT count(*) FROM webhook_endpoints")) == 0


async def test_production_refuses_private_targets_unless_allowed() -> None:
    production = settings_for(environment=Environment.PRODUCTION)
    for url, reason in [
        ("https://127.0.0.1:9/x", "127.0.0.1 resolves to 127.0.0.1, a non-public address"),
        ("https://169.254.169.254/latest", "169.254.169.254 resolves to 169.254.169.254"),
        ("https://10.1.2.3/x", "10.1.2.3 resolves to 10.1.2.3"),
        ("https://[::1]/x", "::1 resolves to ::1"),
        ("http://127.0.0.1/x", "A webhook URL must use https."),
    ]:
        with pytest.raises(TargetRefused) as refused:
            await check_target(url, production)
        assert str(refused.value).startswith(reason)
    allowed = settings_for(
        environment=Environment.PRODUCTION, webhook_allowed_networks=["127.0.0.0/8"]
    )
    await check_target("https://127.0.0.1:9/x", allowed)
    with pytest.raises(TargetRefused):
        await check_target("https://10.1.2.3/x", allowed)


async def test_a_refused_target_is_a_failed_attempt_never_a_request(
    committed: AsyncEngine, receiver: Receiver
) -> None:
    await register(committed, receiver.url, ["initiative.created"])
    await create_initiative(committed, "HOOK-8")
    # The endpoint was registered in development; production now refuses plain http.
    assert await deliver(committed, environment=Environment.PRODUCTION) == 1
    assert receiver.requests == []
    async with committed.connect() as connection:
        error = await connection.scalar(text("SELECT error FROM webhook_attempts"))
    assert error == "refused: A webhook URL must use https."


COSTED = "query($id: ID!) { node(id: $id) { ... on Initiative { key estimatedCost } } }"


async def test_a_query_payload_is_resolved_with_the_owner_scopes(
    committed: AsyncEngine, receiver: Receiver
) -> None:
    """Two endpoints ask for the same fields; only the one whose owner holds finance:read
    gets the cost, the other gets null and the same FORBIDDEN error as over HTTP."""
    await register(committed, receiver.url, ["initiative.created"], query=COSTED, role="viewer")
    await register(committed, receiver.url, ["initiative.created"], query=COSTED, role="finance")
    async with committed.begin() as connection:
        pk = await connection.scalar(
            text(
                "INSERT INTO initiatives (key, title, status, estimated_cost)"
                " VALUES ('COSTLY', 'x', 'PROPOSED', 1234.50) RETURNING id"
            )
        )
    assert await deliver(committed) == 2
    bodies = sorted(
        (orjson.loads(body) for _, body in receiver.requests),
        key=lambda body: body["data"]["node"]["estimatedCost"] is None,
    )
    allowed, refused = bodies
    assert allowed["type"] == refused["type"] == "initiative.created"
    assert allowed["data"] == {"node": {"key": "COSTLY", "estimatedCost": "1234.50"}}
    assert "errors" not in allowed
    assert refused["data"] == {"node": {"key": "COSTLY", "estimatedCost": None}}
    [error] = refused["errors"]
    assert error["message"] == "Missing scope: this field requires finance:read."
    assert error["extensions"]["code"] == "FORBIDDEN"
    assert encode_id("Initiative", pk) not in str(allowed["data"])  # only what was asked


async def test_a_query_payload_is_rendered_once_and_resent_byte_for_byte(
    committed: AsyncEngine, receiver: Receiver
) -> None:
    secret = await register(
        committed,
        receiver.url,
        ["initiative.created"],
        query="query($id: ID!) { node(id: $id) { ... on Initiative { title } } }",
        role="viewer",
    )
    receiver.statuses = [500]
    pk = await create_initiative(committed, "HOOK-9")
    assert await deliver(committed, webhook_backoff_seconds=0) == 1
    async with committed.begin() as connection:  # changed between the two attempts
        await connection.execute(
            text("UPDATE initiatives SET title = 'Later' WHERE id = :id"), {"id": pk}
        )
    assert await deliver(committed, webhook_backoff_seconds=0) == 1
    first, second = receiver.requests[0], receiver.requests[1]
    assert first[1] == second[1] and verify(secret, *second)
    assert orjson.loads(second[1])["data"] == {"node": {"title": "Hooked"}}
