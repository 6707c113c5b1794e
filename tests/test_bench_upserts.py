"""The upsert-batch workload of bench/ runs against the real app (a smoke run: two
calls per variant, no timing asserted): varied batches create, a re-sent one is
unchanged."""

from __future__ import annotations

from bench.upserts import run_upserts, upsert_bodies
from tests.conftest import GraphQL


async def test_the_upsert_workload_creates_then_finds_nothing_to_change(writer: GraphQL) -> None:
    varied = upsert_bodies("varied", calls=2, batch=20, run_id="T1")
    first = await run_upserts(writer.client, "/graphql", varied)
    assert (first.calls, first.created, first.unchanged, first.errors) == (2, 40, 0, 0), (
        first.sample
    )

    fixed = upsert_bodies("fixed", calls=2, batch=20, run_id="T2")
    again = await run_upserts(writer.client, "/graphql", fixed)
    assert (again.created, again.unchanged, again.rejected, again.errors) == (20, 20, 0, 0)
