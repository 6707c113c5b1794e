"""Load the demo portfolio (``demo_data.py``) into a database, once."""

from __future__ import annotations

import random
from datetime import date, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from domain.models import (
    ExternalRef,
    GlossaryTerm,
    Initiative,
    Kpi,
    KpiMeasurement,
    Product,
    Team,
    TechnicalConstraint,
    constraint_initiatives,
    constraint_products,
    initiative_kpis,
    initiative_products,
)
from domain.models.external_refs import OWNER_COLUMNS
from domain.seed import demo_data as data
from domain.seed.bulk import Row, assign_ids, copy_rows, insert_keyed, key_exists, table_of
from domain.seed.kpi_kinds import (
    ADOPTION,
    HISTORY_DAYS,
    INCIDENTS,
    LOAD_TIME,
    REFERENCE_DATE,
    UPTIME,
    KpiKind,
    latest_observation_day,
    observation_days,
    observed_at,
)
from domain.seed.report import SeedReport
from domain.seed.roadmap import UNSCORED, roll_up, scoring_inputs

DATASET = "demo portfolio"
MARKER_PRODUCT = "PAY"  # present ⇔ the demo was loaded
SEED = 20261101
SOURCE = "demo-seed"
JIRA = "https://jira.example.com/browse/"


async def seed_demo(session: AsyncSession, measured_until: date = REFERENCE_DATE) -> SeedReport:
    """Insert the demo portfolio unless it is already there. Flushes, never commits.

    Every KPI's year of daily measurements ends on ``measured_until``: the fixed
    REFERENCE_DATE keeps tests deterministic; ``portfolio serve --demo`` and ``seed
    --demo`` pass the database's today (``demo_day``) so the demo's KPIs are fresh. The
    roadmap's and constraints' dates are the demo's story and stay as written."""
    if await key_exists(session, Product, MARKER_PRODUCT):
        return SeedReport(DATASET, skipped=True)

    teams = await insert_keyed(session, Team, [t._asdict() for t in data.TEAMS])
    products = await insert_keyed(session, Product, _product_rows(teams))
    initiatives = await _insert_initiatives(session, teams)
    await copy_rows(
        session,
        initiative_products,
        [
            {"initiative_id": initiatives[i.key], "product_id": products[p]}
            for i in data.INITIATIVES
            for p in i.products.split()
        ],
    )
    constraints = await _insert_constraints(session, products, initiatives)
    kpis, series = await _insert_kpis(session, teams, products)
    await copy_rows(
        session,
        initiative_kpis,
        [{"initiative_id": initiatives[i], "kpi_id": kpis[k]} for i, k in data.INITIATIVE_KPIS],
    )
    measurements = await copy_rows(
        session, KpiMeasurement, _measurement_rows(kpis, series, measured_until)
    )
    terms = await copy_rows(session, GlossaryTerm, [t._asdict() for t in data.GLOSSARY])
    await copy_rows(session, ExternalRef, _external_ref_rows(products, initiatives))
    return SeedReport(
        DATASET,
        teams=len(teams),
        products=len(products),
        initiatives=len(initiatives),
        constraints=len(constraints),
        kpis=len(kpis),
        measurements=measurements,
        glossary_terms=terms,
    )


def _external_ref_rows(products: dict[str, int], initiatives: dict[str, int]) -> list[Row]:
    """Jira issues for every other initiative and a ServiceNow service for each product:
    references as a sync job would have set them (read on both paths, filterable)."""
    rows: list[Row] = []
    for number, key in enumerate(sorted(initiatives)):
        if number % 2 == 0:
            issue = f"PORT-{100 + number}"
            pk = initiatives[key]
            rows.append(_ref_row("Initiative", "initiative_id", pk, "jira", issue, JIRA + issue))
    for number, key in enumerate(sorted(products)):
        service = f"SVC{1000 + number}"
        rows.append(_ref_row("Product", "product_id", products[key], "servicenow", service, None))
    return rows


def _ref_row(
    entity_type: str, column: str, pk: int, system: str, external_id: str, url: str | None
) -> Row:
    # COPY takes one column list for all rows: every owner column, one of them set.
    owners = dict.fromkeys(OWNER_COLUMNS.values()) | {column: pk}
    return {
        "entity_type": entity_type,
        **owners,
        "system": system,
        "external_id": external_id,
        "url": url,
    }


def _product_rows(teams: dict[str, int]) -> list[Row]:
    return [
        {
            "key": p.key,
            "name": p.name,
            "description": p.description,
            "lifecycle_stage": p.stage,
            "business_owner_team_id": teams[p.business_owner],
            "technology_owner_team_id": teams[p.technology_owner],
        }
        for p in data.PRODUCTS
    ]


async def _insert_initiatives(session: AsyncSession, teams: dict[str, int]) -> dict[str, int]:
    rows = {i.key: _initiative_row(i, teams) for i in data.INITIATIVES}
    ids = await assign_ids(session, table_of(Initiative), list(rows.values()))
    # The table lists parents before children, so walking it backwards rolls each child
    # (already holding its own children) into its parent: a parent spans its children's
    # dates, and its cost is its own estimate plus theirs.
    for i in reversed(data.INITIATIVES):
        if i.parent is not None:
            rows[i.key]["parent_id"] = ids[i.parent]
            roll_up(rows[i.parent], rows[i.key])
    await copy_rows(session, Initiative, list(rows.values()))
    return ids


def _initiative_row(i: data.DemoInitiative, teams: dict[str, int]) -> Row:
    row: Row = {
        "key": i.key,
        "title": i.title,
        "summary": i.summary,
        "status": i.status,
        "owner_team_id": teams[i.owner],
        "parent_id": None,
    }
    if i.start is None or i.months is None:  # a theme: spans its epics, set by roll_up
        return row | UNSCORED | {"target_start": None, "target_end": None}
    start, end = _month_span(i.start, i.months)
    # Seeded per key: editing one row of the table does not reshuffle the others' numbers.
    rng = random.Random(f"{SEED}:{i.key}")
    missing = data.MISSING_SCORE_INPUTS.get(i.key, ())
    return row | {"target_start": start, "target_end": end} | scoring_inputs(rng, i.months, missing)


def _month_span(start: str, months: int) -> tuple[date, date]:
    """("2026-03", 4) → 2026-03-01 .. 2026-06-30."""
    year, month = (int(part) for part in start.split("-"))
    after = month - 1 + months
    return date(year, month, 1), date(year + after // 12, after % 12 + 1, 1) - timedelta(days=1)


async def _insert_constraints(
    session: AsyncSession, products: dict[str, int], initiatives: dict[str, int]
) -> dict[str, int]:
    rows = [
        {
            "key": c.key,
            "title": c.title,
            "description": c.description,
            "category": c.category,
            "severity": c.severity,
            "status": c.status,
            "mitigation_plan": c.mitigation,
            "due_date": c.due,
        }
        for c in sorted(data.CONSTRAINTS, key=lambda c: c.key)
    ]
    ids = await insert_keyed(session, TechnicalConstraint, rows)
    await copy_rows(
        session,
        constraint_products,
        [
            {"constraint_id": ids[c.key], "product_id": products[p]}
            for c in data.CONSTRAINTS
            for p in c.products.split()
        ],
    )
    await copy_rows(
        session,
        constraint_initiatives,
        [
            {"constraint_id": ids[c.key], "initiative_id": initiatives[i]}
            for c in data.CONSTRAINTS
            for i in c.initiatives.split()
        ],
    )
    return ids


async def _insert_kpis(
    session: AsyncSession, teams: dict[str, int], products: dict[str, int]
) -> tuple[dict[str, int], dict[str, list[float]]]:
    """The four shared KPIs per product; returns key → id and key → the year's values."""
    rows: list[Row] = []
    series: dict[str, list[float]] = {}
    for p in data.PRODUCTS:
        profile = data.PRODUCT_KPIS[p.key]
        target, warning, critical = profile.adoption_thresholds
        adoption = f"Share of active users who used {profile.adoption_feature} in the last 30 days."
        per_kind: list[tuple[KpiKind, data.KpiProfile, str, dict[str, Any]]] = [
            (UPTIME, profile.uptime, data.UPTIME_OWNER, {}),
            (
                ADOPTION,
                profile.adoption,
                p.business_owner,
                {
                    "description": adoption,
                    "target": target,
                    "warning_threshold": warning,
                    "critical_threshold": critical,
                },
            ),
            (LOAD_TIME, profile.load_time, p.technology_owner, {}),
            (INCIDENTS, profile.incidents, p.technology_owner, {}),
        ]
        for kind, levels, owner, overrides in per_kind:
            key = f"{p.key}-{kind.suffix}"
            rows.append(kind.row(key, p.name, products[p.key], teams[owner]) | overrides)
            rng = random.Random(f"{SEED}:{key}")
            series[key] = kind.series(levels.start, levels.end, HISTORY_DAYS, rng)
    return await insert_keyed(session, Kpi, rows), series


async def demo_day(session: AsyncSession) -> date:
    """The day a demo loaded now ends its measurements on, by the database's clock (the
    one freshness is judged by)."""
    now = await session.scalar(select(func.now()))
    assert now is not None
    return latest_observation_day(now)


def _measurement_rows(
    kpis: dict[str, int], series: dict[str, list[float]], last: date
) -> list[Row]:
    days = observation_days(HISTORY_DAYS, last=last)
    return [
        {
            "kpi_id": kpis[key],
            "observed_at": observed_at(day),
            "value": value,
            "source": SOURCE,
            "external_id": f"{key}:{day.isoformat()}",
        }
        for key, values in series.items()
        for day, value in zip(days, values, strict=True)
    ]
