"""Inputs of the mutations (the filters and orderings of lists are in
``schema/types/filters.py``). Update inputs leave out what they do not change (UNSET);
keys are set at creation and never change."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

import strawberry

from domain.models.kpi import DEFAULT_EXPECTED_INTERVAL_SECONDS
from schema.types.enums import (
    ConstraintCategory,
    ConstraintSeverity,
    ConstraintStatus,
    InitiativeStatus,
    KpiDirection,
    KpiImportance,
    LifecycleStage,
    TeamKind,
)

UNSET: Any = strawberry.UNSET
ID = strawberry.ID
VERSION = "The version you read; if it is no longer current the change is refused with CONFLICT."


def given(description: str, default: Any = UNSET) -> Any:
    return strawberry.field(default=default, description=description)


def required(description: str) -> Any:
    return strawberry.field(description=description)


@strawberry.input(description="Create a team.")
class CreateTeamInput:
    key: str = required("Unique key, e.g. `PAYMENTS-ENG`; cannot change later.")
    name: str = required("Display name.")
    kind: TeamKind = required("Business, technology or cross-functional.")
    description: str | None = given("What the team does.", None)


@strawberry.input(description="Change a team; fields left out stay as they are.")
class UpdateTeamInput:
    id: ID = required("The team.")
    expected_version: int | None = given(VERSION, None)
    name: str | None = given("Display name.")
    kind: TeamKind | None = given("Business, technology or cross-functional.")
    description: str | None = given("What the team does.")


@strawberry.input(description="Create a product.")
class CreateProductInput:
    key: str = required("Unique key, e.g. `PAY`; cannot change later.")
    name: str = required("Display name.")
    lifecycle_stage: LifecycleStage = required("Where the product is in its life.")
    description: str | None = given("What the product does, for whom.", None)
    business_owner_team_id: ID | None = given("Team accountable for business outcomes.", None)
    technology_owner_team_id: ID | None = given("Team that builds and runs it.", None)


@strawberry.input(description="Change a product; fields left out stay as they are.")
class UpdateProductInput:
    id: ID = required("The product.")
    expected_version: int | None = given(VERSION, None)
    name: str | None = given("Display name.")
    lifecycle_stage: LifecycleStage | None = given("Where the product is in its life.")
    description: str | None = given("What the product does, for whom.")
    business_owner_team_id: ID | None = given("Team accountable for business outcomes.")
    technology_owner_team_id: ID | None = given("Team that builds and runs it.")


@strawberry.input(description="Create an initiative.")
class CreateInitiativeInput:
    key: str = required("Unique key, e.g. `PAY-12`; cannot change later.")
    title: str = required("Short title.")
    status: InitiativeStatus = given("PROPOSED (default) or APPROVED.", InitiativeStatus.PROPOSED)
    summary: str | None = given("What and why.", None)
    target_start: date | None = given("Planned start.", None)
    target_end: date | None = given("Planned end, not before the start.", None)
    parent_id: ID | None = given("The theme or epic it belongs to.", None)
    owner_team_id: ID | None = given("The team that owns it.", None)
    reach: int | None = given("RICE reach (≥ 0).", None)
    impact: float | None = given("RICE impact, above 0 and at most 3.", None)
    confidence: float | None = given("RICE confidence, 0 to 1.", None)
    effort: float | None = given("RICE effort in person-months (> 0).", None)
    business_value: int | None = given("WSJF business value, 1 to 20.", None)
    time_criticality: int | None = given("WSJF time criticality, 1 to 20.", None)
    risk_reduction: int | None = given("WSJF risk reduction, 1 to 20.", None)
    job_size: int | None = given("WSJF job size, 1 to 20.", None)
    estimated_cost: Decimal | None = given("Estimated cost (≥ 0).", None)


@strawberry.input(
    description="Change an initiative; fields left out stay as they are. Use "
    "`setInitiativeStatus` to change its status."
)
class UpdateInitiativeInput:
    id: ID = required("The initiative.")
    expected_version: int | None = given(VERSION, None)
    title: str | None = given("Short title.")
    summary: str | None = given("What and why.")
    target_start: date | None = given("Planned start.")
    target_end: date | None = given("Planned end, not before the start.")
    parent_id: ID | None = given("The theme or epic it belongs to; null makes it a theme.")
    owner_team_id: ID | None = given("The team that owns it.")
    reach: int | None = given("RICE reach (≥ 0).")
    impact: float | None = given("RICE impact, above 0 and at most 3.")
    confidence: float | None = given("RICE confidence, 0 to 1.")
    effort: float | None = given("RICE effort in person-months (> 0).")
    business_value: int | None = given("WSJF business value, 1 to 20.")
    time_criticality: int | None = given("WSJF time criticality, 1 to 20.")
    risk_reduction: int | None = given("WSJF risk reduction, 1 to 20.")
    job_size: int | None = given("WSJF job size, 1 to 20.")
    estimated_cost: Decimal | None = given("Estimated cost (≥ 0).")


@strawberry.input(
    description="Move an initiative along PROPOSED → APPROVED → IN_PROGRESS → "
    "DONE, or to CANCELLED."
)
class SetInitiativeStatusInput:
    id: ID = required("The initiative.")
    status: InitiativeStatus = required("The new status; IN_PROGRESS is refused while blocked.")
    expected_version: int | None = given(VERSION, None)


@strawberry.input(description="Create a technical constraint.")
class CreateTechnicalConstraintInput:
    key: str = required("Unique key, e.g. `SEC-3`; cannot change later.")
    title: str = required("Short title.")
    category: ConstraintCategory = required("Kind of limit.")
    severity: ConstraintSeverity = required("How hard it limits delivery.")
    status: ConstraintStatus = given("Where it stands; OPEN by default.", ConstraintStatus.OPEN)
    description: str | None = given("The limit, in detail.", None)
    mitigation_plan: str | None = given("How it will be lifted.", None)
    due_date: date | None = given("When the mitigation is due.", None)


@strawberry.input(
    description="Change a technical constraint; fields left out stay as they are. "
    "Use `setConstraintStatus` to change its status."
)
class UpdateTechnicalConstraintInput:
    id: ID = required("The constraint.")
    expected_version: int | None = given(VERSION, None)
    title: str | None = given("Short title.")
    category: ConstraintCategory | None = given("Kind of limit.")
    severity: ConstraintSeverity | None = given("How hard it limits delivery.")
    description: str | None = given("The limit, in detail.")
    mitigation_plan: str | None = given("How it will be lifted.")
    due_date: date | None = given("When the mitigation is due.")


@strawberry.input(description="Move a constraint between OPEN, MITIGATING, RESOLVED and ACCEPTED.")
class SetConstraintStatusInput:
    id: ID = required("The constraint.")
    status: ConstraintStatus = required("The new status.")
    expected_version: int | None = given(VERSION, None)


IT_IMPORTANCE = "How much it matters to IT (null: unrated)."
PRODUCT_IMPORTANCE = "How much it matters to product (null: unrated)."
EXPECTED_INTERVAL = (
    "How often a measurement is expected, in seconds: 60 (a minute) to 31622400 (366 days); "
    "a KPI whose latest measurement is older is stale."
)


@strawberry.input(description="Create a KPI.")
class CreateKpiInput:
    key: str = required("Unique key, e.g. `PAY-UPTIME`; cannot change later.")
    name: str = required("Display name.")
    unit: str = required("Unit of the values, e.g. `%` or `ms`.")
    direction: KpiDirection = required("Which way is better.")
    it_relevance: str = required("Why it matters to IT.")
    product_relevance: str = required("Why it matters to product.")
    description: str | None = given("What is measured, and how.", None)
    target: float | None = given("The value aimed for.", None)
    warning_threshold: float | None = given("Where WARNING starts.", None)
    critical_threshold: float | None = given("Where CRITICAL starts (worse than warning).", None)
    it_importance_level: KpiImportance | None = given(IT_IMPORTANCE, None)
    product_importance_level: KpiImportance | None = given(PRODUCT_IMPORTANCE, None)
    expected_interval_seconds: int = given(
        EXPECTED_INTERVAL + " A day by default.", DEFAULT_EXPECTED_INTERVAL_SECONDS
    )
    product_id: ID | None = given("The product it measures.", None)
    owner_team_id: ID | None = given("The team that owns it.", None)


@strawberry.input(description="Change a KPI; fields left out stay as they are.")
class UpdateKpiInput:
    id: ID = required("The KPI.")
    expected_version: int | None = given(VERSION, None)
    name: str | None = given("Display name.")
    unit: str | None = given("Unit of the values.")
    direction: KpiDirection | None = given("Which way is better.")
    it_relevance: str | None = given("Why it matters to IT.")
    product_relevance: str | None = given("Why it matters to product.")
    description: str | None = given("What is measured, and how.")
    target: float | None = given("The value aimed for.")
    warning_threshold: float | None = given("Where WARNING starts.")
    critical_threshold: float | None = given("Where CRITICAL starts (worse than warning).")
    it_importance_level: KpiImportance | None = given(IT_IMPORTANCE)
    product_importance_level: KpiImportance | None = given(PRODUCT_IMPORTANCE)
    expected_interval_seconds: int | None = given(EXPECTED_INTERVAL)
    product_id: ID | None = given("The product it measures.")
    owner_team_id: ID | None = given("The team that owns it.")


@strawberry.input(description="Create a glossary term.")
class CreateGlossaryTermInput:
    term: str = required("The term, unique.")
    definition: str = required("A neutral definition.")
    business_meaning: str | None = given("What it means to the business.", None)
    technical_meaning: str | None = given("What it means to technology.", None)


@strawberry.input(description="Change a glossary term; fields left out stay as they are.")
class UpdateGlossaryTermInput:
    id: ID = required("The term.")
    expected_version: int | None = given(VERSION, None)
    term: str | None = given("The term, unique.")
    definition: str | None = given("A neutral definition.")
    business_meaning: str | None = given("What it means to the business.")
    technical_meaning: str | None = given("What it means to technology.")


@strawberry.input(
    description="Archive (soft-delete) an object: it leaves every list and lookup; "
    "its history stays."
)
class ArchiveInput:
    id: ID = required("The object to archive.")
    expected_version: int | None = given(VERSION, None)


@strawberry.input(description="An initiative and a product to link or unlink.")
class InitiativeProductInput:
    initiative_id: ID = required("The initiative.")
    product_id: ID = required("The product.")


@strawberry.input(description="A constraint and a product to link or unlink.")
class ConstraintProductInput:
    constraint_id: ID = required("The technical constraint.")
    product_id: ID = required("The product.")


@strawberry.input(description="A constraint and an initiative to link or unlink.")
class ConstraintInitiativeInput:
    constraint_id: ID = required("The technical constraint.")
    initiative_id: ID = required("The initiative.")


@strawberry.input(description="An initiative and a KPI it aims to move, to link or unlink.")
class InitiativeKpiInput:
    initiative_id: ID = required("The initiative.")
    kpi_id: ID = required("The KPI.")


@strawberry.input(description="One observed value of a KPI.")
class KpiMeasurementInput:
    kpi_key: str = required("Key of the KPI, e.g. `PAY-UPTIME`.")
    observed_at: datetime = required("When it was observed, with a time zone offset.")
    value: float = required("The value, in the KPI's unit.")
    source: str = required("Your system's name, e.g. `datadog` (1 to 100 characters).")
    external_id: str = required(
        "Your ID for this measurement (1 to 200 characters); re-sending the same "
        "(source, externalId) is a no-op."
    )


@strawberry.input(description="A batch of KPI measurements.")
class RecordKpiMeasurementsInput:
    measurements: list[KpiMeasurementInput] = required("Up to 10,000 measurements.")
