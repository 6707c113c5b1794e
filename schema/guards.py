"""What a caller needs to read each value, derived from the field declarations.

A scope is declared once, next to its field (``schema.permissions.guarded``), and once
per node type (``NODE_TYPES``: what ``node(id:)`` asks for). Every other path that
reads a stored value asks this module instead of keeping a list of its own: the
compiled planner (``scopes_of``), and the audit trail, whose ``changes`` hold the
values of any field of any type (``AuditChanges``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import strawberry
from strawberry.permission import PermissionExtension
from strawberry.utils.str_converters import to_camel_case

from auth import models as auth_models
from auth.scopes import Scope
from domain import models
from schema.ids import encode_id
from schema.permissions import HasScopes

# Global ID type name -> (model, scope needed to read any object of that type).
NODE_TYPES: dict[str, tuple[Any, Scope]] = {
    "Team": (models.Team, Scope.PORTFOLIO_READ),
    "Product": (models.Product, Scope.PORTFOLIO_READ),
    "Initiative": (models.Initiative, Scope.PORTFOLIO_READ),
    "TechnicalConstraint": (models.TechnicalConstraint, Scope.PORTFOLIO_READ),
    "Kpi": (models.Kpi, Scope.PORTFOLIO_READ),
    "KpiMeasurement": (models.KpiMeasurement, Scope.PORTFOLIO_READ),
    "GlossaryTerm": (models.GlossaryTerm, Scope.PORTFOLIO_READ),
    "AuditEvent": (models.AuditEvent, Scope.AUDIT_READ),
    "User": (auth_models.User, Scope.ADMIN_USERS),
    "Role": (auth_models.Role, Scope.ADMIN_USERS),
    "OAuthClient": (auth_models.OAuthClient, Scope.ADMIN_CLIENTS),
}
_TYPE_OF_MODEL = {model: name for name, (model, _) in NODE_TYPES.items()}
# Types the audit trail records that are no node types (no ``node(id:)``): the scope that
# reads them. Of their events' changes only attributes a field of the type declares are
# shown: the others (a webhook's sealed ``secret`` and ``previous_secret``) never are, to
# anyone, even if an event ever stored them.
AUDITED_TYPES: dict[str, Scope] = {"Webhook": Scope.ADMIN_WEBHOOKS}


def scopes_of(field: Any) -> frozenset[str]:
    """The scopes a strawberry field declares with ``guarded`` (none if unguarded)."""
    return frozenset(
        scope
        for extension in field.extensions
        if isinstance(extension, PermissionExtension)
        for permission in extension.permissions
        if isinstance(permission, HasScopes)
        for scope in permission.scopes
    )


def refused_scopes(field: Any, scopes: frozenset[str]) -> tuple[str, ...] | None:
    """What the field's check (``HasScopes``) names when ``scopes`` do not pass it, in
    its declared order, as its FORBIDDEN error lists them; None if they pass."""
    for extension in field.extensions:
        if isinstance(extension, PermissionExtension):
            for permission in extension.permissions:
                if isinstance(permission, HasScopes) and not set(permission.scopes) <= scopes:
                    return permission.scopes
    return None


def type_scopes(type_name: str) -> frozenset[str]:
    """What reading any object of a node type needs; an unknown type needs the
    impossible (nothing is shown of it)."""
    known = NODE_TYPES.get(type_name)
    if known is not None:
        return frozenset({known[1].value})
    audited = AUDITED_TYPES.get(type_name)
    return frozenset({audited.value}) if audited else frozenset({"(unknown type)"})


@dataclass(frozen=True)
class StoredValue:
    """How one stored attribute (a column name, as the audit trail records it) is shown:
    under its GraphQL field name, to callers holding ``scopes``; a foreign key as the
    global ID of ``reference`` (a type name)."""

    name: str
    scopes: frozenset[str]
    reference: str | None = None


class AuditChanges:
    """The audit trail's ``changes`` in the API's words, for one caller.

    Events store column names and primary keys (``parent_id: 1``) so that ``asOf`` can
    replay them; callers see GraphQL field names and global IDs, and only the values of
    fields they could read on the object itself: a value needs its type's scope and
    its field's (``estimatedCost`` needs ``finance:read``; a User's ``email``,
    ``admin:users``). What is not a field (``archived_at``, a rotated secret, a link's
    target) needs its type's scope, and a link also that of its target's type. Of an
    ``AUDITED_TYPES`` type (a Webhook: ``admin:webhooks``) only declared fields are shown.
    """

    def __init__(self, schema: strawberry.Schema) -> None:
        self._schema = schema
        self._tables: dict[str, dict[str, StoredValue]] = {}

    def table(self, type_name: str) -> dict[str, StoredValue]:
        """Stored attribute -> how it is shown, for one node type (built once)."""
        table = self._tables.get(type_name)
        if table is None:
            table = self._tables[type_name] = self._build(type_name)
        return table

    def _build(self, type_name: str) -> dict[str, StoredValue]:
        base = type_scopes(type_name)
        definition = self._schema.get_type_by_name(type_name)
        table: dict[str, StoredValue] = {}
        for field in getattr(definition, "fields", ()):
            name = self._schema.config.name_converter.get_graphql_name(field)
            scopes = base | scopes_of(field)
            metadata = field.metadata or {}
            reference = metadata.get("reference")
            if reference is not None:
                model, attribute = reference
                table[attribute] = StoredValue(name, scopes, _TYPE_OF_MODEL[model])
            elif "stored_as" in metadata:  # a column named unlike its field
                table[metadata["stored_as"]] = StoredValue(name, scopes)
            else:
                table.setdefault(field.python_name, StoredValue(name, scopes))
        return table

    def present(
        self, type_name: str, changes: dict[str, Any], scopes: frozenset[str]
    ) -> dict[str, Any]:
        """``changes`` of an event about a ``type_name`` object, as ``scopes`` may see it."""
        table = self.table(type_name)
        base = type_scopes(type_name)
        shown: dict[str, Any] = {}
        declared_only = type_name in AUDITED_TYPES
        for key, value in changes.items():
            stored = table.get(key)
            if stored is None:
                if declared_only:
                    continue
                stored = StoredValue(to_camel_case(key), base)
            if key == "target" and isinstance(value, dict):  # a link: {type, id, label}
                target_type = str(value.get("type"))
                if not (base | type_scopes(target_type)) <= scopes:
                    continue
                shown[stored.name] = _with_global_id(value, target_type)
                continue
            if not stored.scopes <= scopes:
                continue
            if stored.reference is not None and isinstance(value, dict):
                value = {
                    side: None if pk is None else encode_id(stored.reference, pk)
                    for side, pk in value.items()
                }
            shown[stored.name] = value
        return shown


def _with_global_id(target: dict[str, Any], type_name: str) -> dict[str, Any]:
    pk = target.get("id")
    return {**target, "id": None if pk is None else encode_id(type_name, pk)}
