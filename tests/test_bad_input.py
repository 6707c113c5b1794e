"""Bad input gets a precise, coded error and never a 500."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from schema.ids import encode_id
from tests.conftest import GraphQL
from tests.fixtures import factories


def only_error(body: dict[str, Any]) -> dict[str, Any]:
    assert len(body["errors"]) == 1, body["errors"]
    return body["errors"][0]


@pytest.mark.parametrize(
    "bad_id",
    [
        "not-base64-!!",
        base64.urlsafe_b64encode(b"Product").decode(),
        base64.urlsafe_b64encode(b"Product:abc").decode(),
        base64.urlsafe_b64encode(b"Product:-3").decode(),
        base64.urlsafe_b64encode(b"\xff\xfe:1").decode(),
        "",
    ],
)
async def test_malformed_global_id(gql: GraphQL, bad_id: str) -> None:
    body = await gql("query($id: ID!) { node(id: $id) { id } }", {"id": bad_id})
    error = only_error(body)
    assert error["extensions"] == {"code": "INVALID", "field": "id"}
    assert error["message"] == f"`{bad_id}` is not a valid global ID."
    assert body["data"] == {"node": None}


async def test_unknown_ids_are_null_without_error(gql: GraphQL) -> None:
    body = await gql(
        "query($ids: [ID!]!) { nodes(ids: $ids) { id } }",
        {"ids": [encode_id("Product", 99999999), encode_id("Spaceship", 1)]},
    )
    assert body["data"] == {"nodes": [None, None]}
    assert "errors" not in body


async def test_too_many_nodes(gql: GraphQL) -> None:
    ids = [encode_id("Product", n) for n in range(1, 102)]
    error = only_error(await gql("query($ids: [ID!]!) { nodes(ids: $ids) { id } }", {"ids": ids}))
    assert error["extensions"] == {"code": "INVALID", "field": "ids"}
    assert error["message"] == "`ids` takes at most 100 IDs; got 101."


@pytest.mark.parametrize(
    ("arguments", "field", "message"),
    [
        ("first: 101", "first", "`first` must be between 0 and 100; got 101."),
        ("last: 500", "last", "`last` must be between 0 and 100; got 500."),
        ("first: -1", "first", "`first` must be between 0 and 100; got -1."),
        ("first: 1, last: 1", "first", "Pass either `first` or `last`, not both."),
        ('after: "garbage"', "after", "`after` is not a valid cursor."),
        (
            'filter: {search: "  ?! "}',
            "filter.search",
            "`search` must contain at least one letter or digit.",
        ),
        (
            'filter: {targetStartFrom: "2026-05-01", targetStartTo: "2026-01-01"}',
            "filter.targetStart",
            "`targetStart`: the end is before the start.",
        ),
        (
            f'filter: {{products: ["{encode_id("Team", 1)}"]}}',
            "filter.products",
            "`filter.products` expects Product IDs; got a Team ID.",
        ),
    ],
)
async def test_invalid_list_arguments(
    gql: GraphQL, arguments: str, field: str, message: str
) -> None:
    body = await gql(f"{{ initiatives({arguments}) {{ totalCount }} }}")
    error = only_error(body)
    assert error["extensions"] == {"code": "INVALID", "field": field}
    assert error["message"] == message
    assert error["path"] == ["initiatives"]
    assert body["data"] == {"initiatives": None}


async def test_cursor_of_another_ordering_is_refused(gql: GraphQL) -> None:
    page = await gql.data("{ initiatives(first: 1) { pageInfo { endCursor } } }")
    cursor = page["initiatives"]["pageInfo"]["endCursor"]
    body = await gql(
        "query($c: String!) { initiatives(first: 1, after: $c, orderBy: {field: TITLE}) "
        "{ totalCount } }",
        {"c": cursor},
    )
    error = only_error(body)
    assert error["extensions"] == {"code": "INVALID", "field": "after"}
    assert error["message"] == "`after` was issued for ordering KEY, not TITLE."


async def test_oversized_nested_page(gql: GraphQL) -> None:
    body = await gql("{ products(first: 1) { nodes { initiatives(first: 1000) { totalCount } } } }")
    error = only_error(body)
    assert error["extensions"]["code"] == "INVALID"
    assert error["message"] == "`first` must be between 0 and 100; got 1000."
    assert error["path"] == ["products", "nodes", 0, "initiatives"]


async def test_search_too_long(gql: GraphQL) -> None:
    body = await gql(
        "query($s: String) { products(filter: {search: $s}) { totalCount } }", {"s": "a" * 201}
    )
    error = only_error(body)
    assert error["extensions"] == {"code": "INVALID", "field": "filter.search"}
    assert error["message"] == "`search` is limited to 200 characters."


@pytest.mark.parametrize(
    ("arguments", "field", "message"),
    [
        (
            'from: "2026-02-01T00:00:00Z", to: "2026-01-01T00:00:00Z"',
            "to",
            "`to` must be after `from`.",
        ),
        (
            'from: "2000-01-01T00:00:00Z", to: "2026-01-01T00:00:00Z", bucket: HOUR',
            "bucket",
            "At most 10000 buckets per series: widen `bucket` or shorten the range.",
        ),
    ],
)
async def test_invalid_series(
    gql: GraphQL, db: AsyncSession, arguments: str, field: str, message: str
) -> None:
    kpi = await factories.kpi(db)
    await db.commit()
    body = await gql(f'{{ kpi(key: "{kpi.key}") {{ series({arguments}) {{ count }} }} }}')
    error = only_error(body)
    assert error["extensions"] == {"code": "INVALID", "field": field}
    assert error["message"] == message


async def test_invalid_trend_window(gql: GraphQL, db: AsyncSession) -> None:
    kpi = await factories.kpi(db)
    await db.commit()
    body = await gql(f'{{ kpi(key: "{kpi.key}") {{ trend(windowDays: 0) {{ direction }} }} }}')
    error = only_error(body)
    assert error["extensions"] == {"code": "INVALID", "field": "windowDays"}
    assert error["message"] == "`windowDays` must be between 1 and 366; got 0."


async def test_unknown_field_is_a_validation_error(gql: GraphQL) -> None:
    body = await gql("{ products { nodes { price } } }")
    error = only_error(body)
    assert error["extensions"] == {"code": "GRAPHQL_VALIDATION_FAILED"}
    assert error["message"] == "Cannot query field 'price' on type 'Product'."
    assert "data" not in body or body["data"] is None


async def test_wrong_argument_type_is_a_validation_error(gql: GraphQL) -> None:
    body = await gql('{ products(first: "ten") { totalCount } }')
    error = only_error(body)
    assert error["extensions"] == {"code": "GRAPHQL_VALIDATION_FAILED"}
    assert error["message"].startswith("Int cannot represent non-integer value")


async def test_unknown_enum_value_in_filter(gql: GraphQL) -> None:
    body = await gql("{ initiatives(filter: {statuses: [SHIPPED]}) { totalCount } }")
    error = only_error(body)
    assert error["extensions"] == {"code": "GRAPHQL_VALIDATION_FAILED"}
    assert "SHIPPED" in error["message"]


async def test_syntax_error(gql: GraphQL) -> None:
    # application/json keeps 200 for request errors (GraphQL over HTTP, legacy media type).
    body = await gql("{ products { ")
    error = only_error(body)
    assert error["extensions"] == {"code": "GRAPHQL_PARSE_FAILED"}
    assert error["message"].startswith("Syntax Error")


async def test_variables_of_the_wrong_shape(gql: GraphQL) -> None:
    body = await gql("query($n: Int) { products(first: $n) { totalCount } }", {"n": "ten"})
    error = only_error(body)
    assert error["extensions"] == {"code": "BAD_USER_INPUT"}
    assert error["message"] == (
        "Variable '$n' has invalid value: Int cannot represent non-integer value: 'ten'"
    )


# Primary keys are bigint: a global ID whose number does not fit names nothing.
TOO_LARGE = [2**63, 2**70, 10**40]


@pytest.mark.parametrize("number", TOO_LARGE)
async def test_a_global_id_beyond_64_bits_is_invalid(gql: GraphQL, number: int) -> None:
    bad_id = encode_id("Product", number)
    message = f"`{bad_id[:64]}` is not a valid global ID."
    body = await gql("query($id: ID!) { node(id: $id) { id } }", {"id": bad_id})
    assert only_error(body)["extensions"] == {"code": "INVALID", "field": "id"}
    assert only_error(body)["message"] == message
    assert body["data"] == {"node": None}

    good = encode_id("Product", 1)
    body = await gql("query($ids: [ID!]!) { nodes(ids: $ids) { id } }", {"ids": [good, bad_id]})
    error = only_error(body)
    assert (error["extensions"], error["message"], error["path"]) == (
        {"code": "INVALID", "field": "ids"},
        message,
        ["nodes", 1],
    )
    assert body["data"]["nodes"][0] == {"id": good}
    assert body["data"]["nodes"][1] is None


async def test_the_largest_bigint_is_a_valid_id_of_nothing(gql: GraphQL) -> None:
    body = await gql(
        "query($id: ID!) { node(id: $id) { id } }", {"id": encode_id("Product", 2**63 - 1)}
    )
    assert body == {"data": {"node": None}, "extensions": body["extensions"]}


ARCHIVES = ["archiveTeam", "archiveProduct", "archiveInitiative", "archiveKpi"]


@pytest.mark.parametrize("mutation", ARCHIVES)
async def test_archiving_by_an_id_beyond_64_bits_is_a_user_error(
    writer: GraphQL, mutation: str
) -> None:
    entity = mutation.removeprefix("archive")
    bad_id = encode_id(entity, 2**64)
    body = await writer(
        f"mutation($id: ID!) {{ {mutation}(input: {{id: $id}}) "
        "{ userErrors { field code message } } }",
        {"id": bad_id},
    )
    assert "errors" not in body, body
    assert body["data"][mutation]["userErrors"] == [
        {"field": "id", "code": "INVALID", "message": f"`{bad_id}` is not a valid global ID."}
    ]


COST_MESSAGE = "`estimatedCost` must be a finite number of at most 12 digits before the point."


@pytest.mark.parametrize(
    "cost",
    [
        "1e400",
        "-1e400",
        "NaN",
        "sNaN",
        "Infinity",
        "-Infinity",
        "99999999999999999999999.999",
        "1000000000000",
        "999999999999.995",  # rounds (as PostgreSQL would) to 13 digits
    ],
)
async def test_an_estimated_cost_the_column_cannot_hold_is_invalid(
    writer: GraphQL, db: AsyncSession, cost: str
) -> None:
    initiative = await factories.initiative(db)
    await db.commit()
    before = await db.scalar(text("SELECT count(*) FROM initiatives"))
    created = await writer(
        "mutation($cost: Decimal) { createInitiative(input: "
        '{key: "COST-1", title: "Costly", estimatedCost: $cost}) '
        "{ initiative { key } userErrors { field code message } } }",
        {"cost": cost},
    )
    assert created["data"]["createInitiative"] == {
        "initiative": None,
        "userErrors": [{"field": "estimatedCost", "code": "INVALID", "message": COST_MESSAGE}],
    }
    assert await db.scalar(text("SELECT count(*) FROM initiatives")) == before
    updated = await writer(
        "mutation($id: ID!, $cost: Decimal) { updateInitiative(input: "
        "{id: $id, estimatedCost: $cost}) "
        "{ initiative { key } userErrors { field code message } } }",
        {"id": encode_id("Initiative", initiative.id), "cost": cost},
    )
    assert updated["data"]["updateInitiative"]["userErrors"] == [
        {"field": "estimatedCost", "code": "INVALID", "message": COST_MESSAGE}
    ]
    await db.refresh(initiative)
    assert initiative.version == 1


async def test_the_largest_estimated_cost_the_column_holds_is_stored(
    writer: GraphQL, db: AsyncSession
) -> None:
    body = await writer(
        "mutation { createInitiative(input: "
        '{key: "COST-2", title: "Costly", estimatedCost: "999999999999.994"}) '
        "{ initiative { estimatedCost } userErrors { field } } }"
    )
    assert body["data"]["createInitiative"] == {
        "initiative": {"estimatedCost": "999999999999.99"},
        "userErrors": [],
    }


UNSTORABLE = ["9999-12-31T23:59:59-01:00", "0001-01-01T00:30:00+01:00"]
OUT_OF_RANGE = "It is outside the years 1 to 9999 once in UTC."


@pytest.mark.parametrize("instant", UNSTORABLE)
async def test_an_instant_beyond_year_9999_in_utc_is_a_coercion_error(
    gql: GraphQL, instant: str
) -> None:
    """Python holds it in its own offset; PostgreSQL, sent it in UTC, could not."""
    error = only_error(
        await gql('query($t: DateTime!) { initiative(key: "X", asOf: $t) { key } }', {"t": instant})
    )
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert error["message"] == (
        f"Variable '$t' has invalid value: Value cannot represent a DateTime: \"{instant}\". "
        + OUT_OF_RANGE
    )
    error = only_error(await gql(f'{{ initiative(key: "X", asOf: "{instant}") {{ key }} }}'))
    assert error["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    assert OUT_OF_RANGE in error["message"]


@pytest.mark.parametrize("instant", UNSTORABLE)
async def test_an_unstorable_observed_at_is_refused_and_nothing_is_stored(
    writer: GraphQL, db: AsyncSession, instant: str
) -> None:
    """The bulk fast path falls back to the ordinary path, which refuses it."""
    before = await db.scalar(text("SELECT count(*) FROM kpi_measurements"))
    kpi = await db.scalar(text("SELECT key FROM kpis ORDER BY key LIMIT 1"))
    body = await writer(
        "mutation($m: [KpiMeasurementInput!]!) { recordKpiMeasurements("
        "input: {measurements: $m}) { inserted } }",
        {
            "m": [
                {
                    "kpiKey": kpi,
                    "observedAt": "2026-01-01T00:00:00Z",
                    "value": 1.0,
                    "source": "t",
                    "externalId": "ok",
                },
                {
                    "kpiKey": kpi,
                    "observedAt": instant,
                    "value": 1.0,
                    "source": "t",
                    "externalId": "bad",
                },
            ]
        },
    )
    error = only_error(body)
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert OUT_OF_RANGE in error["message"]
    assert await db.scalar(text("SELECT count(*) FROM kpi_measurements")) == before
