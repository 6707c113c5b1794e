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
    "User": (models.User, Scope.ADMIN_USERS),
    "Role": (models.Role, Scope.ADMIN_USERS),
    "OAuthClient": (models.OAuthClient, Scope.ADMIN_CLIENTS),
}
_TYPE_OF_MODEL = {model: name for name, (model, _) in NODE_TYPES.items()}


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


def type_scopes(type_name: str) -> frozenset[str]:
    """What reading any object of a node type needs; an unknown type needs the
    impossible (nothing is shown of it)."""
    known = NODE_TYPES.get(type_name)
    return frozenset({known[1].value}) if known else frozenset({"(unknown type)"})


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
    target) needs its type's scope, and a link also that of its target's type.
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
            reference = field.metadata.get("reference") if field.metadata else None
            if reference is not None:
                model, attribute = reference
                table[attribute] = StoredValue(name, scopes, _TYPE_OF_MODEL[model])
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
        for key, value in changes.items():
            stored = table.get(key) or StoredValue(to_camel_case(key), base)
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
