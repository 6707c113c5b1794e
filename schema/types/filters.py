"""Filter and order inputs of every list (the mutations' inputs are in
``schema/mutations/inputs.py``); each filter converts to the service's filter."""

from __future__ import annotations

from datetime import date, datetime

import strawberry

from auth import filters as identity_filters
from domain.services import filters
from schema.ids import decode_id, decode_ids_of
from schema.types.enums import (
    AuditAction,
    ConstraintCategory,
    ConstraintSeverity,
    ConstraintStatus,
    InitiativeStatus,
    KpiImportance,
    KpiStatus,
    LifecycleStage,
    TeamKind,
)
from schema.types.ordering import order_input

SEARCH = "Words that must each start a word of the key, name/title or description."


def _tuple(values: list | None) -> tuple | None:
    return tuple(values) if values is not None else None


@strawberry.input(description="Narrow a list of teams.")
class TeamFilter:
    kinds: list[TeamKind] | None = strawberry.field(default=None, description="Any of these kinds.")
    search: str | None = strawberry.field(default=None, description=SEARCH)

    def to_filter(self) -> filters.TeamFilter:
        return filters.TeamFilter(kinds=_tuple(self.kinds), search=self.search)


@strawberry.input(description="Narrow a list of products.")
class ProductFilter:
    keys: list[str] | None = strawberry.field(default=None, description="Any of these keys.")
    lifecycle_stages: list[LifecycleStage] | None = strawberry.field(
        default=None, description="Any of these lifecycle stages."
    )
    owner_teams: list[strawberry.ID] | None = strawberry.field(
        default=None, description="Owned (business or technology) by any of these teams."
    )
    search: str | None = strawberry.field(default=None, description=SEARCH)

    def to_filter(self) -> filters.ProductFilter:
        return filters.ProductFilter(
            keys=_tuple(self.keys),
            lifecycle_stages=_tuple(self.lifecycle_stages),
            owner_team_ids=decode_ids_of("Team", self.owner_teams, "filter.ownerTeams"),
            search=self.search,
        )


@strawberry.input(description="Narrow a list of initiatives.")
class InitiativeFilter:
    keys: list[str] | None = strawberry.field(default=None, description="Any of these keys.")
    statuses: list[InitiativeStatus] | None = strawberry.field(
        default=None, description="Any of these statuses."
    )
    products: list[strawberry.ID] | None = strawberry.field(
        default=None, description="Linked to any of these products."
    )
    owner_teams: list[strawberry.ID] | None = strawberry.field(
        default=None, description="Owned by any of these teams."
    )
    parents: list[strawberry.ID] | None = strawberry.field(
        default=None, description="Children of any of these initiatives."
    )
    top_level: bool | None = strawberry.field(
        default=None, description="true: only themes (no parent); false: only children."
    )
    is_blocked: bool | None = strawberry.field(
        default=None, description="true: only blocked initiatives; false: only unblocked ones."
    )
    target_start_from: date | None = strawberry.field(
        default=None, description="Target start on or after this date."
    )
    target_start_to: date | None = strawberry.field(
        default=None, description="Target start on or before this date."
    )
    target_end_from: date | None = strawberry.field(
        default=None, description="Target end on or after this date."
    )
    target_end_to: date | None = strawberry.field(
        default=None, description="Target end on or before this date."
    )
    search: str | None = strawberry.field(default=None, description=SEARCH)

    def to_filter(self) -> filters.InitiativeFilter:
        return filters.InitiativeFilter(
            keys=_tuple(self.keys),
            statuses=_tuple(self.statuses),
            product_ids=decode_ids_of("Product", self.products, "filter.products"),
            owner_team_ids=decode_ids_of("Team", self.owner_teams, "filter.ownerTeams"),
            parent_ids=decode_ids_of("Initiative", self.parents, "filter.parents"),
            top_level=self.top_level,
            is_blocked=self.is_blocked,
            starts_from=self.target_start_from,
            starts_to=self.target_start_to,
            ends_from=self.target_end_from,
            ends_to=self.target_end_to,
            search=self.search,
        )


@strawberry.input(description="Narrow a list of technical constraints.")
class TechnicalConstraintFilter:
    keys: list[str] | None = strawberry.field(default=None, description="Any of these keys.")
    categories: list[ConstraintCategory] | None = strawberry.field(
        default=None, description="Any of these categories."
    )
    severities: list[ConstraintSeverity] | None = strawberry.field(
        default=None, description="Any of these severities."
    )
    statuses: list[ConstraintStatus] | None = strawberry.field(
        default=None, description="Any of these statuses."
    )
    products: list[strawberry.ID] | None = strawberry.field(
        default=None, description="Applied to any of these products."
    )
    initiatives: list[strawberry.ID] | None = strawberry.field(
        default=None, description="Applied directly to any of these initiatives."
    )
    due_from: date | None = strawberry.field(default=None, description="Due on or after this date.")
    due_to: date | None = strawberry.field(default=None, description="Due on or before this date.")
    search: str | None = strawberry.field(default=None, description=SEARCH)

    def to_filter(self) -> filters.ConstraintFilter:
        return filters.ConstraintFilter(
            keys=_tuple(self.keys),
            categories=_tuple(self.categories),
            severities=_tuple(self.severities),
            statuses=_tuple(self.statuses),
            product_ids=decode_ids_of("Product", self.products, "filter.products"),
            initiative_ids=decode_ids_of("Initiative", self.initiatives, "filter.initiatives"),
            due_from=self.due_from,
            due_to=self.due_to,
            search=self.search,
        )


@strawberry.input(description="Narrow a list of KPIs.")
class KpiFilter:
    keys: list[str] | None = strawberry.field(default=None, description="Any of these keys.")
    products: list[strawberry.ID] | None = strawberry.field(
        default=None, description="Measuring any of these products."
    )
    owner_teams: list[strawberry.ID] | None = strawberry.field(
        default=None, description="Owned by any of these teams."
    )
    statuses: list[KpiStatus] | None = strawberry.field(
        default=None, description="Whose latest value has any of these statuses."
    )
    is_stale: bool | None = strawberry.field(
        default=None,
        description="Stale (true: no measurement within the expected interval, or none at "
        "all) or fresh (false).",
    )
    it_importance_levels: list[KpiImportance] | None = strawberry.field(
        default=None, description="Rated any of these levels of importance to IT."
    )
    product_importance_levels: list[KpiImportance] | None = strawberry.field(
        default=None, description="Rated any of these levels of importance to product."
    )
    search: str | None = strawberry.field(default=None, description=SEARCH)

    def to_filter(self) -> filters.KpiFilter:
        return filters.KpiFilter(
            keys=_tuple(self.keys),
            product_ids=decode_ids_of("Product", self.products, "filter.products"),
            owner_team_ids=decode_ids_of("Team", self.owner_teams, "filter.ownerTeams"),
            statuses=_tuple(self.statuses),
            is_stale=self.is_stale,
            it_importance_levels=_tuple(self.it_importance_levels),
            product_importance_levels=_tuple(self.product_importance_levels),
            search=self.search,
        )


@strawberry.input(description="Narrow a list of KPI measurements.")
class KpiMeasurementFilter:
    observed_from: datetime | None = strawberry.field(
        default=None, description="Observed at or after this instant."
    )
    observed_to: datetime | None = strawberry.field(
        default=None, description="Observed at or before this instant."
    )
    sources: list[str] | None = strawberry.field(
        default=None, description="Sent by any of these sources."
    )

    def to_filter(self) -> filters.MeasurementFilter:
        return filters.MeasurementFilter(
            observed_from=self.observed_from,
            observed_to=self.observed_to,
            sources=_tuple(self.sources),
        )


@strawberry.input(description="Narrow the glossary.")
class GlossaryTermFilter:
    search: str | None = strawberry.field(
        default=None, description="Words of the term or definition."
    )

    def to_filter(self) -> filters.GlossaryFilter:
        return filters.GlossaryFilter(search=self.search)


@strawberry.input(description="Narrow the audit trail.")
class AuditEventFilter:
    entity_types: list[str] | None = strawberry.field(
        default=None, description="Changes of these types, e.g. `Initiative`."
    )
    entity: strawberry.ID | None = strawberry.field(
        default=None, description="Changes of this object (a global ID of any type)."
    )
    actions: list[AuditAction] | None = strawberry.field(
        default=None, description="Any of these kinds of change."
    )
    actor_users: list[strawberry.ID] | None = strawberry.field(
        default=None, description="Made by any of these users."
    )
    actor_clients: list[strawberry.ID] | None = strawberry.field(
        default=None, description="Made through any of these OAuth clients."
    )
    occurred_from: datetime | None = strawberry.field(
        default=None, description="At or after this instant."
    )
    occurred_to: datetime | None = strawberry.field(
        default=None, description="At or before this instant."
    )

    def to_filter(self) -> filters.AuditFilter:
        entity_type, entity_id = (None, None)
        if self.entity is not None:
            entity_type, entity_id = decode_id(self.entity, field="filter.entity")
        types = _tuple(self.entity_types)
        if entity_type is not None:
            types = (entity_type,) if types is None or entity_type in types else ()
        return filters.AuditFilter(
            entity_types=types,
            entity_id=entity_id,
            actions=_tuple(self.actions),
            actor_user_ids=decode_ids_of("User", self.actor_users, "filter.actorUsers"),
            actor_client_ids=decode_ids_of(
                "OAuthClient", self.actor_clients, "filter.actorClients"
            ),
            occurred_from=self.occurred_from,
            occurred_to=self.occurred_to,
        )


@strawberry.input(description="Narrow the list of users.")
class UserFilter:
    search: str | None = strawberry.field(
        default=None, description="Part of the e-mail address or display name."
    )
    is_active: bool | None = strawberry.field(default=None, description="Active or disabled.")
    roles: list[str] | None = strawberry.field(
        default=None, description="Holding any of these roles (by name)."
    )

    def to_filter(self) -> identity_filters.UserFilter:
        return identity_filters.UserFilter(
            search=self.search, is_active=self.is_active, roles=_tuple(self.roles)
        )


@strawberry.input(description="Narrow the list of OAuth clients.")
class OAuthClientFilter:
    is_active: bool | None = strawberry.field(default=None, description="Active or disabled.")

    def to_filter(self) -> identity_filters.ClientFilter:
        return identity_filters.ClientFilter(is_active=self.is_active)


@strawberry.input(description="Narrow the list of roles.")
class RoleFilter:
    scope: str | None = strawberry.field(default=None, description="Roles granting this scope.")

    def to_filter(self) -> identity_filters.RoleFilter:
        return identity_filters.RoleFilter(scope=self.scope)


TeamOrder = order_input("Team", filters.TEAM_ORDERINGS, "KEY")
ProductOrder = order_input("Product", filters.PRODUCT_ORDERINGS, "KEY")
InitiativeOrder = order_input("Initiative", filters.INITIATIVE_ORDERINGS, "KEY")
TechnicalConstraintOrder = order_input("TechnicalConstraint", filters.CONSTRAINT_ORDERINGS, "KEY")
KpiOrder = order_input("Kpi", filters.KPI_ORDERINGS, "KEY")
KpiMeasurementOrder = order_input("KpiMeasurement", filters.MEASUREMENT_ORDERINGS, "OBSERVED_AT")
GlossaryTermOrder = order_input("GlossaryTerm", filters.GLOSSARY_ORDERINGS, "TERM")
AuditEventOrder = order_input("AuditEvent", filters.AUDIT_ORDERINGS, "OCCURRED_AT")
UserOrder = order_input("User", identity_filters.USER_ORDERINGS, "EMAIL")
OAuthClientOrder = order_input("OAuthClient", identity_filters.CLIENT_ORDERINGS, "NAME")
RoleOrder = order_input("Role", identity_filters.ROLE_ORDERINGS, "NAME")
