"""Bearer authentication for the API (RFC 6750): who is calling, or ``InvalidToken``.

What a refusal looks like on the wire (401, its body, ``WWW-Authenticate`` built with
``challenge``) is for the HTTP layer that calls ``authenticate`` to write."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import httpx

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


async def authenticate(
    auth: AuthServices,
    connections: Callable[[], AbstractAsyncContextManager[Any]],
    authorization: str | None,
    anonymous: Principal,
) -> Principal:
    """The caller of a request; raises InvalidToken for a bad or revoked token.

    The signature is checked in memory (``TokenService.verify``). The principal of a
    token seen before comes from memory (``auth.principal_cache``) while changes are
    heard; otherwise it is looked up in one statement on a pooled connection
    (``connections``), outside the request's transaction, which need not begin."""
    if not authorization:
        return anonymous
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise InvalidToken("Use the Authorization: Bearer <access token> scheme.")
    try:
        claims = await auth.tokens.verify(token)
    except httpx.HTTPError:
        raise InvalidToken("The issuer's signing keys could not be fetched.") from None
    principals = auth.principals
    remembered = principals.get(token)
    if remembered is not None:
        return remembered
    generation = principals.generation
    async with connections() as connection:
        principal = await resolve_principal(connection, claims)
    principals.put(token, generation, principal)
    return principal
