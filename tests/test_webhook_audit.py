"""A webhook's audit events show their changes to callers holding `admin:webhooks` (and
`audit:read`), on both read paths; a webhook's secret, clear or sealed, never appears
through the audit trail, to anyone (``schema.guards.AUDITED_TYPES``)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from domain import models
from tests.test_webhooks_admin import create

ENABLE = """mutation($id: ID!) { enableWebhook(input: {id: $id}) {
  webhook { active } userErrors { code } } }"""
EVENTS = """{ auditEvents(first: 10, filter: {entityTypes: ["Webhook"]}) {
  nodes { action entityType changes } } }"""


async def test_webhook_changes_show_to_admin_webhooks_and_never_the_secret(
    caller: Any, db: AsyncSession, pair: Any
) -> None:
    admin = await caller(["admin:webhooks"])
    created = await create(admin, "https://hooks.example.com/audit", ["kpi.created"])
    secret = created["secret"]
    sealed = await db.scalar(text("SELECT secret FROM webhook_endpoints"))
    assert secret.startswith("whsec_") and sealed
    await db.execute(
        text(
            "UPDATE webhook_endpoints"
            " SET is_active = false, consecutive_failures = 20, disabled_at = now()"
        )
    )
    disabled_at = await db.scalar(text("SELECT disabled_at FROM webhook_endpoints"))
    assert disabled_at is not None
    enabled = await admin.data(ENABLE, {"id": created["webhook"]["id"]})
    assert enabled["enableWebhook"] == {"webhook": {"active": True}, "userErrors": []}
    # An event storing what no event should (a sealed secret, the clear one): the rule,
    # not the writers' care, keeps them out of every answer.
    pk = await db.scalar(text("SELECT id FROM webhook_endpoints"))
    db.add(
        models.AuditEvent(
            entity_type="Webhook",
            entity_id=pk,
            action=models.AuditAction.UPDATE,
            changes={
                "url": {"before": "https://old.example.com/h", "after": "https://n.example.com/h"},
                "consecutive_failures": {"before": 3, "after": 0},
                "secret": {"before": sealed, "after": secret},
                "previous_secret": {"before": None, "after": sealed},
            },
        )
    )
    await db.flush()

    shown = [
        {
            "url": {"before": "https://old.example.com/h", "after": "https://n.example.com/h"},
            "consecutiveFailures": {"before": 3, "after": 0},
        },
        {
            "active": {"before": False, "after": True},
            "consecutiveFailures": {"before": 20, "after": 0},
            "disabledAt": {"before": disabled_at.isoformat(), "after": None},
        },
    ]
    for scopes, expected in (
        (["audit:read", "admin:webhooks"], shown),
        (["audit:read"], [{}, {}]),
        (["audit:read", "admin:users", "admin:clients", "portfolio:read"], [{}, {}]),
    ):
        compiled, reference = pair(scopes)
        for path in (compiled, reference):
            body = await path(EVENTS)
            raw = path.last_body.decode()
            nodes = body["data"]["auditEvents"]["nodes"]
            assert [(n["action"], n["entityType"]) for n in nodes] == [("UPDATE", "Webhook")] * 2
            assert sorted((n["changes"] for n in nodes), key=len) == expected, scopes
            assert secret not in raw and sealed not in raw
            assert "secret" not in raw.lower()
