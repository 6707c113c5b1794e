"""Bearer authentication for the API (RFC 6750): who is calling, or a 401."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import httpx
import orjson
from starlette.responses import Response

from auth.principal import Principal, resolve_principal
from auth.services import AuthServices
from auth.tokens import InvalidToken

REALM = "portfolio-graph"


def challenge(error: str | None = None, description: str | None = None) -> str:
    """The WWW-Authenticate header value."""
    parts = [f'Bearer realm="{REALM}"']
    if error:
        parts.append(f'error="{error}"')
    if description:
        parts.append(f'error_description="{description}"')
    return ", ".join(parts)


def unauthorized(error: str, description: str) -> Response:
    body = {"errors": [{"message": description, "extensions": {"code": "UNAUTHENTICATED"}}]}
    return Response(
        orjson.dumps(body),
        status_code=401,
        media_type="application/json",
        headers={"WWW-Authenticate": challenge(error, description)},
    )


async def authenticate(
    auth: AuthServices,
    connections: Callable[[], AbstractAsyncContextManager[Any]],
    authorization: str | None,
    anonymous: Principal,
) -> Principal:
    """The caller of a request; raises InvalidToken for a bad or revoked token. A token
    is checked against the database in one statement on a pooled connection
    (``connections``), outside the request's transaction, which need not begin."""
    if not authorization:
        return anonymous
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise InvalidToken("Use the Authorization: Bearer <access token> scheme.")
    try:
        claims = await auth.tokens.verify(token.strip())
    except httpx.HTTPError:
        raise InvalidToken("The issuer's signing keys could not be fetched.") from None
    async with connections() as connection:
        return await resolve_principal(connection, claims)
