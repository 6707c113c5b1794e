"""GraphiQL without internet access: the page development mode answers a browser's
``GET /graphql`` with, and the route serving the files it loads, copied from npm into
``static/`` (see static/README.md; ``vendor.py`` refreshes them by hand).

The page names each file with its SHA-384 digest (Subresource Integrity): the browser
refuses a file that is not the vendored one. File paths carry their package's version,
so a browser may keep them for good."""

from __future__ import annotations

import json
from dataclasses import dataclass
from html import escape
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from domain.settings import Settings

HERE = Path(__file__).resolve().parent
STATIC = HERE / "static"
PREFIX = "/graphiql/static"
_ASSETS_MARK = "<!-- assets: the vendored stylesheets and scripts (schema/graphiql/static) -->"
_MEDIA_TYPES = {"script": "text/javascript", "style": "text/css"}
_IMMUTABLE = "public, max-age=31536000, immutable"


@dataclass(frozen=True)
class Asset:
    path: str  # under static/, and under PREFIX in URLs
    kind: str  # script or style
    integrity: str

    @property
    def file(self) -> Path:
        return STATIC / self.path

    @property
    def media_type(self) -> str:
        return _MEDIA_TYPES[self.kind]


def _load_assets() -> tuple[Asset, ...]:
    """The page's files, in the order it loads them (``static/manifest.json``)."""
    manifest = json.loads((STATIC / "manifest.json").read_text())
    return tuple(
        Asset(entry["path"], entry["kind"], entry["integrity"])
        for entry in manifest["files"]
        if entry["kind"] in _MEDIA_TYPES
    )


ASSETS = _load_assets()
_BY_PATH = {asset.path: asset for asset in ASSETS}


def enabled(settings: Settings) -> bool:
    """GraphiQL, like introspection, is for development."""
    return settings.is_development


def _tag(asset: Asset, root_path: str) -> str:
    url = escape(f"{root_path}{PREFIX}/{asset.path}")
    integrity = escape(asset.integrity)
    if asset.kind == "style":
        return f'<link rel="stylesheet" href="{url}" integrity="{integrity}" />'
    return f'<script src="{url}" integrity="{integrity}"></script>'


def _render(root_path: str) -> str:
    # Stylesheets first; the scripts in the manifest's order (each needs the ones before).
    ordered = sorted(ASSETS, key=lambda asset: asset.kind != "style")
    tags = "\n    ".join(_tag(asset, root_path) for asset in ordered)
    template = (HERE / "page.html").read_text()
    if _ASSETS_MARK not in template:
        raise RuntimeError("schema/graphiql/page.html lost its assets mark")
    return template.replace(_ASSETS_MARK, tags)


_PAGES: dict[str, str] = {}


def page(request: Request) -> Response:
    """GraphiQL's page, loading only the app's own copies of its files."""
    # Under a path prefix (a proxy's root_path) the files are too.
    root_path = str(request.scope.get("root_path", ""))
    text = _PAGES.get(root_path)
    if text is None:
        text = _PAGES[root_path] = _render(root_path)
    return HTMLResponse(text)


async def asset(request: Request) -> Response:
    """One of the page's files; nothing else under ``static/`` is served."""
    found = _BY_PATH.get(request.path_params["path"])
    if found is None:
        return PlainTextResponse("Not Found", status_code=404)
    return FileResponse(
        found.file,
        media_type=found.media_type,  # text/*: Starlette adds charset=utf-8
        headers={"Cache-Control": _IMMUTABLE, "X-Content-Type-Options": "nosniff"},
    )


def routes(settings: Settings) -> list[BaseRoute]:
    """The files' route, where GraphiQL is on."""
    if not enabled(settings):
        return []
    return [Route(PREFIX + "/{path:path}", asset, methods=["GET"])]
