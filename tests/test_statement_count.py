"""Dataloaders: a query's statement count depends on its depth, not on its rows."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from tests.conftest import GraphQL, make_client
from tests.fixtures import factories
from tests.fixtures.database import StatementCounter

NESTED = """{
  products(first: 100) {
    nodes {
      key
      businessOwnerTeam { key }
      initiatives(first: 20) {
        nodes {
          key riceScore isBlocked
          blockedBy { key }
          constraints { nodes { key } }
          kpis { nodes { key } }
        }
      }
      kpis { nodes { key status latest { value } } }
    }
  }
}"""
# products, owner teams, initiatives, their blockers, constraints and KPIs, product KPIs,
# latest measurements: one statement each.
EXPECTED_STATEMENTS = 8


@pytest.fixture
async def resolvers(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> AsyncIterator[GraphQL]:
    """The reference path only: ordinary resolvers and per-request dataloaders."""
    async with make_client(engine, sessions, compiled_reads=False) as client:
        yield GraphQL(client)


async def test_three_level_query_costs_one_statement_per_edge(
    resolvers: GraphQL, db: AsyncSession, statements: StatementCounter
) -> None:
    gql = resolvers
    statements.reset()
    small = await gql.data(NESTED)
    small_count = statements.count

    # Many more rows at every level must not add a single statement.
    for _ in range(30):
        product = await factories.product(db)
        for _ in range(5):
            initiative = await factories.initiative(db, products=[product])
            await factories.constraint(db, initiatives=[initiative])
        await factories.kpi(db, product_id=product.id)
    await db.commit()

    statements.reset()
    large = await gql.data(NESTED)
    assert len(large["products"]["nodes"]) > len(small["products"]["nodes"]) + 25
    assert small_count == statements.count == EXPECTED_STATEMENTS, statements.statements


async def test_compiled_path_answers_it_with_one_statement(
    gql: GraphQL, db: AsyncSession, statements: StatementCounter
) -> None:
    for _ in range(5):
        product = await factories.product(db)
        await factories.initiative(db, products=[product])
    await db.commit()
    statements.reset()
    body = await gql(NESTED)
    assert body["extensions"]["answeredBy"] == "compiled"
    assert statements.count == 1, statements.statements


WORKLOAD_1 = """{ products(first: 50) { nodes { key
  initiatives(first: 10) { nodes { key title status riceScore isBlocked } }
  kpis(first: 4) { nodes { key latest { value } status } } } } }"""


async def test_overview_workload_costs_two_statements_with_a_token(
    caller: Any, db: AsyncSession, statements: StatementCounter
) -> None:
    """Benchmark workload 1 over real HTTP with a real token: authentication included."""
    api = await caller(["portfolio:read"])
    first = await api(WORKLOAD_1)
    assert "errors" not in first
    for _ in range(2):  # the second request renders its plan, the third runs it
        statements.reset()
        body = await api(WORKLOAD_1)
        await statements.delivered()
        assert body["data"] == first["data"]
        assert len(body["data"]["products"]["nodes"]) >= 10
        # The token's client, revocation and roles in one statement; the read in one.
        token_check, read = statements.statements
        assert "oauth_revoked_access_tokens" in token_check
        assert "oauth_clients" in token_check
        # The answer's JSON as one flat concatenation (``jsontext``).
        assert read.startswith("""SELECT CAST((SELECT '{"nodes":[' || coalesce(string_agg(""")


NEWLY_COMPILED = """query($key: String!) {
  auditEvents(last: 20) { nodes { action changes } }
  initiative(key: $key, asOf: "2026-06-01T00:00:00Z") { key title riceScore parent { key } }
  webhooks { url deliveries { status log { statusCode } } }
}"""


async def test_audit_changes_as_of_and_webhooks_take_one_statement_per_root_field(
    pair: Any, db: AsyncSession, statements: StatementCounter
) -> None:
    """Audit `changes` (presented in Python after the statement, not by a second one),
    an `asOf` lookup and `webhooks`: compiled, one statement per root field, the first
    time and when the plan is repeated."""
    initiative = await factories.initiative(db)
    await db.commit()
    compiled, _ = pair(["portfolio:read", "audit:read", "admin:webhooks"])
    for path in ("compiled", "repeated"):
        await statements.delivered()
        statements.reset()
        body = await compiled(NEWLY_COMPILED, {"key": initiative.key})
        await statements.delivered()
        assert "errors" not in body, body
        assert body["extensions"]["answeredBy"] == path
        assert statements.count == 3, statements.statements
