"""bench/floor.py's graphql-core floor: the real answer turned into plain values that
graphql-core's default resolvers, over a schema built from schema.graphql, walk back
into the same answer (aliases, enums, fragments, abstract types); no timing asserted."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from graphql import build_schema, parse

from bench.floor import _graphql_core, field_count, root_value
from bench.processes import BenchError

SCHEMA = build_schema((Path(__file__).resolve().parents[1] / "schema.graphql").read_text())

DOCUMENT = """
query Floor($id: ID!) {
  first: products(first: 2) { nodes { key stage: lifecycleStage } }
  products(first: 2) { nodes { name } }
  node(id: $id) { __typename ... on Product { key } ...Named }
}
fragment Named on Product { name }
"""

ANSWER: dict[str, Any] = {
    "first": {"nodes": [{"key": "P1", "stage": "GROWTH"}, {"key": "P2", "stage": "IDEA"}]},
    "products": {"nodes": [{"name": "One"}, {"name": "Two"}]},
    "node": {"__typename": "Product", "key": "P1", "name": "One"},
}


def test_graphql_core_over_the_root_value_gives_the_answer_back() -> None:
    root = root_value(SCHEMA, parse(DOCUMENT), ANSWER)
    # Keyed by field name: the two aliases of `products` merged into one list.
    assert root["products"]["nodes"][0] == {"key": "P1", "lifecycleStage": "GROWTH", "name": "One"}
    assert root["node"]["__typename"] == "Product"
    # Raises unless execution over the root value reproduces ANSWER exactly.
    core_ms, parse_validate_ms = _graphql_core(SCHEMA, DOCUMENT, {"id": "x"}, ANSWER, 2, 0)
    assert core_ms >= 0 and parse_validate_ms >= 0
    assert field_count(ANSWER) == 14  # 3 root, 1 + 4, 1 + 2, 3 under node


def test_aliases_that_answer_one_field_differently_are_refused() -> None:
    document = '{ a: product(key: "P1") { key } b: product(key: "P2") { key } }'
    answer = {"a": {"key": "P1"}, "b": {"key": "P2"}}
    with pytest.raises(BenchError, match="aliases of key answer differently"):
        root_value(SCHEMA, parse(document), answer)
