"""GraphQL over HTTP: media types, methods and the refusals that come before GraphQL.

Follows the GraphQL-over-HTTP specification: ``application/graphql-response+json``
when the client prefers it (request errors then answer 4xx without ``data``),
``application/json`` otherwise (always 200 for a well-formed request). Everything the
HTTP layer refuses answers a GraphQL-shaped JSON body with ``extensions.code``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import orjson
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

GRAPHQL_RESPONSE = "application/graphql-response+json"
JSON = "application/json"
RETRY_AFTER_SECONDS = "2"  # when the database is unavailable or busy

# What an Accept entry may name for each response type we speak; */* means JSON, as
# the specification asks of servers during the watershed.
_ACCEPTED = {
    GRAPHQL_RESPONSE: GRAPHQL_RESPONSE,
    JSON: JSON,
    "application/*": JSON,
    "*/*": JSON,
}


def content_type(media_type: str) -> str:
    return f"{media_type}; charset=utf-8"


def first_headers(scope: Scope, *names: bytes) -> list[str | None]:
    """The first value of each named header (None where absent), in one pass over the
    request's headers: ASGI names them in lower case."""
    found: dict[bytes, str | None] = dict.fromkeys(names)
    for name, value in scope["headers"]:
        if name in found and found[name] is None:
            found[name] = value.decode("latin-1")
    return [found[name] for name in names]


class Answer:
    """A whole JSON answer in ``media_type``, sent as two ASGI messages, its headers as
    Starlette's ``Response`` writes them (Content-Type, Content-Length, then any set on
    ``headers``). What the known paths answer with: Starlette's general header handling
    was ~6 % of a known read's CPU."""

    __slots__ = ("body", "headers", "media_type", "status_code")

    def __init__(self, body: bytes, media_type: str) -> None:
        self.body = body
        self.media_type = media_type
        self.status_code = 200
        self.headers: dict[str, str] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = [
            (b"content-type", content_type(self.media_type).encode("latin-1")),
            (b"content-length", str(len(self.body)).encode("latin-1")),
        ]
        headers += [
            (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in self.headers.items()
        ]
        await send({"type": "http.response.start", "status": self.status_code, "headers": headers})
        await send({"type": "http.response.body", "body": self.body})


@dataclass
class HTTPRefusal(Exception):
    """A request refused before GraphQL runs."""

    status: int
    code: str
    message: str
    headers: dict[str, str] = field(default_factory=dict)

    def response(self, media_type: str = JSON) -> Response:
        response = error_response(self.status, self.code, self.message, self.headers)
        response.headers["content-type"] = content_type(media_type)
        return response


def _media_range(entry: str) -> tuple[str, float]:
    media, *parameters = (part.strip() for part in entry.split(";"))
    quality = 1.0
    for parameter in parameters:
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "q":
            try:
                quality = float(value)
            except ValueError:
                quality = 0.0
    return media.lower(), quality


def negotiate(accept: str | None) -> str | None:
    """The response media type the Accept header prefers among those we speak (the
    first listed wins a tie); JSON without the header; None if it accepts neither."""
    if accept is not None and len(accept) <= _REMEMBERED_HEADER:
        return _negotiate_remembered(accept)  # a client sends the same Accept every time
    return _negotiate(accept)


def _negotiate(accept: str | None) -> str | None:
    if not accept or not accept.strip():
        return JSON
    best, best_quality = None, 0.0
    for entry in accept.split(","):
        media, quality = _media_range(entry)
        candidate = _ACCEPTED.get(media)
        if candidate is not None and quality > best_quality:
            best, best_quality = candidate, quality
    return best


# Header values up to this long are parsed once per process (per distinct value).
_REMEMBERED_HEADER = 256
_negotiate_remembered = lru_cache(maxsize=64)(_negotiate)


def _is_utf8_json(header: str) -> bool:
    if len(header) <= _REMEMBERED_HEADER:
        return _is_utf8_json_remembered(header)
    return _utf8_json(header)


def _utf8_json(header: str) -> bool:
    media, *parameters = (part.strip().lower() for part in header.split(";"))
    charsets = [p.partition("=")[2].strip('"') for p in parameters if p.startswith("charset=")]
    return media == JSON and all(charset in {"utf-8", "utf8"} for charset in charsets)


_is_utf8_json_remembered = lru_cache(maxsize=64)(_utf8_json)


def refuse_early(method: str, accept: str | None, content_type: str | None) -> HTTPRefusal | None:
    """Method, Accept and Content-Type checks: what can be refused before any work."""
    if method not in {"GET", "POST"}:
        return HTTPRefusal(
            405,
            "METHOD_NOT_ALLOWED",
            "GraphQL is served over GET (queries) and POST.",
            {"Allow": "GET, POST"},
        )
    browser = method == "GET" and "text/html" in (accept or "")  # GraphiQL
    if negotiate(accept) is None and not browser:
        return HTTPRefusal(
            406,
            "NOT_ACCEPTABLE",
            f"Responses are {GRAPHQL_RESPONSE} or {JSON}; the Accept header allows neither.",
        )
    if method == "POST" and not _is_utf8_json(content_type or ""):
        return HTTPRefusal(
            415,
            "UNSUPPORTED_MEDIA_TYPE",
            "POST a JSON body (Content-Type: application/json, UTF-8): "
            '{"query": ..., "variables": {...}, "operationName": ...}.',
        )
    return None


# A NUL character can only reach decoded JSON as this escape (a raw NUL byte is not
# valid JSON): a body without it needs no walk.
_NUL_ESCAPE = b"\\u0000"


def decode_json(body: str | bytes) -> Any:
    """A request's JSON (a POST body, GET's ``variables``), decoded strictly or refused
    with 400: UTF-8, no lone surrogate (``"\\ud800"``), nested at most 1,024 levels
    (orjson's limit; the json module recurses until it crashes), and no NUL character in
    any string, which PostgreSQL refuses in text. Whatever a caller sends (variables, the
    document, the operation name) is refused here, in one place, rather than by the
    database halfway through a request. NaN and Infinity, which some clients write, are
    still read (by the json module), for GraphQL to refuse with its own error."""
    raw = body.encode("utf-8", "surrogatepass") if isinstance(body, str) else body
    try:
        payload = orjson.loads(raw)
        walk = _NUL_ESCAPE in raw
    except orjson.JSONDecodeError as error:
        payload, walk = _lenient(raw, error), True
    if walk:
        for where, character in _text_problems(payload):
            if character == "\x00":
                raise HTTPRefusal(400, "BAD_USER_INPUT", nul_message(where))
            raise _unparsable(f"lone surrogate {character!a} in `{where}`", None)
    return payload


# orjson's refusals that the json module may still read: NaN and (-)Infinity, and lone
# surrogates (then reported with where they are).
_LENIENT = ("unexpected character", "no digit after sign", "surrogate in string")


def _lenient(raw: bytes, error: orjson.JSONDecodeError) -> Any:
    """What the json module reads of a body orjson refused, or the refusal (400)."""
    if error.msg.startswith("str is not valid UTF-8"):
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as undecodable:
            raise _unparsable("not valid UTF-8", undecodable.start) from None
    if not any(reason in error.msg for reason in _LENIENT):
        raise _unparsable(error.msg, error.pos)
    try:
        return json.loads(raw)
    except RecursionError:
        raise _unparsable("nested too deeply", None) from None
    except ValueError:
        raise _unparsable(error.msg, error.pos) from None


def _unparsable(reason: str, position: int | None) -> HTTPRefusal:
    at = f" (at position {position})" if position is not None else ""
    return HTTPRefusal(400, "BAD_REQUEST", f"Unable to parse request body as JSON: {reason}{at}.")


def nul_message(where: str) -> str:
    shown = where.replace("\x00", "\\u0000")
    return f"`{shown}` contains a NUL character (U+0000), which text may not hold."


_SURROGATE = re.compile("[\ud800-\udfff]")


def _text_problems(value: Any) -> Iterator[tuple[str, str]]:
    """(where, character) for each NUL or lone surrogate in a decoded JSON value, keys
    included, depth first; iterative, as the value may be nested deeply."""
    stack: list[tuple[Any, str]] = [(value, "")]
    while stack:
        item, where = stack.pop()
        if isinstance(item, str):
            yield from _bad_characters(item, where or "body")
        elif isinstance(item, dict):
            for key, inner in reversed(item.items()):
                inside = f"{where}.{key}" if where else key
                yield from _bad_characters(key, inside)
                stack.append((inner, inside))
        elif isinstance(item, list):
            stack.extend(
                (inner, f"{where}.{index}" if where else str(index))
                for index, inner in reversed(list(enumerate(item)))
            )


def _bad_characters(text: str, where: str) -> Iterator[tuple[str, str]]:
    if "\x00" in text:
        yield where, "\x00"
    surrogate = _SURROGATE.search(text)
    if surrogate is not None:
        yield where, surrogate.group()


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> Response:
    body = {"errors": [{"message": message, "extensions": {"code": code}}]}
    return Response(
        orjson.dumps(body), status_code=status, media_type="application/json", headers=headers
    )


def unavailable_response() -> Response:
    """A request whose transaction could not run or commit: nothing was done."""
    return error_response(
        503,
        "SERVICE_UNAVAILABLE",
        "The database is unavailable or busy; retry shortly.",
        {"Retry-After": RETRY_AFTER_SECONDS},
    )
