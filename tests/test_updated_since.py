"""``filter: {updatedSince}`` on every list of versioned objects, identical on both read
paths, and links that bump both ends' ``version`` and ``updatedAt``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from domain import models
from schema.ids import encode_id
from tests.conftest import GraphQL

LISTS = {
    "teams": "Team",
    "products": "Product",
    "initiatives": "Initiative",
    "technicalConstraints": "TechnicalConstraint",
    "kpis": "Kpi",
    "glossaryTerms": "GlossaryTerm",
}


async def _test_started(db: AsyncSession) -> str:
    """The test transaction's now(): every write of the test carries it, the seed's
    rows an earlier one."""
    started = await db.scalar(select(func.now()))
    assert isinstance(started, datetime)
    return started.isoformat()


async def _link(writer: GraphQL, name: str, variables: dict[str, str]) -> dict[str, Any]:
    return (
        await writer.data(
            f"mutation($i: ID!, $p: ID!) {{ {name}(input: {{initiativeId: $i, productId: $p}}) "
            "{ initiative { version updatedAt } product { version updatedAt } "
            "userErrors { code } } }",
            variables,
        )
    )[name]


async def test_a_link_bumps_both_ends_and_updated_since_finds_them(
    writer: GraphQL, db: AsyncSession, pair: Any
) -> None:
    since = await _test_started(db)
    product = await db.scalar(select(models.Product).order_by(models.Product.key.desc()))
    initiative = await db.scalar(select(models.Initiative).order_by(models.Initiative.key.desc()))
    assert product is not None and initiative is not None
    keys = (initiative.key, product.key)
    ids = {"i": encode_id("Initiative", initiative.id), "p": encode_id("Product", product.id)}
    unlinked = await _link(writer, "unlinkInitiativeProduct", ids)  # whatever the seed linked
    before_versions = (unlinked["initiative"]["version"], unlinked["product"]["version"])

    linked = await _link(writer, "linkInitiativeProduct", ids)
    assert linked["userErrors"] == []
    assert linked["initiative"]["version"] == before_versions[0] + 1
    assert linked["product"]["version"] == before_versions[1] + 1
    again = await _link(writer, "linkInitiativeProduct", ids)  # no change, no bump
    assert again["initiative"]["version"] == before_versions[0] + 1
    assert again["product"]["version"] == before_versions[1] + 1

    compiled, reference = pair(["portfolio:read"])
    query = (
        "query($t: DateTime) { products(filter: {updatedSince: $t}, first: 100) "
        "{ totalCount nodes { key version } } "
        "initiatives(filter: {updatedSince: $t}, first: 100) { nodes { key } } "
        "teams(filter: {updatedSince: $t}) { totalCount } }"
    )
    got = await compiled(query, {"t": since})
    expected = await reference(query, {"t": since})
    assert got.pop("extensions")["answeredBy"] in {"compiled", "repeated"}
    expected.pop("extensions")
    assert got == expected
    data = got["data"]
    assert data["products"]["nodes"] == [{"key": keys[1], "version": before_versions[1] + 1}]
    assert [n["key"] for n in data["initiatives"]["nodes"]] == [keys[0]]
    assert data["teams"]["totalCount"] == 0


@pytest.mark.parametrize("root", sorted(LISTS))
async def test_every_list_filters_by_updated_since_alike_on_both_paths(
    db: AsyncSession, pair: Any, root: str
) -> None:
    """A literal instant before the seed finds every row, one in the future none."""
    compiled, reference = pair(["portfolio:read"])
    counts = []
    for instant in ("2000-01-01T00:00:00Z", "2999-01-01T00:00:00+02:00"):
        query = f'{{ {root}(filter: {{updatedSince: "{instant}"}}) {{ totalCount }} }}'
        got = await compiled(query)
        expected = await reference(query)
        assert got.pop("extensions")["answeredBy"] in {"compiled", "repeated"}
        expected.pop("extensions")
        assert got == expected
        counts.append(got["data"][root]["totalCount"])
    model = getattr(models, LISTS[root])
    everything = await db.scalar(
        select(func.count()).select_from(model).where(model.archived_at.is_(None))
    )
    assert counts == [everything, 0]


async def test_an_instant_without_offset_is_refused(gql: GraphQL, db: AsyncSession) -> None:
    before = await db.scalar(select(func.count()).select_from(models.AuditEvent))
    body = await gql('{ products(filter: {updatedSince: "2026-01-01T00:00:00"}) { totalCount } }')
    assert body["data"] == {"products": None}
    error = body["errors"][0]
    assert error["extensions"]["code"] == "INVALID"
    assert error["extensions"]["field"] == "filter.updatedSince"
    assert error["message"] == "`updatedSince` needs a time zone offset."
    assert await db.scalar(select(func.count()).select_from(models.AuditEvent)) == before


async def _initiative_state(writer: GraphQL, key: str) -> tuple[int, bool]:
    found = (
        await writer.data(
            "query($k: String!) { initiative(key: $k) { version isBlocked } }", {"k": key}
        )
    )["initiative"]
    return found["version"], found["isBlocked"]


async def test_changes_in_blocking_bump_the_initiatives_they_block(
    writer: GraphQL, db: AsyncSession
) -> None:
    product = (
        await writer.data(
            'mutation { createProduct(input: {key: "BLKP", name: "Blocked product", '
            "lifecycleStage: GROWTH}) { product { id } } }"
        )
    )["createProduct"]["product"]["id"]
    initiative = (
        await writer.data(
            'mutation { createInitiative(input: {key: "BLK-1", title: "Blocked"}) '
            "{ initiative { id } } }"
        )
    )["createInitiative"]["initiative"]["id"]
    await _link(writer, "linkInitiativeProduct", {"i": initiative, "p": product})
    constraint = (
        await writer.data(
            'mutation { createTechnicalConstraint(input: {key: "BLK-C", title: "Blocker", '
            "category: SECURITY, severity: BLOCKER}) { technicalConstraint { id } } }"
        )
    )["createTechnicalConstraint"]["technicalConstraint"]["id"]
    start = await _initiative_state(writer, "BLK-1")
    assert start[1] is False

    steps = [
        (  # an active blocker linked to its product: blocked now
            "mutation($c: ID!, $p: ID!) { linkConstraintProduct(input: {constraintId: $c, "
            "productId: $p}) { userErrors { code } } }",
            {"c": constraint, "p": product},
            True,
            1,
        ),
        (  # its title: nothing about blocking
            'mutation($c: ID!) { updateTechnicalConstraint(input: {id: $c, title: "Renamed"}) '
            "{ userErrors { code } } }",
            {"c": constraint},
            True,
            0,
        ),
        (  # resolved: not a blocker any more
            "mutation($c: ID!) { setConstraintStatus(input: {id: $c, status: RESOLVED}) "
            "{ userErrors { code } } }",
            {"c": constraint},
            False,
            1,
        ),
        (  # unlinked while resolved: nothing about blocking
            "mutation($c: ID!, $p: ID!) { unlinkConstraintProduct(input: {constraintId: $c, "
            "productId: $p}) { userErrors { code } } }",
            {"c": constraint, "p": product},
            False,
            0,
        ),
    ]
    version = start[0]
    for document, variables, blocked, bump in steps:
        done = await writer.data(document, variables)
        assert next(iter(done.values()))["userErrors"] == []
        state = await _initiative_state(writer, "BLK-1")
        assert state == (version + bump, blocked), document
        version = state[0]
    # Each bump left an UPDATE event with the version change: the feed and asOf see it.
    db.expire_all()
    events = (
        await db.execute(
            select(models.AuditEvent.action, models.AuditEvent.changes)
            .where(
                models.AuditEvent.entity_type == "Initiative",
                models.AuditEvent.changes.has_key("version"),
            )
            .order_by(models.AuditEvent.id)
        )
    ).all()
    assert [e[1]["version"] for e in events[-2:]] == [
        {"before": start[0], "after": start[0] + 1},
        {"before": start[0] + 1, "after": start[0] + 2},
    ]


async def test_archiving_an_active_blocker_unblocks_and_bumps(writer: GraphQL) -> None:
    initiative = (
        await writer.data(
            'mutation { createInitiative(input: {key: "BLK-2", title: "Blocked"}) '
            "{ initiative { id } } }"
        )
    )["createInitiative"]["initiative"]["id"]
    constraint = (
        await writer.data(
            'mutation { createTechnicalConstraint(input: {key: "BLK-D", title: "Blocker", '
            "category: SECURITY, severity: BLOCKER}) { technicalConstraint { id } } }"
        )
    )["createTechnicalConstraint"]["technicalConstraint"]["id"]
    await writer.data(
        "mutation($c: ID!, $i: ID!) { linkConstraintInitiative(input: {constraintId: $c, "
        "initiativeId: $i}) { userErrors { code } } }",
        {"c": constraint, "i": initiative},
    )
    version, blocked = await _initiative_state(writer, "BLK-2")
    assert blocked is True
    await writer.data(
        "mutation($c: ID!) { archiveTechnicalConstraint(input: {id: $c}) { userErrors { code } } }",
        {"c": constraint},
    )
    assert await _initiative_state(writer, "BLK-2") == (version + 1, False)


async def test_an_instant_that_is_not_one_is_refused(gql: GraphQL) -> None:
    body = await gql(
        "query($t: DateTime) { kpis(filter: {updatedSince: $t}) { totalCount } }",
        {"t": "yesterday"},
        status=None,
    )
    assert "data" not in body
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert body["errors"][0]["message"] == (
        "Variable '$t' has invalid value: Value cannot represent a DateTime: \"yesterday\". "
        "Expected 4 digits, got 'yest'"
    )
