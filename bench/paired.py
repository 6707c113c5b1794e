"""``python -m bench paired``: ours against the limit over HTTP (or a peer:
``--against postgraphile5``), in alternating segments.

``bench run`` times each server in a stage of its own, minutes apart; on a shared
machine whose speed drifts (by ±20–30 % within one run, measured on 2026-12-03) the
"ours ÷ limit over HTTP" ratio of one run says as much about the moment as about the
servers. Here both servers run side by side (the one not under load idles) and the
load alternates between them in short segments, in the order ABBA BAAB..., so that a
drift falls on both alike: each pair of segments gives a ratio of requests per second,
and their median is the estimate. The servers, scripts, connections and token are
``bench run``'s.
"""

from __future__ import annotations

import asyncio
import statistics
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson

from bench import database
from bench.clients import client_plans, walk_for, with_walked
from bench.processes import (
    ManagedProcess,
    ensure_port_free,
    install_cleanup,
    stop_all,
    tree_cpu_seconds,
)
from bench.runner import (
    BENCH_DIR,
    LOG_ROOT,
    SCHEMA_FILE,
    Server,
    _commit,
    _commit_during,
    _limit_http_process,
    _machine,
    _ours_process,
    _peer_process,
    _require_peer,
    _require_peer5,
    _start,
    peer5_process,
    register_client,
    token_from,
)
from bench.workloads import ReadPlan
from bench.wrk import read_script, require_wrk, run_wrk

# The order of each pair's two segments, by pair: ABBA, so that a steady drift
# over two pairs falls on both sides equally.
_ORDERS = ((0, 1), (1, 0), (1, 0), (0, 1))


@dataclass
class Side:
    """One server's segments of one plan: requests per second, p99 latency (ms) and
    server CPU ms per request of each segment, and the errors wrk saw."""

    rps: list[float] = field(default_factory=list)
    p99_ms: list[float] = field(default_factory=list)
    cpu_ms: list[float] = field(default_factory=list)
    errors: int = 0


# What ``--against`` takes, and how each is named in the report.
TARGET_NAMES = {
    "limit-http": "limit over HTTP",
    "postgraphile": "PostGraphile 4",
    "postgraphile5": "PostGraphile 5",
}


@dataclass
class Paired:
    label: str
    ours: Side
    theirs: Side  # the other server: the limit over HTTP or a peer
    against: str = TARGET_NAMES["limit-http"]

    @property
    def ratios(self) -> list[float]:
        return [a / b for a, b in zip(self.ours.rps, self.theirs.rps, strict=True) if b]

    def line(self) -> str:
        ratios = self.ratios
        return (
            f"{self.label:18s} ours / {self.against}: median {statistics.median(ratios):.2f}x "
            f"(pairs {min(ratios):.2f}-{max(ratios):.2f}, n={len(ratios)}); "
            f"req/s ours {statistics.median(self.ours.rps):,.0f}, "
            f"theirs {statistics.median(self.theirs.rps):,.0f}; server CPU ms/req ours "
            f"{statistics.median(self.ours.cpu_ms):.2f}, theirs "
            f"{statistics.median(self.theirs.cpu_ms):.2f}; p99 ms ours "
            f"{statistics.median(self.ours.p99_ms):.1f}, theirs "
            f"{statistics.median(self.theirs.p99_ms):.1f}"
            + (
                f"; ERRORS ours {self.ours.errors}, theirs {self.theirs.errors}"
                if self.ours.errors or self.theirs.errors
                else ""
            )
        )


def run(workloads: list[str], **settings: Any) -> list[Paired]:
    """``paired``, its servers stopped however it ends (SIGTERM and SIGINT too)."""
    install_cleanup()
    try:
        return asyncio.run(paired(workloads, **settings))
    finally:
        stop_all()


async def paired(
    workloads: list[str],
    *,
    pairs: int,
    segment: float,
    warmup: float,
    connections: int,
    threads: int,
    token: bool,
    products: int,
    port_base: int,
    against: str = "limit-http",
) -> list[Paired]:
    require_wrk()
    for port in (port_base, port_base + 1):
        ensure_port_free(port)
    started = datetime.now(UTC)
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    commit = _commit()  # before the servers start, as bench run reads it
    logs = LOG_ROOT / f"paired-{stamp}"
    logs.mkdir(parents=True, exist_ok=True)
    url = await database.ensure_database(products, fresh=False, log_dir=logs)
    dataset = await database.load_dataset(url)
    schema_text = SCHEMA_FILE.read_text()
    shared = [p for w in workloads for p in client_plans(dataset, w, schema_text)]
    plans = [p for p in shared if (p.has_limit if against == "limit-http" else p.has_peer)]
    ours = _start("ours", _ours_process(url, port_base, logs / "ours.log"), port_base)
    other_port = port_base + 1
    try:
        other = _start(against, _process(against, url, other_port, logs, connections), other_port)
        try:
            sent = await token_from(ours.endpoint, await register_client(url)) if token else None
            found = []
            for plan in plans:
                ours_plan = await _walked(plan, ours, "ours", sent)
                # The limit reads our walk's cursors; a peer walks its own.
                other_plan = ours_plan if against == "limit-http" else plan
                other_plan = await _walked(other_plan, other, against, None)
                scripts = (
                    read_script(ours_plan, "ours", token=sent, threads=threads),
                    read_script(other_plan, against, threads=threads),
                )
                result = await _segments(
                    plan, (ours, other), scripts, pairs, segment, warmup, connections, threads, logs
                )
                result.against = TARGET_NAMES[against]
                print(result.line(), flush=True)
                found.append(result)
            settings = f"{pairs} pairs of {segment:g} s, {connections} connections"
            out = BENCH_DIR / "results" / stamp
            written = write(out, found, started, _commit_during(commit), settings, token)
            print(f"written: {written}")
            return found
        finally:
            other.process.stop()
    finally:
        ours.process.stop()


def _process(against: str, url: str, port: int, logs: Path, connections: int) -> ManagedProcess:
    if against == "limit-http":
        return _limit_http_process(url, port, logs / "limit.log", connections)
    if against == "postgraphile":
        _require_peer()
        return _peer_process(url, port, logs / "postgraphile.log")
    return peer5_process(_require_peer5(), url, port, logs / "postgraphile5.log")


async def _walked(plan: ReadPlan, server: Server, target: str, token: str | None) -> ReadPlan:
    """A pagination walk's pages, walked on ``server`` (the limit takes ours: it reads
    our cursors); any other plan as it is."""
    if not (plan.walked and plan.picks) or target == "limit-http":
        return plan
    headers = {"content-type": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    async with httpx.AsyncClient(timeout=120) as client:

        async def post(payload: bytes) -> dict[str, Any]:
            response = await client.post(server.endpoint, content=payload, headers=headers)
            return dict(orjson.loads(response.content))

        return with_walked(plan, target, await walk_for(target).bodies(post))


async def _segments(
    plan: ReadPlan,
    servers: tuple[Server, Server],
    scripts: tuple[str, str],
    pairs: int,
    segment: float,
    warmup: float,
    connections: int,
    threads: int,
    logs: Path,
) -> Paired:
    sides = (Side(), Side())
    settings: dict[str, Any] = {"connections": connections, "threads": threads}
    for number, (server, script) in enumerate(zip(servers, scripts, strict=True)):
        if warmup > 0:
            log = logs / f"{plan.label.replace('/', '-')}-{number}-warmup.txt"
            await run_wrk(script, server.endpoint, duration=warmup, log_path=log, **settings)
    for pair in range(pairs):
        for number in _ORDERS[pair % len(_ORDERS)]:
            server, side = servers[number], sides[number]
            log = logs / f"{plan.label.replace('/', '-')}-{number}-{pair}.txt"
            before = tree_cpu_seconds(server.process.pid)
            found = await run_wrk(
                scripts[number], server.endpoint, duration=segment, log_path=log, **settings
            )
            after = tree_cpu_seconds(server.process.pid)
            side.rps.append(found.requests / found.seconds if found.seconds else 0.0)
            side.p99_ms.append(found.p99_ms)
            if before is not None and after is not None and found.requests:
                side.cpu_ms.append((after - before) * 1000 / found.requests)
            side.errors += found.non_2xx + found.socket_errors + found.graphql_errors
    return Paired(plan.label, sides[0], sides[1])


def write(
    out: Path, found: list[Paired], started: datetime, commit: str, settings: str, token: bool
) -> Path:
    """``out/paired.md`` (``bench/results/<start>/``) and ``paired.json``: each
    workload's pairs."""
    out.mkdir(parents=True, exist_ok=True)
    machine, _ = _machine()
    lines = [
        f"# bench paired, {started:%Y-%m-%d %H:%M} UTC",
        "",
        f"Commit {commit}; {machine}; {settings}; ours with "
        f"{'a bearer token' if token else 'no token'}, its response cache off.",
        "Each pair: one segment on each server, back to back (ABBA order). Req/s, CPU and "
        "p99: medians over the segments.",
        "",
        f"| workload | ours ÷ {found[0].against if found else 'theirs'} (median) | "
        "pairs, min–max | ours req/s | theirs req/s | server CPU ms/req, ours / theirs | "
        "p99 ms, ours / theirs | errors |",
        "|---|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for result in found:
        ratios = result.ratios
        lines.append(
            f"| {result.label} | **{statistics.median(ratios):.2f}×** | "
            f"{min(ratios):.2f}–{max(ratios):.2f} | {statistics.median(result.ours.rps):,.0f} | "
            f"{statistics.median(result.theirs.rps):,.0f} | "
            f"{statistics.median(result.ours.cpu_ms):.2f} / "
            f"{statistics.median(result.theirs.cpu_ms):.2f} | "
            f"{statistics.median(result.ours.p99_ms):.1f} / "
            f"{statistics.median(result.theirs.p99_ms):.1f} | "
            f"{result.ours.errors + result.theirs.errors} |"
        )
    path = out / "paired.md"
    path.write_text("\n".join(lines) + "\n")
    data = {
        "started": started.isoformat(),
        "commit": commit,
        "machine": machine,
        "settings": settings,
        "results": [
            {
                "label": r.label,
                "against": r.against,
                "ours": r.ours.__dict__,
                "theirs": r.theirs.__dict__,
            }
            for r in found
        ],
    }
    (out / "paired.json").write_bytes(orjson.dumps(data, option=orjson.OPT_INDENT_2))
    return path
