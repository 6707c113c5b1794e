"""The event types a webhook can ask for: ``{kind}.{created|updated|deleted}`` for each
portfolio table with a trigger in migration 0009 (whose ``TABLES`` must match), and
``webhook.disabled``, queued by the delivery worker when it disables an endpoint after
repeated failures."""

from __future__ import annotations

KINDS = ("product", "initiative", "constraint", "kpi", "measurement")
CHANGES = ("created", "updated", "deleted")

WEBHOOK_DISABLED = "webhook.disabled"

EVENT_TYPES: frozenset[str] = frozenset(
    {f"{kind}.{change}" for kind in KINDS for change in CHANGES} | {WEBHOOK_DISABLED}
)
