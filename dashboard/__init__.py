"""The KPI dashboard and roadmap page for people, served at ``/``.

Plain HTML, CSS and JavaScript modules shipped in ``static/`` (no build step, nothing
from another host): the page is a client of the public API like any other, talking only
to ``/graphql`` (queries over HTTP, subscriptions over WebSocket) and ``/oauth/*``
(authorization code + PKCE with a public client). This package therefore imports
nothing of the project: what it needs (the client's id) is handed in by the
composition root."""

from __future__ import annotations

from dashboard.routes import ASSETS, PREFIX, routes

__all__ = ["ASSETS", "PREFIX", "routes"]
