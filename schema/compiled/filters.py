"""A list's filter as SQL conditions on its rows: the service's own filter
(``api.services.filters``), with the values of parameter variables bound."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from graphql import FieldNode
from sqlalchemy import Text, any_, cast, select
from sqlalchemy.dialects.postgresql import ARRAY

from api.errors import DomainError
from schema.compiled.selection import Unsupported

if TYPE_CHECKING:
    from schema.compiled.compiler import Compiler


def conditions_of(
    c: Compiler, node: FieldNode, filter_type: Any, given: Any, model: Any, alias: Any
) -> list[Any]:
    """The conditions of the filter ``given`` (a GraphQL filter input, or None) on the
    rows of ``alias``."""
    try:
        query_filter = (given or filter_type()).to_filter()
    except DomainError:
        raise Unsupported("invalid arguments") from None
    keys = getattr(query_filter, "keys", None)
    bound_keys = None
    if keys is not None:
        bound_keys = c.parameter(node, ("filter", "keys"), list(keys), ARRAY(Text))
    if bound_keys is not None:
        # key IN (...) as key = ANY($n): one parameter whatever the number of keys.
        query_filter = dataclasses.replace(query_filter, keys=None)
    try:
        statement = query_filter.apply(select(model))
    except DomainError:
        raise Unsupported("invalid arguments") from None
    conditions = (
        [c.adapt(alias, statement.whereclause)] if statement.whereclause is not None else []
    )
    if bound_keys is not None:
        conditions.append(alias.key == any_(cast(bound_keys, ARRAY(Text))))
    return conditions
