"""A field's SQL text is kept by shape and reused by later documents
(``schema.compiled.subtrees``): a first-seen document made of known parts compiles only
what is new. Every reuse must answer byte for byte what the resolvers answer, and the
key must hold everything that changes the SQL (scopes, arguments, variables, the
parent's row). Counted, never timed."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from graphql import FragmentDefinitionNode, OperationDefinitionNode, parse
from sqlalchemy import String
from sqlalchemy.ext.asyncio import AsyncSession

from domain import models
from schema.compiled.holes import PARENT, Holes
from schema.compiled.subtrees import SUBTREES, SubtreeCache, Text, _Recording, shape
from tests.fixtures import factories
from tests.fixtures.compiled import (
    EVERY_SCOPE,
    compiled_alike,
    new_document,
    product_with_initiatives,
)

INITIATIVES = "initiatives(first: 3) { nodes { key riceScore isBlocked createdAt estimatedCost } }"


@pytest.fixture(autouse=True)
def cold() -> Iterator[None]:
    """Nothing kept from other tests: each counts its own hits."""
    SUBTREES.clear()
    yield
    SUBTREES.clear()


async def test_a_known_part_of_a_new_document_is_reused_under_other_aliases(
    pair: Any, db: AsyncSession
) -> None:
    """The initiatives of a product, first under a list of products (its row ``n1``),
    then under a lookup that follows another root field (another alias number): the
    second document compiles none of it again, and both answer as the resolvers."""
    product = await product_with_initiatives(db)
    await compiled_alike(
        pair, EVERY_SCOPE, new_document(f"products(first: 5) {{ nodes {{ key {INITIATIVES} }} }}")
    )
    kept, hits = len(SUBTREES), SUBTREES.hits
    assert kept > 0

    lookup = f'product(key: "{product.key}") {{ key {INITIATIVES} }}'
    got = await compiled_alike(
        pair, EVERY_SCOPE, "{ teams(first: 1) { nodes { key } } " + new_document(lookup)[1:]
    )
    assert SUBTREES.hits - hits >= 2  # ``key`` and the initiatives, whole
    (answer,) = (value for name, value in got["data"].items() if name.startswith("r"))
    assert len(answer["initiatives"]["nodes"]) == 3


async def test_scopes_are_part_of_the_key(pair: Any, db: AsyncSession) -> None:
    """Kept under every scope, the same part under a caller without ``finance:read``
    is compiled again: its ``estimatedCost`` is null with the resolvers' error."""
    product = await product_with_initiatives(db)
    lookup = f'product(key: "{product.key}") {{ {INITIATIVES} }}'
    await compiled_alike(pair, EVERY_SCOPE, new_document(lookup))
    kept = len(SUBTREES)
    got = await compiled_alike(pair, ["portfolio:read"], new_document(lookup))
    (answer,) = got["data"].values()
    assert [node["estimatedCost"] for node in answer["initiatives"]["nodes"]] == [None] * 3
    assert {error["extensions"]["code"] for error in got["errors"]} == {"FORBIDDEN"}
    assert len(SUBTREES) > kept  # the other scopes' key


async def test_arguments_are_part_of_the_key(pair: Any, db: AsyncSession) -> None:
    product = await product_with_initiatives(db)
    for first in (2, 3, 2):
        lookup = (
            f'product(key: "{product.key}") {{ initiatives(first: {first}) {{ nodes {{ key }} }} }}'
        )
        got = await compiled_alike(pair, EVERY_SCOPE, new_document(lookup))
        (answer,) = got["data"].values()
        assert len(answer["initiatives"]["nodes"]) == first


async def test_a_field_reading_a_lateral_of_its_row_is_kept_with_it(
    pair: Any, db: AsyncSession
) -> None:
    """``status`` and ``latestValue`` share one lateral lookup joined where the KPI's
    row is selected, outside their texts: each is kept with the lateral and joins it
    again where it is reused, alone, with the other, in another order, on a list."""
    product = await factories.product(db)
    kpi = await factories.kpi(db, product_id=product.id)
    observed = datetime(2026, 6, 1, tzinfo=UTC)
    db.add(
        models.KpiMeasurement(
            kpi_id=kpi.id, observed_at=observed, value=42.5, source="t", external_id=kpi.key
        )
    )
    await db.flush()
    sequence = ("status latestValue", "latestValue", "latestValue status", "status")
    for number, fields in enumerate(sequence):
        hits = SUBTREES.hits
        got = await compiled_alike(
            pair, EVERY_SCOPE, new_document(f'kpi(key: "{kpi.key}") {{ {fields} }}')
        )
        (answer,) = got["data"].values()
        assert list(answer) == fields.split()
        assert answer.get("latestValue", 42.5) == 42.5
        if number:  # every field was kept by the first document
            assert SUBTREES.hits - hits == len(fields.split())
    # The same texts on the rows of a list, beside a field that reads the lateral anew.
    hits = SUBTREES.hits
    lookup = f'product(key: "{product.key}") {{ kpis {{ nodes {{ key status isStale }} }} }}'
    got = await compiled_alike(pair, EVERY_SCOPE, new_document(lookup))
    (answer,) = got["data"].values()
    assert [node["key"] for node in answer["kpis"]["nodes"]] == [kpi.key]
    assert SUBTREES.hits > hits


def test_a_shape_is_the_field_as_written_and_none_with_a_variable() -> None:
    def of(document: str) -> str | None:
        parsed = parse(document)
        fragments = {
            d.name.value: d for d in parsed.definitions if isinstance(d, FragmentDefinitionNode)
        }
        operation = parsed.definitions[0]
        assert isinstance(operation, OperationDefinitionNode)
        field = operation.selection_set.selections[0]
        return shape(field, fragments, {})

    plain = of('{ a(x: 1, y: "1", z: ONE) { b c } }')
    assert plain is not None
    assert of('{ a(x: 1, y: "1", z: ONE) { b c } }') == plain
    assert of('{ a(x: "1", y: "1", z: ONE) { b c } }') != plain  # a string, not an int
    assert of('{ a(x: 1, y: "1", z: ONE) { c b } }') != plain  # the order of the keys
    assert of('{ a(x: 1, y: "1", z: ONE) { b c: d } }') != plain  # a response key
    assert of('{ a(x: 1, y: "1", z: ONE) { b c @include(if: false) } }') != plain
    assert of("query Q($v: Int) { a(x: $v) { b } }") is None
    assert of("query Q($v: Boolean!) { a { b @skip(if: $v) } }") is None
    assert of("query Q($v: Int) { a { ...F } } fragment F on T { b(x: $v) }") is None
    # A fragment is followed: the same spread with other contents is another shape.
    assert of("{ a { ...F } } fragment F on T { b }") != of("{ a { ...F } } fragment F on T { c }")


def test_the_cache_is_bounded_by_bytes() -> None:
    cache = SubtreeCache(max_bytes=20_000)
    for number in range(200):
        cache.put(
            ("key", number), Text(Holes("SELECT ", ((PARENT, 0, f".x + {number}"),)), 0, None)
        )
    assert cache.bytes <= 20_000
    assert 0 < len(cache) < 200
    assert cache.get(("key", 199)) is not None
    assert cache.get(("key", 0)) is None
    assert cache.get(("key", 199)).sql.render(parent=7, start=8) == "SELECT n7.x + 199"  # type: ignore[union-attr]


@pytest.mark.parametrize("row", ["asof3", "asof_current0", "asof_event12"])
def test_a_text_naming_an_as_of_row_is_not_kept(row: str) -> None:
    """``asOf`` rows are numbered per statement but are not holes of a kept text: one
    naming such a row would name another statement's row when reused."""
    key = ("test", row)
    recording = _Recording.__new__(_Recording)
    recording.subtree_key, recording.parent, recording.start, recording.names = key, 1, 2, 1
    recording.type, recording.laterals = String(), ()
    recording.keep(f"SELECT n2.title FROM initiatives AS n2 WHERE n2.id = {row}.id")
    assert SUBTREES.get(key) is None
    recording.keep("SELECT n2.title FROM initiatives AS n2 WHERE n2.parent_id = n1.id")
    kept = SUBTREES.get(key)
    assert kept is not None and kept.sql.render(7, 9).endswith("n9.parent_id = n7.id")
