"""Persisted queries at the HTTP edge: the document is found by its hash before
strawberry sees the request.

Registering (automatic persisted queries: a hash sent with its document) writes
permanent storage, so it is never done here, on the caller's word: the request's state
gets a ``PendingRegistration``, and the view stores the document only once it has
parsed, validated, passed the limits and run (``PortfolioGraphQL._register``), and only
where registering is on (``Settings.persisted_queries_register``: development by
default; in production documents are registered with `portfolio persist-queries`).
Elsewhere the document just runs, as an ad-hoc one, within the ad-hoc size cap.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode

import orjson
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response
from starlette.types import Message, Receive, Scope

from domain.services.persisted import PersistedQueryStore, digest
from schema.http import HTTPRefusal, decode_json, error_response

# Request state keys: the document came from the store (it may exceed the ad-hoc size
# cap); a document sent with its hash, to register if it runs.
PERSISTED_DOCUMENT = "persisted_document"
PENDING_REGISTRATION = "pending_registration"


class PersistedQueryError(Exception):
    def __init__(self, response: Response) -> None:
        self.response = response


@dataclass(frozen=True)
class PendingRegistration:
    store: PersistedQueryStore
    document: str


async def resolve_persisted(
    store: PersistedQueryStore,
    session: Callable[[], Awaitable[AsyncSession]],
    payload: dict[str, Any],
    *,
    only_persisted: bool,
    state: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The request with its document filled in, or PersistedQueryError. ``state`` (the
    request's) learns whether the document is a stored one or one to register.
    ``session``: the request's, asked for only if the store must read the database."""
    state = {} if state is None else state
    extensions = payload.get("extensions") or {}
    persisted = extensions.get("persistedQuery") if isinstance(extensions, dict) else None
    query = payload.get("query")
    if not isinstance(persisted, dict):
        if only_persisted:
            raise PersistedQueryError(
                error_response(
                    400,
                    "PERSISTED_QUERY_REQUIRED",
                    "This server only runs persisted queries: send "
                    "extensions.persistedQuery.sha256Hash of a registered document.",
                )
            )
        return payload
    sha256 = persisted.get("sha256Hash")
    if persisted.get("version", 1) != 1 or not isinstance(sha256, str) or len(sha256) != 64:
        raise PersistedQueryError(
            error_response(400, "PERSISTED_QUERY_INVALID", "Unsupported persistedQuery extension.")
        )
    if isinstance(query, str):
        if digest(query) != sha256:
            raise PersistedQueryError(
                error_response(
                    400, "PERSISTED_QUERY_HASH_MISMATCH", "sha256Hash does not match the query."
                )
            )
        if await store.find(session, sha256) is not None:
            state[PERSISTED_DOCUMENT] = True
        elif only_persisted:
            raise PersistedQueryError(_not_found())
        else:
            state[PENDING_REGISTRATION] = PendingRegistration(store, query)
        return payload
    document = await store.find(session, sha256)
    if document is None:
        raise PersistedQueryError(_not_found())
    state[PERSISTED_DOCUMENT] = True
    return {**payload, "query": document}


def _not_found() -> Response:
    # Apollo's convention: 200, so clients retry with the full document.
    return error_response(200, "PERSISTED_QUERY_NOT_FOUND", "PersistedQueryNotFound")


async def read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


def replay(body: bytes) -> Receive:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive


def get_payload(scope: Scope) -> dict[str, Any]:
    params = dict(parse_qsl(scope.get("query_string", b"").decode()))
    payload: dict[str, Any] = dict(params)
    for key in ("extensions", "variables"):
        if key in params:
            try:
                payload[key] = decode_json(params[key])  # a NUL in it is refused (400)
            except HTTPRefusal as refusal:
                if refusal.code != "BAD_REQUEST":
                    raise
                payload[key] = params[key]  # not JSON: strawberry reports it
    return payload


def set_get_payload(scope: Scope, payload: dict[str, Any]) -> None:
    scope["query_string"] = query_string_of(payload)


def query_string_of(payload: dict[str, Any]) -> bytes:
    """The query string a GET with this (filled-in) payload is passed on with."""
    return urlencode(get_params_of(payload)).encode()


def get_params_of(payload: dict[str, Any]) -> dict[str, str]:
    """The query string's parameters for a (filled-in) payload: a text as it is, any
    other value as its JSON; a None left out."""
    return {
        key: value if isinstance(value, str) else orjson.dumps(value).decode()
        for key, value in payload.items()
        if value is not None
    }
