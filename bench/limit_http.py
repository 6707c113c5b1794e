"""The limit over HTTP: the limit's one hand-written statement per request, its text sent
back as the answer by a bare Starlette handler under uvicorn. It is the ceiling for an
HTTP server (HTTP parsing, one pooled connection, one statement), where the in-process
limit (bench/limit.py) has no HTTP at all.

``python -m bench.limit_http --port P``, with ``DATABASE_URL`` and
``BENCH_LIMIT_POOL_SIZE`` (the bench's connection count) in the environment. A request
is ``{"workload": ..., "pick": ...}``, where the pick is what the request varies: for
overview, node and series the statement's first argument (product keys or null, an
initiative's pk, KPI keys; the series window is the workloads' fixed one), for
pagination, dashboard and board the variables our request carries.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import asyncpg
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from api.collector import settle_for_serving
from bench.limit import create_pool
from bench.limit_sql import CLIENT_LIMITS, Limit
from bench.workloads import LIMITS

# Each workload's statement and its arguments for a pick: the same ones ReadPlan.args
# gives the in-process limit.
STATEMENTS: dict[str, Limit] = LIMITS | CLIENT_LIMITS
JSON = "application/json"
# bench.processes.wait_for_graphql's readiness probe (`{ __typename }`).
_PROBE_ANSWER = b'{"data":{"__typename":"Query"}}'


def create_app(url: str, pool_size: int) -> Starlette:
    pool: asyncpg.Pool | None = None

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        nonlocal pool
        pool = await create_pool(url, pool_size)
        try:
            yield
        finally:
            await pool.close()

    async def graphql(request: Request) -> Response:
        body = orjson.loads(await request.body())
        found = STATEMENTS.get(body.get("workload"))
        if found is None:
            if "query" in body:
                return Response(_PROBE_ANSWER, media_type=JSON)
            return Response(b'{"errors":[{"message":"unknown workload"}]}', 400, media_type=JSON)
        assert pool is not None
        try:
            # asyncpg prepares the statement once per connection (its statement cache).
            answer = await pool.fetchval(found.sql, *found.args(body["pick"]))
        except asyncpg.PostgresError as error:
            message = orjson.dumps({"errors": [{"message": str(error)}]})
            return Response(message, 500, media_type=JSON)
        return Response(answer, media_type=JSON)

    return Starlette(routes=[Route("/graphql", graphql, methods=["POST"])], lifespan=lifespan)


def serve_limit(description: str, make_app: Callable[[str, int], Starlette]) -> None:
    """Run a limit's app from the command line (``--port``, ``DATABASE_URL``,
    ``BENCH_LIMIT_POOL_SIZE``)."""
    import uvicorn

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    options = parser.parse_args()
    application = make_app(os.environ["DATABASE_URL"], int(os.environ["BENCH_LIMIT_POOL_SIZE"]))
    # As `portfolio serve` (api/cli.py) runs ours, so the two differ in the handler only:
    # the same collector settings, and uvicorn's default loop and HTTP implementation
    # ("auto": uvloop and httptools when installed) with warnings-only logs.
    settle_for_serving()
    uvicorn.run(application, host=options.host, port=options.port, log_level="warning")


def main() -> None:
    serve_limit("The limit over HTTP (bench/README.md).", create_app)


if __name__ == "__main__":
    main()
