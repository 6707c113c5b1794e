"""``python -m bench run``, ``paired``, ``overload``, ``inprocess``, ``firstseen``, ``floor``,
``write-floor`` and ``webhooks``; see bench/README.md."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bench.processes import BenchError
from bench.workloads import ALL_WORKLOADS, READ_WORKLOADS

app = typer.Typer(
    help="Benchmarks of Portfolio Graph (see bench/README.md).",
    no_args_is_help=True,
    add_completion=False,
)


def _split(text: str, allowed: tuple[str, ...]) -> list[str]:
    chosen = [w.strip() for w in text.split(",") if w.strip()]
    unknown = [w for w in chosen if w not in allowed]
    if unknown or not chosen:
        raise typer.BadParameter(f"choose from {', '.join(allowed)} (comma-separated)")
    return chosen


@app.command()
def run(
    products: Annotated[int, typer.Option(help="Size of the generated portfolio.", min=50)] = 200,
    duration: Annotated[float, typer.Option(help="Seconds of load per run.", min=1)] = 20.0,
    connections: Annotated[int, typer.Option(help="Concurrent connections.", min=1)] = 16,
    workloads: Annotated[
        str, typer.Option(help="Comma-separated: " + ",".join(ALL_WORKLOADS))
    ] = ",".join(ALL_WORKLOADS),
    skip_peer: Annotated[bool, typer.Option(help="Do not run PostGraphile (4 nor 5).")] = False,
    skip_peer5: Annotated[
        bool, typer.Option(help="Do not run PostGraphile 5 (it needs Node 22+).")
    ] = False,
    token: Annotated[
        bool,
        typer.Option(help="Send a bearer token with every request to our server."),
    ] = False,
    cached: Annotated[
        bool,
        typer.Option(
            help="Also run our server with its response cache on (a column of its own; "
            "the headline column has it off)."
        ),
    ] = True,
    skip_limit: Annotated[
        bool, typer.Option(help="Do not run the hand-written SQL (neither limit).")
    ] = False,
    skip_limit_http: Annotated[
        bool, typer.Option(help="Do not run the limit over HTTP (only the one without).")
    ] = False,
    fresh: Annotated[bool, typer.Option(help="Drop and re-create the database first.")] = False,
    warmup: Annotated[float, typer.Option(help="Seconds of warm-up before each run.")] = 2.0,
    threads: Annotated[int, typer.Option(help="wrk threads.", min=1)] = 2,
    port_base: Annotated[
        int,
        typer.Option(
            help="First of seven ports: ours, PostGraphile 4, their counting copies, the limit "
            "over HTTP, PostGraphile 5 and its counting copy."
        ),
    ] = 8701,
    results_dir: Annotated[Path, typer.Option(help="Where <timestamp>/ and latest.md go.")] = Path(
        __file__
    )
    .resolve()
    .parent
    / "results",
    ingest_calls: Annotated[int, typer.Option(help="recordKpiMeasurements calls.", min=1)] = 100,
    ingest_batch: Annotated[
        int, typer.Option(help="Measurements per call.", min=1, max=10_000)
    ] = 10_000,
    ingest_concurrency: Annotated[int, typer.Option(help="Calls in flight.", min=1)] = 4,
    wait_idle: Annotated[
        float,
        typer.Option(
            help="Before each timed run, wait up to this many seconds while other processes "
            "use over 10 % of the CPUs."
        ),
    ] = 60.0,
) -> None:
    """Load-test our server beside PostGraphile 4 and the one-statement SQL limit (over
    HTTP and without)."""
    from bench.runner import Options
    from bench.runner import run as run_benchmark

    options = Options(
        products=products,
        duration=duration,
        connections=connections,
        workloads=_split(workloads, ALL_WORKLOADS),
        skip_peer=skip_peer,
        skip_peer5=skip_peer5,
        token=token,
        cached=cached,
        skip_limit=skip_limit,
        skip_limit_http=skip_limit_http,
        fresh=fresh,
        warmup=warmup,
        threads=threads,
        port_base=port_base,
        results_dir=results_dir,
        ingest_calls=ingest_calls,
        ingest_batch=ingest_batch,
        ingest_concurrency=ingest_concurrency,
        wait_idle=wait_idle,
    )
    _guarded(lambda: run_benchmark(options))


@app.command()
def paired(
    workloads: Annotated[
        str, typer.Option(help="Comma-separated: pagination, dashboard, board.")
    ] = "pagination,dashboard,board",
    pairs: Annotated[int, typer.Option(help="Segments of each server, per workload.", min=1)] = 8,
    segment: Annotated[float, typer.Option(help="Seconds of load per segment.", min=1)] = 4.0,
    warmup: Annotated[float, typer.Option(help="Seconds of warm-up per server.", min=0)] = 2.0,
    connections: Annotated[int, typer.Option(help="Concurrent connections.", min=1)] = 16,
    threads: Annotated[int, typer.Option(help="wrk threads.", min=1)] = 2,
    token: Annotated[bool, typer.Option(help="A bearer token on our requests.")] = True,
    products: Annotated[int, typer.Option(help="Size of the generated portfolio.", min=50)] = 200,
    port_base: Annotated[int, typer.Option(help="Ours on this port, theirs on the next.")] = 8791,
    against: Annotated[
        str, typer.Option(help="limit-http, postgraphile (4) or postgraphile5.")
    ] = "limit-http",
) -> None:
    """Ours against the limit over HTTP (or a peer) in alternating segments (ABBA): the
    median ratio of requests per second, steadier than bench run's stages on a drifting
    machine."""
    from bench.paired import run as run_paired

    chosen = _split(workloads, ("pagination", "dashboard", "board"))
    _guarded(
        lambda: run_paired(
            chosen,
            pairs=pairs,
            segment=segment,
            warmup=warmup,
            connections=connections,
            threads=threads,
            token=token,
            products=products,
            port_base=port_base,
            against=_split(against, ("limit-http", "postgraphile", "postgraphile5"))[0],
        )
    )


@app.command()
def overload(
    products: Annotated[int, typer.Option(help="Size of the generated portfolio.", min=50)] = 200,
    clients: Annotated[int, typer.Option(help="Concurrent clients.", min=1)] = 200,
    duration: Annotated[float, typer.Option(help="Seconds of load per mode.", min=1)] = 20.0,
    warmup: Annotated[float, typer.Option(help="Seconds of warm-up per mode.", min=0)] = 3.0,
    workload: Annotated[
        str, typer.Option(help="One of: " + ", ".join(READ_WORKLOADS))
    ] = "overview",
    variant: Annotated[str, typer.Option(help="fixed or varied.")] = "varied",
    modes: Annotated[
        str,
        typer.Option(
            help="Comma-separated servers: on (the default limit), off (none), or a number "
            "of requests at once."
        ),
    ] = "on,off",
    ignore_retry_after: Annotated[
        bool, typer.Option(help="A shed client sends its next request at once.")
    ] = False,
    port: Annotated[int, typer.Option(help="The server's port.")] = 8711,
    results_dir: Annotated[Path, typer.Option(help="Where <timestamp>-overload/ goes.")] = Path(
        __file__
    )
    .resolve()
    .parent
    / "results",
    wait_idle: Annotated[
        float,
        typer.Option(
            help="Before each timed run, wait up to this many seconds while other processes "
            "use over 10 % of the CPUs."
        ),
    ] = 10.0,
) -> None:
    """More clients than one worker can serve: admitted latency and share shed, with load
    shedding on and off."""
    from bench.overload import MODES, Options
    from bench.overload import run as run_overload

    if workload not in READ_WORKLOADS:
        raise typer.BadParameter(f"choose from {', '.join(READ_WORKLOADS)}")
    if variant not in ("fixed", "varied"):
        raise typer.BadParameter("fixed or varied")
    chosen = [m.strip() for m in modes.split(",") if m.strip()]
    if not chosen or any(m not in MODES and not m.isdigit() for m in chosen):
        raise typer.BadParameter("on, off or numbers of requests at once (comma-separated)")
    options = Options(
        products=products,
        clients=clients,
        duration=duration,
        warmup=warmup,
        workload=workload,
        variant=variant,
        modes=chosen,
        honour_retry_after=not ignore_retry_after,
        port=port,
        results_dir=results_dir,
        wait_idle=wait_idle,
    )
    _guarded(lambda: run_overload(options))


@app.command()
def inprocess(
    products: Annotated[int, typer.Option(help="Size of the generated portfolio.", min=50)] = 200,
    repeat: Annotated[int, typer.Option(help="Timed executions.", min=1)] = 50,
    workload: Annotated[
        str, typer.Option(help="One of: " + ", ".join(READ_WORKLOADS))
    ] = "overview",
    variant: Annotated[str, typer.Option(help="fixed or varied.")] = "fixed",
    warmup: Annotated[int, typer.Option(help="Untimed executions first.", min=0)] = 5,
    profile: Annotated[
        Path | None,
        typer.Option(help="Write a pyinstrument HTML profile of the timed executions here."),
    ] = None,
) -> None:
    """Execute a read workload through schema.execute (no HTTP) and print ms per execution."""
    from bench.inprocess import run_inprocess

    if workload not in READ_WORKLOADS:
        raise typer.BadParameter(f"choose from {', '.join(READ_WORKLOADS)}")
    if variant not in ("fixed", "varied"):
        raise typer.BadParameter("fixed or varied")
    _guarded(lambda: run_inprocess(products, repeat, workload, variant, warmup, profile))


@app.command()
def firstseen(
    products: Annotated[int, typer.Option(help="Size of the generated portfolio.", min=50)] = 200,
    documents: Annotated[int, typer.Option(help="First-seen documents per round.", min=1)] = 200,
    rounds: Annotated[int, typer.Option(help="Rounds (each its own documents).", min=1)] = 3,
    profile: Annotated[
        Path | None,
        typer.Option(help="Write a cProfile of the first-seen requests here (text, and .prof)."),
    ] = None,
    stages: Annotated[
        bool, typer.Option(help="Time each stage of the first-seen requests (CPU).")
    ] = False,
) -> None:
    """CPU per request of first-seen generated documents against repeated ones, in-process
    through the whole app (no sockets)."""
    from bench.firstseen import run_firstseen

    _guarded(lambda: run_firstseen(products, documents, rounds, profile, stages))


@app.command()
def floor(
    products: Annotated[int, typer.Option(help="Size of the generated portfolio.", min=50)] = 200,
    repeat: Annotated[int, typer.Option(help="Timed executions per path.", min=1)] = 30,
    warmup: Annotated[int, typer.Option(help="Untimed executions first.", min=0)] = 3,
    workloads: Annotated[
        str, typer.Option(help="Comma-separated: overview,pagination,dashboard,board")
    ] = "overview,pagination,dashboard,board",
    results_dir: Annotated[Path, typer.Option(help="Where <timestamp>-floor/ goes.")] = Path(
        __file__
    )
    .resolve()
    .parent
    / "results",
) -> None:
    """CPU per execution of graphql-core alone over the answer as plain dicts, of the
    resolvers and of the compiled path, in-process (no HTTP)."""
    from bench.floor import FLOOR_WORKLOADS, run_floor

    chosen = _split(workloads, FLOOR_WORKLOADS)
    _guarded(lambda: run_floor(products, repeat, warmup, chosen, results_dir))


@app.command("write-floor")
def write_floor(
    products: Annotated[int, typer.Option(help="Size of the generated portfolio.", min=50)] = 200,
    repeat: Annotated[int, typer.Option(help="Timed executions per path.", min=1)] = 200,
    warmup: Annotated[int, typer.Option(help="Untimed executions first.", min=0)] = 20,
) -> None:
    """CPU per updateInitiative: graphql-core alone over its answer, asyncpg's BEGIN,
    write and COMMIT alone, and ours in-process (no HTTP)."""
    from bench.floor_writes import run_write_floor

    _guarded(lambda: run_write_floor(products, repeat, warmup))


@app.command()
def webhooks(
    products: Annotated[int, typer.Option(help="Size of the generated portfolio.", min=50)] = 50,
    rate: Annotated[float, typer.Option(help="Writes (transactions) per second.", min=0.1)] = 20.0,
    duration: Annotated[float, typer.Option(help="Seconds of writes.", min=1)] = 10.0,
    workers: Annotated[int, typer.Option(help="Server processes.", min=1)] = 1,
    port: Annotated[int, typer.Option(help="The server's port.")] = 8711,
) -> None:
    """Delay from a write's commit to its webhook's arrival, under a steady write rate."""
    from bench.webhook_delay import Options, run_webhook_delay

    options = Options(products=products, rate=rate, duration=duration, workers=workers, port=port)
    _guarded(lambda: run_webhook_delay(options))


@app.command("write-http")
def write_http(
    products: Annotated[int, typer.Option(help="Size of the generated portfolio.", min=50)] = 200,
    duration: Annotated[float, typer.Option(help="Seconds of load per server.", min=1)] = 10.0,
    connections: Annotated[int, typer.Option(help="wrk's connections.", min=1)] = 16,
    port: Annotated[int, typer.Option(help="The servers' port (one at a time).")] = 8721,
    token: Annotated[bool, typer.Option(help="Send ours a bearer token.")] = False,
) -> None:
    """updateInitiative over HTTP under wrk: ours against the write limit (a bare
    Starlette handler: BEGIN, our one statement, COMMIT)."""
    from bench.write_http import run_write_http

    _guarded(lambda: run_write_http(products, duration, connections, port, token))


def _guarded(work: object) -> None:
    try:
        work()  # type: ignore[operator]
    except BenchError as error:
        typer.echo(f"bench: {error}", err=True)
        raise typer.Exit(code=2) from None
    except KeyboardInterrupt:
        typer.echo("bench: interrupted; servers stopped", err=True)
        raise typer.Exit(code=130) from None


if __name__ == "__main__":
    app()
