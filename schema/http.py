"""GraphQL over HTTP: media types, methods and the refusals that come before GraphQL.

Follows the GraphQL-over-HTTP specification: ``application/graphql-response+json``
when the client prefers it (request errors then answer 4xx without ``data``),
``application/json`` otherwise (always 200 for a well-formed request). Everything the
HTTP layer refuses answers a GraphQL-shaped JSON body with ``extensions.code``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from starlette.datastructures import Headers
from starlette.responses import Response

from api.observability import error_response

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
    if not accept or not accept.strip():
        return JSON
    best, best_quality = None, 0.0
    for entry in accept.split(","):
        media, quality = _media_range(entry)
        candidate = _ACCEPTED.get(media)
        if candidate is not None and quality > best_quality:
            best, best_quality = candidate, quality
    return best


def _is_utf8_json(header: str) -> bool:
    media, *parameters = (part.strip().lower() for part in header.split(";"))
    charsets = [p.partition("=")[2].strip('"') for p in parameters if p.startswith("charset=")]
    return media == JSON and all(charset in {"utf-8", "utf8"} for charset in charsets)


def refuse_early(method: str, headers: Headers) -> HTTPRefusal | None:
    """Method, Accept and Content-Type checks: what can be refused before any work."""
    if method not in {"GET", "POST"}:
        return HTTPRefusal(
            405,
            "METHOD_NOT_ALLOWED",
            "GraphQL is served over GET (queries) and POST.",
            {"Allow": "GET, POST"},
        )
    accept = headers.get("accept")
    browser = method == "GET" and "text/html" in (accept or "")  # GraphiQL
    if negotiate(accept) is None and not browser:
        return HTTPRefusal(
            406,
            "NOT_ACCEPTABLE",
            f"Responses are {GRAPHQL_RESPONSE} or {JSON}; the Accept header allows neither.",
        )
    if method == "POST" and not _is_utf8_json(headers.get("content-type", "")):
        return HTTPRefusal(
            415,
            "UNSUPPORTED_MEDIA_TYPE",
            "POST a JSON body (Content-Type: application/json, UTF-8): "
            '{"query": ..., "variables": {...}, "operationName": ...}.',
        )
    return None
