"""Bulk ingest: ``recordKpiMeasurements`` calls of 10,000 measurements each, from httpx.

``varied``: every call carries new measurements (all inserted). ``fixed``: every call
re-sends the same batch, so after the first call all are duplicates (the idempotent
path). The measurements are observed in 2019, before any seeded one, so no latest value
or series of the read workloads changes; they are deleted after the workload.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import httpx
import orjson

from bench.database import INGEST_SOURCE
from bench.limit import percentile
from bench.workloads import OURS_INGEST, body

EPOCH = datetime(2019, 1, 1, tzinfo=UTC)


@dataclass
class IngestResult:
    calls: int
    measurements: int
    seconds: float
    latencies_ms: list[float]
    inserted: int = 0
    duplicates: int = 0
    rejected: int = 0
    errors: int = 0
    non_2xx: int = 0
    sample: str = ""
    statuses: dict[int, int] = field(default_factory=dict)

    @property
    def calls_per_second(self) -> float:
        return self.calls / self.seconds if self.seconds else 0.0

    @property
    def measurements_per_second(self) -> float:
        return self.measurements / self.seconds if self.seconds else 0.0

    def percentile(self, p: float) -> float | None:
        return percentile(self.latencies_ms, p)


def ingest_bodies(
    kpi_keys: list[str], variant: str, *, calls: int, batch: int, run_id: str
) -> list[bytes]:
    rng = random.Random(f"{run_id}:{variant}")
    bodies: list[bytes] = []
    for call in range(1 if variant == "fixed" else calls):
        measurements = []
        for i in range(batch):
            n = call * batch + i
            measurements.append(
                {
                    "kpiKey": kpi_keys[n % len(kpi_keys)],
                    "observedAt": (EPOCH + timedelta(seconds=n)).isoformat(),
                    "value": round(rng.uniform(0, 100), 3),
                    "source": INGEST_SOURCE,
                    "externalId": f"{run_id}:{variant}:{n}",
                }
            )
        bodies.append(body(OURS_INGEST, {"input": {"measurements": measurements}}))
    return bodies if variant == "varied" else bodies * calls


async def run_ingest(
    url: str, bodies: list[bytes], *, batch: int, concurrency: int, call_timeout: float = 300.0
) -> IngestResult:
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for item in bodies:
        queue.put_nowait(item)
    result = IngestResult(calls=0, measurements=0, seconds=0.0, latencies_ms=[])

    async def worker(client: httpx.AsyncClient) -> None:
        while not queue.empty():
            payload = queue.get_nowait()
            start = time.perf_counter()
            try:
                response = await client.post(
                    url, content=payload, headers={"content-type": "application/json"}
                )
            except httpx.HTTPError as error:
                result.errors += 1
                result.sample = result.sample or f"{type(error).__name__}: {error}"
                continue
            result.latencies_ms.append((time.perf_counter() - start) * 1000)
            result.calls += 1
            result.statuses[response.status_code] = result.statuses.get(response.status_code, 0) + 1
            if not response.is_success:
                result.non_2xx += 1
                result.sample = result.sample or f"{response.status_code} {response.text[:400]}"
                continue
            answer = orjson.loads(response.content)
            stats = (answer.get("data") or {}).get("recordKpiMeasurements")
            if answer.get("errors") or not stats:
                result.errors += 1
                result.sample = result.sample or response.text[:400]
                continue
            result.measurements += stats["received"]
            result.inserted += stats["inserted"]
            result.duplicates += stats["duplicates"]
            result.rejected += stats["rejected"]
            if stats["userErrors"]:
                result.sample = result.sample or orjson.dumps(stats["userErrors"][:2]).decode()

    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(timeout=call_timeout, limits=limits) as client:
        began = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
        result.seconds = time.perf_counter() - began
    return result
