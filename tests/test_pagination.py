"""Cursor connections: forward and backward walks, orderings, totals, page info."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from tests.conftest import GraphQL
from tests.fixtures import factories

PAGE = """query($key: String!, $first: Int, $after: String, $last: Int, $before: String,
                $order: InitiativeOrder) {
  product(key: $key) { initiatives(first: $first, after: $after, last: $last, before: $before,
                                   orderBy: $order) {
    totalCount
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    edges { cursor node { key title } }
  } }
}"""


async def _walk(
    gql: GraphQL, key: str, order: dict[str, Any] | None, *, backwards: bool
) -> list[str]:
    seen: list[str] = []
    cursor = None
    while True:
        variables: dict[str, Any] = {"key": key, "order": order}
        variables.update(
            {"last": 3, "before": cursor} if backwards else {"first": 3, "after": cursor}
        )
        page = (await gql.data(PAGE, variables))["product"]["initiatives"]
        assert page["totalCount"] == 7
        keys = [e["node"]["key"] for e in page["edges"]]
        seen = keys + seen if backwards else seen + keys
        info = page["pageInfo"]
        assert info["startCursor"] == page["edges"][0]["cursor"]
        assert info["endCursor"] == page["edges"][-1]["cursor"]
        more = info["hasPreviousPage"] if backwards else info["hasNextPage"]
        # The other direction is known too: a page after a cursor has items before it.
        if cursor is not None:
            assert info["hasNextPage" if backwards else "hasPreviousPage"] is True
        if not more:
            return seen
        cursor = info["startCursor"] if backwards else info["endCursor"]


async def test_walks_forward_and_backward_in_every_direction(
    gql: GraphQL, db: AsyncSession
) -> None:
    product = await factories.product(db)
    titles = ["delta", "alpha", "golf", "charlie", "echo", "bravo", "foxtrot"]
    created = [await factories.initiative(db, title=t, products=[product]) for t in titles]
    await db.commit()
    by_title = [i.key for i in sorted(created, key=lambda i: i.title)]

    for order, expected in (
        (None, sorted(i.key for i in created)),
        ({"field": "TITLE"}, by_title),
        ({"field": "TITLE", "direction": "DESC"}, by_title[::-1]),
    ):
        assert await _walk(gql, product.key, order, backwards=False) == expected
        assert await _walk(gql, product.key, order, backwards=True) == expected


async def test_ties_are_broken_by_id_without_skipping(gql: GraphQL, db: AsyncSession) -> None:
    product = await factories.product(db)
    created = [await factories.initiative(db, title="same", products=[product]) for _ in range(7)]
    await db.commit()
    walked = await _walk(gql, product.key, {"field": "TITLE"}, backwards=False)
    assert walked == [i.key for i in created]


async def test_empty_and_zero_sized_pages(gql: GraphQL, db: AsyncSession) -> None:
    product = await factories.product(db)
    await factories.initiative(db, products=[product])
    await db.commit()
    empty = await gql.data(PAGE, {"key": product.key, "first": 0})
    assert empty["product"]["initiatives"] == {
        "totalCount": 1,
        "pageInfo": {
            "hasNextPage": True,
            "hasPreviousPage": False,
            "startCursor": None,
            "endCursor": None,
        },
        "edges": [],
    }


async def test_nested_pages_are_per_parent(gql: GraphQL, db: AsyncSession) -> None:
    first = await factories.product(db)
    second = await factories.product(db)
    for _ in range(3):
        await factories.initiative(db, products=[first])
    await factories.initiative(db, products=[second])
    await db.commit()
    data = await gql.data(
        "query($k: [String!]) { products(filter: {keys: $k}) { nodes { key "
        "initiatives(first: 2) { totalCount pageInfo { hasNextPage } edges { node { key } } } } } }",
        {"k": [first.key, second.key]},
    )
    pages = {p["key"]: p["initiatives"] for p in data["products"]["nodes"]}
    assert pages[first.key]["totalCount"] == 3
    assert len(pages[first.key]["edges"]) == 2
    assert pages[first.key]["pageInfo"]["hasNextPage"] is True
    assert pages[second.key]["totalCount"] == 1
    assert pages[second.key]["pageInfo"]["hasNextPage"] is False


async def test_root_list_orders_by_score_descending(gql: GraphQL, db: AsyncSession) -> None:
    data = await gql.data(
        "{ initiatives(first: 100, orderBy: {field: RICE_SCORE, direction: DESC}) "
        "{ nodes { riceScore } } }"
    )
    scores = [n["riceScore"] for n in data["initiatives"]["nodes"]]
    present = [s for s in scores if s is not None]
    assert present == sorted(present, reverse=True)
    # Unscored initiatives come last when descending.
    assert scores[: len(present)] == present


BEYOND = """query($key: String!, $after: String, $before: String, $first: Int, $last: Int) {
  product(key: $key) {
    initiatives(first: $first, after: $after, last: $last, before: $before) {
      totalCount pageInfo { hasNextPage hasPreviousPage startCursor endCursor } edges { cursor }
    }
  }
  initiatives(first: $first, after: $after, last: $last, before: $before) {
    totalCount pageInfo { hasNextPage hasPreviousPage startCursor endCursor } edges { cursor }
  }
}"""


async def test_a_page_beyond_either_end_still_counts_and_knows_what_lies_behind(
    pair: Any, db: AsyncSession
) -> None:
    """A client that saved a cursor and comes back after the last item (or before the
    first) gets an empty page with the connection's totalCount and a page behind it,
    on both read paths: not a connection that seems empty."""
    product = await factories.product(db)
    for _ in range(3):
        await factories.initiative(db, products=[product])
    await db.commit()
    compiled, reference = pair(["portfolio:read"])
    everything = await reference.data(BEYOND, {"key": product.key, "first": 100})
    nested = everything["product"]["initiatives"]
    root = everything["initiatives"]
    cases = [
        ({"after": nested["pageInfo"]["endCursor"], "first": 2}, "hasPreviousPage"),
        ({"before": nested["pageInfo"]["startCursor"], "last": 2}, "hasNextPage"),
    ]
    for variables, behind in cases:
        for gql in (compiled, reference):
            data = await gql.data(BEYOND, {"key": product.key, **variables})
            page = data["product"]["initiatives"]
            assert page["edges"] == []
            assert page["totalCount"] == 3
            assert page["pageInfo"] == {
                "hasNextPage": behind == "hasNextPage",
                "hasPreviousPage": behind == "hasPreviousPage",
                "startCursor": None,
                "endCursor": None,
            }
            # The root list, cut by a cursor of the nested one's ordering (by key):
            # still counted whole.
            assert data["initiatives"]["totalCount"] == root["totalCount"]
        # Byte for byte, up to the extensions (cost and path differ by design).
        assert (
            compiled.last_body.split(b',"extensions":')[0]
            == (reference.last_body.split(b',"extensions":')[0])
        )
