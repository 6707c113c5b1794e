"""Persisted queries (Apollo's protocol) and the persisted-only mode."""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from starlette.applications import Starlette
from typer.testing import CliRunner

from api.cli import app as cli
from auth.scopes import Scope
from domain import models
from domain.services.persisted import digest
from tests.conftest import make_client
from tests.fixtures.auth import bearer
from tests.test_cli import fresh_database  # noqa: F401  (fixture)

QUERY = "{ products(first: 1) { totalCount } }"
HASH = digest(QUERY)


def persisted(sha256: str = HASH, **extra: Any) -> dict[str, Any]:
    return {"extensions": {"persistedQuery": {"version": 1, "sha256Hash": sha256}}, **extra}


async def test_automatic_persisted_queries(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession], db: AsyncSession
) -> None:
    async with make_client(engine, sessions) as client:
        missing = await client.post("/graphql", json=persisted())
        assert missing.status_code == 200
        assert missing.json() == {
            "errors": [
                {
                    "message": "PersistedQueryNotFound",
                    "extensions": {"code": "PERSISTED_QUERY_NOT_FOUND"},
                }
            ]
        }
        registered = await client.post("/graphql", json=persisted(query=QUERY))
        assert registered.json()["data"]["products"]["totalCount"] >= 1
        by_hash = await client.post("/graphql", json=persisted())
        assert by_hash.json()["data"] == registered.json()["data"]
        by_get = await client.get(
            "/graphql",
            params={"extensions": orjson.dumps(persisted()["extensions"]).decode()},
        )
        assert by_get.json()["data"] == registered.json()["data"]
        mismatch = await client.post("/graphql", json=persisted(query="{ teams { totalCount } }"))
    assert mismatch.status_code == 400
    assert mismatch.json()["errors"][0]["extensions"] == {"code": "PERSISTED_QUERY_HASH_MISMATCH"}
    stored = await db.scalar(
        select(func.count())
        .select_from(models.PersistedQuery)
        .where(models.PersistedQuery.sha256 == HASH)
    )
    assert stored == 1


async def test_a_document_known_to_the_compiler_is_registered_by_its_hash(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession], db: AsyncSession
) -> None:
    """Apollo's flow for a document other requests already sent in full, so that the
    known-read path answers it: sent with its hash, it is registered all the same, and
    the hash alone then finds it (it used to answer PersistedQueryNotFound forever)."""
    query = f"{{ p{secrets.token_hex(8)}: products(first: 1) {{ totalCount }} }}"
    sha256 = digest(query)
    async with make_client(engine, sessions) as client:
        for expected in ("compiled", "repeated"):
            sent = await client.post("/graphql", json={"query": query})
            assert sent.json()["extensions"]["answeredBy"] == expected
        registered = await client.post("/graphql", json=persisted(sha256, query=query))
        assert registered.json()["extensions"]["answeredBy"] == "repeated"
        by_hash = await client.post("/graphql", json=persisted(sha256))
        assert by_hash.status_code == 200
        assert by_hash.json()["data"] == registered.json()["data"] == sent.json()["data"]
    stored = await db.scalar(
        select(models.PersistedQuery.document).where(models.PersistedQuery.sha256 == sha256)
    )
    assert stored == query


async def test_persisted_only_mode(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession], db: AsyncSession
) -> None:
    async with make_client(engine, sessions, persisted_queries_only=True) as client:
        free_form = await client.post("/graphql", json={"query": QUERY})
        assert free_form.status_code == 400
        assert free_form.json()["errors"][0] == {
            "message": "This server only runs persisted queries: send "
            "extensions.persistedQuery.sha256Hash of a registered document.",
            "extensions": {"code": "PERSISTED_QUERY_REQUIRED"},
        }
        # Clients cannot register new documents in this mode.
        attempt = await client.post("/graphql", json=persisted(query=QUERY))
        assert attempt.json()["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND"
        db.add(models.PersistedQuery(sha256=HASH, document=QUERY))
        await db.commit()
        allowed = await client.post("/graphql", json=persisted())
        # Every request of this mode is a hash: from the second on, the known-read path
        # answers it, the document filled in from memory.
        again = [await client.post("/graphql", json=persisted()) for _ in range(2)]
        with_variables = await client.post("/graphql", json=persisted(variables={}))
        refused_again = await client.post("/graphql", json={"query": QUERY})
    assert allowed.status_code == 200
    assert allowed.json()["data"]["products"]["totalCount"] >= 1
    for answer in (*again, with_variables):
        assert answer.json()["extensions"]["answeredBy"] == "repeated"
        assert answer.json()["data"] == allowed.json()["data"]
    assert refused_again.status_code == 400
    assert refused_again.json()["errors"][0]["extensions"] == {"code": "PERSISTED_QUERY_REQUIRED"}


def test_persist_queries_command(fresh_database: str, tmp_path: Path) -> None:  # noqa: F811
    assert CliRunner().invoke(cli, ["migrate", "upgrade"]).exit_code == 0
    document = tmp_path / "overview.graphql"
    document.write_text(QUERY, encoding="utf-8")
    result = CliRunner().invoke(cli, ["persist-queries", str(document)])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"{HASH}  {document}"

    async def stored() -> str | None:
        from sqlalchemy.ext.asyncio import create_async_engine

        engine = create_async_engine(fresh_database)
        async with engine.connect() as connection:
            found = await connection.scalar(
                select(models.PersistedQuery.document).where(models.PersistedQuery.sha256 == HASH)
            )
        await engine.dispose()
        return found

    assert asyncio.run(stored()) == QUERY


def test_persist_queries_command_refuses_what_cannot_run(
    fresh_database: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    """Random text or a document the schema refuses is never stored, nor are the valid
    documents given with it."""
    assert CliRunner().invoke(cli, ["migrate", "upgrade"]).exit_code == 0
    valid = tmp_path / "valid.graphql"
    valid.write_text(QUERY, encoding="utf-8")
    noise = tmp_path / "noise.graphql"
    noise.write_text("\x7f not graphql at all", encoding="utf-8")
    unknown = tmp_path / "unknown.graphql"
    unknown.write_text("{ products { nodes { secretField } } }", encoding="utf-8")
    result = CliRunner().invoke(cli, ["persist-queries", str(valid), str(noise), str(unknown)])
    assert result.exit_code == 1
    assert f"{noise}: Syntax Error" in result.output
    assert f"{unknown}: Cannot query field 'secretField' on type 'Product'." in result.output

    async def count() -> int:
        from sqlalchemy.ext.asyncio import create_async_engine

        engine = create_async_engine(fresh_database)
        async with engine.connect() as connection:
            found = await connection.scalar(select(func.count()).select_from(models.PersistedQuery))
        await engine.dispose()
        return int(found or 0)

    assert asyncio.run(count()) == 0


async def _stored(db: AsyncSession, sha256: str) -> int:
    return int(
        await db.scalar(
            select(func.count())
            .select_from(models.PersistedQuery)
            .where(models.PersistedQuery.sha256 == sha256)
        )
        or 0
    )


async def test_only_documents_that_run_are_registered(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession], db: AsyncSession
) -> None:
    """Development registers documents sent with their hash, but not text that does not
    parse, a document that does not validate, nor one over the ad-hoc size cap."""
    junk = secrets.token_urlsafe(3_000)  # random text, not GraphQL
    invalid = f"{{ noSuchField{secrets.token_hex(4)} }}"
    oversized = f"# {secrets.token_hex(8)} " + "x" * 12_000 + "\n{ __typename }"
    valid = f"{{ p{secrets.token_hex(8)}: teams(first: 1) {{ totalCount }} }}"
    async with make_client(engine, sessions, max_document_bytes=10_000) as client:
        answers = {
            document: (
                await client.post("/graphql", json=persisted(digest(document), query=document))
            ).json()
            for document in (junk, invalid, oversized, valid)
        }
        by_hash = (await client.post("/graphql", json=persisted(digest(valid)))).json()
    codes = {
        document: [error["extensions"]["code"] for error in answer.get("errors", [])]
        for document, answer in answers.items()
    }
    assert codes == {
        junk: ["GRAPHQL_PARSE_FAILED"],
        invalid: ["GRAPHQL_VALIDATION_FAILED"],
        oversized: ["DOCUMENT_TOO_LARGE"],
        valid: [],
    }
    assert [await _stored(db, digest(d)) for d in (junk, invalid, oversized)] == [0, 0, 0]
    assert await _stored(db, digest(valid)) == 1
    assert by_hash["data"] == answers[valid]["data"]


@pytest.mark.parametrize("register", [None, True], ids=["default", "turned on"])
async def test_production_registers_only_when_turned_on(
    app: Starlette,
    engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
    db: AsyncSession,
    register: bool | None,
) -> None:
    """In production a request never writes the persisted store unless registering is
    turned on: the document runs as an ad-hoc one, and `portfolio persist-queries` is the
    way to register it. Anonymous callers and tokens alike."""
    document = f"{{ p{secrets.token_hex(8)}: teams(first: 1) {{ totalCount }} }}"
    sha256 = digest(document)
    headers = await bearer(app, db, [Scope.PORTFOLIO_READ])
    production: dict[str, Any] = {
        "environment": "production",
        "persisted_queries_register": register,
    }
    async with (
        make_client(engine, sessions, **production) as anonymous,
        make_client(engine, sessions, headers=headers, **production) as reader,
    ):
        ran = (await reader.post("/graphql", json=persisted(sha256, query=document))).json()
        assert "errors" not in ran
        assert [*ran["data"].values()][0]["totalCount"] >= 1
        await anonymous.post("/graphql", json=persisted(sha256, query=document))
        by_hash = (await reader.post("/graphql", json=persisted(sha256))).json()
    if register is None:
        assert await _stored(db, sha256) == 0
        assert by_hash == {
            "errors": [
                {
                    "message": "PersistedQueryNotFound",
                    "extensions": {"code": "PERSISTED_QUERY_NOT_FOUND"},
                }
            ]
        }
    else:
        assert await _stored(db, sha256) == 1
        assert by_hash["data"] == ran["data"]


async def test_a_persisted_document_may_exceed_the_ad_hoc_cap(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession], db: AsyncSession
) -> None:
    document = f"# {secrets.token_hex(8)} " + "x" * 20_000 + "\n{ __typename }"
    db.add(models.PersistedQuery(sha256=digest(document), document=document))
    await db.commit()
    async with make_client(engine, sessions, max_document_bytes=10_000) as client:
        by_hash = (await client.post("/graphql", json=persisted(digest(document)))).json()
        with_hash = (
            await client.post("/graphql", json=persisted(digest(document), query=document))
        ).json()
        ad_hoc = (await client.post("/graphql", json={"query": document})).json()
    assert by_hash["data"] == with_hash["data"] == {"__typename": "Query"}
    assert ad_hoc["errors"][0]["extensions"] == {
        "code": "DOCUMENT_TOO_LARGE",
        "size": len(document),
        "limit": 10_000,
    }
