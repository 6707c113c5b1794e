"""A compiled read is prepared once per connection and run again from PostgreSQL's plan
cache, large statements included: a Relay page with nested connections compiles to more
than asyncpg's default cacheable size (15 KB), and was parsed and planned anew on every
request."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from tests.conftest import GraphQL

PAGE = """query Page($after: String) {
  initiatives(first: 5, after: $after) {
    totalCount
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    edges { cursor node { id key title status isBlocked riceScore
      ownerTeam { key name }
      products(first: 5) { nodes { key name } }
      constraints(first: 5) { nodes { key title severity status } } } }
  }
}"""


LARGE_PREPARED = text(
    "SELECT length(statement) AS size, generic_plans + custom_plans AS runs "
    "FROM pg_prepared_statements WHERE length(statement) > 15 * 1024 ORDER BY statement"
)


async def test_a_large_compiled_read_is_prepared_once_and_reused(
    gql: GraphQL, connection: AsyncConnection
) -> None:
    cursors: list[str | None] = [None]
    for _ in range(7):
        page = await gql.data(PAGE, {"after": cursors[-1]})
        cursors.append(page["initiatives"]["pageInfo"]["endCursor"])
    assert None not in cursors[1:]  # every page is inside the demo's initiatives
    warm = (await connection.execute(LARGE_PREPARED)).all()
    assert warm, "no statement beyond asyncpg's default cacheable size was kept prepared"

    for cursor in cursors[1:7]:  # other pages of the same shape: the cursor is bound
        await gql.data(PAGE, {"after": cursor})
    after = (await connection.execute(LARGE_PREPARED)).all()
    assert [size for size, _ in after] == [size for size, _ in warm]  # nothing new prepared
    assert sum(runs for _, runs in after) - sum(runs for _, runs in warm) == 6
