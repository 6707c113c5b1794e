"""The read graph over real HTTP: lookups, nodes, edges both ways, filters, computed fields."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from domain import models
from schema.ids import encode_id
from tests.conftest import GraphQL
from tests.fixtures import factories


async def test_demo_portfolio_is_queryable(gql: GraphQL, db: AsyncSession) -> None:
    data = await gql.data(
        "{ products(first: 100) { totalCount nodes { key kpis { totalCount } } } "
        "initiatives { totalCount } technicalConstraints { totalCount } glossaryTerms { totalCount } }"
    )
    products = await db.scalar(select(func.count()).select_from(models.Product))
    assert products is not None  # count() always answers one row
    assert data["products"]["totalCount"] == products >= 8
    assert all(p["kpis"]["totalCount"] >= 4 for p in data["products"]["nodes"])
    assert data["initiatives"]["totalCount"] >= 50
    assert data["technicalConstraints"]["totalCount"] >= 15
    assert data["glossaryTerms"]["totalCount"] >= 10


async def test_product_by_key_with_edges_both_ways(gql: GraphQL, db: AsyncSession) -> None:
    owner = await factories.team(db, name="Owners")
    product = await factories.product(db, technology_owner_team_id=owner.id)
    parent = await factories.initiative(db, title="Theme")
    child = await factories.initiative(db, products=[product], parent_id=parent.id)
    kpi = await factories.kpi(db, product_id=product.id, owner_team_id=owner.id)
    await factories.link(db, models.initiative_kpis, initiative_id=child.id, kpi_id=kpi.id)
    rule = await factories.constraint(
        db, products=[product], status=models.ConstraintStatus.RESOLVED
    )
    await db.commit()

    data = (
        await gql.data(
            """query($key: String!) { product(key: $key) {
            id key technologyOwnerTeam { key products { nodes { key } } }
            initiatives { nodes { key parent { key children { nodes { key } } }
                                  products { nodes { key } } kpis { nodes { key } } } }
            constraints { nodes { key products { nodes { key } } } }
            kpis { nodes { key product { key } ownerTeam { key } initiatives { nodes { key } } } }
        } }""",
            {"key": product.key},
        )
    )["product"]
    assert data["id"] == encode_id("Product", product.id)
    assert data["technologyOwnerTeam"] == {
        "key": owner.key,
        "products": {"nodes": [{"key": product.key}]},
    }
    assert data["initiatives"]["nodes"] == [
        {
            "key": child.key,
            "parent": {"key": parent.key, "children": {"nodes": [{"key": child.key}]}},
            "products": {"nodes": [{"key": product.key}]},
            "kpis": {"nodes": [{"key": kpi.key}]},
        }
    ]
    assert data["constraints"]["nodes"] == [
        {"key": rule.key, "products": {"nodes": [{"key": product.key}]}}
    ]
    assert data["kpis"]["nodes"] == [
        {
            "key": kpi.key,
            "product": {"key": product.key},
            "ownerTeam": {"key": owner.key},
            "initiatives": {"nodes": [{"key": child.key}]},
        }
    ]


async def test_node_and_nodes_resolve_every_type(gql: GraphQL, db: AsyncSession) -> None:
    team = await factories.team(db)
    product = await factories.product(db)
    initiative = await factories.initiative(db)
    constraint = await factories.constraint(db)
    kpi = await factories.kpi(db)
    term = await factories.add(db, models.GlossaryTerm(term="Zeta term", definition="A test."))
    ids = [
        encode_id("Team", team.id),
        encode_id("Product", product.id),
        encode_id("Initiative", initiative.id),
        encode_id("TechnicalConstraint", constraint.id),
        encode_id("Kpi", kpi.id),
        encode_id("GlossaryTerm", term.id),
        encode_id("Product", 987654321),
    ]
    await db.commit()
    data = await gql.data(
        """query($ids: [ID!]!, $one: ID!) {
            nodes(ids: $ids) { __typename id }
            node(id: $one) { ... on Initiative { key } }
        }""",
        {"ids": ids, "one": ids[2]},
    )
    assert [n and n["__typename"] for n in data["nodes"]] == [
        "Team",
        "Product",
        "Initiative",
        "TechnicalConstraint",
        "Kpi",
        "GlossaryTerm",
        None,
    ]
    assert [n["id"] for n in data["nodes"][:-1]] == ids[:-1]
    assert data["node"] == {"key": initiative.key}


async def test_archived_rows_are_invisible(gql: GraphQL, db: AsyncSession) -> None:
    product = await factories.product(db, archived_at=datetime.now(UTC))
    await db.commit()
    data = await gql.data(
        "query($key: String!, $id: ID!) { product(key: $key) { key } node(id: $id) { id } "
        "products(filter: {keys: [$key]}) { totalCount } }",
        {"key": product.key, "id": encode_id("Product", product.id)},
    )
    assert data == {"product": None, "node": None, "products": {"totalCount": 0}}


async def test_scores_and_their_explanations(gql: GraphQL, db: AsyncSession) -> None:
    scored = await factories.initiative(
        db,
        reach=1000,
        impact=2,
        confidence=0.8,
        effort=4,
        business_value=8,
        time_criticality=5,
        risk_reduction=3,
        job_size=5,
    )
    unscored = await factories.initiative(db, reach=10, impact=1, effort=2)
    await db.commit()
    query = (
        "query($k: [String!]) { initiatives(filter: {keys: $k}) { nodes { key riceScore wsjfScore "
        "rice { score explanation } wsjf { score explanation } } } }"
    )
    nodes = (await gql.data(query, {"k": [scored.key, unscored.key]}))["initiatives"]["nodes"]
    by_key = {n["key"]: n for n in nodes}
    assert by_key[scored.key]["riceScore"] == 400.0
    assert by_key[scored.key]["wsjfScore"] == 3.2
    assert by_key[scored.key]["rice"]["explanation"].endswith("= 400")
    assert by_key[unscored.key]["riceScore"] is None
    assert by_key[unscored.key]["rice"] == {
        "score": None,
        "explanation": "Not scored: missing confidence",
    }
    assert by_key[unscored.key]["wsjf"]["explanation"] == (
        "Not scored: missing businessValue, timeCriticality, riskReduction, jobSize"
    )


async def test_blocked_directly_through_a_product_and_not_when_resolved(
    gql: GraphQL, db: AsyncSession
) -> None:
    product = await factories.product(db)
    via_product = await factories.initiative(db, products=[product])
    direct = await factories.initiative(db)
    free = await factories.initiative(db, products=[await factories.product(db)])
    product_blocker = await factories.constraint(db, products=[product])
    direct_blocker = await factories.constraint(
        db, initiatives=[direct], status=models.ConstraintStatus.MITIGATING
    )
    # Neither a resolved blocker nor an open HIGH constraint blocks.
    await factories.constraint(db, initiatives=[free], status=models.ConstraintStatus.RESOLVED)
    await factories.constraint(db, initiatives=[free], severity=models.ConstraintSeverity.HIGH)
    await db.commit()
    keys = [via_product.key, direct.key, free.key]
    nodes = (
        await gql.data(
            "query($k: [String!]) { initiatives(filter: {keys: $k}) "
            "{ nodes { key isBlocked blockedBy { key } } } }",
            {"k": keys},
        )
    )["initiatives"]["nodes"]
    assert {n["key"]: (n["isBlocked"], [c["key"] for c in n["blockedBy"]]) for n in nodes} == {
        via_product.key: (True, [product_blocker.key]),
        direct.key: (True, [direct_blocker.key]),
        free.key: (False, []),
    }
    blocked_only = await gql.data(
        "query($k: [String!]) { initiatives(filter: {keys: $k, isBlocked: true}) "
        "{ nodes { key } } }",
        {"k": keys},
    )
    assert sorted(n["key"] for n in blocked_only["initiatives"]["nodes"]) == sorted(
        [via_product.key, direct.key]
    )


async def test_kpi_status_latest_trend_and_series(gql: GraphQL, db: AsyncSession) -> None:
    uptime = await factories.kpi(db)  # higher is better: warning 99.5, critical 99.0
    load_time = await factories.kpi(
        db,
        direction=models.KpiDirection.LOWER_IS_BETTER,
        unit="ms",
        target=800,
        warning_threshold=1200,
        critical_threshold=2000,
    )
    silent = await factories.kpi(db)
    start = datetime(2026, 1, 5, tzinfo=UTC)  # a Monday
    rows = []
    for day in range(60):
        rows.append(
            models.KpiMeasurement(
                kpi_id=uptime.id,
                observed_at=start + timedelta(days=day),
                # ends at 99.59: better than warning 99.5, short of target 99.9: OFF_TARGET
                value=99.0 + day / 100,
                source="test",
                external_id=f"u{day}",
            )
        )
        rows.append(
            models.KpiMeasurement(
                kpi_id=load_time.id,
                observed_at=start + timedelta(days=day),
                value=1000 + day * 10,  # worsening, ends at 1590 → WARNING
                source="test",
                external_id=f"l{day}",
            )
        )
    db.add_all(rows)
    await db.commit()
    data = await gql.data(
        """query($k: [String!]) { kpis(filter: {keys: $k}, orderBy: {field: KEY}) { nodes {
            key status latestValue latest { value observedAt }
            trend(windowDays: 14) { direction currentAverage previousAverage }
            series(from: "2026-01-05T00:00:00Z", to: "2026-01-19T00:00:00Z", bucket: WEEK) {
              bucketStart average minimum maximum count }
        } } }""",
        {"k": [uptime.key, load_time.key, silent.key]},
    )
    by_key = {n["key"]: n for n in data["kpis"]["nodes"]}
    assert by_key[uptime.key]["status"] == "OFF_TARGET"
    assert by_key[uptime.key]["latestValue"] == 99.59
    assert by_key[uptime.key]["latest"]["observedAt"].startswith("2026-03-05")
    assert by_key[uptime.key]["trend"]["direction"] == "STABLE"  # +0.14 on 99.4 is < 1%
    assert by_key[load_time.key]["status"] == "WARNING"
    assert by_key[load_time.key]["trend"]["direction"] == "WORSENING"
    assert by_key[silent.key]["status"] == "NO_DATA"
    assert by_key[silent.key]["latest"] is None
    assert by_key[silent.key]["trend"]["direction"] == "NO_DATA"
    assert by_key[silent.key]["series"] == []
    weeks = by_key[load_time.key]["series"]
    assert [w["bucketStart"][:10] for w in weeks] == ["2026-01-05", "2026-01-12"]
    assert weeks[0] == {
        "bucketStart": weeks[0]["bucketStart"],
        "average": 1030.0,
        "minimum": 1000.0,
        "maximum": 1060.0,
        "count": 7,
    }


async def test_kpi_status_filter_and_critical(gql: GraphQL, db: AsyncSession) -> None:
    critical = await factories.kpi(db)
    db.add(
        models.KpiMeasurement(
            kpi_id=critical.id,
            observed_at=datetime(2026, 2, 1, tzinfo=UTC),
            value=98.0,
            source="test",
            external_id="crit",
        )
    )
    await db.commit()
    data = await gql.data(
        "query($k: [String!]) { kpis(filter: {keys: $k, statuses: [CRITICAL]}) "
        "{ nodes { key status } } }",
        {"k": [critical.key]},
    )
    assert data["kpis"]["nodes"] == [{"key": critical.key, "status": "CRITICAL"}]


async def test_filters_narrow_initiatives(gql: GraphQL, db: AsyncSession) -> None:
    team = await factories.team(db)
    product = await factories.product(db)
    match = await factories.initiative(
        db,
        title="Tokenise stored cards",
        status=models.InitiativeStatus.APPROVED,
        owner_team_id=team.id,
        products=[product],
        target_start=date(2026, 3, 1),
        target_end=date(2026, 6, 30),
    )
    await factories.initiative(
        db, title="Tokenise stored cards", status=models.InitiativeStatus.DONE, products=[product]
    )
    await db.commit()
    data = await gql.data(
        """query($p: ID!, $t: ID!) { initiatives(filter: {
             products: [$p], ownerTeams: [$t], statuses: [APPROVED, IN_PROGRESS],
             targetStartFrom: "2026-01-01", targetEndTo: "2026-12-31", search: "tokeni card"
           }) { totalCount nodes { key } } }""",
        {"p": encode_id("Product", product.id), "t": encode_id("Team", team.id)},
    )
    assert data["initiatives"] == {"totalCount": 1, "nodes": [{"key": match.key}]}


async def test_constraint_filters(gql: GraphQL, db: AsyncSession) -> None:
    product = await factories.product(db)
    wanted = await factories.constraint(
        db,
        products=[product],
        category=models.ConstraintCategory.COMPLIANCE,
        severity=models.ConstraintSeverity.HIGH,
        status=models.ConstraintStatus.MITIGATING,
    )
    await factories.constraint(db, products=[product])
    await db.commit()
    data = await gql.data(
        """query($p: ID!) { technicalConstraints(filter: {products: [$p], categories: [COMPLIANCE],
             severities: [HIGH], statuses: [MITIGATING]}) { nodes { key } } }""",
        {"p": encode_id("Product", product.id)},
    )
    assert data["technicalConstraints"]["nodes"] == [{"key": wanted.key}]


async def test_lookups_by_key_return_null_when_unknown(gql: GraphQL) -> None:
    data = await gql.data(
        '{ product(key: "NOPE") { key } initiative(key: "NOPE-1") { key } '
        'kpi(key: "NOPE") { key } team(key: "NOPE") { key } '
        'technicalConstraint(key: "NOPE") { key } glossaryTerm(term: "Nope") { term } }'
    )
    assert set(data.values()) == {None}
