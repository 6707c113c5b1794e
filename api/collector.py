"""The garbage collector's settings for a process that serves requests."""

from __future__ import annotations

import gc


def settle_for_serving() -> None:
    """Call once the app is built, before serving. Long-lived objects (schema, plans,
    models) are created at start-up: frozen, the collector stops walking them again and
    again under load, and it runs less often for the short-lived ones."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)
