"""A GET request's GraphQL parameters read as strawberry's path reads them, for the
endpoint's lane (``GraphQLEndpoint._known_get``): the lane answers only what it reads
exactly alike, and leaves anything else to strawberry, with strawberry's answer."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from schema.http import HTTPRefusal, decode_json
from schema.persisted import get_params_of


def read_get_request(query_string: bytes) -> dict[str, Any] | None:
    """``query``, ``variables``, ``operationName`` and ``extensions`` of a query string
    as strawberry reads them (Starlette's ``QueryParams``: blanks kept, the last of a
    repeated name; ``variables`` and ``extensions`` decoded by the view's
    ``decode_json`` unless blank), or None where strawberry's path would refuse them:
    a value that is not JSON, or not an object. A query string that is not ASCII is
    left to strawberry too: Starlette reads it as Latin-1, the persisted-query step
    (``schema.persisted.get_payload``) as UTF-8."""
    if not query_string.isascii():
        return None
    params = dict(parse_qsl(query_string.decode("ascii"), keep_blank_values=True))
    return _decoded(params)


def read_filled_in(payload: dict[str, Any]) -> dict[str, Any] | None:
    """What ``read_get_request`` reads of the query string ``set_get_payload`` writes
    for a persisted document filled in (``resolve_persisted``), without writing it and
    reading it back: the document of a hash is what a client in the persisted-only mode
    sends on every request, and that round trip was a third of its Python calls: the
    parameters ``set_get_payload`` encodes (``get_params_of``), decoded again."""
    return _decoded(get_params_of(payload))


def _decoded(params: dict[str, Any]) -> dict[str, Any] | None:
    for name in ("variables", "extensions"):
        text = params.get(name)
        if text:
            try:
                params[name] = decode_json(text)
            except HTTPRefusal:
                return None
        if not isinstance(params.get(name), dict | None):
            return None  # blank, or JSON that is not an object
    return params
