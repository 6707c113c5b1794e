"""What each entity lets callers write, and the rules that guard it.

Keys are set on create and never change, so they are not in ``fields`` of
updates (the GraphQL update inputs have no key).
"""

from __future__ import annotations

from domain import models
from domain.services import rules
from domain.services.writes import EntitySpec

TEAM = EntitySpec(
    model=models.Team,
    name="Team",
    fields=("key", "name", "kind", "description"),
    validate=rules.team_rules,
)
PRODUCT = EntitySpec(
    model=models.Product,
    name="Product",
    fields=(
        "key",
        "name",
        "description",
        "lifecycle_stage",
        "business_owner_team_id",
        "technology_owner_team_id",
    ),
    references={
        "business_owner_team_id": (models.Team, "Team"),
        "technology_owner_team_id": (models.Team, "Team"),
    },
    validate=rules.product_rules,
)
INITIATIVE = EntitySpec(
    model=models.Initiative,
    name="Initiative",
    fields=(
        "key",
        "title",
        "summary",
        "status",
        "target_start",
        "target_end",
        "parent_id",
        "owner_team_id",
        "reach",
        "impact",
        "confidence",
        "effort",
        "business_value",
        "time_criticality",
        "risk_reduction",
        "job_size",
        "estimated_cost",
    ),
    references={
        "parent_id": (models.Initiative, "Initiative"),
        "owner_team_id": (models.Team, "Team"),
    },
    validate=rules.initiative_rules,
)
CONSTRAINT = EntitySpec(
    model=models.TechnicalConstraint,
    name="TechnicalConstraint",
    fields=(
        "key",
        "title",
        "description",
        "category",
        "severity",
        "status",
        "mitigation_plan",
        "due_date",
    ),
    validate=rules.constraint_rules,
)
KPI = EntitySpec(
    model=models.Kpi,
    name="Kpi",
    fields=(
        "key",
        "name",
        "description",
        "unit",
        "direction",
        "target",
        "warning_threshold",
        "critical_threshold",
        "it_relevance",
        "product_relevance",
        "it_importance_level",
        "product_importance_level",
        "expected_interval_seconds",
        "product_id",
        "owner_team_id",
    ),
    references={"product_id": (models.Product, "Product"), "owner_team_id": (models.Team, "Team")},
    validate=rules.kpi_rules,
)
GLOSSARY_TERM = EntitySpec(
    model=models.GlossaryTerm,
    name="GlossaryTerm",
    fields=("term", "definition", "business_meaning", "technical_meaning"),
    label_field="term",
    validate=rules.glossary_rules,
)

SPECS = {spec.name: spec for spec in (TEAM, PRODUCT, INITIATIVE, CONSTRAINT, KPI, GLOSSARY_TERM)}
