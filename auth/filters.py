"""Filters and orderings of the administration's lists: users, OAuth clients, roles.

The GraphQL inputs (``schema/types/inputs.py``) map one to one onto these, as they do
for the domain's lists (``domain.services.filters``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Select, exists, func, literal

from auth.models import OAuthClient, Role, RoleGrant, User


def _active(model: Any) -> ColumnElement[bool]:
    return model.archived_at.is_(None)


@dataclass(frozen=True)
class UserFilter:
    search: str | None = None
    is_active: bool | None = None
    roles: tuple[str, ...] | None = None

    def check(self) -> None:
        """Nothing to refuse (every value is a filter)."""

    def apply(self, statement: Select[Any]) -> Select[Any]:
        clauses = [_active(User)]
        if self.search is not None:
            pattern = f"%{_escape_like(self.search.lower())}%"
            clauses.append(
                func.lower(User.email).like(pattern, escape="\\")
                | func.lower(User.display_name).like(pattern, escape="\\")
            )
        if self.is_active is not None:
            clauses.append(User.is_active.is_(self.is_active))
        if self.roles is not None:
            clauses.append(
                exists().where(
                    RoleGrant.user_id == User.id,
                    RoleGrant.role_id == Role.id,
                    Role.name.in_(self.roles),
                )
            )
        return statement.where(*clauses)


USER_ORDERINGS = {"EMAIL": User.email, "CREATED_AT": User.created_at}


@dataclass(frozen=True)
class ClientFilter:
    is_active: bool | None = None

    def check(self) -> None:
        """Nothing to refuse (every value is a filter)."""

    def apply(self, statement: Select[Any]) -> Select[Any]:
        clauses = [_active(OAuthClient)]
        if self.is_active is not None:
            clauses.append(OAuthClient.is_active.is_(self.is_active))
        return statement.where(*clauses)


CLIENT_ORDERINGS = {"NAME": OAuthClient.name, "CREATED_AT": OAuthClient.created_at}


@dataclass(frozen=True)
class RoleFilter:
    scope: str | None = None

    def check(self) -> None:
        """Nothing to refuse (every value is a filter)."""

    def apply(self, statement: Select[Any]) -> Select[Any]:
        clauses = [_active(Role)]
        if self.scope is not None:
            clauses.append(literal(self.scope) == func.any(Role.scopes))
        return statement.where(*clauses)


ROLE_ORDERINGS = {"NAME": Role.name}


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
