"""External references: stored with their object (a new version, an audit event), read
alike on the compiled path and the resolvers, found by filter and by lookup, and refused
precisely when malformed or taken; objects named by key wherever they are named by ID."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from auth.scopes import Scope
from domain import models
from schema.ids import encode_id
from tests.conftest import GraphQL
from tests.fixtures import factories

ERRORS = "userErrors { field code message }"
REFS = "externalRefs { system externalId url }"
JIRA = {"system": "jira", "externalId": "PROJ-123", "url": "https://jira.example.com/PROJ-123"}
SNOW = {"system": "servicenow", "externalId": "CHG0001", "url": None}


async def state(db: AsyncSession) -> tuple[Any, ...]:
    """What a refused mutation must leave as it was: the references, every version,
    the audit trail."""
    refs = (
        await db.execute(
            text(
                "SELECT entity_type, entity_id, system, external_id, url FROM external_refs "
                "ORDER BY 1, 2, 3"
            )
        )
    ).all()
    versions = await db.scalar(
        text(
            "SELECT (SELECT sum(version) FROM initiatives) + (SELECT sum(version) FROM products)"
            " + (SELECT sum(version) FROM kpis) + (SELECT sum(version) FROM technical_constraints)"
        )
    )
    events = await db.scalar(select(func.count()).select_from(models.AuditEvent))
    return tuple(refs), versions, events


async def create_initiative(writer: GraphQL, key: str, refs: list[dict[str, Any]]) -> Any:
    query = f"""mutation($input: CreateInitiativeInput!) {{
      createInitiative(input: $input) {{ initiative {{ id key version {REFS} }} {ERRORS} }}
    }}"""
    answer = await writer.data(
        query, {"input": {"key": key, "title": "Synced", "externalRefs": refs}}
    )
    return answer["createInitiative"]


async def test_references_given_at_creation_are_read_back_ordered_by_system(
    writer: GraphQL,
) -> None:
    created = await create_initiative(writer, "REF-1", [SNOW, JIRA])
    assert created[ERRORS.split()[0]] == []
    assert created["initiative"]["externalRefs"] == [JIRA, SNOW]
    assert created["initiative"]["version"] == 1


async def test_both_read_paths_answer_references_lookups_and_filters_alike(
    writer: GraphQL, pair: Any
) -> None:
    await create_initiative(writer, "REF-2", [JIRA, SNOW])
    await create_initiative(writer, "REF-3", [])
    compiled, reference = pair([Scope.PORTFOLIO_READ.value])
    query = f"""{{
      initiatives(first: 5, filter: {{externalRef: {{system: "jira", externalId: "PROJ-123"}}}}) {{
        nodes {{ key {REFS} }} totalCount
      }}
      initiative(key: "REF-3") {{ key {REFS} }}
      products(first: 2) {{ nodes {{ key {REFS} }} }}
      kpis(first: 2) {{ nodes {{ key {REFS} }} }}
      technicalConstraints(first: 2) {{ nodes {{ key {REFS} }} }}
    }}"""
    got = await compiled(query)
    expected = await reference(query)
    assert got.pop("extensions")["answeredBy"] == "compiled"
    expected.pop("extensions", None)
    assert orjson.dumps(got) == orjson.dumps(expected)
    data = got["data"]
    assert data["initiatives"] == {
        "nodes": [{"key": "REF-2", "externalRefs": [JIRA, SNOW]}],
        "totalCount": 1,
    }
    assert data["initiative"] == {"key": "REF-3", "externalRefs": []}
    # The demo data gives every product a ServiceNow reference: lists of them compared too.
    assert all(
        node["externalRefs"][0]["system"] == "servicenow" for node in data["products"]["nodes"]
    )

    by_ref = """{ initiativeByExternalRef(system: "servicenow", externalId: "CHG0001") { key }
                  missing: initiativeByExternalRef(system: "jira", externalId: "NOPE-1") { key } }"""
    assert (await reference(by_ref))["data"] == {
        "initiativeByExternalRef": {"key": "REF-2"},
        "missing": None,
    }


async def test_a_filter_variable_gives_the_same_answer_on_both_paths(
    writer: GraphQL, pair: Any
) -> None:
    await create_initiative(writer, "REF-4", [JIRA])
    compiled, reference = pair([Scope.PORTFOLIO_READ.value])
    query = """query($ref: ExternalRefFilter) {
      initiatives(first: 5, filter: {externalRef: $ref}) { nodes { key } }
    }"""
    for variables in (
        {"ref": {"system": "jira", "externalId": "PROJ-123"}},
        {"ref": {"system": "jira", "externalId": "OTHER-1"}},
    ):
        got = await compiled(query, variables)
        expected = await reference(query, variables)
        got.pop("extensions", None)
        expected.pop("extensions", None)
        assert got == expected
    first = await reference(query, {"ref": {"system": "jira", "externalId": "PROJ-123"}})
    assert first["data"]["initiatives"]["nodes"] == [{"key": "REF-4"}]


SET = f"""mutation($input: SetExternalRefInput!) {{
  setInitiativeExternalRef(input: $input) {{ initiative {{ key version {REFS} }} {ERRORS} }}
}}"""
REMOVE = f"""mutation($input: RemoveExternalRefInput!) {{
  removeInitiativeExternalRef(input: $input) {{ initiative {{ key version {REFS} }} {ERRORS} }}
}}"""
HISTORY = """query($key: String!) { initiative(key: $key) { history(first: 10) {
  nodes { action changes } } } }"""


async def test_setting_and_removing_a_reference_is_a_new_version_in_the_history(
    writer: GraphQL,
) -> None:
    await create_initiative(writer, "REF-5", [JIRA])
    moved = {"system": "jira", "externalId": "PROJ-9", "url": None}
    changed = (await writer.data(SET, {"input": {"key": "REF-5", "ref": moved}}))[
        "setInitiativeExternalRef"
    ]
    assert changed == {
        "initiative": {"key": "REF-5", "version": 2, "externalRefs": [moved]},
        "userErrors": [],
    }
    again = (await writer.data(SET, {"input": {"key": "REF-5", "ref": moved}}))[
        "setInitiativeExternalRef"
    ]
    assert again["initiative"]["version"] == 2  # the same reference again: nothing changed

    removed = (await writer.data(REMOVE, {"input": {"key": "REF-5", "system": "jira"}}))[
        "removeInitiativeExternalRef"
    ]
    assert removed["initiative"] == {"key": "REF-5", "version": 3, "externalRefs": []}
    absent = (await writer.data(REMOVE, {"input": {"key": "REF-5", "system": "jira"}}))[
        "removeInitiativeExternalRef"
    ]
    assert absent["initiative"]["version"] == 3 and absent["userErrors"] == []

    history = (await writer.data(HISTORY, {"key": "REF-5"}))["initiative"]["history"]["nodes"]
    changes = [event["changes"].get("externalRefs") for event in history]
    assert changes == [
        {"before": [], "after": [JIRA]},
        {"before": [JIRA], "after": [moved]},
        {"before": [moved], "after": []},
    ]


async def test_updates_take_references_beside_their_fields(writer: GraphQL) -> None:
    await create_initiative(writer, "REF-6", [JIRA])
    query = f"""mutation($input: UpdateInitiativeInput!) {{
      updateInitiative(input: $input) {{ initiative {{ title version {REFS} }} {ERRORS} }}
    }}"""
    answer = await writer.data(
        query, {"input": {"key": "REF-6", "title": "Renamed", "externalRefs": [SNOW]}}
    )
    # One mutation, one new version, for both the title and the reference.
    assert answer["updateInitiative"] == {
        "initiative": {"title": "Renamed", "version": 2, "externalRefs": [JIRA, SNOW]},
        "userErrors": [],
    }


BAD_REFS = [
    (
        {"system": "Jira", "externalId": "A-1"},
        "externalRefs.0.system",
        "INVALID",
        "`system` must be a short lowercase name: a letter, then up to 31 letters, digits, "
        "`_`, `.` or `-` (e.g. `jira`).",
    ),
    (
        {"system": "x" * 33, "externalId": "A-1"},
        "externalRefs.0.system",
        "INVALID",
        "`system` must be a short lowercase name: a letter, then up to 31 letters, digits, "
        "`_`, `.` or `-` (e.g. `jira`).",
    ),
    (
        {"system": "jira", "externalId": "  "},
        "externalRefs.0.externalId",
        "INVALID",
        "`externalId` is empty.",
    ),
    (
        {"system": "jira", "externalId": "A" * 201},
        "externalRefs.0.externalId",
        "INVALID",
        "`externalId` is limited to 200 characters.",
    ),
    (
        {"system": "jira", "externalId": "A-1", "url": "ftp://jira.example.com/A-1"},
        "externalRefs.0.url",
        "INVALID",
        "`url` must be an absolute http:// or https:// URL.",
    ),
    (
        {"system": "jira", "externalId": "A-1", "url": "https:///no-host"},
        "externalRefs.0.url",
        "INVALID",
        "`url` must be an absolute http:// or https:// URL.",
    ),
    (
        {"system": "jira", "externalId": "A-1", "url": "https://x.example/" + "a" * 2000},
        "externalRefs.0.url",
        "INVALID",
        "`url` is limited to 2000 characters.",
    ),
]


@pytest.mark.parametrize(("ref", "field", "code", "message"), BAD_REFS)
async def test_a_malformed_reference_is_refused_and_changes_nothing(
    writer: GraphQL, db: AsyncSession, ref: dict[str, Any], field: str, code: str, message: str
) -> None:
    await create_initiative(writer, "REF-7", [])
    before = await state(db)
    query = f"""mutation($input: UpdateInitiativeInput!) {{
      updateInitiative(input: $input) {{ initiative {{ version }} {ERRORS} }}
    }}"""
    answer = await writer.data(
        query, {"input": {"key": "REF-7", "title": "Changed", "externalRefs": [ref]}}
    )
    assert answer["updateInitiative"] == {
        "initiative": None,
        "userErrors": [{"field": field, "code": code, "message": message}],
    }
    assert await state(db) == before


async def test_two_references_to_one_system_are_refused(writer: GraphQL, db: AsyncSession) -> None:
    before = await state(db)
    created = await create_initiative(
        writer, "REF-8", [JIRA, {"system": "jira", "externalId": "PROJ-2"}]
    )
    assert created == {
        "initiative": None,
        "userErrors": [
            {
                "field": "externalRefs.1.system",
                "code": "INVALID",
                "message": "`jira` is given twice: an object has one reference per system.",
            }
        ],
    }
    assert await state(db) == before


async def test_another_objects_reference_is_a_duplicate(writer: GraphQL, db: AsyncSession) -> None:
    await create_initiative(writer, "REF-9", [JIRA])
    before = await state(db)
    created = await create_initiative(writer, "REF-10", [JIRA])
    assert created == {
        "initiative": None,
        "userErrors": [
            {
                "field": "externalRefs.0.externalId",
                "code": "DUPLICATE",
                "message": "Another Initiative already has the reference `jira` `PROJ-123`.",
            }
        ],
    }
    assert await state(db) == before
    # The same reference on another type is another object's business.
    product = """mutation { createProduct(input: {key: "REFP", name: "P", lifecycleStage: IDEA,
      externalRefs: [{system: "jira", externalId: "PROJ-123"}]}) { product { key } userErrors { code } } }"""
    assert (await writer.data(product))["createProduct"] == {
        "product": {"key": "REFP"},
        "userErrors": [],
    }


async def test_writing_references_needs_the_objects_write_scope(
    caller: Any, db: AsyncSession
) -> None:
    initiative = await factories.initiative(db)
    reader = await caller([Scope.PORTFOLIO_READ.value, Scope.PRODUCTS_WRITE.value])
    before = await state(db)
    body = await reader(SET, {"input": {"id": encode_id("Initiative", initiative.id), "ref": JIRA}})
    assert body["data"] == {"setInitiativeExternalRef": None}
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert "initiatives:write" in body["errors"][0]["message"]
    assert await state(db) == before


# ---------------------------------------------------------------- keys wherever IDs


async def test_mutations_name_objects_by_key_or_reference(
    writer: GraphQL, db: AsyncSession
) -> None:
    product = await factories.product(db, key="KEYP")
    team = await factories.team(db, key="KEY-TEAM")
    await create_initiative(writer, "KEY-PARENT", [JIRA])
    child = """mutation { createInitiative(input: {key: "KEY-CHILD", title: "Child",
        parent: {externalRef: {system: "jira", externalId: "PROJ-123"}},
        ownerTeam: {key: "KEY-TEAM"}}) {
      initiative { parent { key } ownerTeam { key } } userErrors { field code message } } }"""
    assert (await writer.data(child))["createInitiative"] == {
        "initiative": {"parent": {"key": "KEY-PARENT"}, "ownerTeam": {"key": team.key}},
        "userErrors": [],
    }
    link = """mutation { linkInitiativeProduct(input: {initiative: {key: "KEY-CHILD"},
        product: {key: "KEYP"}}) { initiative { products { nodes { key } } } userErrors { code } } }"""
    assert (await writer.data(link))["linkInitiativeProduct"] == {
        "initiative": {"products": {"nodes": [{"key": product.key}]}},
        "userErrors": [],
    }
    archive = """mutation { archiveInitiative(input: {key: "KEY-CHILD"}) {
        initiative { archivedKey: key } userErrors { code } } }"""
    assert (await writer.data(archive))["archiveInitiative"]["userErrors"] == []
    status = """mutation { setInitiativeStatus(input: {key: "KEY-PARENT", status: APPROVED}) {
        initiative { status } userErrors { code } } }"""
    assert (await writer.data(status))["setInitiativeStatus"] == {
        "initiative": {"status": "APPROVED"},
        "userErrors": [],
    }


@pytest.mark.parametrize(
    ("mutation", "field", "code", "message"),
    [
        (
            'updateInitiative(input: {key: "NOPE-1", title: "X"})',
            "key",
            "NOT_FOUND",
            "No Initiative with key `NOPE-1`.",
        ),
        (
            'updateInitiative(input: {key: "KEYED-1", parent: {key: "NOPE-2"}})',
            "parent.key",
            "NOT_FOUND",
            "No Initiative with key `NOPE-2`.",
        ),
        (
            'updateInitiative(input: {key: "KEYED-1", '
            'parent: {externalRef: {system: "jira", externalId: "NOPE-3"}}})',
            "parent.externalRef",
            "NOT_FOUND",
            "No Initiative with external reference `jira` `NOPE-3`.",
        ),
        (
            'updateInitiative(input: {title: "X"})',
            None,
            "INVALID",
            "Name the Initiative by `id` or by `key`: exactly one.",
        ),
        (
            'updateInitiative(input: {key: "KEYED-1", parentId: "SW5pdGlhdGl2ZTox", '
            'parent: {key: "KEYED-1"}})',
            "parent",
            "INVALID",
            "Give `parentId` or `parent`, not both.",
        ),
        (
            'linkInitiativeProduct(input: {initiative: {key: "KEYED-1"}, product: {key: "NOPE"}})',
            "product.key",
            "NOT_FOUND",
            "No Product with key `NOPE`.",
        ),
        (
            'linkInitiativeProduct(input: {initiative: {key: "KEYED-1"}})',
            None,
            "INVALID",
            "Name the Product by `productId` or by `product`: exactly one.",
        ),
    ],
)
async def test_an_unknown_key_is_not_found_and_changes_nothing(
    writer: GraphQL, db: AsyncSession, mutation: str, field: str | None, code: str, message: str
) -> None:
    await create_initiative(writer, "KEYED-1", [])
    before = await state(db)
    links = await db.scalar(select(func.count()).select_from(models.initiative_products))
    name = mutation.split("(")[0]
    answer = await writer.data(f"mutation {{ {mutation} {{ {ERRORS} }} }}")
    assert answer[name]["userErrors"] == [{"field": field, "code": code, "message": message}]
    assert await state(db) == before
    assert await db.scalar(select(func.count()).select_from(models.initiative_products)) == links


async def test_a_lookup_with_two_names_is_refused_by_graphql(writer: GraphQL) -> None:
    body = await writer(
        'mutation { linkInitiativeProduct(input: {initiative: {key: "A", id: "B"}, '
        'product: {key: "C"}}) { userErrors { code } } }',
        status=None,
    )
    assert body["errors"][0]["message"].startswith(
        "OneOf Input Object 'InitiativeLookup' must specify exactly one key."
    )


async def test_lookups_by_reference_are_compiled_and_answer_as_the_resolvers(
    writer: GraphQL, pair: Any
) -> None:
    await create_initiative(writer, "REF-11", [JIRA])
    compiled, reference = pair([Scope.PORTFOLIO_READ.value])
    query = """query($system: String!, $id: String!) {
      initiativeByExternalRef(system: $system, externalId: $id) { key externalRefs { system } }
      literal: initiativeByExternalRef(system: "jira", externalId: "PROJ-123") { key }
      missing: kpiByExternalRef(system: "jira", externalId: "PROJ-123") { key }
    }"""
    for external_id in ("PROJ-123", "PROJ-404"):
        variables = {"system": "jira", "id": external_id}
        got = await compiled(query, variables)
        expected = await reference(query, variables)
        assert got.pop("extensions")["answeredBy"] in {"compiled", "repeated"}
        expected.pop("extensions", None)
        assert orjson.dumps(got) == orjson.dumps(expected)
    found = await reference(query, {"system": "jira", "id": "PROJ-123"})
    assert found["data"] == {
        "initiativeByExternalRef": {"key": "REF-11", "externalRefs": [{"system": "jira"}]},
        "literal": {"key": "REF-11"},
        "missing": None,
    }
