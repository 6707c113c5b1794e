"""Every OAuth scope of the API, with what it allows."""

from __future__ import annotations

from enum import StrEnum


class Scope(StrEnum):
    PORTFOLIO_READ = "portfolio:read"
    FINANCE_READ = "finance:read"
    AUDIT_READ = "audit:read"
    PRODUCTS_WRITE = "products:write"
    INITIATIVES_WRITE = "initiatives:write"
    CONSTRAINTS_WRITE = "constraints:write"
    KPIS_WRITE = "kpis:write"
    KPIS_INGEST = "kpis:ingest"
    GLOSSARY_WRITE = "glossary:write"
    ADMIN_USERS = "admin:users"
    ADMIN_CLIENTS = "admin:clients"
    ADMIN_WEBHOOKS = "admin:webhooks"
    TOKENS_INTROSPECT = "tokens:introspect"


SCOPE_DESCRIPTIONS: dict[Scope, str] = {
    Scope.PORTFOLIO_READ: "Read products, initiatives, constraints, KPIs, teams and the glossary.",
    Scope.FINANCE_READ: "Read money fields such as estimated costs.",
    Scope.AUDIT_READ: "Read the audit trail.",
    Scope.PRODUCTS_WRITE: "Create and change products and teams.",
    Scope.INITIATIVES_WRITE: "Create and change initiatives.",
    Scope.CONSTRAINTS_WRITE: "Create and change technical constraints.",
    Scope.KPIS_WRITE: "Create and change KPI definitions.",
    Scope.KPIS_INGEST: "Record KPI measurements.",
    Scope.GLOSSARY_WRITE: "Create and change glossary terms.",
    Scope.ADMIN_USERS: "Manage users, roles and role grants.",
    Scope.ADMIN_CLIENTS: "Manage OAuth clients.",
    Scope.ADMIN_WEBHOOKS: "Manage webhooks and read their delivery log.",
    Scope.TOKENS_INTROSPECT: "Introspect any client's tokens (RFC 7662): for resource servers.",
}

READ_SCOPES = frozenset({Scope.PORTFOLIO_READ, Scope.FINANCE_READ, Scope.AUDIT_READ})
