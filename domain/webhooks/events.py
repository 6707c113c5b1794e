"""The event types a webhook can ask for: ``{kind}.{created|updated|deleted}`` for each
portfolio table with a trigger in migration 0009 (whose ``TABLES`` must match)."""

from __future__ import annotations

KINDS = ("product", "initiative", "constraint", "kpi", "measurement")
CHANGES = ("created", "updated", "deleted")

EVENT_TYPES: frozenset[str] = frozenset(f"{kind}.{change}" for kind in KINDS for change in CHANGES)
