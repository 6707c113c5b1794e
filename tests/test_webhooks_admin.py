"""Administration of webhooks over GraphQL (admin:webhooks), with real tokens, in the
test's rolled-back transaction: the outbox rows the trigger writes are visible to the
same transaction's reads."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from domain.webhooks.secrets import SecretBox
from schema.ids import encode_id
from tests.conftest import settings_for

WEBHOOK_FIELDS = """webhook { id url eventTypes active consecutiveFailures
    deliveries { id webhookId eventType status attempts
                 log { statusCode latencyMs error } } }
  secret userErrors { field code message }"""


async def create(api: Any, url: str, events: list[str]) -> dict[str, Any]:
    data = await api.data(
        f"""mutation($url: String!, $events: [String!]!) {{
              createWebhook(input: {{url: $url, eventTypes: $events}}) {{ {WEBHOOK_FIELDS} }} }}""",
        {"url": url, "events": events},
    )
    return data["createWebhook"]


async def test_webhooks_need_admin_webhooks(caller: Any) -> None:
    api = await caller(["portfolio:read", "admin:users", "admin:clients"])
    body = await api(
        'mutation { createWebhook(input: {url: "https://example.com/h",'
        ' eventTypes: ["kpi.created"]}) { secret } }'
    )
    [error] = body["errors"]
    assert error["extensions"]["code"] == "FORBIDDEN"
    assert error["message"] == "Missing scope: this field requires admin:webhooks."
    listed = await api("{ webhooks { id } }")
    assert listed["errors"][0]["message"] == "Missing scope: this field requires admin:webhooks."


async def test_register_list_and_see_the_outbox(caller: Any, db: AsyncSession) -> None:
    api = await caller(["admin:webhooks", "initiatives:write", "portfolio:read"])
    created = await create(api, "https://hooks.example.com/in", ["initiative.created"])
    assert created["userErrors"] == []
    assert created["secret"].startswith("whsec_")
    webhook = created["webhook"]
    assert webhook["url"] == "https://hooks.example.com/in"
    assert (webhook["eventTypes"], webhook["active"], webhook["deliveries"]) == (
        ["initiative.created"],
        True,
        [],
    )

    made = await api.data(
        'mutation { createInitiative(input: {key: "HOOKED", title: "Hooked"})'
        " { initiative { id } } }"
    )
    initiative = made["createInitiative"]["initiative"]["id"]
    delivery_id = await db.scalar(text("SELECT id FROM webhook_deliveries"))
    await db.execute(
        text(
            "INSERT INTO webhook_attempts (delivery_id, status_code, latency_ms, error)"
            " VALUES (:id, 502, 41, 'HTTP 502')"
        ),
        {"id": delivery_id},
    )
    listed = await api.data(
        "{ webhooks { id deliveries { webhookId eventType status attempts"
        " log { statusCode latencyMs error } } } }"
    )
    [only] = listed["webhooks"]
    [delivery] = only["deliveries"]
    assert only["id"] == webhook["id"]
    assert delivery["webhookId"].startswith("msg_")
    assert (delivery["eventType"], delivery["status"], delivery["attempts"]) == (
        "initiative.created",
        "pending",
        0,
    )
    assert delivery["log"] == [{"statusCode": 502, "latencyMs": 41, "error": "HTTP 502"}]
    payload = await db.scalar(text("SELECT payload FROM webhook_deliveries"))
    assert initiative in payload  # the body names the row by its global ID


async def test_bad_registrations_are_user_errors(caller: Any, db: AsyncSession) -> None:
    api = await caller(["admin:webhooks"])
    refused = await create(api, "ftp://x.example.com", ["initiative.created"])
    assert refused["webhook"] is None and refused["secret"] is None
    assert refused["userErrors"] == [
        {
            "field": "url",
            "code": "INVALID",
            "message": "A webhook URL must be an absolute http(s) URL.",
        }
    ]
    plain = await create(api, "http://x.example.com", ["initiative.created"])
    assert plain["userErrors"] == [
        {"field": "url", "code": "INVALID", "message": "A webhook URL must use https."}
    ]
    assert await db.scalar(text("SELECT count(*) FROM webhook_endpoints")) == 0


async def test_rotate_redeliver_and_delete(caller: Any, db: AsyncSession) -> None:
    api = await caller(["admin:webhooks", "initiatives:write"])
    created = await create(api, "https://hooks.example.com/in", ["initiative.created"])
    webhook_id = created["webhook"]["id"]
    rotated = await api.data(
        "mutation($id: ID!) { rotateWebhookSecret(input: {id: $id})"
        " { secret userErrors { code } } }",
        {"id": webhook_id},
    )
    new_secret = rotated["rotateWebhookSecret"]["secret"]
    assert new_secret.startswith("whsec_") and new_secret != created["secret"]
    sealed = await db.scalar(text("SELECT secret FROM webhook_endpoints"))
    assert new_secret not in sealed  # stored sealed, shown only in the payload
    assert SecretBox(settings_for()).open(sealed) == new_secret

    await api.data(
        'mutation { createInitiative(input: {key: "RE", title: "x"}) { userErrors { code } } }'
    )
    pk, message_id = (await db.execute(text("SELECT id, message_id FROM webhook_deliveries"))).one()
    await db.execute(
        text("UPDATE webhook_deliveries SET status = 'failed', attempts = 8 WHERE id = :id"),
        {"id": pk},
    )
    again = await api.data(
        "mutation($id: ID!) { redeliverWebhook(input: {id: $id})"
        " { delivery { webhookId status attempts } userErrors { code } } }",
        {"id": encode_id("WebhookDelivery", pk)},
    )
    assert again["redeliverWebhook"] == {
        "delivery": {"webhookId": message_id, "status": "pending", "attempts": 0},
        "userErrors": [],
    }
    missing = await api.data(
        "mutation($id: ID!) { redeliverWebhook(input: {id: $id})"
        " { delivery { status } userErrors { field code message } } }",
        {"id": encode_id("WebhookDelivery", 987654)},
    )
    assert missing["redeliverWebhook"]["userErrors"] == [
        {"field": "id", "code": "NOT_FOUND", "message": "No such webhook delivery."}
    ]
    wrong_type = await api.data(
        "mutation($id: ID!) { deleteWebhook(input: {id: $id}) { userErrors { field code message } } }",
        {"id": encode_id("Team", 1)},
    )
    assert wrong_type["deleteWebhook"]["userErrors"] == [
        {"field": "id", "code": "INVALID", "message": "`id` expects a Webhook ID."}
    ]

    deleted = await api.data(
        "mutation($id: ID!) { deleteWebhook(input: {id: $id}) { webhook { id } userErrors { code } } }",
        {"id": webhook_id},
    )
    assert deleted["deleteWebhook"] == {"webhook": None, "userErrors": []}
    assert await db.scalar(text("SELECT count(*) FROM webhook_endpoints")) == 0
    assert await db.scalar(text("SELECT count(*) FROM webhook_deliveries")) == 0


async def test_a_query_is_checked_when_the_webhook_is_registered(
    caller: Any, db: AsyncSession
) -> None:
    api = await caller(["admin:webhooks"])

    async def register(query: str) -> dict[str, Any]:
        data = await api.data(
            """mutation($query: String!) { createWebhook(input: {
                 url: "https://hooks.example.com", eventTypes: ["kpi.updated"], query: $query})
               { webhook { query } userErrors { field code message } } }""",
            {"query": query},
        )
        return data["createWebhook"]

    for query, message in [
        ("query(", "The query does not parse: Syntax Error: Expected '$', found <EOF>."),
        (
            "query($id: ID!) { node(id: $id) { nope } }",
            "The query is not valid: Cannot query field 'nope' on type 'Node'.",
        ),
        ("query { viewer { scopes } }", "The query must take exactly one variable, `$id: ID!`."),
        (
            "query($id: String!) { initiative(key: $id) { id } }",
            "The query must take exactly one variable, `$id: ID!`.",
        ),
        (
            "query A($id: ID!) { node(id: $id) { id } } query B($id: ID!) { node(id: $id) { id } }",
            "The query must be one query operation.",
        ),
    ]:
        refused = await register(query)
        assert refused == {
            "webhook": None,
            "userErrors": [{"field": "query", "code": "INVALID", "message": message}],
        }, query
    assert await db.scalar(text("SELECT count(*) FROM webhook_endpoints")) == 0
    good = "query($id: ID!) { node(id: $id) { id } }"
    assert (await register(good)) == {"webhook": {"query": good}, "userErrors": []}


ENABLE = (
    "mutation($id: ID!) { enableWebhook(input: {id: $id})"
    " { webhook { id active consecutiveFailures disabledAt } userErrors { field code message } } }"
)


async def test_a_disabled_webhook_is_enabled_again_with_its_count_reset(
    caller: Any, db: AsyncSession
) -> None:
    api = await caller(["admin:webhooks"])
    created = await create(api, "https://hooks.example.com/in", ["kpi.created"])
    webhook_id = created["webhook"]["id"]
    # As the worker leaves it after repeated failures.
    await db.execute(
        text(
            "UPDATE webhook_endpoints"
            " SET is_active = false, consecutive_failures = 20, disabled_at = now()"
        )
    )
    disabled_at = await db.scalar(text("SELECT disabled_at FROM webhook_endpoints"))
    assert disabled_at is not None
    enabled = await api.data(ENABLE, {"id": webhook_id})
    assert enabled["enableWebhook"] == {
        "webhook": {
            "id": webhook_id,
            "active": True,
            "consecutiveFailures": 0,
            "disabledAt": None,
        },
        "userErrors": [],
    }
    pk = await db.scalar(text("SELECT id FROM webhook_endpoints"))
    [(action, changes, by_someone)] = (
        await db.execute(
            text(
                "SELECT action::text, changes,"
                " actor_user_id IS NOT NULL OR actor_client_id IS NOT NULL"
                " FROM audit_events WHERE entity_type = 'Webhook' AND entity_id = :pk"
            ),
            {"pk": pk},
        )
    ).all()
    assert (action, changes, by_someone) == (
        "UPDATE",
        {
            "is_active": {"before": False, "after": True},
            "consecutive_failures": {"before": 20, "after": 0},
            "disabled_at": {"before": disabled_at.isoformat(), "after": None},
        },
        True,
    )
    # Enabling an active webhook changes nothing and records nothing.
    again = await api.data(ENABLE, {"id": webhook_id})
    assert again["enableWebhook"]["webhook"]["active"] is True
    assert (
        await db.scalar(text("SELECT count(*) FROM audit_events WHERE entity_type = 'Webhook'"))
        == 1
    )


async def test_enabling_needs_admin_webhooks_and_an_existing_webhook(
    caller: Any, db: AsyncSession
) -> None:
    api = await caller(["admin:webhooks"])
    missing = await api.data(ENABLE, {"id": encode_id("Webhook", 987654)})
    assert missing["enableWebhook"] == {
        "webhook": None,
        "userErrors": [{"field": "id", "code": "NOT_FOUND", "message": "No such webhook."}],
    }
    reader = await caller(["portfolio:read"])
    body = await reader(ENABLE, {"id": encode_id("Webhook", 1)})
    [error] = body["errors"]
    assert error["extensions"]["code"] == "FORBIDDEN"
    assert error["message"] == "Missing scope: this field requires admin:webhooks."
    assert await db.scalar(text("SELECT count(*) FROM audit_events")) == 0
