"""``python -m bench inprocess``: a read workload through ``schema.execute`` with a real
session and context, no HTTP: the target for py-spy or pyinstrument.

    py-spy record -o profile.svg -- python -m bench inprocess --repeat 200
    python -m bench inprocess --repeat 200 --profile profile.html   # pyinstrument
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import random
import statistics
import time
from pathlib import Path
from typing import Any

import orjson

from bench import database
from bench.limit import percentile
from bench.processes import BenchError
from bench.runner import OURS_ENVIRONMENT
from bench.workloads import read_plans

LOG_DIR = Path(__file__).resolve().parent / "results" / "tmp"


def run_inprocess(
    products: int, repeat: int, workload: str, variant: str, warmup: int, profile: Path | None
) -> None:
    html = asyncio.run(_run(products, repeat, workload, variant, warmup, profile is not None))
    if profile is not None and html is not None:
        profile.write_text(html)
        print(f"profile: {profile}")


def _schema(settings: Any) -> Any:
    """The schema the server would use for these settings."""
    from schema import build

    schema_for = getattr(build, "schema_for", None)
    return schema_for(settings) if schema_for is not None else build.schema


def _context_factory(settings: Any) -> Any:
    """Build contexts as the GraphQL view does: the anonymous caller with the benchmark's
    scopes (and, where the context has them, the compiled-path switch and an in-process
    rate limiter with the benchmark's budget)."""
    from auth.principal import anonymous_principal
    from schema.context import Context

    principal = anonymous_principal(development=False, configured=settings.anonymous_scopes)
    fields = {f.name for f in dataclasses.fields(Context)}
    extra: dict[str, Any] = {}
    if "compiled" in fields:
        extra["compiled"] = settings.compiled_reads
    if "rate_limiter" in fields:
        from domain.ratelimit import LocalRateLimiter

        extra["rate_limiter"] = LocalRateLimiter(
            settings.rate_limit_points, settings.rate_limit_window_seconds
        )

    def context(session: Any) -> Any:
        return Context(session=session, principal=principal, settings=settings, **extra)

    return context


async def _run(
    products: int, repeat: int, workload: str, variant: str, warmup: int, profile: bool
) -> str | None:
    url = await database.ensure_database(products, fresh=False, log_dir=LOG_DIR)
    os.environ.update(OURS_ENVIRONMENT | {"DATABASE_URL": url})

    from sqlalchemy import event

    from api.embedded import resolve_database_url
    from domain.database import create_engine, create_session_factory
    from domain.settings import Settings

    settings = Settings()
    schema = _schema(settings)
    dataset = await database.load_dataset(url)
    plan = next(p for p in read_plans(dataset, [workload]) if p.variant == variant)
    engine = create_engine(resolve_database_url(settings), settings)
    sessions = create_session_factory(engine)
    statements = 0
    new_context = _context_factory(settings)

    def _count(_: Any) -> None:
        nonlocal statements
        statements += 1

    # Counted on the driver: the compiled path runs its statement there, past
    # SQLAlchemy's cursor events. BEGIN and COMMIT count too.
    @event.listens_for(engine.sync_engine, "connect")
    def _log_queries(connection: Any, _: Any) -> None:
        connection.driver_connection.add_query_logger(_count)

    rng = random.Random(5)
    profiler: Any = None
    if profile:
        try:
            from pyinstrument import Profiler
        except ImportError:
            raise BenchError("pyinstrument is not installed: pip install -e '.[bench]'") from None
        profiler = Profiler(async_mode="enabled")

    timings: list[float] = []
    size = 0
    answered_by = ""
    try:
        for index in range(warmup + repeat):
            if index == warmup:
                statements = 0
                if profiler is not None:
                    profiler.start()
            request = orjson.loads(plan.body("ours", plan.sample(rng)))
            async with sessions() as session, session.begin():
                context = new_context(session)
                start = time.perf_counter()
                result = await schema.execute(
                    request["query"],
                    variable_values=request["variables"],
                    context_value=context,
                )
                elapsed = (time.perf_counter() - start) * 1000
            if result.errors:
                raise BenchError(f"the query failed: {result.errors[0]}")
            if index >= warmup:
                timings.append(elapsed)
            size = len(orjson.dumps(result.data))
            answered_by = getattr(context, "answered_by", "") or answered_by
    finally:
        if profiler is not None and profiler.is_running:
            profiler.stop()
        await engine.dispose()

    print(
        f"{workload}/{variant}: {repeat} executions of schema.execute, {size:,} bytes of JSON"
        + (f", answered by the {answered_by} path" if answered_by else "")
    )
    print(
        f"ms per execution: mean {statistics.fmean(timings):.2f}, "
        f"p50 {percentile(timings, 50):.2f}, p90 {percentile(timings, 90):.2f}, "
        f"min {min(timings):.2f}, max {max(timings):.2f}"
    )
    print(f"SQL statements per execution: {statements / repeat:g}")
    return str(profiler.output_html()) if profiler is not None else None
