"""``python -m bench.token_cpu``: what a bearer token costs a read, in this process's CPU
per request: the same requests sent with a token and anonymously (the bench's
anonymous caller holds the read scopes), their rounds alternating, 16 in flight, raw
ASGI calls to the app ``create_app`` builds in production mode with the response cache
off (as ``bench.requests_cpu``). Issue #17 item 5: within 15 %.

    python -m bench.token_cpu dashboard,board --rounds 10
"""

from __future__ import annotations

import argparse
import random
import statistics
from contextlib import AsyncExitStack

import uvloop

from bench.requests_cpu import ANONYMOUS_HEADERS, Side, _rounds, serve_ours
from bench.runner import SCHEMA_FILE


async def measure(workloads: list[str], n: int, rounds: int, concurrency: int) -> None:
    from bench.clients import client_plans, walk_for, with_walked

    async with AsyncExitStack() as stack:
        served = await serve_ours(stack, "bench-token-cpu")
        caller = served.caller
        rng = random.Random(3)
        for workload in workloads:
            for plan in client_plans(served.dataset, workload, SCHEMA_FILE.read_text()):
                if plan.walked and plan.picks:
                    plan = with_walked(plan, "ours", await walk_for("ours").bodies(served.post))
                bodies = [plan.body("ours", plan.sample(rng)) for _ in range(n)]
                for headers in (ANONYMOUS_HEADERS, served.headers):  # warm: planned, then known
                    for body in bodies[:100]:
                        status, answer = await caller.post("/graphql", body, headers)
                        if status != 200 or b'"errors"' in answer:
                            raise RuntimeError(f"{plan.label}: {answer[:300]!r}")
                sides = [
                    Side(caller, bodies, served.headers),
                    Side(caller, bodies, ANONYMOUS_HEADERS),
                ]
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
