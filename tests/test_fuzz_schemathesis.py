"""Schemathesis (GraphQL mode) fuzzes every query and mutation of the committed schema
with a token holding every scope: whatever it sends, the API answers without a 5xx and
without an internal error. Derandomised, so CI sees the same cases every run."""

from __future__ import annotations

import functools
import multiprocessing
from collections.abc import AsyncIterator
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.core.result import Err
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from api.app import assemble_app
from tests.conftest import ALL_SCOPES, settings_for
from tests.fixtures.auth import bearer

SCHEMA = Path(__file__).resolve().parents[1] / "schema.graphql"
EXAMPLES_PER_OPERATION = 8


def generated_cases() -> list[tuple[str, str]]:
    """(operation label, document) for every root field, drawn by hypothesis-graphql."""
    schema = schemathesis.graphql.from_path(SCHEMA)
    cases: list[tuple[str, str]] = []
    for result in schema.get_all_operations():
        if isinstance(result, Err):
            raise result.err()
        operation = result.ok()
        label = operation.label

        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            derandomize=True,
            database=None,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(operation.as_strategy())
        def collect(case: Any) -> None:
            body = case.body
            cases.append((label, body if isinstance(body, str) else body["query"]))  # noqa: B023

        collect()
    return cases


def _drawn_elsewhere() -> Future[list[tuple[str, str]]]:
    """The cases, drawn by a forked copy of this process while the tests collected before
    this module's run: drawing them costs ~10 s of CPU (hypothesis-graphql builds its
    strategies anew for each draw), which collection used to spend before any test ran.
    Derandomised: the same cases as drawn here."""
    drawing = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("fork"))
    drawn = drawing.submit(generated_cases)
    drawing.shutdown(wait=False)  # the worker ends once it has drawn them
    return drawn


_DRAWN = _drawn_elsewhere()


@functools.cache
def cases() -> list[tuple[str, str]]:
    return _DRAWN.result()


@pytest.fixture
async def fuzzed(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession], db: AsyncSession
) -> AsyncIterator[httpx.AsyncClient]:
    """Production mode with production limits, a real token with every scope; every
    write is rolled back with the test's transaction."""
    app = assemble_app(
        settings_for(
            environment="production", max_query_cost=1000, max_aliases=30, max_root_fields=10
        ),
        engine,
        sessions,
    )
    headers = await bearer(app, db, ALL_SCOPES)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test", headers=headers
    ) as client:
        yield client


def test_the_fuzzer_covers_queries_and_mutations() -> None:
    labels = {label for label, _ in cases()}
    assert len(cases()) >= 200
    assert any(label.startswith("Query.") for label in labels)
    assert any(label.startswith("Mutation.") for label in labels)
    assert {"Query.products", "Query.node", "Mutation.recordKpiMeasurements"} <= labels


async def test_no_generated_operation_fails_the_server(fuzzed: httpx.AsyncClient) -> None:
    failures: list[str] = []
    answered = 0
    for label, document in cases():
        response = await fuzzed.post("/graphql", json={"query": document})
        payload = response.json()
        codes = {(error.get("extensions") or {}).get("code") for error in payload.get("errors", [])}
        answered += any(value is not None for value in (payload.get("data") or {}).values())
        if response.status_code >= 500 or "INTERNAL_SERVER_ERROR" in codes or None in codes:
            failures.append(f"{label}: {response.status_code} {response.text[:300]}\n{document}")
    assert failures == []
    # Most cases get past the limits and validation to real execution.
    assert answered >= len(cases()) // 3, answered
