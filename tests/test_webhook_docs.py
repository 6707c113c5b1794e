"""The receivers the documentation shows, run against real deliveries: README's
``http.server`` receiver and docs/api.md's ``verify``. A change to the signing that
breaks what receivers were told to write fails here."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from http.server import HTTPServer
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from domain.database import create_engine
from tests.conftest import settings_for
from tests.fixtures.webhooks import create_initiative, deliver, receiving, register

pytestmark = pytest.mark.asyncio

ROOT = Path(__file__).resolve().parent.parent
PYTHON_BLOCK = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)


def python_block(page: str, containing: str) -> str:
    [code] = [
        block
        for block in PYTHON_BLOCK.findall((ROOT / page).read_text(encoding="utf-8"))
        if containing in block
    ]
    return str(code)


@contextmanager
def readme_receiver(secret: str) -> Iterator[str]:
    """README's receiver, its secret set, serving on a free port (its last line, which
    serves on 9000 for ever, is left out); its URL."""
    code = python_block("README.md", "BaseHTTPRequestHandler")
    serving = 'HTTPServer(("127.0.0.1", 9000), Receiver).serve_forever()'
    assert code.rstrip().endswith(serving)
    namespace: dict[str, Any] = {}
    exec(code.rstrip().removesuffix(serving), namespace)
    namespace["SECRET"] = secret
    server = HTTPServer(("127.0.0.1", 0), namespace["Receiver"])
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hooks"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
async def committed(own_database: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(own_database, settings_for())
    yield engine
    await engine.dispose()


async def status_codes(engine: AsyncEngine) -> list[int | None]:
    async with engine.connect() as connection:
        return list(
            (
                await connection.scalars(
                    text("SELECT status_code FROM webhook_attempts ORDER BY id")
                )
            ).all()
        )


async def test_the_readme_receiver_accepts_real_deliveries_and_refuses_forged_ones(
    committed: AsyncEngine,
) -> None:
    with readme_receiver("whsec_" + "A" * 44) as wrong:  # not the endpoint's secret
        await register(committed, wrong, ["initiative.created"])
        await create_initiative(committed, "DOC-1")
        assert await deliver(committed) == 1
    assert await status_codes(committed) == [401]
    async with committed.begin() as connection:
        await connection.execute(text("DELETE FROM webhook_endpoints"))

    # The secret exists once the endpoint does: register, start the receiver with the
    # secret, then point the endpoint at it.
    secret = await register(committed, "http://127.0.0.1:1/placeholder", ["initiative.created"])
    with readme_receiver(secret) as right:
        async with committed.begin() as connection:
            await connection.execute(
                text("UPDATE webhook_endpoints SET url = :url"), {"url": right}
            )
        await create_initiative(committed, "DOC-2")
        assert await deliver(committed) == 1
    assert await status_codes(committed) == [204]


async def test_the_documented_verify_checks_signature_and_timestamp(
    committed: AsyncEngine,
) -> None:
    namespace: dict[str, Any] = {}
    exec(python_block("docs/api.md", "def verify("), namespace)
    verify = namespace["verify"]
    async with receiving() as receiver:
        secret = await register(committed, receiver.url, ["initiative.created"])
        await create_initiative(committed, "DOC-3")
        assert await deliver(committed) == 1
        [(headers, body)] = receiver.requests
    assert verify(secret, headers, body)
    assert not verify(secret, headers, body + b" ")
    assert not verify("whsec_" + "A" * 44, headers, body)
    stale = {**headers, "webhook-timestamp": str(int(time.time()) - 3600)}
    assert not verify(secret, stale, body)  # a replay, however well signed
