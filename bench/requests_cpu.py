"""``python -m bench.requests_cpu``: this process's CPU per whole HTTP request of the
client workloads, sent as raw ASGI calls to the app ``create_app`` builds (its lifespan
run, so the change feed listens), in production mode, with a bearer token and the
response cache off: no client library, no wrk, no uvicorn. Less noisy on a shared
machine than server CPU over HTTP; ``--profile out.prof`` adds cProfile (CPU clock).

    python -m bench.requests_cpu pagination,dashboard,board --n 300 --rounds 10

``--postgres``: also PostgreSQL's CPU per request, as ``bench run`` measures it
(``CpuWatch`` over the bench database's backends and PostgreSQL's background
processes, from /proc: other databases' work on the same server does not count).

``--unseen``: each board request (warm-up and every round) searches a text no request
sent before, so no binding is remembered: what a client typing a search word costs.

``--concurrency N``: N requests in flight at once, as wrk's connections keep them
(``bench run``: 16); 1 sends them one after another.

With ``--limit``, ours and the limit's rounds alternate, so that a slower or faster
moment of a shared machine falls on both alike; each pair's ratio (ours ÷ the limit's
CPU per request, and with ``--postgres`` of server + PostgreSQL) is reported, their
median the estimate of how far ours is from the limit.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import cProfile
import itertools
import os
import random
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import uvloop

from bench import database
from bench.asgi import Caller, Headers
from bench.processes import CpuWatch
from bench.runner import OURS_ENVIRONMENT, SCHEMA_FILE, Monitor, register_client

LOG_DIR = Path(__file__).resolve().parent / "results" / "tmp"
# Spells a request's number after its search word: the text is new, its words (and so
# the rows it finds) are those of the word alone.
_PUNCTUATION = "!#$%&*+-./:;<=>?@^~"


async def _token(caller: Caller, client: tuple[str, str]) -> str:
    basic = base64.b64encode(f"{client[0]}:{client[1]}".encode())
    status, answer = await caller.post(
        "/oauth/token",
        b"grant_type=client_credentials",
        [
            (b"content-type", b"application/x-www-form-urlencoded"),
            (b"authorization", b"Basic " + basic),
        ],
    )
    if status != 200:
        raise RuntimeError(f"no token: {answer[:300]!r}")
    return str(orjson.loads(answer)["access_token"])


# What every request to ours carries (the token's header is added to it).
ANONYMOUS_HEADERS: Headers = [(b"host", b"127.0.0.1:8000"), (b"content-type", b"application/json")]


@dataclass
class Served:
    """Our app started in this process as ``bench run`` serves it (production mode,
    response cache off, the change feed listening), called by ``caller``, with a token
    of a client of its own."""

    app: Any
    caller: Caller
    url: str
    dataset: Any
    token: str

    @property
    def headers(self) -> Headers:
        return [*ANONYMOUS_HEADERS, (b"authorization", f"Bearer {self.token}".encode())]

    async def post(self, payload: bytes, _token: Any = None) -> dict[str, Any]:
        """A request's decoded answer (what ``walk_for(...).bodies`` asks with)."""
        return dict(orjson.loads((await self.caller.post("/graphql", payload, self.headers))[1]))


async def serve_ours(stack: AsyncExitStack, client: str) -> Served:
    """Seeds the bench database if need be and starts ours on it, until ``stack`` ends."""
    url = await database.ensure_database(200, fresh=False, log_dir=LOG_DIR)
    os.environ.update(
        OURS_ENVIRONMENT | {"DATABASE_URL": url, "PORTFOLIO_RESPONSE_CACHE_CHARS": "0"}
    )
    from api.app import create_app
    from domain.settings import Settings

    app = create_app(Settings())
    dataset = await database.load_dataset(url)
    await stack.enter_async_context(app.router.lifespan_context(app))
    for _ in range(200):  # until the change feed listens: seen tokens cost nothing
        if app.state.auth.principals.listening:
            break
        await asyncio.sleep(0.05)
    caller = Caller(app)
    token = await _token(caller, await register_client(url, client))
    return Served(app, caller, url, dataset, token)


async def measure(
    workloads: list[str],
    n: int,
    rounds: int,
    profile: Path | None,
    variant: str | None = None,
    with_limit: bool = False,
    unseen: bool = False,
    postgres: bool = False,
    concurrency: int = 1,
) -> None:
    from bench.clients import client_plans, walk_for, with_walked

    profiler = cProfile.Profile(time.process_time) if profile is not None else None
    async with AsyncExitStack() as stack:
        served = await serve_ours(stack, "bench-requests-cpu")
        url, dataset, caller, headers = served.url, served.dataset, served.caller, served.headers
        schema_text = SCHEMA_FILE.read_text()
        plans = [
            plan
            for w in workloads
            for plan in client_plans(dataset, w, schema_text)
            if variant is None or plan.label.endswith(f"/{variant}")
        ]
        limit: Caller | None = None
        if with_limit:  # the limit over HTTP's handler, called the same way
            from bench.limit_http import create_app as create_limit_app

            # Its pool as `bench run` sizes it: a connection per request in flight.
            limit_app = create_limit_app(url, concurrency)
            await stack.enter_async_context(limit_app.router.lifespan_context(limit_app))
            limit = Caller(limit_app)
        monitor = await stack.enter_async_context(Monitor(url, 0)) if postgres else None

        rng = random.Random(3)
        numbers = itertools.count()  # of the unseen search texts, over the whole run
        for plan in plans:
            if plan.walked and plan.picks:
                plan = with_walked(plan, "ours", await walk_for("ours").bodies(served.post))
            indices = [plan.sample(rng) for _ in range(n)]
            bodies = [plan.body("ours", picked) for picked in indices]
            searches = unseen and plan.label.startswith("board")
            sent = _searching_unseen(rng, dataset.constraint_words, numbers) if searches else list
            for body in sent(bodies[:200]):  # warm: planned, then known
                status, answer = await caller.post("/graphql", body, headers)
                if status != 200 or b'"errors"' in answer:
                    raise RuntimeError(f"{plan.label}: {answer[:300]!r}")
            label = f"{plan.label} unseen" if searches else plan.label
            ours = Side(caller, bodies, headers, sent, profiler)
            if limit is None or not plan.has_limit:
                _report(label, await _rounds([ours], rounds, concurrency, monitor))
                continue
            limit_bodies = [plan.body("limit-http", picked) for picked in indices]
            theirs = Side(limit, limit_bodies, [])
            measured = await _rounds([ours, theirs], rounds, concurrency, monitor)
            _report(label, measured, 0)
            _report(f"{plan.label} limit", measured, 1)
            _report_ratio(f"{plan.label} ours/limit", measured)
    if profiler is not None and profile is not None:
        profiler.dump_stats(profile)
        print(f"profile: {profile}")


@dataclass
class Side:
    """One app measured: its caller, what it is sent (as ``sent`` makes each round's
    bodies, outside the measure) and the profiler its rounds run under, if any."""

    caller: Caller
    bodies: list[bytes]
    headers: Headers
    sent: Callable[[list[bytes]], list[bytes]] = list
    profiler: cProfile.Profile | None = None


@dataclass
class Measured:
    """Per side, per round: CPU ms per request of this process, and of the bench
    database's PostgreSQL processes (None without a monitor)."""

    cpu_ms: list[list[float]]
    postgres_ms: list[list[float | None]]


async def _rounds(
    sides: list[Side], rounds: int, concurrency: int, monitor: Monitor | None
) -> Measured:
    """``rounds`` rounds of each side's bodies, the sides taking turns round by round."""
    measured = Measured([[] for _ in sides], [[] for _ in sides])
    for _ in range(rounds):
        for number, side in enumerate(sides):
            cpu_ms, postgres_ms = await _round(side, concurrency, monitor)
            measured.cpu_ms[number].append(cpu_ms)
            measured.postgres_ms[number].append(postgres_ms)
    return measured


async def _round(
    side: Side, concurrency: int, monitor: Monitor | None
) -> tuple[float, float | None]:
    bodies = side.sent(side.bodies)
    pending = iter(bodies)

    async def sender() -> None:
        for body in pending:  # shared: each body is sent once, by whichever sender is free
            await side.caller.post("/graphql", body, side.headers)

    if side.profiler is not None:
        side.profiler.enable()
    watch = CpuWatch(_none, monitor.database_pids if monitor is not None else None)
    async with watch:
        started = time.process_time()
        await asyncio.gather(*(sender() for _ in range(concurrency)))
        cpu_ms = (time.process_time() - started) * 1000 / len(bodies)
    if side.profiler is not None:
        side.profiler.disable()
    database = watch.database_seconds
    return cpu_ms, None if database is None else database * 1000 / len(bodies)


async def _none() -> set[int]:
    """No process of ours to tell apart: only the database's CPU is read."""
    return set()


def _searching_unseen(
    rng: random.Random, words: list[str], numbers: Iterator[int]
) -> Callable[[list[bytes]], list[bytes]]:
    """Bodies made to search texts never sent before (``_unseen``)."""

    def sent(bodies: list[bytes]) -> list[bytes]:
        return [_unseen(body, rng.choice(words), next(numbers)) for body in bodies]

    return sent


def _unseen(body: bytes, word: str, number: int) -> bytes:
    """``body`` searching ``word`` followed by punctuation spelling ``number``: a text
    never sent before, with the words (and the rows found) of ``word`` alone."""
    tag = ""
    while True:
        number, digit = divmod(number, len(_PUNCTUATION))
        tag += _PUNCTUATION[digit]
        if not number:
            break
    request = orjson.loads(body)
    request["variables"]["search"] = f"{word} {tag}"
    return orjson.dumps(request)


def _report(label: str, measured: Measured, side: int = 0) -> None:
    cpu_ms = sorted(measured.cpu_ms[side])
    postgres_ms = sorted(ms for ms in measured.postgres_ms[side] if ms is not None)
    database = (
        f"; PostgreSQL min {postgres_ms[0]:.3f}, median {statistics.median(postgres_ms):.3f}"
        if postgres_ms
        else ""
    )
    print(
        f"{label:26s} CPU ms/request: min {cpu_ms[0]:.3f}, "
        f"median {statistics.median(cpu_ms):.3f} ({len(cpu_ms)} rounds){database}",
        flush=True,
    )


def _report_ratio(label: str, measured: Measured) -> None:
    """The median over the rounds of ours ÷ the limit's, each pair measured back to
    back: of this process's CPU, and (with PostgreSQL's) of the whole request's."""
    (ours, theirs), (our_db, their_db) = measured.cpu_ms, measured.postgres_ms
    server = statistics.median(a / b for a, b in zip(ours, theirs, strict=True))
    line = f"{label:26s} CPU per request, paired rounds: server {server:.2f}x"
    if all(ms is not None for ms in our_db + their_db):
        whole = statistics.median(
            (a + (c or 0.0)) / (b + (d or 0.0))
            for a, b, c, d in zip(ours, theirs, our_db, their_db, strict=True)
        )
        line += f", server + PostgreSQL {whole:.2f}x"
    print(line, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("workloads", nargs="?", default="pagination,dashboard,board")
    parser.add_argument("--n", type=int, default=300, help="requests per round")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--profile", type=Path, default=None)
    parser.add_argument(
        "--variant", choices=("fixed", "varied"), default=None, help="only this variant"
    )
    parser.add_argument(
        "--limit",
        action="store_true",
        help="also the limit over HTTP's handler, in this process, on the same picks",
    )
    parser.add_argument(
        "--unseen",
        action="store_true",
        help="every board request searches a text never sent before",
    )
    parser.add_argument(
        "--postgres",
        action="store_true",
        help="also PostgreSQL's CPU per request (the bench database's backends)",
    )
    parser.add_argument(
        "--concurrency", type=int, default=1, help="requests in flight at once (wrk's: 16)"
    )
    args = parser.parse_args()
    # uvloop, as uvicorn's "auto" loop runs ours and the limit under `bench run`.
    uvloop.run(
        measure(
            args.workloads.split(","),
            args.n,
            args.rounds,
            args.profile,
            args.variant,
            args.limit,
            args.unseen,
            args.postgres,
            args.concurrency,
        )
    )


if __name__ == "__main__":
    main()
