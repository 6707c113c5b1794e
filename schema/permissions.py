"""Scopes declared next to each field, visible in the SDL, enforced by one mechanism.

``guarded(description, scope, ...)`` gives a field its description (ending with
the scopes it needs), the ``@requiresScopes`` directive in the schema, and the
permission check. Resolvers never check scopes by hand.
"""

from __future__ import annotations

from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.permission import BasePermission, PermissionExtension
from strawberry.schema_directive import Location

from auth.middleware import challenge
from auth.scopes import Scope


@strawberry.schema_directive(
    locations=[Location.FIELD_DEFINITION],
    name="requiresScopes",
    description="The OAuth scopes a caller needs to read this field.",
)
class RequiresScopes:
    scopes: list[str] = strawberry.field(description="Every one of these scopes is required.")


FORBIDDEN = "FORBIDDEN"


def forbidden(required: tuple[str, ...]) -> GraphQLError:
    listed = ", ".join(required)
    return GraphQLError(
        f"Missing scope: this field requires {listed}.",
        extensions={"code": FORBIDDEN, "requiredScopes": list(required)},
    )


class HasScopes(BasePermission):
    """Allows the field when the request's effective scopes include all ``scopes``."""

    def __init__(self, scopes: tuple[str, ...]) -> None:
        self.scopes = scopes
        self.message = f"Missing scope: this field requires {', '.join(scopes)}."

    @property
    def schema_directive(self) -> object:
        return RequiresScopes(scopes=list(self.scopes))

    def has_permission(self, source: Any, info: strawberry.Info, **kwargs: Any) -> bool:
        allowed: bool = info.context.principal.has(*self.scopes)
        if not allowed:
            ask_for_token(info.context)
        return allowed

    def on_unauthorized(self) -> None:
        raise forbidden(self.scopes)


def guarded(description: str, *scopes: Scope) -> dict[str, Any]:
    """Keyword arguments for ``strawberry.field``: description, directive and check."""
    return {
        "description": scoped_description(description, *scopes),
        "extensions": scope_check(*scopes),
    }


def scoped_description(description: str, *scopes: Scope) -> str:
    """A guarded field's description: what it is, then the scopes it needs."""
    return f"{description}\n\nRequires scopes: {', '.join(s.value for s in scopes)}."


def scope_check(*scopes: Scope) -> list[Any]:
    """A guarded field's extensions: the ``@requiresScopes`` directive and the check.
    With ``scoped_description``, for a field without a resolver of its own (strawberry's
    typing takes no ``**guarded(...)`` there)."""
    names = tuple(s.value for s in scopes)
    return [PermissionExtension(permissions=[HasScopes(names)], use_directives=True)]


def require(context: Any, *scopes: Scope) -> None:
    """For resolvers whose scope depends on the value returned (``node``)."""
    names = tuple(s.value for s in scopes)
    if not context.principal.has(*names):
        ask_for_token(context)
        raise forbidden(names)


def ask_for_token(context: Any) -> None:
    """An anonymous caller refused a field is told to authenticate (RFC 6750: 401)."""
    challenge_anonymous(context.principal, context.response)


def challenge_anonymous(principal: Any, response: Any) -> None:
    """``ask_for_token`` for a response built without a context (``schema.known``)."""
    if not principal.authenticated and response is not None:
        response.status_code = 401
        response.headers["WWW-Authenticate"] = challenge()
