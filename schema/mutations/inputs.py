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
    MeasurementConflict,
    TeamKind,
)

UNSET: Any = strawberry.UNSET
ID = strawberry.ID
VERSION = "The version you read; if it is no longer current the change is refused with CONFLICT."


def given(description: str, default: Any = UNSET) -> Any:
    return strawberry.field(default=default, description=description)


def required(description: str) -> Any:
    return strawberry.field(description=description)


REFS = (
    "Its IDs in other systems, one per system: each replaces that system's reference; "
    "the others stay (`removeExternalRef` removes one)."
)


@strawberry.input(description="An object's ID (and URL) in another system, e.g. Jira.")
class ExternalRefInput:
    system: str = required(
        "The other system: a short lowercase name (a letter, then up to 31 letters, digits, "
        "`_`, `.` or `-`), e.g. `jira`."
    )
    external_id: str = required("The object's ID there, e.g. `PROJ-123` (1 to 200 characters).")
    url: str | None = given(
        "Where to see it there: an http(s) URL of at most 2000 characters.", None
    )


@strawberry.input(description="One external reference to look an object up by.")
class ExternalRefKey:
    system: str = required("The other system, e.g. `jira`.")
    external_id: str = required("The object's ID there, e.g. `PROJ-123`.")


def _lookup_doc(type_name: str, example: str) -> str:
    return (
        f"A {type_name} named by exactly one of its global ID, its key (e.g. `{example}`)"
        " or one of its external references."
    )


@strawberry.input(one_of=True, description="A team named by exactly one of its global ID or key.")
class TeamLookup:
    id: ID | None = given("Its global ID.")
    key: str | None = given("Its key, e.g. `PAYMENTS-ENG`.")


@strawberry.input(one_of=True, description=_lookup_doc("product", "PAY"))
class ProductLookup:
    id: ID | None = given("Its global ID.")
    key: str | None = given("Its key, e.g. `PAY`.")
    external_ref: ExternalRefKey | None = given("One of its external references.")


@strawberry.input(one_of=True, description=_lookup_doc("initiative", "CHK-103"))
class InitiativeLookup:
    id: ID | None = given("Its global ID.")
    key: str | None = given("Its key, e.g. `CHK-103`.")
    external_ref: ExternalRefKey | None = given("One of its external references.")


@strawberry.input(one_of=True, description=_lookup_doc("technical constraint", "SEC-3"))
class TechnicalConstraintLookup:
    id: ID | None = given("Its global ID.")
    key: str | None = given("Its key, e.g. `SEC-3`.")
    external_ref: ExternalRefKey | None = given("One of its external references.")


@strawberry.input(one_of=True, description=_lookup_doc("KPI", "PAY-UPTIME"))
class KpiLookup:
    id: ID | None = given("Its global ID.")
    key: str | None = given("Its key, e.g. `PAY-UPTIME`.")
    external_ref: ExternalRefKey | None = given("One of its external references.")


# The object a change is about: by `id` or by `key`, exactly one.
BY_ID = "The object by global ID; or give `key` instead."
BY_KEY = "The object by key, instead of `id`."


@strawberry.input(description="Create a team.")
class CreateTeamInput:
    key: str = required("Unique key, e.g. `PAYMENTS-ENG`; cannot change later.")
    name: str = required("Display name.")
    kind: TeamKind = required("Business, technology or cross-functional.")
    description: str | None = given("What the team does.", None)


@strawberry.input(description="Change a team; fields left out stay as they are.")
class UpdateTeamInput:
    id: ID | None = given(BY_ID, None)
    key: str | None = given(BY_KEY, None)
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
    business_owner_team: TeamLookup | None = given(
        "Team accountable for business outcomes, by ID or key (instead of `businessOwnerTeamId`)."
    )
    technology_owner_team: TeamLookup | None = given(
        "Team that builds and runs it, by ID or key (instead of `technologyOwnerTeamId`)."
    )
    external_refs: list[ExternalRefInput] | None = given(REFS)


@strawberry.input(description="Change a product; fields left out stay as they are.")
class UpdateProductInput:
    id: ID | None = given(BY_ID, None)
    key: str | None = given(BY_KEY, None)
    expected_version: int | None = given(VERSION, None)
    name: str | None = given("Display name.")
    lifecycle_stage: LifecycleStage | None = given("Where the product is in its life.")
    description: str | None = given("What the product does, for whom.")
    business_owner_team_id: ID | None = given("Team accountable for business outcomes.")
    technology_owner_team_id: ID | None = given("Team that builds and runs it.")
    business_owner_team: TeamLookup | None = given(
        "Team accountable for business outcomes, by ID or key (instead of `businessOwnerTeamId`)."
    )
    technology_owner_team: TeamLookup | None = given(
        "Team that builds and runs it, by ID or key (instead of `technologyOwnerTeamId`)."
    )
    external_refs: list[ExternalRefInput] | None = given(REFS)


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
    parent: InitiativeLookup | None = given(
        "The theme or epic it belongs to, by ID, key or reference (instead of `parentId`)."
    )
    owner_team: TeamLookup | None = given(
        "The team that owns it, by ID or key (instead of `ownerTeamId`)."
    )
    external_refs: list[ExternalRefInput] | None = given(REFS)


@strawberry.input(
    description="Change an initiative; fields left out stay as they are. Use "
    "`setInitiativeStatus` to change its status."
)
class UpdateInitiativeInput:
    id: ID | None = given(BY_ID, None)
    key: str | None = given(BY_KEY, None)
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
    parent: InitiativeLookup | None = given(
        "The theme or epic it belongs to, by ID, key or reference (instead of `parentId`)."
    )
    owner_team: TeamLookup | None = given(
        "The team that owns it, by ID or key (instead of `ownerTeamId`)."
    )
    external_refs: list[ExternalRefInput] | None = given(REFS)


@strawberry.input(
    description="Move an initiative along PROPOSED → APPROVED → IN_PROGRESS → "
    "DONE, or to CANCELLED."
)
class SetInitiativeStatusInput:
    id: ID | None = given(BY_ID, None)
    key: str | None = given(BY_KEY, None)
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
    external_refs: list[ExternalRefInput] | None = given(REFS)


@strawberry.input(
    description="Change a technical constraint; fields left out stay as they are. "
    "Use `setConstraintStatus` to change its status."
)
class UpdateTechnicalConstraintInput:
    id: ID | None = given(BY_ID, None)
    key: str | None = given(BY_KEY, None)
    expected_version: int | None = given(VERSION, None)
    title: str | None = given("Short title.")
    category: ConstraintCategory | None = given("Kind of limit.")
    severity: ConstraintSeverity | None = given("How hard it limits delivery.")
    description: str | None = given("The limit, in detail.")
    mitigation_plan: str | None = given("How it will be lifted.")
    due_date: date | None = given("When the mitigation is due.")
    external_refs: list[ExternalRefInput] | None = given(REFS)


@strawberry.input(description="Move a constraint between OPEN, MITIGATING, RESOLVED and ACCEPTED.")
class SetConstraintStatusInput:
    id: ID | None = given(BY_ID, None)
    key: str | None = given(BY_KEY, None)
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
    product: ProductLookup | None = given(
        "The product it measures, by ID, key or reference (instead of `productId`)."
    )
    owner_team: TeamLookup | None = given(
        "The team that owns it, by ID or key (instead of `ownerTeamId`)."
    )
    external_refs: list[ExternalRefInput] | None = given(REFS)


@strawberry.input(description="Change a KPI; fields left out stay as they are.")
class UpdateKpiInput:
    id: ID | None = given(BY_ID, None)
    key: str | None = given(BY_KEY, None)
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
    product: ProductLookup | None = given(
        "The product it measures, by ID, key or reference (instead of `productId`)."
    )
    owner_team: TeamLookup | None = given(
        "The team that owns it, by ID or key (instead of `ownerTeamId`)."
    )
    external_refs: list[ExternalRefInput] | None = given(REFS)


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
    id: ID | None = given(BY_ID, None)
    key: str | None = given(BY_KEY, None)
    expected_version: int | None = given(VERSION, None)


@strawberry.input(description="An initiative and a product to link or unlink.")
class InitiativeProductInput:
    initiative_id: ID | None = given("The initiative, by global ID; or give `initiative`.", None)
    product_id: ID | None = given("The product, by global ID; or give `product`.", None)
    initiative: InitiativeLookup | None = given("The initiative, by ID, key or reference.", None)
    product: ProductLookup | None = given("The product, by ID, key or reference.", None)


@strawberry.input(description="A constraint and a product to link or unlink.")
class ConstraintProductInput:
    constraint_id: ID | None = given(
        "The technical constraint, by global ID; or give `constraint`.", None
    )
    product_id: ID | None = given("The product, by global ID; or give `product`.", None)
    constraint: TechnicalConstraintLookup | None = given(
        "The technical constraint, by ID, key or reference.", None
    )
    product: ProductLookup | None = given("The product, by ID, key or reference.", None)


@strawberry.input(description="A constraint and an initiative to link or unlink.")
class ConstraintInitiativeInput:
    constraint_id: ID | None = given(
        "The technical constraint, by global ID; or give `constraint`.", None
    )
    initiative_id: ID | None = given("The initiative, by global ID; or give `initiative`.", None)
    constraint: TechnicalConstraintLookup | None = given(
        "The technical constraint, by ID, key or reference.", None
    )
    initiative: InitiativeLookup | None = given("The initiative, by ID, key or reference.", None)


@strawberry.input(description="An initiative and a KPI it aims to move, to link or unlink.")
class InitiativeKpiInput:
    initiative_id: ID | None = given("The initiative, by global ID; or give `initiative`.", None)
    kpi_id: ID | None = given("The KPI, by global ID; or give `kpi`.", None)
    initiative: InitiativeLookup | None = given("The initiative, by ID, key or reference.", None)
    kpi: KpiLookup | None = given("The KPI, by ID, key or reference.", None)


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
    on_conflict: MeasurementConflict = given(
        "What a measurement whose (source, externalId) is stored with other values does. With "
        "CORRECT or REFUSE the payload lists each item's outcome, and a (source, externalId) "
        "may appear once per call.",
        MeasurementConflict.IGNORE,
    )


@strawberry.input(
    description="One measurement to delete: by `id`, or by both `source` and `externalId`."
)
class MeasurementSelectorInput:
    id: ID | None = given("The measurement's global ID.", None)
    source: str | None = given("The system that sent it.", None)
    external_id: str | None = given("The sender's ID for it.", None)


@strawberry.input(description="Measurements to delete.")
class DeleteKpiMeasurementsInput:
    measurements: list[MeasurementSelectorInput] = required("1 to 1,000 measurements.")


@strawberry.input(description="Set one external reference of an object (replacing its system's).")
class SetExternalRefInput:
    id: ID | None = given(BY_ID, None)
    key: str | None = given(BY_KEY, None)
    ref: ExternalRefInput = required("The reference.")
    expected_version: int | None = given(VERSION, None)


@strawberry.input(
    description="Remove an object's reference in one system; removing one it does not have "
    "changes nothing."
)
class RemoveExternalRefInput:
    id: ID | None = given(BY_ID, None)
    key: str | None = given(BY_KEY, None)
    system: str = required("The system whose reference to remove, e.g. `jira`.")
    expected_version: int | None = given(VERSION, None)


# Upserts: the object is found by `match` (an external reference) if given, else by `key`;
# fields left out stay as they are (or take their defaults when it is created).
UPSERT_KEY = "Its key: found by it (unless `match` is given), and given to it when created."
MATCH = (
    "Find it by this external reference instead of the key (it is added to the object's "
    "references when created)."
)
UPSERT_VERSION = (
    "The version you read; refused with CONFLICT if it is no longer current. 0: only create."
)


@strawberry.input(description="Create a product, or change the one with this key or reference.")
class UpsertProductInput:
    key: str = required(UPSERT_KEY)
    match: ExternalRefKey | None = given(MATCH, None)
    expected_version: int | None = given(UPSERT_VERSION, None)
    name: str | None = given("Display name (required to create).")
    lifecycle_stage: LifecycleStage | None = given("Where it is in its life (required to create).")
    description: str | None = given("What the product does, for whom.")
    business_owner_team: TeamLookup | None = given("Team accountable for business outcomes.")
    technology_owner_team: TeamLookup | None = given("Team that builds and runs it.")
    external_refs: list[ExternalRefInput] | None = given(REFS)


@strawberry.input(description="Create an initiative, or change the one with this key or reference.")
class UpsertInitiativeInput:
    key: str = required(UPSERT_KEY)
    match: ExternalRefKey | None = given(MATCH, None)
    expected_version: int | None = given(UPSERT_VERSION, None)
    title: str | None = given("Short title (required to create).")
    status: InitiativeStatus | None = given(
        "Its status when created: PROPOSED (default) or APPROVED. An existing initiative "
        "moves through `setInitiativeStatus`: a different status here is refused."
    )
    summary: str | None = given("What and why.")
    target_start: date | None = given("Planned start.")
    target_end: date | None = given("Planned end, not before the start.")
    parent: InitiativeLookup | None = given("The theme or epic it belongs to; null: a theme.")
    owner_team: TeamLookup | None = given("The team that owns it.")
    reach: int | None = given("RICE reach (≥ 0).")
    impact: float | None = given("RICE impact, above 0 and at most 3.")
    confidence: float | None = given("RICE confidence, 0 to 1.")
    effort: float | None = given("RICE effort in person-months (> 0).")
    business_value: int | None = given("WSJF business value, 1 to 20.")
    time_criticality: int | None = given("WSJF time criticality, 1 to 20.")
    risk_reduction: int | None = given("WSJF risk reduction, 1 to 20.")
    job_size: int | None = given("WSJF job size, 1 to 20.")
    estimated_cost: Decimal | None = given("Estimated cost (≥ 0).")
    external_refs: list[ExternalRefInput] | None = given(REFS)


@strawberry.input(
    description="Create a technical constraint, or change the one with this key or reference."
)
class UpsertTechnicalConstraintInput:
    key: str = required(UPSERT_KEY)
    match: ExternalRefKey | None = given(MATCH, None)
    expected_version: int | None = given(UPSERT_VERSION, None)
    title: str | None = given("Short title (required to create).")
    category: ConstraintCategory | None = given("Kind of limit (required to create).")
    severity: ConstraintSeverity | None = given("How hard it limits delivery (required to create).")
    status: ConstraintStatus | None = given(
        "Its status when created (OPEN by default). An existing constraint moves through "
        "`setConstraintStatus`: a different status here is refused."
    )
    description: str | None = given("The limit, in detail.")
    mitigation_plan: str | None = given("How it will be lifted.")
    due_date: date | None = given("When the mitigation is due.")
    external_refs: list[ExternalRefInput] | None = given(REFS)


@strawberry.input(description="Create a KPI, or change the one with this key or reference.")
class UpsertKpiInput:
    key: str = required(UPSERT_KEY)
    match: ExternalRefKey | None = given(MATCH, None)
    expected_version: int | None = given(UPSERT_VERSION, None)
    name: str | None = given("Display name (required to create).")
    unit: str | None = given("Unit of the values (required to create).")
    direction: KpiDirection | None = given("Which way is better (required to create).")
    it_relevance: str | None = given("Why it matters to IT (required to create).")
    product_relevance: str | None = given("Why it matters to product (required to create).")
    description: str | None = given("What is measured, and how.")
    target: float | None = given("The value aimed for.")
    warning_threshold: float | None = given("Where WARNING starts.")
    critical_threshold: float | None = given("Where CRITICAL starts (worse than warning).")
    it_importance_level: KpiImportance | None = given(IT_IMPORTANCE)
    product_importance_level: KpiImportance | None = given(PRODUCT_IMPORTANCE)
    expected_interval_seconds: int | None = given(EXPECTED_INTERVAL + " A day when created.")
    product: ProductLookup | None = given("The product it measures.")
    owner_team: TeamLookup | None = given("The team that owns it.")
    external_refs: list[ExternalRefInput] | None = given(REFS)


BATCH = "Up to 500 items, each naming a different object; each is upserted on its own."


@strawberry.input(description="A batch of product upserts, in one transaction.")
class UpsertProductsInput:
    items: list[UpsertProductInput] = required(BATCH)


@strawberry.input(description="A batch of initiative upserts, in one transaction.")
class UpsertInitiativesInput:
    items: list[UpsertInitiativeInput] = required(BATCH)


@strawberry.input(description="A batch of technical constraint upserts, in one transaction.")
class UpsertTechnicalConstraintsInput:
    items: list[UpsertTechnicalConstraintInput] = required(BATCH)


@strawberry.input(description="A batch of KPI upserts, in one transaction.")
class UpsertKpisInput:
    items: list[UpsertKpiInput] = required(BATCH)
