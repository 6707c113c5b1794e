"""The sync client of docs/examples.md ("A sync client"), run as written against the
API with committed transactions: push, pull, a crash in the middle of a pull, and a
resumption from the stored cursor that ends with the same mirror as an uninterrupted
sync."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from domain.database import create_engine, create_session_factory
from tests.conftest import ALL_SCOPES, make_client, settings_for
from tests.polling import poll_feed

EXAMPLES = Path(__file__).resolve().parent.parent / "docs" / "examples.md"


def example_code() -> dict[str, Any]:
    """The first Python block under the "A sync client" heading, executed."""
    text = EXAMPLES.read_text(encoding="utf-8")
    section = text[text.index("## A sync client") :]
    found = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert found is not None
    namespace: dict[str, Any] = {}
    exec(compile(found.group(1), str(EXAMPLES), "exec"), namespace)
    return namespace


@pytest.fixture
async def client(own_database: str) -> AsyncIterator[httpx.AsyncClient]:
    engine = create_engine(own_database, settings_for())
    async with make_client(
        engine, create_session_factory(engine), anonymous_scopes=ALL_SCOPES
    ) as client:
        yield client
    await engine.dispose()


class Crash(Exception):
    pass


async def _pull_until(
    code: dict[str, Any],
    client: httpx.AsyncClient,
    state: Path,
    issues: dict[str, Any],
    done: Any,
) -> None:
    """Pull until ``done(issues)`` (polled: ``tests.polling``)."""

    async def pull() -> dict[str, Any]:
        await code["pull"](client, state, code["mirror_into"](issues))
        return issues

    await poll_feed(pull, done, what="the mirror")


async def test_push_pull_crash_and_resume(client: httpx.AsyncClient, tmp_path: Path) -> None:
    code = example_code()
    state = tmp_path / "sync-state.json"
    # Catch up with the demo data first: the mirror starts from now.
    seed: dict[str, Any] = {}
    await code["pull"](client, state, code["mirror_into"](seed))

    outbox = [{"key": f"SYNC-{n}", "title": f"Issue {n}"} for n in range(5)]
    assert await code["push"](client, outbox) == []
    assert await code["push"](client, outbox) == []  # again: nothing to do
    renamed = [{"key": "SYNC-0", "title": "Issue 0, renamed"}]
    assert await code["push"](client, renamed) == []
    archived = await code["graphql"](client, '{ initiative(key: "SYNC-4") { id } }', {})
    await code["graphql"](
        client,
        "mutation($id: ID!) { archiveInitiative(input: {id: $id}) { userErrors { code } } }",
        {"id": archived["initiative"]["id"]},
    )

    # A crash on the third event: the first page is not stored, so it is replayed.
    mirror: dict[str, Any] = {}
    applied = 0
    apply = code["mirror_into"](mirror)

    def crashing(event: dict[str, Any]) -> None:
        nonlocal applied
        applied += 1
        if applied == 3:
            raise Crash
        apply(event)

    cursor_before = ""

    async def pull_until_crash() -> bool:
        nonlocal cursor_before
        cursor_before = state.read_text()
        try:
            await code["pull"](client, state, crashing)
        except Crash:
            return True
        return False

    await poll_feed(pull_until_crash, bool, what="a third event")
    assert state.read_text() == cursor_before  # the crashed page was not stored

    def complete(issues: dict[str, Any]) -> bool:
        return sorted(issues) == ["SYNC-0", "SYNC-1", "SYNC-2", "SYNC-3"]

    await _pull_until(code, client, state, mirror, complete)
    assert mirror["SYNC-0"]["title"] == "Issue 0, renamed"
    assert mirror["SYNC-0"]["version"] == 2
    assert {m["title"] for k, m in mirror.items() if k != "SYNC-0"} == {
        "Issue 1",
        "Issue 2",
        "Issue 3",
    }
    # Resumed from its cursor: nothing more to apply.
    after: list[dict[str, Any]] = []
    await code["pull"](client, state, after.append)
    assert after == []
