"""The write limit over HTTP: ``updateInitiative`` (a title change) as a bare Starlette
handler under uvicorn doing only what the write needs: BEGIN, our one statement (the row
locked, updated only at ``expectedVersion``, its version bumped, the audit event
inserted, the row returned: ``rows.fold_statement``, rendered once), COMMIT, and the
payload our server sends, from the returned row. A stale version is answered CONFLICT
with the stored version (a second statement, as ours needs one too). The ceiling for a
Python HTTP server writing what ours writes; ``python -m bench write-http`` runs it
against ours with wrk.

``python -m bench.limit_write_http --port P``, with ``DATABASE_URL`` and
``BENCH_LIMIT_POOL_SIZE`` in the environment. A request is our mutation's JSON body
(``bench.workloads.OURS_MUTATION``); only its variables are read.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bench.limit import create_pool
from bench.limit_http import serve_limit
from domain.services import direct_writes, rows, specs, writes
from schema.ids import decode_id, encode_id

JSON = "application/json"
_PROBE_ANSWER = b'{"data":{"__typename":"Mutation"}}'
_STORED_VERSION = "SELECT version FROM initiatives WHERE id = $1 AND archived_at IS NULL"


def create_app(url: str, pool_size: int) -> Starlette:
    pool: asyncpg.Pool | None = None
    spec = specs.INITIATIVE
    statement = direct_writes.rendered(spec.model, ("title",), spec.fields)
    actor = writes.Actor()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        nonlocal pool
        pool = await create_pool(url, pool_size)
        async with pool.acquire() as connection:
            await statement.learn(connection)
        try:
            yield
        finally:
            await pool.close()

    async def graphql(request: Request) -> Response:
        variables = orjson.loads(await request.body()).get("variables")
        if not variables:
            return Response(_PROBE_ANSWER, media_type=JSON)  # the readiness probe
        pk = decode_id(variables["id"], field="id")[1]
        changes = {"title": variables["title"]}
        event = writes.update_event(actor, spec, pk, changes)
        _, parameters = rows.fold_parameters(pk, variables["version"], changes, event)
        assert pool is not None
        async with pool.acquire() as connection, connection.transaction():
            written = await connection.fetchrow(statement.sql, *statement.arguments(parameters))
            version = (
                written["version"] if written else await connection.fetchval(_STORED_VERSION, pk)
            )
        errors = [] if written else [{"code": "CONFLICT"}]
        payload = {"initiative": {"id": encode_id("Initiative", pk), "version": version}}
        answer = {"data": {"updateInitiative": payload | {"userErrors": errors}}}
        return Response(orjson.dumps(answer), media_type=JSON)

    return Starlette(routes=[Route("/graphql", graphql, methods=["POST"])], lifespan=lifespan)


def main() -> None:
    serve_limit("The write limit over HTTP (bench/README.md).", create_app)


if __name__ == "__main__":
    main()
