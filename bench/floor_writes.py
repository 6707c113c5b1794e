"""``python -m bench write-floor``: how low an ``updateInitiative`` (a title change) can go.

CPU time (``time.process_time``, median) per execution, in-process, against the bench
database, of:

- **graphql-core alone**: ``graphql.execute`` of the mutation document (parsed and
  validated once) over a ready-made dict of its answer, default resolvers: the floor of
  any strawberry/graphql-core server's GraphQL work for it;
- **the round trips alone**: asyncpg, nothing else: BEGIN, one statement that locks,
  updates, audits and returns the row (as the server's, with the computed fields left
  out), COMMIT; its wall time per execution too (PostgreSQL's work and the round trips,
  one connection);
- **the service alone**: ``writes.update`` in a ``RequestTransaction`` (SQLAlchemy's
  session, the statement, the commit), no GraphQL;
- **ours**: strawberry's ``schema.execute`` of the document in the request's
  transaction, as the endpoint runs it (``RequestTransaction``: a lone mutation, no
  savepoint), commit included, no HTTP;
- **the whole request through the ASGI app** (middleware, endpoint, view; no socket,
  no HTTP parsing), the anonymous caller of the bench: once by strawberry's path (the
  known-mutation path declining) and once by the known-mutation path
  (``schema.known_writes``), which answers a document it has seen.

Each execution changes the title of one initiative and commits, as the bench's fixed
mutation workload does.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
import orjson
from graphql import build_schema, execute, parse, validate

from bench import database
from bench.asgi import Caller
from bench.floor import LOG_DIR, REPO_DIR, cpu_ms
from bench.processes import BenchError
from bench.workloads import OURS_MUTATION

# The server's one statement for a title change, by hand (computed fields left out).
BARE_UPDATE = """
WITH written AS (
  UPDATE initiatives SET title = $2, version = initiatives.version + 1, updated_at = now()
  FROM (SELECT id, title, version FROM initiatives
        WHERE id = $1 AND archived_at IS NULL FOR NO KEY UPDATE) AS prior
  WHERE initiatives.id = prior.id AND ($3::int IS NULL OR prior.version = $3)
    AND prior.title IS DISTINCT FROM $2
  RETURNING initiatives.id, initiatives.title, initiatives.version,
            prior.title AS before_title, prior.version AS before_version
), event AS (
  INSERT INTO audit_events (entity_type, entity_id, action, changes)
  SELECT 'Initiative', id, 'UPDATE', jsonb_build_object(
    'title', jsonb_build_object('before', before_title, 'after', $2::text),
    'version', jsonb_build_object('before', before_version, 'after', version))
  FROM written
)
SELECT id, title, version FROM written
"""


@dataclass(frozen=True)
class WriteFloor:
    graphql_core_ms: float
    bare_cpu_ms: float
    bare_wall_ms: float
    service_ms: float
    ours_ms: float
    ours_wall_ms: float
    asgi_strawberry_ms: float
    asgi_known_ms: float


async def _timed(run: Callable[[], Awaitable[Any]], repeat: int) -> tuple[float, float]:
    """Median CPU ms and median wall ms of a coroutine."""
    cpu, wall = [], []
    for _ in range(repeat):
        start, clock = time.process_time(), time.perf_counter()
        await run()
        cpu.append((time.process_time() - start) * 1000)
        wall.append((time.perf_counter() - clock) * 1000)
    return statistics.median(cpu), statistics.median(wall)


async def measure(url: str, repeat: int, warmup: int) -> WriteFloor:
    from bench.inprocess import _context_factory, _schema
    from bench.runner import OURS_ENVIRONMENT

    os.environ.update(OURS_ENVIRONMENT | {"DATABASE_URL": url})
    from api.embedded import resolve_database_url
    from domain.database import RequestTransaction, create_engine, create_session_factory
    from domain.settings import Settings
    from schema.ids import encode_id

    settings = Settings()
    schema = _schema(settings)
    new_context = _context_factory(settings)
    connection = await asyncpg.connect(url)
    try:
        pk = await connection.fetchval("SELECT min(id) FROM initiatives WHERE archived_at IS NULL")
    finally:
        await connection.close()
    global_id = encode_id("Initiative", pk)
    counter = 0

    def variables() -> dict[str, Any]:
        nonlocal counter
        counter += 1
        return {"id": global_id, "version": None, "title": f"Write floor {counter}"}

    engine = create_engine(resolve_database_url(settings), settings)
    sessions = create_session_factory(engine)
    answer: Any = None

    async def ours() -> None:
        nonlocal answer
        async with RequestTransaction(sessions) as transaction:
            context = new_context(await transaction.session())
            context.transaction = transaction
            result = await schema.execute(
                OURS_MUTATION, variable_values=variables(), context_value=context
            )
        if result.errors or result.data["updateInitiative"]["userErrors"]:
            raise BenchError(f"the mutation failed: {result.errors or result.data}")
        answer = orjson.loads(orjson.dumps(result.data))

    from domain.services import specs, writes

    async def service() -> None:
        async with RequestTransaction(sessions) as transaction:
            session = await transaction.session()
            changes = {"title": variables()["title"]}
            await writes.update(session, writes.Actor(), specs.INITIATIVE, pk, None, changes)

    try:
        for _ in range(warmup):
            await ours()
            await service()
        ours_ms, ours_wall = await _timed(ours, repeat)
        service_ms, _ = await _timed(service, repeat)
    finally:
        await engine.dispose()
    asgi_strawberry_ms = await _through_asgi(variables, repeat, warmup, known=False)
    asgi_known_ms = await _through_asgi(variables, repeat, warmup, known=True)

    bare = await asyncpg.connect(url)
    try:

        async def round_trips() -> None:
            async with bare.transaction():
                row = await bare.fetchrow(BARE_UPDATE, pk, variables()["title"], None)
            if row is None:
                raise BenchError("the bare update wrote nothing")

        for _ in range(warmup):
            await round_trips()
        bare_cpu, bare_wall = await _timed(round_trips, repeat)
    finally:
        await bare.close()

    core_schema = build_schema((REPO_DIR / "schema.graphql").read_text())
    document = parse(OURS_MUTATION)
    errors = validate(core_schema, document)
    if errors:
        raise BenchError(f"graphql-core refuses the document: {errors[0]}")
    root = answer  # {"updateInitiative": {...}}: default resolvers walk it
    given = variables()

    def core() -> Any:
        return execute(core_schema, document, root_value=root, variable_values=given)

    check: Any = core()
    if check.errors or orjson.loads(orjson.dumps(check.data)) != answer:
        raise BenchError("graphql-core over the answer did not give the answer back")
    return WriteFloor(
        graphql_core_ms=cpu_ms(core, repeat * 10, warmup),
        bare_cpu_ms=bare_cpu,
        bare_wall_ms=bare_wall,
        service_ms=service_ms,
        ours_ms=ours_ms,
        ours_wall_ms=ours_wall,
        asgi_strawberry_ms=asgi_strawberry_ms,
        asgi_known_ms=asgi_known_ms,
    )


async def _through_asgi(
    variables: Callable[[], dict[str, Any]], repeat: int, warmup: int, *, known: bool
) -> float:
    """Median CPU ms of a whole POST through the app (``api.app.create_app``, settings
    from the environment ``measure`` set), called as an ASGI server would call it."""
    from api.app import create_app

    app = create_app()
    view = app.state.view
    if not known:

        async def decline(*_: Any) -> None:
            return None

        view.updates.answer = decline

    caller = Caller(app)

    async def post() -> None:
        body = orjson.dumps({"query": OURS_MUTATION, "variables": variables()})
        _, answer = await caller.post("/graphql", body, list(_HEADERS))
        if b'"userErrors":[]' not in answer:
            raise BenchError(f"the mutation failed: {answer[:300]!r}")

    try:
        for _ in range(warmup):
            await post()
        answered = view.updates.answered
        cpu, _ = await _timed(post, repeat)
        if known and view.updates.answered - answered != repeat:
            raise BenchError("the known-mutation path did not answer every request")
        return cpu
    finally:
        await app.state.reads.close()
        await app.state.engine.dispose()


_HEADERS = ((b"content-type", b"application/json"), (b"host", b"bench"))


def run_write_floor(products: int, repeat: int, warmup: int) -> WriteFloor:
    url = asyncio.run(database.ensure_database(products, fresh=False, log_dir=LOG_DIR))
    floor = asyncio.run(measure(url, repeat, warmup))
    print(
        f"updateInitiative, {repeat} timed executions after {warmup}, median ms per execution\n"
        f"(a) graphql-core alone, CPU:          {floor.graphql_core_ms:.3f}\n"
        f"(b) asyncpg BEGIN+write+COMMIT, CPU:  {floor.bare_cpu_ms:.3f}"
        f" (wall {floor.bare_wall_ms:.3f})\n"
        f"(c) the service alone, CPU:           {floor.service_ms:.3f}\n"
        f"(d) ours in-process, CPU:             {floor.ours_ms:.3f}"
        f" (wall {floor.ours_wall_ms:.3f})\n"
        f"(e) ASGI request, strawberry's path:  {floor.asgi_strawberry_ms:.3f}\n"
        f"(f) ASGI request, known mutation:     {floor.asgi_known_ms:.3f}"
    )
    return floor
