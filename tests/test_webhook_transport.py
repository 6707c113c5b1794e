"""The worker connects only to addresses it checked, resolving a target's name once per
connection: a name server that answers a public address to one lookup and a private one
to the next (DNS rebinding) cannot get a request sent inside the network. The resolver
is injected to play that name server; the receiver and the database are real."""

from __future__ import annotations

import ipaddress
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from domain.database import create_engine
from domain.settings import Environment
from domain.webhooks.targets import Address, check_target
from tests.conftest import settings_for
from tests.fixtures.webhooks import create_initiative, deliver, deliveries, receiving, register

pytestmark = pytest.mark.asyncio

PUBLIC = ipaddress.ip_address("93.184.215.14")
LOOPBACK = ipaddress.ip_address("127.0.0.1")


class Rebinding:
    """Answers ``first`` to the first lookup and ``then`` to every later one."""

    def __init__(self, first: Address, then: Address) -> None:
        self.answers = [first]
        self.then = then
        self.asked: list[str] = []

    async def __call__(self, host: str) -> list[Address]:
        self.asked.append(host)
        return [self.answers.pop(0) if self.answers else self.then]


@pytest.fixture
async def committed(own_database: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(own_database, settings_for())
    yield engine
    await engine.dispose()


async def attempt_errors(engine: AsyncEngine) -> list[str | None]:
    async with engine.connect() as connection:
        return list(
            (await connection.scalars(text("SELECT error FROM webhook_attempts ORDER BY id"))).all()
        )


async def test_a_name_rebound_to_loopback_after_the_check_is_refused_at_connect(
    committed: AsyncEngine,
) -> None:
    async with receiving() as receiver:
        # Production, no allow-list: loopback is forbidden. (The URL is https; nothing
        # gets as far as TLS.)
        production = {"environment": Environment.PRODUCTION}
        url = f"https://localhost:{receiver.port}/hooks"
        await register(committed, url, ["initiative.created"])
        await create_initiative(committed, "REBIND")
        rebinding = Rebinding(PUBLIC, LOOPBACK)
        # The first lookup answers a public address: a check would let it through...
        await check_target(url, settings_for(**production), rebinding)
        # ...but the connection resolves again, checks what it got, and refuses.
        assert await deliver(committed, resolver=rebinding, **production) == 1
        assert receiver.connections == 0 and receiver.requests == []
    assert rebinding.asked == ["localhost", "localhost"]
    assert await attempt_errors(committed) == [
        "refused: localhost resolves to 127.0.0.1, a non-public address not in "
        "PORTFOLIO_WEBHOOK_ALLOWED_NETWORKS."
    ]
    [row] = await deliveries(committed)
    assert (row["status"], row["attempts"]) == ("pending", 1)  # retried later, checked again


async def test_the_connection_goes_to_the_address_checked_with_the_urls_host(
    committed: AsyncEngine,
) -> None:
    """The name does not resolve anywhere but through the resolver the check used: the
    request arrives, so the connection went to that address; the Host header (and, for
    https, SNI) still names the URL's host."""
    async with receiving() as receiver:
        url = f"http://hooks.invalid:{receiver.port}/hooks"
        await register(committed, url, ["initiative.created"])
        await create_initiative(committed, "PINNED")
        resolver = Rebinding(LOOPBACK, PUBLIC)  # a second lookup would go elsewhere
        assert await deliver(committed, resolver=resolver) == 1
        [(headers, _)] = receiver.requests
    assert headers["host"] == f"hooks.invalid:{receiver.port}"
    assert resolver.asked == ["hooks.invalid"]
    [row] = await deliveries(committed)
    assert (row["status"], row["codes"]) == ("delivered", [200])


async def test_a_private_address_outside_the_allow_list_is_refused_at_connect(
    committed: AsyncEngine,
) -> None:
    """An allow-list opens only the networks it names: with loopback allowed, a name
    resolving to 10.0.0.7 is still refused when the connection is made."""
    allowed = {
        "environment": Environment.PRODUCTION,
        "webhook_allowed_networks": ["127.0.0.0/8"],
    }
    async with receiving() as receiver:
        url = f"https://hooks.invalid:{receiver.port}/hooks"
        await register(committed, url, ["initiative.created"])
        await create_initiative(committed, "PRIVATE")
        private = Rebinding(ipaddress.ip_address("10.0.0.7"), LOOPBACK)
        assert await deliver(committed, resolver=private, **allowed) == 1
        assert receiver.connections == 0
    assert await attempt_errors(committed) == [
        "refused: hooks.invalid resolves to 10.0.0.7, a non-public address not in "
        "PORTFOLIO_WEBHOOK_ALLOWED_NETWORKS."
    ]
