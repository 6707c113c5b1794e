"""Clients: how one authenticates at an endpoint, and which redirect URIs it may use."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request

from auth.models import OAuthClient
from auth.oauth.credentials import credentials
from auth.oauth.throttle import ClientAuthenticationFailed, Throttle
from auth.passwords import verify_secret_off_loop


async def authenticate_client(
    session: AsyncSession, request: Request, form: Any, throttle: Throttle
) -> OAuthClient:
    """Authenticate the client: HTTP Basic, form secret, or a public client's id.
    Failures are counted by ``Throttle.refused`` (see ``Throttle.admit`` for the policy)."""
    client_id, secret, basic = credentials(request, form)
    by_address, by_client = throttle.client_limits(request, client_id)
    if by_client is None:
        raise ClientAuthenticationFailed(basic, [by_address])
    client = await session.scalar(select(OAuthClient).where(OAuthClient.client_id == client_id))
    usable = client is not None and client.is_active and client.archived_at is None
    if client is not None and client.secret_hash is None and usable and not secret:
        return client  # a public client: it proves itself with PKCE instead
    if (
        not await verify_secret_off_loop(client.secret_hash if client else None, str(secret or ""))
        or not usable
    ):
        # Only registered ids are counted, so made-up ids add no rows.
        limits = [by_address, by_client] if client is not None else [by_address]
        raise ClientAuthenticationFailed(basic, limits)
    assert client is not None
    return client


def redirect_uri_problem(uri: str) -> str | None:
    """Why ``uri`` cannot be registered or used as a redirect URI, or None: https (http
    only to this machine, RFC 8252 §7.3) and no fragment (RFC 6749 §3.1.2, the server
    appends the code to the query and a fragment would be kept by the browser)."""
    if "#" in uri:
        return f"Redirect URI {uri!r} must not contain a fragment (#)."
    if not re.match(r"^https://|^http://(127\.0\.0\.1|localhost)(:\d+)?/", uri):
        return f"Redirect URI {uri!r} must use https (http only for localhost)."
    return None
