"""The values a plan binds, computed per request: the plan's SQL has ``$n`` where a
variable's value goes, and ``Binder`` fills them in for each request's variables.

Most parameters are a variable's value as it is (a key, an ID, a cursor's text:
``parameters.bound_value``). Others are computed from the arguments of the field that
uses them, as the resolvers would get them: ``first: $n`` is checked by
``page_request`` (range, not with ``last``) and becomes ``LIMIT $n``; a filter field
given as a variable becomes the values of the SQL the service's filter writes for it
(an enum list, the words of a search, a date), the whole filter checked as the service
checks it (a range whose end is before its start). A value the resolvers refuse makes
the plan decline that request (``Declined``): the resolvers answer it, with their error.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import strawberry
from graphql import FieldNode, GraphQLError, GraphQLSchema, VariableDefinitionNode
from graphql.execution.values import get_argument_values, get_variable_values

from domain.errors import DomainError
from schema.compiled.parameters import PREFIX, bound_value
from schema.compiled.selection import Unsupported


class Declined(Exception):
    """This request's values are not served by the plan: the resolvers answer it."""


# From a field's arguments, the values of the parameters it binds.
Extract = Callable[[dict[str, Any]], Mapping[str, Any]]


@dataclass
class Site:
    """A field whose parameters are computed from its arguments, as GraphQL coerces them
    (enum members, dates, instants: what strawberry's inputs hold)."""

    definition: Any  # GraphQL field
    node: FieldNode
    extracts: list[Extract] = field(default_factory=list)


@dataclass
class Binder:
    """Everything a plan needs to bind a request's values."""

    schema: strawberry.Schema
    variable_definitions: tuple[VariableDefinitionNode, ...]
    direct: dict[str, str] = field(default_factory=dict)  # variable -> kind, bound as it is
    sites: list[Site] = field(default_factory=list)

    def values(self, variables: Any) -> dict[str, Any]:
        """Parameter name -> value for this request; ``Declined`` if the plan does not
        serve these values."""
        raw = variables if isinstance(variables, dict) else {}
        found = {PREFIX + name: bound_value(kind, raw[name]) for name, kind in self.direct.items()}
        if self.sites:
            found.update(self._computed(raw))
        return found

    def _computed(self, raw: dict[str, Any]) -> dict[str, Any]:
        graphql_schema: GraphQLSchema = self.schema._schema
        coerced = get_variable_values(graphql_schema, self.variable_definitions, raw)
        if isinstance(coerced, list):
            raise Declined("variables")  # strawberry reports them
        found: dict[str, Any] = {}
        for site in self.sites:
            try:
                arguments = get_argument_values(site.definition, site.node, coerced)
                for extract in site.extracts:
                    found.update(extract(arguments))
            except (DomainError, Unsupported, GraphQLError, ValueError, TypeError) as refused:
                raise Declined(str(refused)) from None
        return found
