"""The page's two routes: ``/`` (the page, with the OAuth client's id and its security
headers) and ``/dashboard/{file}`` (its scripts and stylesheet, and nothing else)."""

from __future__ import annotations

from html import escape
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

STATIC = Path(__file__).resolve().parent / "static"
PREFIX = "/dashboard"
_CLIENT_MARK = "{{client_id}}"
_MEDIA_TYPES = {".js": "text/javascript", ".css": "text/css"}
# The files the page loads, by name: whatever else is in static/ (index.html) is not served
# under PREFIX.
ASSETS = tuple(sorted(path.name for path in STATIC.iterdir() if path.suffix in _MEDIA_TYPES))
# Not versioned by name, so a browser revalidates them (ETag) rather than keep an old copy.
_REVALIDATE = "no-cache"


def content_security_policy(request: Request) -> str:
    """Only this origin: scripts and styles from its files (no inline code), data from
    /graphql over HTTP and WebSocket. ``connect-src 'self'`` covers ws(s) of the same host
    in current browsers; the explicit ws(s) sources are for older ones."""
    host = request.headers.get("host", "")
    sockets = f" ws://{host} wss://{host}" if host else ""
    return (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        f"connect-src 'self'{sockets}; form-action 'self'; base-uri 'none'; "
        "frame-ancestors 'none'"
    )


def _page_text(client_id: str) -> str:
    template = (STATIC / "index.html").read_text()
    if _CLIENT_MARK not in template:
        raise RuntimeError("dashboard/static/index.html lost its client id mark")
    return template.replace(_CLIENT_MARK, escape(client_id))


def routes(client_id: str) -> list[BaseRoute]:
    """The page at ``/`` for the public OAuth client ``client_id``, and its files."""
    text = _page_text(client_id)

    async def page(request: Request) -> Response:
        return HTMLResponse(
            text,
            headers={
                "Content-Security-Policy": content_security_policy(request),
                "X-Frame-Options": "DENY",
                "X-Content-Type-Options": "nosniff",
                "Referrer-Policy": "no-referrer",  # the ?code= of the sign-in stays here
                "Cache-Control": _REVALIDATE,
            },
        )

    async def asset(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in ASSETS:
            return PlainTextResponse("Not Found", status_code=404)
        path = STATIC / name
        return FileResponse(
            path,
            media_type=_MEDIA_TYPES[path.suffix],  # text/*: Starlette adds charset=utf-8
            headers={"Cache-Control": _REVALIDATE, "X-Content-Type-Options": "nosniff"},
        )

    return [
        Route("/", page, methods=["GET"]),
        Route(PREFIX + "/{name}", asset, methods=["GET"]),
    ]
