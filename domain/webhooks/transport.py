"""The HTTP client the delivery worker sends with, closed to DNS rebinding.

Checking a target's addresses and then letting the HTTP library resolve its name again
to connect leaves a gap: a name server that answers a public address to the check and
127.0.0.1 to the connection gets the worker to POST inside the network. Here the
connection itself resolves the name once, checks every address
(``targets.checked_addresses``) and connects to a checked one. TLS still names the host
(SNI and certificate check) and the ``Host`` header is the URL's, since both come from
the URL, not from the address connected to.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

import httpcore
import httpx

from domain.settings import Settings
from domain.webhooks.targets import Resolver, TargetRefused, checked_addresses, resolve


class CheckedAddressBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend, connecting only to addresses the settings allow."""

    def __init__(self, settings: Settings, resolver: Resolver) -> None:
        self.settings = settings
        self.resolver = resolver
        self.inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        async with asyncio.timeout(timeout):
            addresses = await checked_addresses(host, self.settings, self.resolver)
        return await self.inner.connect_tcp(
            str(addresses[0]), port, timeout, local_address, socket_options
        )

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise TargetRefused("A webhook is never sent over a Unix socket.")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


def webhook_client(settings: Settings, resolver: Resolver = resolve) -> httpx.AsyncClient:
    """An HTTP client that connects only to allowed addresses, resolved once per
    connection; no proxy from the environment (it would connect on our behalf)."""
    # One TLS context (~25 ms of CPU to load the CA store), for the pool we keep.
    ssl_context = httpx.create_ssl_context(trust_env=False)
    transport = httpx.AsyncHTTPTransport(verify=ssl_context, trust_env=False)
    # httpx offers no parameter for the backend: its pool is rebuilt with ours.
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=ssl_context,
        max_connections=100,
        max_keepalive_connections=20,
        keepalive_expiry=5.0,
        network_backend=CheckedAddressBackend(settings, resolver),
    )
    return httpx.AsyncClient(transport=transport, trust_env=False)
