"""Which URLs a webhook may call (SSRF safety). In production a target must be https and
every address its host resolves to must be public, unless it lies in one of
``PORTFOLIO_WEBHOOK_ALLOWED_NETWORKS``. The addresses are checked when the endpoint is
created and again by every attempt, at the moment it connects: the worker's transport
(``domain.webhooks.transport``) resolves the host once, checks every address, and
connects to a checked one, so a name cannot resolve to a public address for the check
and to a private one for the connection (DNS rebinding). Redirects are never followed."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from domain.errors import InvalidInput
from domain.settings import Settings

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
# A host's addresses (tests pass their own to play a rebinding name server).
Resolver = Callable[[str], Awaitable[list[Address]]]


class TargetRefused(Exception):
    """The target may not be called; the message says why."""


def check_url(url: str, settings: Settings) -> str:
    """The URL's host, or InvalidInput when the URL cannot be a target at all."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput("A webhook URL must be an absolute http(s) URL.", field="url")
    if parts.scheme != "https" and not settings.is_development:
        raise InvalidInput("A webhook URL must use https.", field="url")
    if parts.username or parts.password:
        raise InvalidInput("A webhook URL must not carry credentials.", field="url")
    return parts.hostname


def address_allowed(address: Address, settings: Settings) -> bool:
    if settings.is_development or address.is_global:
        return True
    return any(
        address in ipaddress.ip_network(network, strict=False)
        for network in settings.webhook_allowed_networks
    )


async def resolve(host: str) -> list[Address]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
    return [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]


async def checked_addresses(
    host: str, settings: Settings, resolver: Resolver = resolve
) -> list[Address]:
    """Every address ``host`` resolves to, or TargetRefused when one of them may not be
    called (or none is found)."""
    try:
        addresses = await resolver(host)
    except OSError as error:
        raise TargetRefused(f"{host} does not resolve ({error.strerror or error}).") from None
    if not addresses:
        raise TargetRefused(f"{host} does not resolve.")
    for address in addresses:
        if not address_allowed(address, settings):
            raise TargetRefused(
                f"{host} resolves to {address}, a non-public address not in "
                "PORTFOLIO_WEBHOOK_ALLOWED_NETWORKS."
            )
    return addresses


async def check_target(url: str, settings: Settings, resolver: Resolver = resolve) -> None:
    """Raise TargetRefused unless ``url`` may be called now."""
    try:
        host = check_url(url, settings)
    except InvalidInput as error:
        raise TargetRefused(error.message) from None
    await checked_addresses(host, settings, resolver)
