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
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import cProfile
import itertools
import os
import random
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import orjson
import uvloop

from bench import database
from bench.asgi import Caller, Headers
from bench.processes import CpuWatch
from bench.runner import OURS_ENVIRONMENT, SCHEMA_FILE, TOKEN_SCOPES, Monitor

LOG_DIR = Path(__file__).resolve().parent / "results" / "tmp"
# Spells a request's number after its search word: the text is new, its words (and so
# the rows it finds) are those of the word alone.
_PUNCTUATION = "!#$%&*+-./:;<=>?@^~"


def _client(url: str) -> tuple[str, str]:
    created = subprocess.run(
        [sys.executable, "-m", "api.cli", "create-client", "--name", "bench-requests-cpu"]
        + ["--scopes", TOKEN_SCOPES, "--grant", "client_credentials"],
        env=os.environ | {"DATABASE_URL": url},
        capture_output=True,
        text=True,
        check=True,
    )
    found = dict(line.split(":", 1) for line in created.stdout.splitlines() if ":" in line)
    return found["client_id"].strip(), found["client_secret"].strip()


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


async def measure(
    workloads: list[str],
    n: int,
    rounds: int,
    profile: Path | None,
    variant: str | None = None,
    with_limit: bool = False,
    unseen: bool = False,
    postgres: bool = False,
) -> None:
    url = await database.ensure_database(200, fresh=False, log_dir=LOG_DIR)
    os.environ.update(
        OURS_ENVIRONMENT | {"DATABASE_URL": url, "PORTFOLIO_RESPONSE_CACHE_CHARS": "0"}
    )
    from api.app import create_app
    from bench.clients import client_plans, walk_for, with_walked
    from domain.settings import Settings

    app = create_app(Settings())
    dataset = await database.load_dataset(url)
    schema_text = SCHEMA_FILE.read_text()
    plans = [
        plan
        for w in workloads
        for plan in client_plans(dataset, w, schema_text)
        if variant is None or plan.label.endswith(f"/{variant}")
    ]
    profiler = cProfile.Profile(time.process_time) if profile is not None else None
    async with AsyncExitStack() as stack:
        await stack.enter_async_context(app.router.lifespan_context(app))
        limit: Caller | None = None
        if with_limit:  # the limit over HTTP's handler, called the same way
            from bench.limit_http import create_app as create_limit_app

            limit_app = create_limit_app(url, 4)
            await stack.enter_async_context(limit_app.router.lifespan_context(limit_app))
            limit = Caller(limit_app)
        for _ in range(200):  # until the change feed listens: seen tokens cost nothing
            if app.state.auth.principals.listening:
                break
            await asyncio.sleep(0.05)
        caller = Caller(app)
        monitor = await stack.enter_async_context(Monitor(url, 0)) if postgres else None
        token = await _token(caller, _client(url))
        headers = [
            (b"host", b"127.0.0.1:8000"),
            (b"content-type", b"application/json"),
            (b"authorization", f"Bearer {token}".encode()),
        ]

        async def post(payload: bytes, _token: Any = None) -> dict[str, Any]:
            return dict(orjson.loads((await caller.post("/graphql", payload, headers))[1]))

        rng = random.Random(3)
        numbers = itertools.count()  # of the unseen search texts, over the whole run
        for plan in plans:
            if plan.walked and plan.picks:
                plan = with_walked(plan, "ours", await walk_for("ours").bodies(post))
            indices = [plan.sample(rng) for _ in range(n)]
            bodies = [plan.body("ours", picked) for picked in indices]
            searches = unseen and plan.label.startswith("board")
            sent = _searching_unseen(rng, dataset.constraint_words, numbers) if searches else list
            for body in sent(bodies[:200]):  # warm: planned, then known
                status, answer = await caller.post("/graphql", body, headers)
                if status != 200 or b'"errors"' in answer:
                    raise RuntimeError(f"{plan.label}: {answer[:300]!r}")
            label = f"{plan.label} unseen" if searches else plan.label
            _report(label, await _rounds(caller, bodies, headers, rounds, profiler, sent, monitor))
            if limit is not None and plan.has_limit:
                limit_bodies = [plan.body("limit-http", picked) for picked in indices]
                _report(
                    f"{plan.label} limit",
                    await _rounds(limit, limit_bodies, [], rounds, None, monitor=monitor),
                )
    if profiler is not None and profile is not None:
        profiler.dump_stats(profile)
        print(f"profile: {profile}")


async def _rounds(
    caller: Caller,
    bodies: list[bytes],
    headers: Headers,
    rounds: int,
    profiler: cProfile.Profile | None,
    sent: Callable[[list[bytes]], list[bytes]] = list,
    monitor: Monitor | None = None,
) -> tuple[list[float], list[float]]:
    """CPU ms per request of each round of ``bodies`` (as ``sent`` makes them for the
    round, outside the measure), sorted: this process's, and the bench database's
    PostgreSQL processes' (empty without ``monitor``)."""
    cpu_ms: list[float] = []
    postgres_ms: list[float] = []
    for _ in range(rounds):
        round_bodies = sent(bodies)
        if profiler is not None:
            profiler.enable()
        watch = CpuWatch(_none, monitor.database_pids if monitor is not None else None)
        async with watch:
            started = time.process_time()
            for body in round_bodies:
                await caller.post("/graphql", body, headers)
            cpu_ms.append((time.process_time() - started) * 1000 / len(bodies))
        if watch.database_seconds is not None:
            postgres_ms.append(watch.database_seconds * 1000 / len(bodies))
        if profiler is not None:
            profiler.disable()
    return sorted(cpu_ms), sorted(postgres_ms)


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


def _report(label: str, measured: tuple[list[float], list[float]]) -> None:
    cpu_ms, postgres_ms = measured
    database = (
        f"; PostgreSQL min {postgres_ms[0]:.3f}, median {postgres_ms[len(postgres_ms) // 2]:.3f}"
        if postgres_ms
        else ""
    )
    print(
        f"{label:26s} CPU ms/request: min {cpu_ms[0]:.3f}, "
        f"median {cpu_ms[len(cpu_ms) // 2]:.3f} ({len(cpu_ms)} rounds){database}",
        flush=True,
    )


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
        )
    )


if __name__ == "__main__":
    main()
