"""``python -m bench overload``: more clients than one worker can serve, with load
shedding on (the server's default admission limit) and off
(``PORTFOLIO_MAX_CONCURRENT_REQUESTS=0``), or a limit of one's choice.

wrk reports one latency distribution for every answer, so it cannot tell the admitted
requests' latency from that of the 503s. Here each client is an asyncio task with one
keep-alive connection of its own, timing each request and classifying its answer:
admitted (200 without errors), shed (503 OVERLOADED), or another failure (by code). A
shed client waits as long as the answer's Retry-After says, as a well-behaved client
does, then sends its next request; ``--ignore-retry-after`` sends it at once.

The clients speak HTTP/1.1 on asyncio streams themselves: httpx took 3-4 ms of CPU per
73 KB answer, so on a 2-CPU machine the load generator's own delays showed up in every
latency it measured.
"""

from __future__ import annotations

import asyncio
import os
import platform
import random
import re
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson

from bench import database
from bench.limit import percentile
from bench.processes import (
    BenchError,
    ManagedProcess,
    ensure_port_free,
    install_cleanup,
    stop_all,
    wait_for_graphql,
)
from bench.runner import (
    BENCH_DIR,
    LOG_ROOT,
    OURS_ENVIRONMENT,
    REPO_DIR,
    Monitor,
    _git,
    _machine,
)
from bench.workloads import READ_WORKLOADS, ReadPlan, read_plans

# The servers compared: the default admission limit ("on"), none ("off"), or a number
# of requests at once (its line: half as many, the default).
MODES = ("on", "off")


def mode_environment(mode: str) -> dict[str, str]:
    if mode == "on":
        return {}
    return {"PORTFOLIO_MAX_CONCURRENT_REQUESTS": "0" if mode == "off" else str(int(mode))}


@dataclass
class Options:
    products: int = 200
    clients: int = 200
    duration: float = 20.0
    warmup: float = 3.0
    workload: str = "overview"
    variant: str = "varied"
    modes: list[str] = field(default_factory=lambda: list(MODES))  # or numbers
    honour_retry_after: bool = True
    port: int = 8711
    results_dir: Path = BENCH_DIR / "results"
    wait_idle: float = 10.0


@dataclass
class ModeResult:
    mode: str
    limit: str  # as the server reports it
    clients: int
    seconds: float
    sent: int
    admitted: int
    shed: int
    failed: dict[str, int]
    admitted_ms: dict[str, float | None]
    shed_ms: dict[str, float | None]
    server_shed: float | None  # the server's portfolio_requests_shed_total over the run
    healthz_ms: dict[str, float | None]  # GET /healthz, one every 100 ms during the run
    other_cpu: float | None
    client_cpu: float  # the clients' process, as a share of all CPUs
    sample: str = ""

    @property
    def admitted_per_second(self) -> float:
        return self.admitted / self.seconds if self.seconds else 0.0

    @property
    def shed_share(self) -> float:
        return self.shed / self.sent if self.sent else 0.0


@dataclass
class _Tally:
    admitted_ms: list[float] = field(default_factory=list)
    shed_ms: list[float] = field(default_factory=list)
    failed: Counter[str] = field(default_factory=Counter)
    healthz_ms: list[float] = field(default_factory=list)
    sample: str = ""

    @property
    def sent(self) -> int:
        return len(self.admitted_ms) + len(self.shed_ms) + sum(self.failed.values())


def run(options: Options) -> Path:
    install_cleanup()
    try:
        return asyncio.run(_run(options))
    finally:
        stop_all()


async def _run(options: Options) -> Path:
    if options.workload not in READ_WORKLOADS:
        raise BenchError(f"choose a workload from {READ_WORKLOADS}")
    ensure_port_free(options.port)
    started = datetime.now(UTC)
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    out = options.results_dir / f"{stamp}-overload"
    logs = LOG_ROOT / f"{stamp}-overload"
    logs.mkdir(parents=True, exist_ok=True)
    print(f"results: {out}\nlogs: {logs}")
    url = await database.ensure_database(options.products, fresh=False, log_dir=logs)
    dataset = await database.load_dataset(url)
    (plan,) = [
        p
        for p in read_plans(dataset, [options.workload])
        if p.variant == options.variant and not p.token
    ]
    results: list[ModeResult] = []
    async with Monitor(url, options.wait_idle) as monitor:
        for mode in options.modes:
            results.append(await _mode(mode, url, plan, options, monitor, logs))
    meta = {
        "started": started.strftime("%Y-%m-%d %H:%M UTC"),
        "products": options.products,
        "database": url.rsplit("/", 1)[-1],
        "workload": plan.label,
        "clients": options.clients,
        "duration": options.duration,
        "warmup": options.warmup,
        "honour_retry_after": options.honour_retry_after,
        "machine": _machine()[0],
        "postgres": dataset.postgres_version,
        "python": platform.python_version(),
        "commit": _git("rev-parse", "--short", "HEAD")
        + (" (with uncommitted changes)" if _git("status", "--porcelain") else ""),
        "server_environment": {
            k: v for k, v in (os.environ | OURS_ENVIRONMENT).items() if k.startswith("PORTFOLIO_")
        },
        "modes": {mode: mode_environment(mode) for mode in options.modes},
        "logs": str(logs),
    }
    out.mkdir(parents=True, exist_ok=True)
    rows = [asdict(r) | {"admitted_per_second": r.admitted_per_second} for r in results]
    (out / "results.json").write_bytes(
        orjson.dumps({"meta": meta, "results": rows}, option=orjson.OPT_INDENT_2)
    )
    text = markdown(meta, results)
    (out / "results.md").write_text(text)
    print()
    print(text)
    print(f"written: {out / 'results.md'}, {out / 'results.json'}")
    return out


async def _mode(
    mode: str, url: str, plan: ReadPlan, options: Options, monitor: Monitor, logs: Path
) -> ModeResult:
    print(f"\n== shedding {mode}")
    env = os.environ | OURS_ENVIRONMENT | mode_environment(mode) | {"DATABASE_URL": url}
    argv = [sys.executable, "-m", "api.cli", "serve", "--host", "127.0.0.1"]
    argv += ["--port", str(options.port)]
    log = logs / f"{mode}.log"
    server = ManagedProcess(f"Portfolio Graph (shedding {mode})", argv, env, log, cwd=REPO_DIR)
    endpoint = f"http://127.0.0.1:{options.port}/graphql"
    server.start()
    try:
        await asyncio.to_thread(wait_for_graphql, server, endpoint)
        monitor.server_pid = server.pid
        print(f"   warm-up: {options.warmup:g} s")
        await _load(endpoint, plan, options, options.warmup, seed=1)
        await monitor.wait_until_quiet()
        before = await _shed_total(endpoint)
        print(f"   load: {options.clients} clients, {options.duration:g} s")
        async with monitor.watch() as watch:
            began, cpu = time.perf_counter(), time.process_time()
            tally = await _load(endpoint, plan, options, options.duration, seed=2)
            seconds = time.perf_counter() - began
            client_cpu = (time.process_time() - cpu) / seconds / (os.cpu_count() or 1)
        after = await _shed_total(endpoint)
    finally:
        server.stop()
    result = ModeResult(
        mode=mode,
        limit=_limit_text(mode),
        clients=options.clients,
        seconds=round(seconds, 2),
        sent=tally.sent,
        admitted=len(tally.admitted_ms),
        shed=len(tally.shed_ms),
        failed=dict(tally.failed),
        admitted_ms=_percentiles(tally.admitted_ms),
        shed_ms=_percentiles(tally.shed_ms),
        server_shed=None if after is None or before is None else after - before,
        healthz_ms=_percentiles(tally.healthz_ms),
        other_cpu=watch.share,
        client_cpu=round(client_cpu, 3),
        sample=tally.sample,
    )
    print(
        f"   sent {result.sent:,}: admitted {result.admitted:,} "
        f"({result.admitted_per_second:,.0f}/s, p99 {_ms(result.admitted_ms['p99'])} ms), "
        f"shed {result.shed:,} ({result.shed_share:.0%}), failed {sum(result.failed.values()):,}"
    )
    return result


class _Connection:
    """One keep-alive HTTP/1.1 connection: a request written whole, an answer read by
    its Content-Length (or chunks). Reopened when the server closes it."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def exchange(self, request: bytes) -> tuple[int, dict[bytes, bytes], bytes]:
        if self._reader is None or self._writer is None or self._reader.at_eof():
            await self.close()
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        reader, writer = self._reader, self._writer
        try:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status_line, *lines = head[:-4].split(b"\r\n")
            headers = {}
            for line in lines:
                name, _, value = line.partition(b":")
                headers[name.strip().lower()] = value.strip()
            if headers.get(b"transfer-encoding") == b"chunked":
                body = await self._chunks(reader)
            else:
                body = await reader.readexactly(int(headers.get(b"content-length", b"0")))
            if headers.get(b"connection") == b"close":
                await self.close()
        except BaseException:
            await self.close()
            raise
        return int(status_line.split()[1]), headers, body

    @staticmethod
    async def _chunks(reader: asyncio.StreamReader) -> bytes:
        parts = []
        while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
            parts.append(await reader.readexactly(size + 2))
        await reader.readuntil(b"\r\n")
        return b"".join(part[:-2] for part in parts)

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._reader = self._writer = None


def _request(host: str, port: int, path: str, body: bytes | None) -> bytes:
    method = "GET" if body is None else "POST"
    head = f"{method} {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
    if body is not None:
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    return (head + "\r\n").encode() + (body or b"")


async def _load(
    endpoint: str, plan: ReadPlan, options: Options, seconds: float, *, seed: int
) -> _Tally:
    """``options.clients`` clients, each on a connection of its own, sending one request
    after another until ``seconds`` have passed; requests in flight then are awaited and
    counted."""
    tally = _Tally()
    parts = urlsplit(endpoint)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    deadline = time.perf_counter() + seconds

    async def client(index: int) -> None:
        rng = random.Random(seed * 100_003 + index)
        connection = _Connection(host, port)
        try:
            while time.perf_counter() < deadline:
                request = _request(host, port, parts.path, plan.body("ours", plan.sample(rng)))
                began = time.perf_counter()
                try:
                    status, headers, content = await connection.exchange(request)
                except (OSError, asyncio.IncompleteReadError) as error:
                    tally.failed[type(error).__name__] += 1
                    continue
                ms = (time.perf_counter() - began) * 1000
                outcome = _outcome(status, content)
                if outcome == "admitted":
                    tally.admitted_ms.append(ms)
                elif outcome == "OVERLOADED":
                    tally.shed_ms.append(ms)
                    if options.honour_retry_after:
                        pause = float(headers.get(b"retry-after", b"1"))
                        await asyncio.sleep(max(0.0, min(pause, deadline - time.perf_counter())))
                else:
                    tally.failed[outcome] += 1
                    tally.sample = (
                        tally.sample or f"{status} {content[:300].decode(errors='replace')}"
                    )
        finally:
            await connection.close()

    async def probe() -> None:
        """What an orchestrator sees meanwhile: /healthz on a connection of its own."""
        connection = _Connection(host, port)
        request = _request(host, port, "/healthz", None)
        try:
            while time.perf_counter() < deadline:
                began = time.perf_counter()
                status, _, _ = await connection.exchange(request)
                if status == 200:
                    tally.healthz_ms.append((time.perf_counter() - began) * 1000)
                else:
                    tally.failed[f"/healthz {status}"] += 1
                await asyncio.sleep(0.1)
        finally:
            await connection.close()

    await asyncio.gather(probe(), *(client(i) for i in range(options.clients)))
    return tally


def _outcome(status: int, content: bytes) -> str:
    """``admitted``, or the error's code (``OVERLOADED`` for a shed request)."""
    if status == 200 and b'"errors":' not in content:
        return "admitted"
    try:
        errors = orjson.loads(content).get("errors") or [{}]
        return str(errors[0].get("extensions", {}).get("code") or f"HTTP {status}")
    except (orjson.JSONDecodeError, AttributeError):
        return f"HTTP {status}"


async def _shed_total(endpoint: str) -> float | None:
    async with httpx.AsyncClient(timeout=30) as client:
        body = (await client.get(endpoint.removesuffix("/graphql") + "/metrics")).text
    found = re.search(r"^portfolio_requests_shed_total (\S+)$", body, re.MULTILINE)
    return float(found.group(1)) if found else None


def _limit_text(mode: str) -> str:
    """The limit the server applies, read as it reads its environment (ours, plus the
    mode's setting: the others leave the limit alone)."""
    from api.app import admission_limits
    from domain.settings import Settings

    settings = Settings()
    found = mode_environment(mode).get("PORTFOLIO_MAX_CONCURRENT_REQUESTS")
    if found is not None:
        settings = settings.model_copy(update={"max_concurrent_requests": int(found)})
    at_once, queued = admission_limits(settings)
    return "none" if at_once is None else f"{at_once} at once + {queued} waiting"


def _percentiles(values: list[float]) -> dict[str, float | None]:
    return {f"p{p}": percentile(values, p) for p in (50, 90, 99)} | {
        "max": max(values) if values else None
    }


def _ms(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


def markdown(meta: dict[str, Any], results: list[ModeResult]) -> str:
    retry = (
        "a shed client waits as Retry-After says before its next request"
        if meta["honour_retry_after"]
        else "a shed client sends its next request at once (Retry-After ignored)"
    )
    lines = [
        f"# Overload: shedding on and off, {meta['started']}",
        "",
        f"{meta['clients']} clients, each one request after another on its own keep-alive "
        f"connection ({retry}), {meta['duration']:g} s after {meta['warmup']:g} s of warm-up, "
        f"workload {meta['workload']} ({meta['products']} products, database "
        f"`{meta['database']}`); one server process (`portfolio serve`) on the same machine "
        f"as the clients: {meta['machine']}. PostgreSQL {meta['postgres']}, Python "
        f"{meta['python']}. Commit `{meta['commit']}`.",
        "",
        "Latencies are measured by the clients, per answer kind. *Admitted*: 200 without "
        "errors. *Shed*: 503 OVERLOADED. /healthz: probed every 100 ms during the run on "
        "a connection of its own. Clients' CPU: the load generator's process. Other "
        "CPU: what processes other than the clients, the server and PostgreSQL used "
        "meanwhile. Both as a share of all CPUs (other CPU above ~10 %: the run was "
        "disturbed, its numbers are low).",
        "",
        "| shedding | admission limit | sent | admitted | admitted/s | admitted p50 ms "
        "| p90 ms | p99 ms | max ms | shed | shed share | shed p99 ms | other failures "
        "| server's shed counter | /healthz p99 ms | clients' CPU % | other CPU % |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|--:|--:|--:|--:|",
    ]
    for r in results:
        failed = ", ".join(f"{k} {v:,}" for k, v in sorted(r.failed.items())) or "0"
        lines.append(
            f"| {r.mode} | {r.limit} | {r.sent:,} | {r.admitted:,} | "
            f"{r.admitted_per_second:,.0f} | {_ms(r.admitted_ms['p50'])} | "
            f"{_ms(r.admitted_ms['p90'])} | {_ms(r.admitted_ms['p99'])} | "
            f"{_ms(r.admitted_ms['max'])} | {r.shed:,} | {r.shed_share:.1%} | "
            f"{_ms(r.shed_ms['p99'])} | {failed} | "
            f"{'–' if r.server_shed is None else f'{r.server_shed:,.0f}'} | "
            f"{_ms(r.healthz_ms['p99'])} | {r.client_cpu:.0%} | {'–' if r.other_cpu is None else f'{r.other_cpu:.0%}'} |"
        )
    samples = [f"- shedding {r.mode}: `{r.sample}`" for r in results if r.sample]
    if samples:
        lines += ["", "First other failure:", "", *samples]
    return "\n".join(lines) + "\n"
