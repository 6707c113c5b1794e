"""A connection around objects whose SQL is known is written as text
(``schema.compiled.page_text``) instead of built and compiled by SQLAlchemy: every
such answer must be byte for byte the resolvers', whatever its page size, direction,
``pageInfo`` subset, nesting, laterals or scopes. Counted, never timed."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from domain import models
from schema.compiled.page_text import COUNTS, PARTS
from schema.compiled.subtrees import SUBTREES
from tests.fixtures import factories
from tests.fixtures.compiled import (
    EVERY_SCOPE,
    compiled_alike,
    new_document,
    product_with_initiatives,
)
from tests.fixtures.database import StatementCounter

PAGE_INFO = "pageInfo { hasNextPage hasPreviousPage startCursor endCursor }"


@pytest.fixture(autouse=True)
def cold() -> Iterator[None]:
    """Nothing kept from other tests: each counts its own texts."""
    SUBTREES.clear()
    PARTS.clear()
    COUNTS.clear()
    yield
    SUBTREES.clear()
    PARTS.clear()


async def _alike(pair: Any, scopes: list[str], query: str) -> Any:
    """The compiled answer (the root field's value), byte for byte the resolvers'."""
    got = await compiled_alike(pair, scopes, query)
    (answer,) = got["data"].values()
    return answer, got.get("errors", [])


async def test_a_nested_connection_of_known_objects_is_written_for_any_page(
    pair: Any, db: AsyncSession
) -> None:
    """The objects kept by the first document, the connection around them is written
    as text for every later page size, direction and selection of its parts."""
    product = await product_with_initiatives(db)
    fields = "nodes { key title }"
    lookup = f'product(key: "{product.key}") {{ key initiatives(first: 2) {{ {fields} }} }}'
    await _alike(pair, EVERY_SCOPE, new_document(lookup))
    variants = [
        ("first: 3", f"totalCount {fields} {PAGE_INFO}", 3, True, False),
        ("first: 1", f"{PAGE_INFO} edges {{ cursor node {{ key title }} }}", 1, True, False),
        ("last: 2", f"{fields} {PAGE_INFO} totalCount", 2, False, True),
        ("first: 10", f"__typename {fields} pageInfo {{ hasNextPage endCursor }}", 4, False, False),
        ("last: 3", "totalCount pageInfo { startCursor hasPreviousPage }", 0, False, True),
    ]
    for arguments, selection, shown, has_next, has_previous in variants:
        written = COUNTS["written"]
        query = (
            f'product(key: "{product.key}") {{ key initiatives({arguments}) {{ {selection} }} }}'
        )
        answer, errors = await _alike(pair, EVERY_SCOPE, new_document(query))
        assert errors == []
        assert COUNTS["written"] == written + 1
        page = answer["initiatives"]
        assert len(page.get("nodes", page.get("edges", []))) == shown
        if "pageInfo" in page and "hasNextPage" in page["pageInfo"]:
            assert page["pageInfo"]["hasNextPage"] is has_next
        if "pageInfo" in page and "hasPreviousPage" in page["pageInfo"]:
            assert page["pageInfo"]["hasPreviousPage"] is has_previous
        if "totalCount" in page:
            assert page["totalCount"] == 4


async def test_a_root_connection_and_its_filter_are_written(pair: Any, db: AsyncSession) -> None:
    product = await product_with_initiatives(db)
    await _alike(pair, EVERY_SCOPE, new_document("initiatives(first: 2) { nodes { key } }"))
    written = COUNTS["written"]
    answer, _ = await _alike(
        pair,
        EVERY_SCOPE,
        new_document(f"initiatives(first: 5) {{ totalCount nodes {{ key }} {PAGE_INFO} }}"),
    )
    assert COUNTS["written"] == written + 1
    assert len(answer["nodes"]) == min(5, answer["totalCount"])
    # Another filter is another listing: its parts are compiled anew, then written.
    parts = len(PARTS)
    query = f'products(first: 3, filter: {{ keys: ["{product.key}"] }}) {{ totalCount nodes {{ key }} }}'
    await _alike(pair, EVERY_SCOPE, new_document("products(first: 1) { nodes { key } }"))
    answer, _ = await _alike(pair, EVERY_SCOPE, new_document(query))
    assert answer == {"totalCount": 1, "nodes": [{"key": product.key}]}
    assert len(PARTS) > parts


async def test_scopes_still_refuse_fields_in_a_written_connection(
    pair: Any, db: AsyncSession
) -> None:
    """A caller without ``finance:read``: the refused field is a null in the written
    connection's objects, its error recorded by path as the resolvers write it."""
    product = await product_with_initiatives(db)
    query = f'product(key: "{product.key}") {{ initiatives(first: 3) {{ nodes {{ key estimatedCost }} }} }}'
    await _alike(pair, ["portfolio:read"], new_document(query))
    written = COUNTS["written"]
    smaller = query.replace("first: 3", "first: 2")
    answer, errors = await _alike(pair, ["portfolio:read"], new_document(smaller))
    assert [node["estimatedCost"] for node in answer["initiatives"]["nodes"]] == [None, None]
    assert {error["extensions"]["code"] for error in errors} == {"FORBIDDEN"}
    assert len(errors) == 2  # one per node, at its path
    assert COUNTS["written"] == written + 1


async def test_a_page_joining_a_lateral_with_a_row_of_its_own_is_built(
    pair: Any, db: AsyncSession
) -> None:
    """KPI ``status`` reads a lateral joined where the KPI rows are selected, and that
    lateral selects a measurement row numbered per statement: the page's rows cannot
    be kept with holes for the listing's rows alone, and ``connections`` builds them
    (the same answer)."""
    product = await factories.product(db)
    kpi = await factories.kpi(db, product_id=product.id)
    db.add(
        models.KpiMeasurement(
            kpi_id=kpi.id,
            observed_at=datetime(2026, 6, 1, tzinfo=UTC),
            value=42.5,
            source="t",
            external_id=kpi.key,
        )
    )
    await db.flush()
    fields = "nodes { key status latestValue }"
    lookup = f'product(key: "{product.key}") {{ kpis(first: 2) {{ {fields} }} }}'
    await _alike(pair, EVERY_SCOPE, new_document(lookup))
    written, unkept = COUNTS["written"], COUNTS["part not kept"]
    answer, _ = await _alike(
        pair, EVERY_SCOPE, new_document(lookup.replace("first: 2", "first: 5"))
    )
    assert (COUNTS["written"], COUNTS["part not kept"]) == (written, unkept + 1)
    assert [node["latestValue"] for node in answer["kpis"]["nodes"]] == [42.5]
    # Without the lateral, the same listing is written.
    plain = lookup.replace("status latestValue", "name")
    await _alike(pair, EVERY_SCOPE, new_document(plain))
    answer, _ = await _alike(pair, EVERY_SCOPE, new_document(plain.replace("first: 2", "first: 3")))
    assert COUNTS["written"] == written + 1
    assert [node["key"] for node in answer["kpis"]["nodes"]] == [kpi.key]


async def test_only_a_page_with_page_info_numbers_its_rows(
    pair: Any, db: AsyncSession, statements: StatementCounter
) -> None:
    """Rows are numbered (a window function, run again for every parent row) only for
    the extra row `pageInfo` reads; a page without it is aggregated by its sort keys in
    the order asked for, forward or backward, built or written, and answers as the
    resolvers do."""
    product = await product_with_initiatives(db)
    compiled, reference = pair(EVERY_SCOPE)
    orders = ["", ", orderBy: {field: TITLE, direction: DESC}"]
    for fields, numbered in (
        ("nodes { key title }", False),
        (f"nodes {{ key }} {PAGE_INFO}", True),
    ):
        for order in orders:
            for arguments in ("first: 3", "first: 2", "last: 3", "last: 2"):
                query = new_document(
                    f'product(key: "{product.key}") '
                    f"{{ initiatives({arguments}{order}) {{ {fields} }} }}"
                )
                statements.reset()
                got = await compiled(query)
                await statements.delivered()
                [sql] = statements.statements
                assert ("row_number()" in sql) is numbered, sql
                expected = await reference(query)
                assert got.pop("extensions")["answeredBy"] == "compiled"
                expected.pop("extensions")
                assert orjson.dumps(got) == orjson.dumps(expected)
                (answer,) = got["data"].values()
                keys = [node["key"] for node in answer["initiatives"]["nodes"]]
                assert len(keys) == int(arguments[-1])
    assert COUNTS["written"] >= 12  # after each selection's first document, written


async def test_a_reference_to_a_known_object_is_written(pair: Any, db: AsyncSession) -> None:
    """``key`` and ``name`` of a team kept by first documents, a new selection of them
    (a subtree not kept) is written as text around them: the team, or null (no team,
    an archived one) as the resolvers answer."""
    team = await factories.team(db)
    owned = await factories.product(db, technology_owner_team_id=team.id)
    orphan = await factories.product(db)
    gone_team = await factories.team(db, archived_at=datetime(2026, 1, 1, tzinfo=UTC))
    gone = await factories.product(db, technology_owner_team_id=gone_team.id)
    for fields in ("key", "name"):  # each leaf kept, then any reference of them is new
        query = f'product(key: "{owned.key}") {{ technologyOwnerTeam {{ {fields} }} }}'
        await _alike(pair, EVERY_SCOPE, new_document(query))
    cases = (("key name", owned, {"key": team.key, "name": team.name}), ("name key", orphan, None))
    for fields, product, expected in cases:
        written = COUNTS["reference written"]
        query = f'product(key: "{product.key}") {{ technologyOwnerTeam {{ {fields} }} }}'
        answer, _ = await _alike(pair, EVERY_SCOPE, new_document(query))
        assert answer["technologyOwnerTeam"] == expected
        assert COUNTS["reference written"] == written + 1
    reference = "technologyOwnerTeam { key name }"
    query = f'product(key: "{gone.key}") {{ name key {reference} }}'
    answer, _ = await _alike(pair, EVERY_SCOPE, new_document(query))
    assert answer["technologyOwnerTeam"] is None
