"""``python -m bench firstseen``: what a first-seen document costs against the same
documents repeated, in-process through the whole app (HTTP handling over ASGI, no
sockets), in CPU time of this process (``time.process_time``): steadier than req/s on a
shared machine. PostgreSQL's own work (planning a new statement) is in its own
process and not counted, as the HTTP runs do not count it in the server's CPU either.

    python -m bench firstseen --documents 300 --rounds 3
    python -m bench firstseen --profile profile.txt    # cProfile of the first-seen ones
"""

from __future__ import annotations

import asyncio
import cProfile
import importlib
import inspect
import io
import os
import pstats
import statistics
import time
from pathlib import Path
from typing import Any

import orjson

from bench import database
from bench.clients import GENERATED_REPEATED, generated_documents
from bench.processes import BenchError
from bench.runner import OURS_ENVIRONMENT

LOG_DIR = Path(__file__).resolve().parent / "results" / "tmp"


# Where a request's CPU goes, stage by stage: (module, attribute) wrapped to add the CPU
# time of each call to its stage (stages do not nest, except where said). What is left
# of a request is HTTP, authentication and the endpoint.
STAGES: dict[str, tuple[str, str]] = {
    "parse": ("schema.limits.documents", "parse"),
    "validate (with the extra rules)": ("schema.limits.documents", "validate_document"),
    "size and cost limits": ("schema.limits.extension", "cached_query_cost"),
    "plan: statements built (SQLAlchemy Core)": ("schema.compiled.compiler", "Compiler.root"),
    "plan: SQL text (SQLAlchemy's compiler)": ("schema.compiled.extension", "_render"),
    "plan: binder": ("schema.compiled.extension", "Binder"),
    "plan: finisher": ("schema.compiled.extension", "finisher"),
    "run: compiled, in a transaction": ("schema.compiled.extension", "run_plan"),
    "run: repeated (fast path)": ("schema.compiled.extension", "run_rendered"),
    # Holds every stage above: the rest of it is strawberry's own work and the
    # resolvers of the documents the compiler declines.
    "strawberry's execute, in all": ("strawberry.schema.schema", "Schema.execute"),
}


class Stages:
    """CPU time (``time.process_time``) per stage, from wrappers around its function."""

    def __init__(self) -> None:
        self.spent: dict[str, float] = dict.fromkeys(STAGES, 0.0)
        self.requests = 0.0  # CPU of the first-seen requests, whole
        self.on = False

    def install(self) -> None:
        for stage, (module_name, attribute) in STAGES.items():
            owner: Any = importlib.import_module(module_name)
            *path, name = attribute.split(".")
            for part in path:
                owner = getattr(owner, part)
            setattr(owner, name, self._wrapped(stage, getattr(owner, name)))

    def _wrapped(self, stage: str, function: Any) -> Any:
        if inspect.iscoroutinefunction(function):

            async def timed_async(*args: Any, **kwargs: Any) -> Any:
                start = time.process_time()
                try:
                    return await function(*args, **kwargs)
                finally:
                    if self.on:
                        self.spent[stage] += time.process_time() - start

            return timed_async

        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.process_time()
            try:
                return function(*args, **kwargs)
            finally:
                if self.on:
                    self.spent[stage] += time.process_time() - start

        return timed


def run_firstseen(
    products: int, documents: int, rounds: int, profile: Path | None, stages: bool
) -> None:
    asyncio.run(_run(products, documents, rounds, profile, stages))


async def planning_ms(url: str, queries: set[str]) -> tuple[int, float]:
    """PostgreSQL's planning time (``EXPLAIN (SUMMARY)``) of the statements planned for
    these documents, summed per document, mean over the documents: what a first-seen
    document costs the database before it runs (in its process, not the server's).
    Statements with parameters are left out (none without variables)."""
    from schema.compiled.extension import PLANS

    per_document: dict[str, float] = {}
    connection = await database.connect(url)
    try:
        for key in PLANS._plans:
            plan = PLANS._plans.peek(key)
            query = key[0]  # type: ignore[index]
            if plan is None or query not in queries:
                continue
            for _, statement in plan.statements:
                if statement.parameters or not statement.sql:  # no SQL: a refused root field
                    continue
                explained = await connection.fetchval(
                    "EXPLAIN (SUMMARY, FORMAT JSON) " + statement.sql
                )
                planning = orjson.loads(explained)[0]["Planning Time"]
                per_document[query] = per_document.get(query, 0.0) + planning
    finally:
        await connection.close()
    return len(per_document), statistics.fmean(per_document.values() or [0.0])


async def _run(
    products: int, documents: int, rounds: int, profile: Path | None, stages: bool
) -> None:
    url = await database.ensure_database(products, fresh=False, log_dir=LOG_DIR)
    # The response cache off, as the headline HTTP column: every request runs its SQL.
    os.environ.update(
        OURS_ENVIRONMENT | {"DATABASE_URL": url, "PORTFOLIO_RESPONSE_CACHE_CHARS": "0"}
    )

    import httpx
    from graphql import build_schema

    from api.app import assemble_app
    from api.collector import settle_for_serving
    from domain.database import create_engine, create_session_factory
    from domain.settings import Settings
    from schema.build import schema as default_schema

    timer = Stages()
    if stages:
        timer.install()
    settings = Settings()
    engine = create_engine(url.replace("postgresql://", "postgresql+asyncpg://", 1), settings)
    app = assemble_app(settings, engine, create_session_factory(engine))
    settle_for_serving()  # as `serve` does
    dataset = await database.load_dataset(url)
    # One pool per round, none shared: every first-seen document is new to the process.
    pool = generated_documents(
        build_schema(default_schema.as_str()),
        dataset,
        GENERATED_REPEATED + documents * rounds,
    )
    repeated, fresh = pool[:GENERATED_REPEATED], pool[GENERATED_REPEATED:]
    profiler = cProfile.Profile() if profile is not None else None
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://bench"
        ) as client:

            async def send(document: str) -> float:
                body = orjson.dumps({"query": document})
                start = time.process_time()
                response = await client.post(
                    "/graphql", content=body, headers={"content-type": "application/json"}
                )
                elapsed = time.process_time() - start
                if response.status_code >= 500:
                    raise BenchError(f"HTTP {response.status_code}: {response.text[:300]}")
                return elapsed * 1000

            for document in repeated:  # planned once: from now on they are repeated
                await send(document)
            for round_ in range(rounds):
                again = [await send(d) for d in repeated * 2]
                share = fresh[round_ * documents : (round_ + 1) * documents]
                if profiler is not None:
                    profiler.enable()
                timer.on = True
                first = [await send(d) for d in share]
                timer.on = False
                timer.requests += sum(first) / 1000
                if profiler is not None:
                    profiler.disable()
                mean_again, mean_first = statistics.fmean(again), statistics.fmean(first)
                print(
                    f"round {round_ + 1}: repeated {mean_again:.2f} ms CPU/request "
                    f"(median {statistics.median(again):.2f}), first-seen {mean_first:.2f} "
                    f"(median {statistics.median(first):.2f}): {mean_first / mean_again:.1f}x"
                )
        if stages:
            counted, planning = await planning_ms(url, set(fresh))
            print(f"PostgreSQL planning, ms per first-seen document: {planning:.2f} ({counted})")
    finally:
        await engine.dispose()
    if stages:
        total = documents * rounds
        print(f"CPU ms per first-seen request, by stage (mean over {total}):")
        for stage, spent in timer.spent.items():
            print(f"  {stage:45} {spent * 1000 / total:7.2f}")
        print(f"  {'the whole request':45} {timer.requests * 1000 / total:7.2f}")
        from schema.compiled.subtrees import SUBTREES

        print(
            f"fields whose SQL text was kept (subtrees): {SUBTREES.hits} hits, "
            f"{SUBTREES.misses} misses, {len(SUBTREES)} kept ({SUBTREES.bytes:,} bytes)"
        )
        from schema.compiled.page_text import COUNTS, PARTS

        print(f"connections written as text (page_text): {dict(COUNTS)}, {len(PARTS)} parts")
    if profiler is not None and profile is not None:
        _write_profile(profiler, profile)


def _write_profile(profiler: cProfile.Profile, profile: Path) -> None:
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("cumulative").print_stats(120)
    profile.write_text(out.getvalue())
    profiler.dump_stats(str(profile) + ".prof")
    print(f"profile: {profile} (and {profile}.prof)")
