"""Changes sent at once, as production sees them: real HTTP requests to the app, each on
its own pooled connection and transaction, against a database of this module's own
(whose writes are committed).

The races are derandomised, not left to timing: a connection of the test holds the rows
the requests lock first, the requests are sent, and once PostgreSQL shows every one of
them waiting for a lock the holder commits, so they all go on from the same point."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy import make_url

from api import migrate
from api.app import create_app
from domain.database import create_engine
from schema.ids import encode_id
from tests.conftest import ALL_SCOPES, settings_for
from tests.fixtures.database import create_database, drop_database

TRIALS = 20

MOVE = """mutation($id: ID!, $parent: ID) {
  updateInitiative(input: {id: $id, parentId: $parent}) {
    initiative { key } userErrors { field code message }
  }
}"""

# Two initiatives renamed in the order given: sent at once in opposite orders, the two
# requests deadlock in PostgreSQL.
RENAME_BOTH = """mutation($first: ID!, $second: ID!, $title: String!) {
  first: updateInitiative(input: {id: $first, title: $title}) {
    initiative { version } userErrors { field code message }
  }
  second: updateInitiative(input: {id: $second, title: $title}) {
    initiative { version } userErrors { field code message }
  }
}"""

TOP_LEVEL = """query($keys: [String!]) {
  initiatives(filter: {keys: $keys, topLevel: true}) { nodes { key } }
}"""

CYCLE = {
    "field": "parentId",
    "code": "INVALID",
    "message": "This parent would create a cycle in the initiative hierarchy.",
}

Send = Callable[[], Coroutine[Any, Any, httpx.Response]]


@pytest.fixture(scope="module")
async def database(database_server: str) -> AsyncIterator[str]:
    """A migrated, empty database for this module's races. PostgreSQL looks for deadlocks
    after ``deadlock_timeout`` (1 s by default); 20 ms keeps the deadlocking tests fast."""
    url, name = await create_database(database_server)
    engine = create_engine(url, settings_for())
    await migrate.upgrade(engine)
    await engine.dispose()
    admin = await asyncpg.connect(_dsn(url))
    try:
        await admin.execute(f"ALTER DATABASE \"{name}\" SET deadlock_timeout = '20ms'")
    finally:
        await admin.close()
    yield url
    await drop_database(database_server, name)


class Races:
    """Initiatives to race over, requests sent at once, and what the database holds.

    Three connections of the test's own: one arranges and reads back (each statement
    its own transaction), one holds rows, one watches who waits."""

    def __init__(self, client: httpx.AsyncClient, connections: list[asyncpg.Connection]) -> None:
        self.client = client
        self.db, self.holder, self.observer = connections

    async def initiatives(self, count: int, *, parents: dict[int, int] | None = None) -> list[int]:
        """``count`` new initiatives (ids); ``parents`` maps an index to its parent's."""
        ids: list[int] = [
            await self.db.fetchval(
                "INSERT INTO initiatives (key, title, status) VALUES ($1, $2, 'PROPOSED')"
                " RETURNING id",
                f"R{uuid.uuid4().hex[:10].upper()}",
                f"Racer {index}",
            )
            for index in range(count)
        ]
        for child, parent in (parents or {}).items():
            await self.db.execute(
                "UPDATE initiatives SET parent_id = $1 WHERE id = $2", ids[parent], ids[child]
            )
        return ids

    async def at_once(self, locked: list[int], *sends: Send) -> list[httpx.Response]:
        """Send every request while the holder has ``locked`` rows; let them all go at
        the same moment, once each of them waits for a lock."""
        async with self.holder.transaction():
            await self.holder.execute(
                "SELECT 1 FROM initiatives WHERE id = ANY($1::bigint[]) FOR UPDATE", locked
            )
            requests = [asyncio.create_task(send()) for send in sends]
            await self.waiting(len(requests), requests)
        return await asyncio.gather(*requests)

    async def waiting(self, count: int, requests: list[asyncio.Task[Any]]) -> None:
        """Until ``count`` of the app's connections wait for a lock. Each look is a
        statement of its own: pg_stat_activity is read once per transaction."""
        async with asyncio.timeout(30):
            while (
                await self.observer.fetchval(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname ="
                    " current_database() AND application_name = 'portfolio-graph'"
                    " AND wait_event_type = 'Lock'"
                )
                < count
            ):
                # A request that ends instead of waiting shows why at once.
                for done in (request for request in requests if request.done()):
                    raise AssertionError(f"answered before waiting: {done.result().text}")

    def move(self, child: int, parent: int) -> Send:
        variables = {
            "id": encode_id("Initiative", child),
            "parent": encode_id("Initiative", parent),
        }
        return lambda: self.client.post("/graphql", json={"query": MOVE, "variables": variables})

    def rename_both(self, first: int, second: int, title: str) -> Send:
        variables = {
            "first": encode_id("Initiative", first),
            "second": encode_id("Initiative", second),
            "title": title,
        }
        return lambda: self.client.post(
            "/graphql", json={"query": RENAME_BOTH, "variables": variables}
        )

    async def stored(self, ids: list[int]) -> dict[int, asyncpg.Record]:
        """id -> its row, as committed."""
        rows = await self.db.fetch("SELECT * FROM initiatives WHERE id = ANY($1::bigint[])", ids)
        return {row["id"]: row for row in rows}

    async def parents(self, ids: list[int]) -> dict[int, int | None]:
        return {pk: row["parent_id"] for pk, row in (await self.stored(ids)).items()}

    async def top_level(self, ids: list[int]) -> list[str]:
        """The keys of those of ``ids`` that ``initiatives(filter: {topLevel: true})``
        lists."""
        keys = [row["key"] for row in (await self.stored(ids)).values()]
        response = await self.client.post(
            "/graphql", json={"query": TOP_LEVEL, "variables": {"keys": keys}}
        )
        return sorted(node["key"] for node in response.json()["data"]["initiatives"]["nodes"])


def _dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.fixture
async def make_races(database: str) -> AsyncIterator[Callable[..., Awaitable[Races]]]:
    """``await make_races(**settings)``: the app as ``portfolio serve`` wires it (its own
    engine and pool) on the module's database, every scope for anonymous callers."""
    apps: list[Any] = []
    clients: list[httpx.AsyncClient] = []
    connections: list[asyncpg.Connection] = []

    async def make(**settings: Any) -> Races:
        app = create_app(
            settings_for(anonymous_scopes=ALL_SCOPES, **settings), database_url=database
        )
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")
        apps.append(app)
        clients.append(client)
        own = [await asyncpg.connect(_dsn(database)) for _ in range(3)]
        connections.extend(own)
        return Races(client, own)

    yield make
    for client in clients:
        await client.aclose()
    for app in apps:
        await app.state.reads.close()
        await app.state.engine.dispose()
    for connection in connections:
        await connection.close()


def _has_cycle(parents: dict[int, int | None]) -> bool:
    for start in parents:
        seen = {start}
        current = parents.get(start)
        while current is not None:
            if current in seen:
                return True
            seen.add(current)
            current = parents.get(current)
    return False


def _user_errors(response: httpx.Response, field: str) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.text
    body = response.json()
    assert "errors" not in body, body["errors"]
    errors: list[dict[str, Any]] = body["data"][field]["userErrors"]
    return errors


async def test_two_moves_that_together_close_a_cycle_never_both_succeed(
    make_races: Callable[..., Awaitable[Races]],
) -> None:
    """With B under C, "A under B" and "C under A" sent at once: one of them is refused
    (it would close A→B→C→A on what the other committed), and the three stay a tree
    whose one root is still listed among the top-level initiatives."""
    races = await make_races()
    for _ in range(TRIALS):
        a, b, c = ids = await races.initiatives(3, parents={1: 2})
        answers = await races.at_once([a, c], races.move(a, b), races.move(c, a))
        outcomes = [_user_errors(answer, "updateInitiative") for answer in answers]
        assert sorted(outcomes, key=len) == [[], [CYCLE]]
        parents = await races.parents(ids)
        assert not _has_cycle(parents)
        moved_a = not outcomes[0]
        assert parents == ({a: b, b: c, c: None} if moved_a else {a: None, b: c, c: a})
        stored = await races.stored(ids)
        assert await races.top_level(ids) == [stored[c if moved_a else a]["key"]]


async def test_two_initiatives_moved_under_each_other_at_once_one_is_refused(
    make_races: Callable[..., Awaitable[Races]],
) -> None:
    """Moving A under B and B under A at once used to deadlock in PostgreSQL and answer
    INTERNAL_SERVER_ERROR: now one waits for the other and is refused as a cycle."""
    races = await make_races()
    for _ in range(TRIALS):
        a, b = ids = await races.initiatives(2)
        answers = await races.at_once([a, b], races.move(a, b), races.move(b, a))
        outcomes = [_user_errors(answer, "updateInitiative") for answer in answers]
        assert sorted(outcomes, key=len) == [[], [CYCLE]]
        parents = await races.parents(ids)
        assert parents in ({a: b, b: None}, {a: None, b: a})


async def test_a_request_caught_in_a_deadlock_is_run_again_whole(
    make_races: Callable[..., Awaitable[Races]],
) -> None:
    """Two requests that rename the same two initiatives in opposite orders deadlock:
    PostgreSQL aborts one of them. Nothing of its answer had been sent, so its whole
    transaction is rolled back and run again after the other: both callers get their
    answer, as if they had come one after the other."""
    races = await make_races()
    for _ in range(3):
        x, y = ids = await races.initiatives(2)
        answers = await races.at_once(
            [x, y], races.rename_both(x, y, "From Alice"), races.rename_both(y, x, "From Bob")
        )
        versions = []
        for answer in answers:
            assert answer.status_code == 200, answer.text
            body = answer.json()
            assert "errors" not in body, body["errors"]
            data = body["data"]
            assert data["first"]["userErrors"] == data["second"]["userErrors"] == []
            versions.append(
                (data["first"]["initiative"]["version"], data["second"]["initiative"]["version"])
            )
        # One ran first (versions 2), the other after it (versions 3).
        assert sorted(versions) == [(2, 2), (3, 3)]
        last = "From Alice" if versions[0] == (3, 3) else "From Bob"
        stored = await races.stored(ids)
        assert {pk: (row["title"], row["version"]) for pk, row in stored.items()} == {
            x: (last, 3),
            y: (last, 3),
        }


async def test_a_deadlock_left_after_the_last_attempt_is_a_conflict_user_error(
    make_races: Callable[..., Awaitable[Races]],
) -> None:
    """With no attempt left (here: one attempt in all), the change PostgreSQL aborted is
    refused as CONFLICT, saying so; the rest of the request stands, as with any refused
    mutation, and never an INTERNAL_SERVER_ERROR."""
    races = await make_races(transaction_attempts=1)
    x, y = ids = await races.initiatives(2)
    answers = await races.at_once(
        [x, y], races.rename_both(x, y, "From Alice"), races.rename_both(y, x, "From Bob")
    )
    bodies = []
    for answer in answers:
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert "errors" not in body, body["errors"]
        bodies.append(body["data"])
    refused = [data for data in bodies if data["second"]["userErrors"]]
    assert len(refused) == 1
    [victim] = refused
    assert victim["first"]["userErrors"] == []
    assert victim["second"] == {
        "initiative": None,
        "userErrors": [
            {
                "field": None,
                "code": "CONFLICT",
                "message": "A concurrent request changed the same data at the same moment "
                "(deadlock detected): this change was rolled back. Send it again.",
            }
        ],
    }
    # The victim's first rename stands (version 2 of its first initiative); the other
    # request renamed both after it.
    [winner] = [data for data in bodies if data is not victim]
    assert winner["first"]["userErrors"] == winner["second"]["userErrors"] == []
    stored = await races.stored(ids)
    assert sorted(row["version"] for row in stored.values()) == [2, 3]


OWNED = """query($keys: [String!]) {
  initiatives(filter: {keys: $keys}) { nodes { key ownerTeam { key } } }
}"""


async def _owned_initiative(races: Races) -> tuple[str, str]:
    """A new initiative owned by a new team: their keys."""
    team_key = f"T{uuid.uuid4().hex[:10].upper()}"
    team = await races.db.fetchval(
        "INSERT INTO teams (key, name, kind) VALUES ($1, 'Racers', 'TECHNOLOGY') RETURNING id",
        team_key,
    )
    [initiative] = await races.initiatives(1)
    row = await races.db.fetchrow(
        "UPDATE initiatives SET owner_team_id = $1 WHERE id = $2 RETURNING key", team, initiative
    )
    return row["key"], team_key


def _owned_query() -> str:
    """``OWNED`` as a document no plan is known for yet (a comment of its own)."""
    return f"{OWNED}# {uuid.uuid4().hex}\n"


async def _read_in_a_deadlock(races: Races, query: str, key: str) -> httpx.Response:
    """``query`` (``OWNED``) for ``key``, sent while a schema change (a migration run while serving)
    holds the teams table: the read takes its share lock on initiatives and waits for
    teams; the change then locks initiatives too, and PostgreSQL aborts one of the two.
    Always the read: only the read's connection looks for deadlocks within the test's
    time."""
    await races.holder.execute("SET deadlock_timeout = '1min'")
    async with races.holder.transaction():
        await races.holder.execute("LOCK TABLE teams IN ACCESS EXCLUSIVE MODE")
        read = asyncio.create_task(
            races.client.post("/graphql", json={"query": query, "variables": {"keys": [key]}})
        )
        await races.waiting(1, [read])
        await races.holder.execute("LOCK TABLE initiatives IN ACCESS EXCLUSIVE MODE")
    answer = await read
    assert answer.status_code == 200, answer.text
    return answer


@pytest.mark.parametrize("compiled", [False, True], ids=["resolvers", "compiled"])
async def test_a_read_caught_in_a_deadlock_is_run_again(
    make_races: Callable[..., Awaitable[Races]], compiled: bool
) -> None:
    """A read keeps its share lock on each table it read until its transaction ends, so
    a schema change that locks the same tables the other way round deadlocks with it.
    The read PostgreSQL aborts is run again once the change is committed, and answers
    as if it had come after it: on the resolvers' path (a statement per table) and on
    the compiled one (one statement, run in the request's transaction)."""
    races = await make_races(compiled_reads=compiled)
    key, team_key = await _owned_initiative(races)

    async def remaining() -> int:
        variables = {"keys": [key]}
        sent = await races.client.post(
            "/graphql", json={"query": _owned_query(), "variables": variables}
        )
        return int(sent.json()["extensions"]["cost"]["remaining"])

    before = await remaining()
    body = (await _read_in_a_deadlock(races, _owned_query(), key)).json()
    assert body["data"] == {
        "initiatives": {"nodes": [{"key": key, "ownerTeam": {"key": team_key}}]}
    }
    # Run again, the compiled read finds the plan its first attempt made: it is answered
    # from that known plan on a pooled connection.
    assert body["extensions"]["answeredBy"] == ("repeated" if compiled else "resolvers")
    # Charged once: the attempt run again spends the first attempt's budget, on either
    # path, so the read caught in the deadlock cost what any other such read costs.
    after, later = await remaining(), await remaining()
    assert before - after == 2 * (after - later) > 0


async def test_a_known_read_caught_in_a_deadlock_is_a_conflict_error(
    make_races: Callable[..., Awaitable[Races]],
) -> None:
    """A read answered from a known plan runs its one statement on a pooled connection,
    outside any transaction, and is sent at once: it cannot be run again unseen, so the
    caller is told, with a code of its own rather than INTERNAL_SERVER_ERROR."""
    races = await make_races()
    key, team_key = await _owned_initiative(races)
    query, variables = _owned_query(), {"keys": [key]}
    # Planned once: known from then on.
    for expected in ("compiled", "repeated"):
        sent = await races.client.post("/graphql", json={"query": query, "variables": variables})
        assert sent.json()["extensions"]["answeredBy"] == expected
    body = (await _read_in_a_deadlock(races, query, key)).json()
    assert body["data"] is None
    assert body["errors"] == [
        {
            "message": "A concurrent change of the same data aborted this read (deadlock "
            "detected); send it again.",
            "path": ["initiatives"],
            "extensions": {"code": "CONFLICT"},
        }
    ]
    assert body["extensions"]["answeredBy"] == "repeated"
    again = await races.client.post("/graphql", json={"query": query, "variables": variables})
    assert again.json()["data"] == {
        "initiatives": {"nodes": [{"key": key, "ownerTeam": {"key": team_key}}]}
    }
