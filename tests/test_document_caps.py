"""Large unique documents: refused by size before they are parsed, charged to the caller
when parsed, and never held in memory beyond the caches' byte bounds."""

from __future__ import annotations

import gc
import tracemalloc
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from graphql import Source, parse
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from domain.caches import ENTRY_OVERHEAD, ByteLRU, text_bytes
from schema.compiled.extension import PLANS
from schema.compiled.parameters import CANDIDATES
from schema.compiled.responses import Cached, ResponseCache
from schema.limits import measured
from schema.limits.documents import DOCUMENTS, document_bytes, parse_points, parsed_bytes
from tests.conftest import GraphQL, make_client
from tests.fixtures.database import StatementCounter


def padded(body: str, size: int) -> str:
    """A document of about ``size`` bytes: a unique comment, then ``body``."""
    head = f"# {uuid.uuid4()} "
    return head + "x" * max(0, size - len(head) - len(body) - 1) + "\n" + body


def is_parsed(query: str) -> bool:
    return any(key[0] == query for key in DOCUMENTS)


@pytest.fixture
async def small(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> AsyncIterator[httpx.AsyncClient]:
    async with make_client(engine, sessions, max_document_bytes=10_000) as client:
        yield client


async def test_an_oversized_document_is_refused_before_it_is_parsed(
    small: httpx.AsyncClient, statements: StatementCounter
) -> None:
    # Not even GraphQL: parsed, it would be a syntax error.
    document = "{ __typename } }" + " " * 10_000
    statements.reset()
    response = await small.post("/graphql", json={"query": document})
    assert response.status_code == 200
    assert response.json() == {
        "errors": [
            {
                "message": "This document is 10016 bytes; the limit is 10000. Register "
                "larger documents as persisted queries.",
                "extensions": {"code": "DOCUMENT_TOO_LARGE", "size": 10016, "limit": 10000},
            }
        ]
    }
    assert statements.statements == []
    assert not is_parsed(document)
    # The GraphQL-over-HTTP media type makes it a 400, as any request error.
    strict = await small.post(
        "/graphql",
        json={"query": document},
        headers={"accept": "application/graphql-response+json"},
    )
    assert strict.status_code == 400
    assert strict.json()["errors"][0]["extensions"]["code"] == "DOCUMENT_TOO_LARGE"


async def test_the_cap_counts_utf8_bytes(small: httpx.AsyncClient) -> None:
    # 6,000 characters, 12,000 bytes once encoded.
    document = "# " + "é" * 6_000 + "\n{ __typename }"
    assert len(document) < 10_000 < document_bytes(document)
    body = (await small.post("/graphql", json={"query": document})).json()
    assert body["errors"][0]["extensions"] == {
        "code": "DOCUMENT_TOO_LARGE",
        "size": document_bytes(document),
        "limit": 10_000,
    }
    within = (await small.post("/graphql", json={"query": padded("{ __typename }", 9_000)})).json()
    assert within == {"data": {"__typename": "Query"}, "extensions": within["extensions"]}


async def test_parsing_is_charged_to_anonymous_callers(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """Production, no token: each unique document costs its size in points before it is
    parsed; the same document again is found parsed and costs only its query."""
    async with make_client(
        engine, sessions, environment="production", rate_limit_points=1_000
    ) as client:
        first = padded("{ __typename }", 50_000)
        charged = parse_points(document_bytes(first))
        assert charged == 500
        answer = (await client.post("/graphql", json={"query": first})).json()
        assert answer["data"] == {"__typename": "Query"}
        assert answer["extensions"]["cost"]["remaining"] == 1_000 - charged - 1
        again = (await client.post("/graphql", json={"query": first})).json()
        assert again["extensions"]["cost"]["remaining"] == 1_000 - charged - 2
        second = padded("{ __typename }", 50_000)
        refused = await client.post("/graphql", json={"query": second})
    assert refused.status_code == 429
    retry_after = int(refused.headers["retry-after"])
    assert refused.json() == {
        "errors": [
            {
                "message": "Rate limit exceeded: 498 of 1000 points left in this window and "
                f"parsing this 50000-byte document costs 500. Retry after {retry_after} "
                "seconds.",
                "extensions": {"code": "RATE_LIMITED", "retryAfter": retry_after},
            }
        ]
    }
    assert not is_parsed(second)


@pytest.fixture
def tight(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, ByteLRU[Any, Any]]]:
    """The process's caches, each bounded to 1 MB for the test."""
    caches: dict[str, ByteLRU[Any, Any]] = {
        "documents": DOCUMENTS,
        "plans": PLANS._plans,
        "candidates": CANDIDATES._found,
        "costs": measured._COSTS,
        "ignored": measured._IGNORED,
    }
    for cache in caches.values():
        monkeypatch.setattr(cache, "max_bytes", 1_000_000)
    yield caches


async def test_caches_stay_within_their_byte_bounds(
    engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
    tight: dict[str, ByteLRU[Any, Any]],
) -> None:
    """40 unique 90 KB documents, each asked twice (planned, then repeated): 7 MB of
    text, of which no cache holds more than its bound; each holds what it accounts for."""
    documents = []
    async with make_client(engine, sessions) as client:
        api = GraphQL(client)
        for number in range(40):
            # A nested object: its subtree is memoised by the compiler.
            selection = "products(first: 1) { nodes { businessOwnerTeam { key } } }"
            document = padded(f"{{ p{number}: {selection} }}", 90_000)
            documents.append(document)
            for expected in ("compiled", "repeated"):
                answer = await api(document)
                assert answer["data"][f"p{number}"]["nodes"], answer
                assert answer["extensions"]["answeredBy"] == expected
    for name, cache in tight.items():
        assert 0 < cache.bytes <= cache.max_bytes, name
        held = [key for key in cache if key[0] in documents]
        assert 0 < len(held) < 40, name  # some kept, the least recently used gone
        # The accounting covers at least the texts of the documents it keeps.
        assert cache.bytes >= sum(text_bytes(key[0]) for key in held), name
    # The most recent document is the one kept.
    kept = {key[0] for key in tight["documents"]}
    assert documents[-1] in kept
    assert documents[0] not in kept
    # Nothing else keeps a parsed document the cache let go (the compiler's memos of
    # subtrees hold nodes, and a node holds its whole document).
    gc.collect()
    alive = {o.body for o in gc.get_objects() if isinstance(o, Source)}
    assert [d for d in documents if d not in kept and d in alive] == []


@pytest.mark.parametrize(
    "document",
    [
        "#" + "x" * 50_000 + "\n{ __typename }",
        "{ " + " ".join("__typename" for _ in range(4_000)) + " }",
        "{ " + " ".join(f"a{i}: __typename" for i in range(1_600)) + " }",
        "{ " + " ".join("a" for _ in range(4_900)) + " }",
        '{ products(filter: {search: "' + "y" * 50_000 + '"}) { totalCount } }',
        "query($a: [String!]) { " + "products(filter: {keys: $a}) { nodes { key } } " * 300 + "}",
        "# " + "é" * 20_000 + "\n{ __typename }",
        '{ products(filter: {search: """' + "  z\n" * 20_000 + '"""}) { totalCount } }',
    ],
    ids=[
        "comment",
        "fields",
        "aliases",
        "short names",
        "string",
        "arguments",
        "non-ascii",
        "block string",
    ],
)
def test_a_parsed_documents_accounted_size_covers_its_memory(document: str) -> None:
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        parsed = parse(document)
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    # The text arrived with the request (not traced here): the estimate counts it too.
    assert parsed_bytes(document, parsed) >= held + text_bytes(document)


def test_the_response_cache_counts_its_keys() -> None:
    cache = ResponseCache(max_chars=1_000_000)
    cache.set_listening(True)
    document = "{ __typename }" + " " * 300_000
    for number in range(5):
        cache.put(
            (document, None, f'{{"n":{number}}}', frozenset()), cache.generation, Cached({}, 0, 10)
        )
    # Each answer is 10 characters of JSON, but its key holds 300 KB of document.
    assert len(cache) == 3
    assert cache.chars <= 1_000_000


def test_the_byte_bound_drops_the_least_recently_used() -> None:
    evicted: list[str] = []
    cache: ByteLRU[str, int] = ByteLRU(3 * (100 + ENTRY_OVERHEAD), lambda k, _: evicted.append(k))
    for key in "abc":
        assert cache.put(key, 1, 100)
    assert cache.get("a") == 1  # now the most recently used
    cache.put("d", 1, 100)
    assert (list(cache), evicted) == (["c", "a", "d"], ["b"])
    cache.resize("c", 200)  # grown while in use: the least recently used others go
    assert (list(cache), evicted) == (["d", "c"], ["b", "a"])
    assert cache.bytes == 300 + 2 * ENTRY_OVERHEAD
    assert not cache.put("huge", 1, 3 * (100 + ENTRY_OVERHEAD))  # never kept
    assert "huge" not in cache
    assert cache.bytes == 300 + 2 * ENTRY_OVERHEAD
