"""``python -m bench.token_cpu``: what a bearer token costs a read, in this process's CPU
per request: the same requests sent with a token and anonymously (the bench's
anonymous caller holds the read scopes), their rounds alternating, 16 in flight, raw
ASGI calls to the app ``create_app`` builds in production mode with the response cache
off (as ``bench.requests_cpu``). Issue #17 item 5: within 15 %.

    python -m bench.token_cpu dashboard,board --rounds 10
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics

import orjson
import uvloop

from bench import database
from bench.asgi import Caller
from bench.requests_cpu import LOG_DIR, Side, _rounds, _token
from bench.runner import OURS_ENVIRONMENT, SCHEMA_FILE, register_client


async def measure(workloads: list[str], n: int, rounds: int, concurrency: int) -> None:
    url = await database.ensure_database(200, fresh=False, log_dir=LOG_DIR)
    os.environ.update(
        OURS_ENVIRONMENT | {"DATABASE_URL": url, "PORTFOLIO_RESPONSE_CACHE_CHARS": "0"}
    )
    from api.app import create_app
    from bench.clients import client_plans, walk_for, with_walked
    from domain.settings import Settings

    app = create_app(Settings())
    dataset = await database.load_dataset(url)
    async with app.router.lifespan_context(app):
        for _ in range(200):  # until the change feed listens: seen tokens cost nothing
            if app.state.auth.principals.listening:
                break
            await asyncio.sleep(0.05)
        caller = Caller(app)
        token = await _token(caller, await register_client(url, "bench-token-cpu"))
        anonymous = [(b"host", b"127.0.0.1:8000"), (b"content-type", b"application/json")]
        bearer = [*anonymous, (b"authorization", f"Bearer {token}".encode())]

        async def post(payload: bytes, _token: object = None) -> dict[str, object]:
            return dict(orjson.loads((await caller.post("/graphql", payload, bearer))[1]))

        rng = random.Random(3)
        for workload in workloads:
            for plan in client_plans(dataset, workload, SCHEMA_FILE.read_text()):
                if plan.walked and plan.picks:
                    plan = with_walked(plan, "ours", await walk_for("ours").bodies(post))
                bodies = [plan.body("ours", plan.sample(rng)) for _ in range(n)]
                for headers in (anonymous, bearer):  # warm: planned, then known
                    for body in bodies[:100]:
                        status, answer = await caller.post("/graphql", body, headers)
                        if status != 200 or b'"errors"' in answer:
                            raise RuntimeError(f"{plan.label}: {answer[:300]!r}")
                sides = [Side(caller, bodies, bearer), Side(caller, bodies, anonymous)]
                measured = await _rounds(sides, rounds, concurrency, None)
                with_token, without = measured.cpu_ms
                ratio = statistics.median(a / b for a, b in zip(with_token, without, strict=True))
                print(
                    f"{plan.label:20s} token ÷ anonymous, CPU per request: {ratio:.3f} "
                    f"(medians {statistics.median(with_token):.3f} / "
                    f"{statistics.median(without):.3f} ms, {rounds} paired rounds)",
                    flush=True,
                )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("workloads", nargs="?", default="pagination,dashboard,board")
    parser.add_argument("--n", type=int, default=300, help="requests per round")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    uvloop.run(measure(args.workloads.split(","), args.n, args.rounds, args.concurrency))


if __name__ == "__main__":
    main()
