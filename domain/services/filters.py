"""Filters and orderings offered on every list, as SQL.

The GraphQL inputs map one to one onto these dataclasses; validation that does
not depend on GraphQL (ranges, search text, time zones) lives here, in each filter's
``check`` (which ``apply`` runs first): the compiled reads check a request's filter
with it without building its SQL (``schema.compiled.filters``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Date,
    Double,
    Select,
    case,
    cast,
    exists,
    func,
    literal,
    literal_column,
    select,
    true,
)

from domain.errors import InvalidInput
from domain.models import (
    AuditAction,
    AuditEvent,
    ConstraintCategory,
    ConstraintSeverity,
    ConstraintStatus,
    GlossaryTerm,
    Initiative,
    InitiativeStatus,
    Kpi,
    KpiImportance,
    KpiMeasurement,
    KpiStatus,
    LifecycleStage,
    Product,
    Team,
    TeamKind,
    TechnicalConstraint,
    constraint_initiatives,
    constraint_products,
    initiative_products,
)
from domain.services import external_refs
from domain.services.pagination import Ordering

MAX_SEARCH_LENGTH = 200
_WORD = re.compile(r"\w+", re.UNICODE)


def search_query(text: str) -> str:
    """The tsquery text of a search (its SQL parameter): every word a prefix. Raises
    ``InvalidInput`` for a text the search refuses."""
    if len(text) > MAX_SEARCH_LENGTH:
        raise InvalidInput(
            f"`search` is limited to {MAX_SEARCH_LENGTH} characters.", field="filter.search"
        )
    words = _WORD.findall(text.lower())
    if not words:
        raise InvalidInput(
            "`search` must contain at least one letter or digit.", field="filter.search"
        )
    return " & ".join(f"{word}:*" for word in words)


def _check_search(text: str | None) -> None:
    if text is not None:
        search_query(text)


def search_clause(document: Any, text: str | None) -> ColumnElement[bool]:
    """Every word of ``text`` must prefix a word of the document (indexed, GIN)."""
    if text is None:
        return true()
    query = search_query(text)
    return document.op("@@")(func.to_tsquery(literal_column("'simple'::regconfig"), query))


def _check_range(start: date | datetime | None, end: date | datetime | None, field: str) -> None:
    if start is not None and end is not None and end < start:
        raise InvalidInput(f"`{field}`: the end is before the start.", field=f"filter.{field}")


def _date_range(
    column: Any, start: date | datetime | None, end: date | datetime | None
) -> list[ColumnElement[bool]]:
    """Within the range (its ends checked by ``_check_range``, in ``check``)."""
    clauses: list[ColumnElement[bool]] = []
    if start is not None:
        clauses.append(column >= start)
    if end is not None:
        clauses.append(column <= end)
    return clauses


def _in(column: Any, values: Sequence[Any] | None) -> list[ColumnElement[bool]]:
    return [column.in_(values)] if values is not None else []


def _referenced(
    entity_type: str, id_column: Any, ref: tuple[str, str] | None
) -> list[ColumnElement[bool]]:
    """Has this external reference (system, external ID)."""
    return [] if ref is None else [external_refs.matches(entity_type, id_column, *ref)]


def _active(model: Any) -> ColumnElement[bool]:
    return model.archived_at.is_(None)


def _updated_since(model: Any, since: datetime | None) -> list[ColumnElement[bool]]:
    """Changed at or after ``since`` (inclusive: a client passing the newest ``updatedAt``
    it saw misses nothing written in that same instant). Links and blocking changes
    bump ``updatedAt`` too (``domain.services.links``)."""
    return [] if since is None else [model.updated_at >= since]


def _check_updated_since(since: datetime | None) -> None:
    if since is not None and since.tzinfo is None:
        raise InvalidInput("`updatedSince` needs a time zone offset.", field="filter.updatedSince")


# ---------------------------------------------------------------- teams


@dataclass(frozen=True)
class TeamFilter:
    kinds: tuple[TeamKind, ...] | None = None
    search: str | None = None
    updated_since: datetime | None = None

    def check(self) -> None:
        _check_updated_since(self.updated_since)
        _check_search(self.search)

    def apply(self, statement: Select[Any]) -> Select[Any]:
        self.check()
        return statement.where(
            _active(Team),
            *_updated_since(Team, self.updated_since),
            *_in(Team.kind, self.kinds),
            search_clause(Team.search_document, self.search),
        )


TEAM_ORDERINGS = {
    "KEY": Team.key,
    "NAME": Team.name,
    "CREATED_AT": Team.created_at,
    "UPDATED_AT": Team.updated_at,
}


# ---------------------------------------------------------------- products


@dataclass(frozen=True)
class ProductFilter:
    keys: tuple[str, ...] | None = None
    lifecycle_stages: tuple[LifecycleStage, ...] | None = None
    owner_team_ids: tuple[int, ...] | None = None
    external_ref: tuple[str, str] | None = None
    search: str | None = None
    updated_since: datetime | None = None

    def check(self) -> None:
        _check_updated_since(self.updated_since)
        _check_search(self.search)

    def apply(self, statement: Select[Any]) -> Select[Any]:
        self.check()
        clauses = [
            _active(Product),
            *_updated_since(Product, self.updated_since),
            *_in(Product.key, self.keys),
            *_in(Product.lifecycle_stage, self.lifecycle_stages),
            search_clause(Product.search_document, self.search),
            *_referenced("Product", Product.id, self.external_ref),
        ]
        if self.owner_team_ids is not None:
            clauses.append(
                Product.business_owner_team_id.in_(self.owner_team_ids)
                | Product.technology_owner_team_id.in_(self.owner_team_ids)
            )
        return statement.where(*clauses)


PRODUCT_ORDERINGS = {
    "KEY": Product.key,
    "NAME": Product.name,
    "CREATED_AT": Product.created_at,
    "UPDATED_AT": Product.updated_at,
}


# ---------------------------------------------------------------- initiatives


@dataclass(frozen=True)
class InitiativeFilter:
    keys: tuple[str, ...] | None = None
    statuses: tuple[InitiativeStatus, ...] | None = None
    product_ids: tuple[int, ...] | None = None
    owner_team_ids: tuple[int, ...] | None = None
    parent_ids: tuple[int, ...] | None = None
    top_level: bool | None = None
    is_blocked: bool | None = None
    starts_from: date | None = None
    starts_to: date | None = None
    ends_from: date | None = None
    ends_to: date | None = None
    external_ref: tuple[str, str] | None = None
    search: str | None = None
    updated_since: datetime | None = None

    def check(self) -> None:
        _check_updated_since(self.updated_since)
        _check_range(self.starts_from, self.starts_to, "targetStart")
        _check_range(self.ends_from, self.ends_to, "targetEnd")
        _check_search(self.search)

    def apply(self, statement: Select[Any]) -> Select[Any]:
        self.check()
        clauses = [
            _active(Initiative),
            *_updated_since(Initiative, self.updated_since),
            *_in(Initiative.key, self.keys),
            *_in(Initiative.status, self.statuses),
            *_in(Initiative.owner_team_id, self.owner_team_ids),
            *_in(Initiative.parent_id, self.parent_ids),
            *_date_range(Initiative.target_start, self.starts_from, self.starts_to),
            *_date_range(Initiative.target_end, self.ends_from, self.ends_to),
            search_clause(Initiative.search_document, self.search),
            *_referenced("Initiative", Initiative.id, self.external_ref),
        ]
        if self.product_ids is not None:
            # correlate_except: the link table is always the EXISTS's own. A nested
            # connection's statement joins the same table (products.initiatives), and
            # auto-correlation would take it out of the EXISTS, leaving it no FROM.
            clauses.append(
                exists()
                .where(
                    initiative_products.c.initiative_id == Initiative.id,
                    initiative_products.c.product_id.in_(self.product_ids),
                )
                .correlate_except(initiative_products)
            )
        if self.top_level is not None:
            clauses.append(
                Initiative.parent_id.is_(None)
                if self.top_level
                else Initiative.parent_id.isnot(None)
            )
        if self.is_blocked is not None:
            blocked = Initiative.is_blocked.expression
            clauses.append(blocked if self.is_blocked else ~blocked)
        return statement.where(*clauses)


# Scores and dates may be null: they sort as the lowest value (last when descending).
INITIATIVE_ORDERINGS = {
    "KEY": Initiative.key,
    "TITLE": Initiative.title,
    "STATUS": Initiative.status,
    "TARGET_START": func.coalesce(Initiative.target_start, cast(literal("-infinity"), Date)),
    "TARGET_END": func.coalesce(Initiative.target_end, cast(literal("-infinity"), Date)),
    "RICE_SCORE": func.coalesce(Initiative.rice_score.expression, cast(literal(-1), Double)),
    "WSJF_SCORE": func.coalesce(Initiative.wsjf_score.expression, cast(literal(-1), Double)),
    "CREATED_AT": Initiative.created_at,
    "UPDATED_AT": Initiative.updated_at,
}


# ---------------------------------------------------------------- technical constraints


@dataclass(frozen=True)
class ConstraintFilter:
    keys: tuple[str, ...] | None = None
    categories: tuple[ConstraintCategory, ...] | None = None
    severities: tuple[ConstraintSeverity, ...] | None = None
    statuses: tuple[ConstraintStatus, ...] | None = None
    product_ids: tuple[int, ...] | None = None
    initiative_ids: tuple[int, ...] | None = None
    due_from: date | None = None
    due_to: date | None = None
    external_ref: tuple[str, str] | None = None
    search: str | None = None
    updated_since: datetime | None = None

    def check(self) -> None:
        _check_updated_since(self.updated_since)
        _check_range(self.due_from, self.due_to, "dueDate")
        _check_search(self.search)

    def apply(self, statement: Select[Any]) -> Select[Any]:
        self.check()
        clauses = [
            _active(TechnicalConstraint),
            *_updated_since(TechnicalConstraint, self.updated_since),
            *_in(TechnicalConstraint.key, self.keys),
            *_in(TechnicalConstraint.category, self.categories),
            *_in(TechnicalConstraint.severity, self.severities),
            *_in(TechnicalConstraint.status, self.statuses),
            *_date_range(TechnicalConstraint.due_date, self.due_from, self.due_to),
            search_clause(TechnicalConstraint.search_document, self.search),
            *_referenced("TechnicalConstraint", TechnicalConstraint.id, self.external_ref),
        ]
        if self.product_ids is not None:
            # correlate_except: as in InitiativeFilter.apply.
            clauses.append(
                exists()
                .where(
                    constraint_products.c.constraint_id == TechnicalConstraint.id,
                    constraint_products.c.product_id.in_(self.product_ids),
                )
                .correlate_except(constraint_products)
            )
        if self.initiative_ids is not None:
            clauses.append(
                exists()
                .where(
                    constraint_initiatives.c.constraint_id == TechnicalConstraint.id,
                    constraint_initiatives.c.initiative_id.in_(self.initiative_ids),
                )
                .correlate_except(constraint_initiatives)
            )
        return statement.where(*clauses)


CONSTRAINT_ORDERINGS = {
    "KEY": TechnicalConstraint.key,
    "TITLE": TechnicalConstraint.title,
    # Enum order is declaration order: BLOCKER first.
    "SEVERITY": TechnicalConstraint.severity,
    "DUE_DATE": func.coalesce(TechnicalConstraint.due_date, cast(literal("infinity"), Date)),
    "CREATED_AT": TechnicalConstraint.created_at,
    "UPDATED_AT": TechnicalConstraint.updated_at,
}


# ---------------------------------------------------------------- KPIs


@dataclass(frozen=True)
class KpiFilter:
    keys: tuple[str, ...] | None = None
    product_ids: tuple[int, ...] | None = None
    owner_team_ids: tuple[int, ...] | None = None
    statuses: tuple[KpiStatus, ...] | None = None
    external_ref: tuple[str, str] | None = None
    is_stale: bool | None = None
    it_importance_levels: tuple[KpiImportance, ...] | None = None
    product_importance_levels: tuple[KpiImportance, ...] | None = None
    search: str | None = None
    updated_since: datetime | None = None

    def check(self) -> None:
        _check_updated_since(self.updated_since)
        _check_search(self.search)

    def apply(self, statement: Select[Any]) -> Select[Any]:
        self.check()
        clauses = [
            _active(Kpi),
            *_updated_since(Kpi, self.updated_since),
            *_in(Kpi.key, self.keys),
            *_in(Kpi.product_id, self.product_ids),
            *_in(Kpi.owner_team_id, self.owner_team_ids),
            *_in(
                Kpi.status.expression, [s.value for s in self.statuses] if self.statuses else None
            ),
            *_in(Kpi.it_importance_level, self.it_importance_levels),
            *_in(Kpi.product_importance_level, self.product_importance_levels),
            search_clause(Kpi.search_document, self.search),
            *_referenced("Kpi", Kpi.id, self.external_ref),
        ]
        if self.is_stale is not None:
            stale = Kpi.is_stale.expression
            clauses.append(stale if self.is_stale else ~stale)
        return statement.where(*clauses)


def _importance_rank(level: Any) -> ColumnElement[int]:
    """CRITICAL first (1) to INDIRECT, unrated KPIs last: a non-null sort key."""
    ranks = [(level == member, rank) for rank, member in enumerate(KpiImportance, start=1)]
    return case(*ranks, else_=len(KpiImportance) + 1)


KPI_ORDERINGS = {
    "KEY": Kpi.key,
    "NAME": Kpi.name,
    "IT_IMPORTANCE": _importance_rank(Kpi.it_importance_level),
    "PRODUCT_IMPORTANCE": _importance_rank(Kpi.product_importance_level),
    "CREATED_AT": Kpi.created_at,
    "UPDATED_AT": Kpi.updated_at,
}


@dataclass(frozen=True)
class MeasurementFilter:
    observed_from: datetime | None = None
    observed_to: datetime | None = None
    sources: tuple[str, ...] | None = None

    def check(self) -> None:
        _check_range(self.observed_from, self.observed_to, "observedAt")

    def apply(self, statement: Select[Any]) -> Select[Any]:
        self.check()
        return statement.where(
            *_date_range(KpiMeasurement.observed_at, self.observed_from, self.observed_to),
            *_in(KpiMeasurement.source, self.sources),
        )


MEASUREMENT_ORDERINGS = {"OBSERVED_AT": KpiMeasurement.observed_at}


# ---------------------------------------------------------------- glossary


@dataclass(frozen=True)
class GlossaryFilter:
    search: str | None = None
    updated_since: datetime | None = None

    def check(self) -> None:
        _check_updated_since(self.updated_since)
        _check_search(self.search)

    def apply(self, statement: Select[Any]) -> Select[Any]:
        self.check()
        return statement.where(
            _active(GlossaryTerm),
            *_updated_since(GlossaryTerm, self.updated_since),
            search_clause(GlossaryTerm.search_document, self.search),
        )


GLOSSARY_ORDERINGS = {
    "TERM": GlossaryTerm.term,
    "CREATED_AT": GlossaryTerm.created_at,
    "UPDATED_AT": GlossaryTerm.updated_at,
}


def ordering(table: dict[str, Any], name: str, descending: bool) -> Ordering:
    return Ordering(name=name, expression=table[name], descending=descending)


def base_select(model: Any) -> Select[Any]:
    return select(model)


# ---------------------------------------------------------------- audit trail


@dataclass(frozen=True)
class AuditFilter:
    entity_types: tuple[str, ...] | None = None
    entity_id: int | None = None
    actions: tuple[AuditAction, ...] | None = None
    actor_user_ids: tuple[int, ...] | None = None
    actor_client_ids: tuple[int, ...] | None = None
    occurred_from: datetime | None = None
    occurred_to: datetime | None = None

    def check(self) -> None:
        _check_range(self.occurred_from, self.occurred_to, "occurredAt")

    def apply(self, statement: Select[Any]) -> Select[Any]:
        self.check()
        clauses = [
            *_in(AuditEvent.entity_type, self.entity_types),
            *_in(AuditEvent.action, self.actions),
            *_in(AuditEvent.actor_user_id, self.actor_user_ids),
            *_in(AuditEvent.actor_client_id, self.actor_client_ids),
            *_date_range(AuditEvent.occurred_at, self.occurred_from, self.occurred_to),
        ]
        if self.entity_id is not None:
            clauses.append(AuditEvent.entity_id == self.entity_id)
        return statement.where(*clauses)


AUDIT_ORDERINGS = {"OCCURRED_AT": AuditEvent.occurred_at}
