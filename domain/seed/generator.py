"""A synthetic portfolio of any size, for benchmarks.

Per product: 10 initiatives in two themes (epics, one sub-epic each), the four shared
KPIs with 30 measurements each over the year, and 2 technical constraints (one on the
product, one on a couple of its initiatives); one team per 5 products. Keys (``G0001``,
``G0001-I01``, ``G0001-UPTIME``, ``G0001-C1``, ``GT0001``) never collide with the demo's.

Each product draws from its own ``Random(f"{seed}:{key}")``, so product G0042 is the same
whether 100 or 2,000 products are generated (only its cross-product links differ).
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from datetime import date, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from domain.models import (
    ConstraintCategory,
    ConstraintSeverity,
    ConstraintStatus,
    Initiative,
    InitiativeStatus,
    Kpi,
    KpiMeasurement,
    KpiStatus,
    LifecycleStage,
    Product,
    Team,
    TeamKind,
    TechnicalConstraint,
    constraint_initiatives,
    constraint_products,
    initiative_kpis,
    initiative_products,
)
from domain.seed.bulk import Row, assign_ids, copy_rows, insert_keyed, key_exists, table_of
from domain.seed.kpi_kinds import (
    ADOPTION,
    KPI_KINDS,
    LOAD_TIME,
    REFERENCE_DATE,
    KpiKind,
    observation_days,
    observed_at,
)
from domain.seed.report import SeedReport
from domain.seed.roadmap import RICE_INPUTS, UNSCORED, WSJF_INPUTS, roll_up, scoring_inputs

DATASET = "generated portfolio"
SOURCE = "generated-seed"
PRODUCTS_PER_TEAM = 5
MEASUREMENTS_PER_KPI = 30
# Initiative layout per product, as (number, parent number): two themes, three epics
# each, and one sub-epic under the first epic of each theme.
LAYOUT: Sequence[tuple[int, int | None]] = (
    (1, None), (2, 1), (3, 1), (4, 1), (5, 2),
    (6, None), (7, 6), (8, 6), (9, 6), (10, 7),
)  # fmt: skip
# Initiatives that exist to move a KPI: (initiative number, KPI kind).
KPI_LINKS: Sequence[tuple[int, KpiKind]] = ((2, LOAD_TIME), (7, ADOPTION))
PARENT = dict(LAYOUT)

S = InitiativeStatus
STAGES = list(LifecycleStage)
STAGE_WEIGHTS = (1, 3, 4, 5, 1)  # IDEA .. SUNSET: most products are live
KPI_STATUS_WEIGHTS = {
    KpiStatus.ON_TARGET: 50,
    KpiStatus.OFF_TARGET: 20,
    KpiStatus.WARNING: 20,
    KpiStatus.CRITICAL: 10,
}
SEVERITY_WEIGHTS = {
    ConstraintSeverity.BLOCKER: 10,
    ConstraintSeverity.HIGH: 25,
    ConstraintSeverity.MEDIUM: 40,
    ConstraintSeverity.LOW: 25,
}
CONSTRAINT_STATUS_WEIGHTS = {
    ConstraintStatus.OPEN: 35,
    ConstraintStatus.MITIGATING: 20,
    ConstraintStatus.RESOLVED: 30,
    ConstraintStatus.ACCEPTED: 15,
}

AREAS = (
    "Pricing", "Inventory", "Returns", "Invoicing", "Recommendations", "Reviews",
    "Notifications", "Warehouse", "Subscriptions", "Gift Cards", "Promotions", "Support",
    "Shipping", "Tax", "Fraud Detection", "Analytics", "Identity", "Media", "Marketplace",
    "Partner Portal", "Store Locator", "Wishlist", "Order History", "Price Alerts",
)  # fmt: skip
PRODUCT_SUFFIXES = ("Service", "Platform", "Portal", "Engine", "Hub", "API", "App", "Console")
TEAM_SUFFIXES = {
    TeamKind.BUSINESS: "Business Unit",
    TeamKind.TECHNOLOGY: "Engineering",
    TeamKind.CROSS_FUNCTIONAL: "Squad",
}
THEMES = (
    "Grow conversion", "Cut operating cost", "Scale for peak season", "Modernise the stack",
    "Delight returning customers", "Stay compliant", "Open new markets", "Self-service first",
)  # fmt: skip
VERBS = (
    "Redesign", "Automate", "Migrate", "Speed up", "Simplify", "Localise", "Instrument",
    "Harden", "Personalise", "Consolidate", "Replatform", "Expose an API for",
)  # fmt: skip
OBJECTS = (
    "the onboarding flow", "search results", "the admin console", "reporting",
    "partner integrations", "mobile screens", "the data pipeline", "notifications",
    "the billing run", "access control", "the batch jobs", "the product feed",
)  # fmt: skip
CONSTRAINT_TITLES = {
    ConstraintCategory.SECURITY: ("Dependency with a known critical CVE", "Secrets in config files"),
    ConstraintCategory.COMPLIANCE: ("Audit trail incomplete for SOX", "PCI scope not documented"),
    ConstraintCategory.SCALABILITY: ("Database at 80% of its connection limit",
                                     "Queue consumers cannot scale out"),
    ConstraintCategory.PERFORMANCE: ("p95 latency above the SLO at peak", "N+1 queries on lists"),
    ConstraintCategory.ARCHITECTURE: ("Shared database with another product",
                                      "Synchronous call chain of five services"),
    ConstraintCategory.INFRASTRUCTURE: ("Runtime version out of support",
                                        "Single availability zone"),
    ConstraintCategory.DATA: ("Customer data duplicated across systems",
                              "No retention policy for logs with personal data"),
    ConstraintCategory.LEGAL: ("Contract forbids data transfer outside the EU",
                               "Licence of a component not approved"),
    ConstraintCategory.OTHER: ("Key-person dependency", "Vendor contract ends next year"),
}  # fmt: skip


def product_key(number: int) -> str:
    return f"G{number:04d}"


async def seed_generated(session: AsyncSession, products: int, seed: int = 42) -> SeedReport:
    """Insert a synthetic portfolio of ``products`` products unless one is already there
    (G0001 exists; its size is not compared). Flushes through COPY, never commits."""
    if products < 1:
        raise ValueError("products must be at least 1")
    dataset = f"{DATASET} ({products:,} products, seed {seed})"
    if await key_exists(session, Product, product_key(1)):
        return SeedReport(dataset, skipped=True)

    team_kinds = _team_kinds(max(3, math.ceil(products / PRODUCTS_PER_TEAM)))
    teams = await insert_keyed(session, Team, _team_rows(team_kinds))
    owners = {kind: [teams[key] for key, k in team_kinds.items() if k is kind] for kind in TeamKind}
    rngs = [random.Random(f"{seed}:{product_key(n)}") for n in range(1, products + 1)]
    product_rows = [_product_row(n, rng, owners) for n, rng in enumerate(rngs, 1)]
    product_ids = await insert_keyed(session, Product, product_rows)
    product_list = list(product_ids.values())

    initiative_rows: list[Row] = []
    product_links: list[Row] = []
    for n, (product, rng) in enumerate(zip(product_rows, rngs, strict=True), 1):
        rows = _initiatives(product, rng, owners[TeamKind.CROSS_FUNCTIONAL])
        initiative_rows += rows
        # Links draw from their own generator: how many products exist changes the draws.
        link_rng = random.Random(f"{seed}:{product_key(n)}:links")
        product_links += _product_links(rows, product_list[n - 1], product_list, link_rng)
    initiative_ids = await assign_ids(session, table_of(Initiative), initiative_rows)
    for row in initiative_rows:
        parent_key = row.pop("parent_key")
        row["parent_id"] = initiative_ids[parent_key] if parent_key else None
    await copy_rows(session, Initiative, initiative_rows)
    await copy_rows(
        session,
        initiative_products,
        [{"initiative_id": initiative_ids[link.pop("key")]} | link for link in product_links],
    )

    constraints = await _insert_constraints(session, rngs, product_list, initiative_ids)
    kpis, measurements = await _insert_kpis(session, rngs, product_rows)
    await copy_rows(
        session,
        initiative_kpis,
        [
            {
                "initiative_id": initiative_ids[f"{product_key(n)}-I{number:02d}"],
                "kpi_id": kpis[f"{product_key(n)}-{kind.suffix}"],
            }
            for n in range(1, products + 1)
            for number, kind in KPI_LINKS
        ],
    )
    return SeedReport(
        dataset,
        teams=len(teams),
        products=len(product_ids),
        initiatives=len(initiative_ids),
        constraints=constraints,
        kpis=len(kpis),
        measurements=measurements,
    )


def _team_kinds(count: int) -> dict[str, TeamKind]:
    kinds = list(TeamKind)  # cycled, so every kind is present from three teams on
    return {f"GT{n:04d}": kinds[(n - 1) % len(kinds)] for n in range(1, count + 1)}


def _team_rows(team_kinds: dict[str, TeamKind]) -> list[Row]:
    return [
        {
            "key": key,
            "kind": kind,
            "name": f"{AREAS[n % len(AREAS)]} {TEAM_SUFFIXES[kind]} {n + 1}",
            "description": "Generated for benchmarks.",
        }
        for n, (key, kind) in enumerate(team_kinds.items())
    ]


def _product_row(number: int, rng: random.Random, owners: dict[TeamKind, list[int]]) -> Row:
    area = AREAS[(number - 1) % len(AREAS)]
    name = f"{area} {rng.choice(PRODUCT_SUFFIXES)}"
    business, technology = owners[TeamKind.BUSINESS], owners[TeamKind.TECHNOLOGY]
    # Five products per team: neighbouring products share owners, like real portfolios.
    slot = (number - 1) // PRODUCTS_PER_TEAM
    return {
        "key": product_key(number),
        "name": name,
        "description": f"{name}: generated product {number} for benchmarks.",
        "lifecycle_stage": rng.choices(STAGES, STAGE_WEIGHTS)[0],
        "business_owner_team_id": business[slot % len(business)],
        "technology_owner_team_id": technology[slot % len(technology)],
    }


def _status_on(start: date, end: date, rng: random.Random) -> InitiativeStatus:
    """A status consistent with the dates, as seen on the reference date."""
    if end < REFERENCE_DATE:
        return S.CANCELLED if rng.random() < 0.15 else S.DONE
    if start <= REFERENCE_DATE:
        return S.CANCELLED if rng.random() < 0.05 else S.IN_PROGRESS
    return S.APPROVED if rng.random() < 0.4 else S.PROPOSED


def _theme_status(children: list[InitiativeStatus]) -> InitiativeStatus:
    """A theme's status from its epics'."""
    if S.IN_PROGRESS in children:
        return S.IN_PROGRESS
    if all(s is S.CANCELLED for s in children):
        return S.CANCELLED
    if all(s in (S.DONE, S.CANCELLED) for s in children):
        return S.DONE
    if any(s in (S.DONE, S.CANCELLED) for s in children):
        return S.IN_PROGRESS  # some delivered, some still ahead
    return S.APPROVED if S.APPROVED in children else S.PROPOSED


def _initiatives(product: Row, rng: random.Random, squads: list[int]) -> list[Row]:
    """Ten initiatives of one product, parents first; ``parent_key`` is resolved later."""
    key = product["key"]
    rows: dict[int, Row] = {}
    for n, parent in LAYOUT:
        row: Row = {
            "key": f"{key}-I{n:02d}",
            "parent_key": f"{key}-I{parent:02d}" if parent else None,
            "owner_team_id": _owner(product, parent is None, rng, squads),
        }
        if parent is None:
            theme = rng.choice(THEMES)
            row |= UNSCORED | {
                "title": f"{theme} ({key})",
                "summary": f"Theme: {theme.lower()} for product {key}.",
                "target_start": None,
                "target_end": None,
            }
        else:
            # An epic (under a theme) gets its own span; a sub-epic one inside its epic's.
            epic = rows[parent] if PARENT[parent] is not None else None
            start, end = _dates(rng, epic)
            title = f"{rng.choice(VERBS)} {rng.choice(OBJECTS)}"
            missing: list[str] = []
            if rng.random() < 0.05:  # not everything is estimated yet
                missing.append(rng.choice(RICE_INPUTS))
            if rng.random() < 0.05:
                missing.append(rng.choice(WSJF_INPUTS))
            months = (end - start).days / 30
            row |= scoring_inputs(rng, months, missing) | {
                "title": title,
                "summary": f"{title} for {product['name']} ({key}).",
                "target_start": start,
                "target_end": end,
                "status": S.CANCELLED
                if epic is not None and epic["status"] is S.CANCELLED
                else _status_on(start, end, rng),
            }
        rows[n] = row
    for n, parent in reversed(LAYOUT):  # children first, so costs add up through levels
        if parent is not None:
            roll_up(rows[parent], rows[n])
    for n, parent in LAYOUT:
        if parent is None:
            children = [rows[c]["status"] for c, p in LAYOUT if p == n]
            rows[n]["status"] = _theme_status(children)
    return list(rows.values())


def _owner(product: Row, is_theme: bool, rng: random.Random, squads: list[int]) -> int:
    """Themes belong to the business owner; epics mostly to the technology owner, some to a
    cross-functional squad."""
    if is_theme:
        return int(product["business_owner_team_id"])
    if rng.random() < 0.2:
        return rng.choice(squads)
    return int(product["technology_owner_team_id"])


def _dates(rng: random.Random, parent: Row | None) -> tuple[date, date]:
    """An epic's span around the reference date, or a sub-epic's inside its epic's."""
    if parent is None:
        start = REFERENCE_DATE + timedelta(days=rng.randint(-420, 300))
        return start, start + timedelta(days=rng.randint(30, 270))
    span = (parent["target_end"] - parent["target_start"]).days
    start = parent["target_start"] + timedelta(days=rng.randint(0, span // 2))
    return start, min(parent["target_end"], start + timedelta(days=rng.randint(14, 120)))


def _product_links(
    rows: list[Row], product_id: int, all_products: list[int], rng: random.Random
) -> list[Row]:
    """Every initiative touches its own product; about one in five also one or two others."""
    links = []
    for row in rows:
        linked = {product_id}
        if len(all_products) > 1 and rng.random() < 0.2:
            linked |= set(rng.sample(all_products, k=min(len(all_products), rng.randint(1, 2))))
        links += [{"key": row["key"], "product_id": p} for p in sorted(linked)]
    return links


async def _insert_constraints(
    session: AsyncSession,
    rngs: list[random.Random],
    product_ids: list[int],
    initiative_ids: dict[str, int],
) -> int:
    rows: list[Row] = []
    on_products: list[tuple[str, int]] = []
    on_initiatives: list[tuple[str, int]] = []
    for n, rng in enumerate(rngs, 1):
        key = product_key(n)
        for c in (1, 2):
            row = _constraint_row(f"{key}-C{c}", rng)
            rows.append(row)
            if c == 1:  # the product-wide one
                on_products.append((row["key"], product_ids[n - 1]))
            else:  # the one on a couple of epics
                for i in rng.sample(range(2, 11), k=rng.randint(1, 2)):
                    on_initiatives.append((row["key"], initiative_ids[f"{key}-I{i:02d}"]))
    ids = await insert_keyed(session, TechnicalConstraint, rows)
    await copy_rows(
        session,
        constraint_products,
        [{"constraint_id": ids[c], "product_id": p} for c, p in on_products],
    )
    await copy_rows(
        session,
        constraint_initiatives,
        [{"constraint_id": ids[c], "initiative_id": i} for c, i in on_initiatives],
    )
    return len(ids)


def _weighted(rng: random.Random, weights: dict[Any, int]) -> Any:
    return rng.choices(list(weights), list(weights.values()))[0]


def _constraint_row(key: str, rng: random.Random) -> Row:
    category = rng.choice(list(ConstraintCategory))
    status: ConstraintStatus = _weighted(rng, CONSTRAINT_STATUS_WEIGHTS)
    due: date | None = REFERENCE_DATE + timedelta(days=rng.randint(-180, 270))
    if status is ConstraintStatus.RESOLVED:
        due = REFERENCE_DATE - timedelta(days=rng.randint(1, 300))
    elif status is ConstraintStatus.ACCEPTED:
        due = None  # an accepted risk has no deadline
    title = rng.choice(CONSTRAINT_TITLES[category])
    return {
        "key": key,
        "title": title,
        "description": f"{title}. Generated for benchmarks.",
        "category": category,
        "severity": _weighted(rng, SEVERITY_WEIGHTS),
        "status": status,
        "mitigation_plan": None if status is ConstraintStatus.OPEN else "Tracked in the backlog.",
        "due_date": due,
    }


async def _insert_kpis(
    session: AsyncSession,
    rngs: list[random.Random],
    products: list[Row],
) -> tuple[dict[str, int], int]:
    """The four shared KPIs per product and their measurements; returns key → id and the
    number of measurements."""
    rows: list[Row] = []
    series: list[tuple[str, list[date], list[float]]] = []
    for product, rng in zip(products, rngs, strict=True):
        for kind in KPI_KINDS:
            # Adoption is the business owner's number; the other three the builders'.
            owner = product[
                "business_owner_team_id" if kind is ADOPTION else "technology_owner_team_id"
            ]
            kpi_key = f"{product['key']}-{kind.suffix}"
            rows.append(kind.row(kpi_key, product["name"], product["id"], owner))
            # Mostly on target, some short of it, some warning, a few critical, as a real
            # portfolio looks.
            end = rng.uniform(*kind.bands[_weighted(rng, KPI_STATUS_WEIGHTS)])
            start = rng.uniform(*kind.bands[KpiStatus.ON_TARGET])
            days = observation_days(MEASUREMENTS_PER_KPI, rng)
            series.append((kpi_key, days, kind.series(start, end, len(days), rng)))
    ids = await insert_keyed(session, Kpi, rows)
    measurements = [
        {
            "kpi_id": ids[kpi_key],
            "observed_at": observed_at(day),
            "value": value,
            "source": SOURCE,
            "external_id": f"{kpi_key}:{day.isoformat()}",
        }
        for kpi_key, days, values in series
        for day, value in zip(days, values, strict=True)
    ]
    return ids, await copy_rows(session, KpiMeasurement, measurements)
