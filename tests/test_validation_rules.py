"""A document without variables, directives or fragments is validated without GraphQL's
rules about them (``schema.limits.documents.rules_for``): the errors a client sees must
be the same as with every rule, for valid and invalid documents alike."""

from __future__ import annotations

import random
from typing import Any

import pytest
from graphql import GraphQLError, parse, specified_rules
from strawberry.schema.schema import validate_document

from schema.build import build_schema
from schema.limits.documents import (
    DIRECTIVE_RULES,
    FRAGMENT_RULES,
    VARIABLE_RULES,
    DocumentEntry,
    rules_for,
)
from tests.schema_walk import Arguments, QueryWalker

SCHEMA = build_schema(production=True)
RULES = tuple(specified_rules)

# Invalid in every way a document without variables can be (and a few with).
INVALID = [
    "{ products { nodes { nope } } }",
    "{ products(first: 2, nope: 1) { nodes { key } } }",
    '{ products(first: "two") { nodes { key } } }',
    "{ products { nodes { key: name key } } }",
    "{ products { nodes { key @skip } } }",
    "{ products { nodes { key @nope(if: true) } } }",
    "{ products { nodes { ...F } } }",
    "fragment F on Product { key } { products { nodes { key } } }",
    "{ product { key } }",
    "query A { teams { totalCount } } query A { teams { totalCount } }",
    "{ teams { totalCount } } { teams { totalCount } }",
    "{ products { nodes } }",
    "{ products { totalCount { x } } }",
    '{ product(key: "$x") { nope } }',  # a `$` in a string: every rule runs
    "query ($x: Int) { products(first: $y) { nodes { key } } }",
    "query ($x: Int, $x: Int) { products(first: $x) { nodes { key } } }",
    "query ($x: String) { products(first: $x) { nodes { key } } }",
    "query ($x: Product) { products { nodes { key } } }",
    "subscription { a: kpiMeasurementRecorded { id } b: kpiMeasurementRecorded { id } }",
    "{ products { nodes { key @skip(if: true) @skip(if: false) } } }",
    "{ products { nodes { key @nope } } }",
    "{ products @defer { totalCount } }",
    "{ products { nodes @stream { key } } }",
    "mutation { ... @defer { updateInitiative(input: {id: 1}) { initiative { id } } } }",
    "subscription { ... @defer { kpiMeasurementRecorded { id } } }",
    "{ teams { totalCount } } fragment F on Product { key }",  # unused, no `...`
    "{ teams { totalCount } } fragment F on Product { key } fragment F on Product { key }",
    "{ teams { totalCount } } fragment F on Boolean { key }",
    "{ teams { ...F } } fragment F on TeamConnection { ...G } fragment G on TeamConnection { ...F }",
    "{ teams { ...F } }",
    "{ teams { nodes { ... on Product { key } } } }",
    "{ teams { nodes { ... on Boolean { key } } } }",
]


def _errors(document: str, rules: tuple[Any, ...]) -> list[Any]:
    found: list[GraphQLError] = validate_document(SCHEMA._schema, parse(document), rules)
    return [error.formatted for error in found]


def _walked(count: int) -> list[str]:
    walker = QueryWalker(
        SCHEMA._schema,
        random.Random(7),
        Arguments(
            ids=["SW5pdGlhdGl2ZTox", "UHJvZHVjdDox", "UHJvZHVjdDoy"],
            keys={"product": ["PAY"], "team": ["CORE"], "kpi": ["UPTIME"]},
        ),
        max_depth=3,
    )
    return [document for document in (walker.document() for _ in range(count)) if document]


@pytest.mark.parametrize("document", INVALID)
def test_invalid_documents_get_the_same_errors(document: str) -> None:
    entry = DocumentEntry(document, parse(document))
    assert _errors(document, rules_for(entry, RULES)) == _errors(document, RULES)
    assert _errors(document, RULES)  # each is invalid


def test_generated_documents_and_their_broken_copies_get_the_same_errors() -> None:
    for document in _walked(60):
        # Each generated document, then broken: a field renamed, an argument added.
        for variant in (
            document,
            document.replace(" key", " keey", 1),
            document.replace("(first:", "(firstt:", 1),
            document.replace("{ ", "{ __typename: id ", 1),
        ):
            entry = DocumentEntry(variant, parse(variant))
            assert entry.unneeded >= VARIABLE_RULES
            assert _errors(variant, rules_for(entry, RULES)) == _errors(variant, RULES)


def _skipped(document: str) -> set[Any]:
    return set(RULES) - set(rules_for(DocumentEntry(document, parse(document)), RULES))


def test_only_documents_without_them_skip_the_rules_about_them() -> None:
    assert _skipped("{ teams { totalCount } }") == VARIABLE_RULES | DIRECTIVE_RULES | FRAGMENT_RULES
    # A `$`, `@` or `...` anywhere (a string, a comment) keeps their rules.
    assert _skipped("query ($n: Int) { teams(first: $n) { totalCount } } # @ ...") == set()
    assert _skipped('{ team(key: "$") { key } }') == DIRECTIVE_RULES | FRAGMENT_RULES
    assert _skipped("{ teams { totalCount @skip(if: false) } }") == VARIABLE_RULES | FRAGMENT_RULES
    assert _skipped("{ teams { ... on TeamConnection { totalCount } } }") == (
        VARIABLE_RULES | DIRECTIVE_RULES
    )
    # A fragment definition with no spread is an error of the fragment rules.
    assert _skipped("{ teams { totalCount } } fragment F on Team { key }") == (
        VARIABLE_RULES | DIRECTIVE_RULES
    )
