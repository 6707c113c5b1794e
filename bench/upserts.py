"""Sync-job upserts: ``upsertInitiatives`` calls of a few hundred initiatives each, as a
Jira sync would send them (key, title, summary, RICE inputs and a `jira` reference).

``varied``: every call carries new keys (all CREATED). ``fixed``: every call re-sends the
same batch, so after the first call every item is UNCHANGED (the idempotent path a sync
job takes most of the time). Keys start with ``BENCH-U`` so they can be removed after.

    python -m bench.upserts --url http://127.0.0.1:8000/graphql --calls 20 --batch 200
"""

from __future__ import annotations

import argparse
import asyncio
import time
from dataclasses import dataclass, field

import httpx
import orjson

from bench.limit import percentile
from bench.workloads import body, compact

KEY_PREFIX = "BENCH-U"
MAX_BATCH = 500  # domain.services.sync.MAX_UPSERT_BATCH

OURS_UPSERTS = compact("""
mutation Upsert($input: UpsertInitiativesInput!) {
  upsertInitiatives(input: $input) {
    created updated unchanged rejected userErrors { field code message }
  }
}""")


@dataclass
class UpsertResult:
    calls: int = 0
    items: int = 0
    seconds: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    errors: int = 0
    sample: str = ""

    @property
    def items_per_second(self) -> float:
        return self.items / self.seconds if self.seconds else 0.0

    def percentile(self, p: float) -> float | None:
        return percentile(self.latencies_ms, p)


def upsert_bodies(variant: str, *, calls: int, batch: int, run_id: str) -> list[bytes]:
    """One body per call; the fixed variant sends one batch ``calls`` times."""
    if batch > MAX_BATCH:
        raise ValueError(f"a batch holds at most {MAX_BATCH} items")
    bodies = []
    for call in range(1 if variant == "fixed" else calls):
        items = []
        for i in range(batch):
            n = call * batch + i
            items.append(
                {
                    "key": f"{KEY_PREFIX}{run_id}-{n}"[:32],
                    "title": f"Synced issue {n}",
                    "summary": "Kept in step with Jira by a sync job.",
                    "reach": 100 + n % 50,
                    "impact": 1.0,
                    "confidence": 0.8,
                    "effort": 2.0,
                    "externalRefs": [
                        {
                            "system": "jira",
                            "externalId": f"{run_id}-{n}",
                            "url": f"https://jira.example.com/browse/{run_id}-{n}",
                        }
                    ],
                }
            )
        bodies.append(body(OURS_UPSERTS, {"input": {"items": items}}))
    return bodies if variant == "varied" else bodies * calls


async def run_upserts(
    client: httpx.AsyncClient, url: str, bodies: list[bytes], *, concurrency: int = 1
) -> UpsertResult:
    """Send the bodies with ``concurrency`` callers; count outcomes, time each call."""
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for item in bodies:
        queue.put_nowait(item)
    result = UpsertResult()

    async def worker() -> None:
        while not queue.empty():
            payload = queue.get_nowait()
            start = time.perf_counter()
            response = await client.post(
                url, content=payload, headers={"content-type": "application/json"}
            )
            result.latencies_ms.append((time.perf_counter() - start) * 1000)
            result.calls += 1
            answer = orjson.loads(response.content) if response.is_success else {}
            stats = (answer.get("data") or {}).get("upsertInitiatives")
            if not response.is_success or answer.get("errors") or not stats:
                result.errors += 1
                result.sample = result.sample or response.text[:400]
                continue
            for outcome in ("created", "updated", "unchanged", "rejected"):
                setattr(result, outcome, getattr(result, outcome) + stats[outcome])
            result.items += sum(stats[o] for o in ("created", "updated", "unchanged", "rejected"))
            if stats["userErrors"]:
                result.sample = result.sample or orjson.dumps(stats["userErrors"][:2]).decode()

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    result.seconds = time.perf_counter() - began
    return result


async def _main(arguments: argparse.Namespace) -> None:
    headers = {"authorization": f"Bearer {arguments.token}"} if arguments.token else {}
    async with httpx.AsyncClient(timeout=300.0, headers=headers) as client:
        for variant in ("varied", "fixed"):
            bodies = upsert_bodies(
                variant, calls=arguments.calls, batch=arguments.batch, run_id=arguments.run_id
            )
            found = await run_upserts(
                client, arguments.url, bodies, concurrency=arguments.concurrency
            )
            print(
                f"{variant}: {found.calls} calls, {found.items_per_second:,.0f} items/s, "
                f"p50 {found.percentile(50) or 0:.0f} ms, created {found.created}, "
                f"updated {found.updated}, unchanged {found.unchanged}, "
                f"rejected {found.rejected}, errors {found.errors} {found.sample}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000/graphql")
    parser.add_argument("--token", default="", help="a bearer token with initiatives:write")
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--batch", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--run-id", default=f"{int(time.time()) % 100000}")
    asyncio.run(_main(parser.parse_args()))


if __name__ == "__main__":
    main()
