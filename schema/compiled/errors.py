"""Errors the plan writes itself: fields the caller's scopes may not read.

A field refused by its scopes (``schema.guards.refused_scopes``, the one rule) compiles
to JSON null, and the compiler records where it sits (``Compiler.path``: the fields and
list indices above it). After the statement ran, the answer is walked along those
places only (``Sites.finish``; a plan without them is never parsed): each occurrence
gets the resolvers' FORBIDDEN error (``schema.permissions.forbidden``) with its concrete
path (list indices included) and location, and a null in a non-null position
propagates to the nearest nullable one, as GraphQL does: errors in the order the
resolvers write them, none for a position already nulled.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson
from graphql import (
    FieldNode,
    GraphQLError,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLSchema,
)
from graphql.language.location import SourceLocation, get_location

from schema.compiled.selection import Unsupported, response_key
from schema.permissions import FORBIDDEN, forbidden

# Where a field sits: (parent type name, field node) per field, an int per fixed list
# index (``nodes(ids:)``: each item has its own type).
Step = tuple[str, FieldNode] | int


class Forbidden(Unsupported):
    """A field the plan's scopes may not read; an ``Unsupported`` where nothing
    records it (the resolvers answer then, as before)."""

    def __init__(self, required: tuple[str, ...]) -> None:
        super().__init__(f"missing scope {', '.join(required)}")
        self.required = required


@dataclass
class Refusal:
    steps: tuple[Step, ...]
    required: tuple[str, ...]


@dataclass
class Site:
    """A place on the way to refused fields: its response key (or list index) and
    GraphQL type; the places below it in document order."""

    key: str | int
    type: GraphQLOutputType
    children: dict[str, Site] = field(default_factory=dict)
    items: dict[int, Site] = field(default_factory=dict)
    refused: tuple[tuple[str, ...], SourceLocation] | None = None


class _Refused(Exception):
    def __init__(self, error: GraphQLError) -> None:
        self.error = error


@dataclass
class Sites:
    """One root field's refused places: what finishes its answer."""

    root: Site

    @classmethod
    def of(cls, schema: GraphQLSchema, refusals: list[Refusal]) -> Sites:
        root: Site | None = None
        for refusal in refusals:
            site: Site | None = None
            for step in refusal.steps:
                if isinstance(step, int):
                    assert site is not None
                    item_type = _nullable(site.type)
                    assert isinstance(item_type, GraphQLList)
                    site = site.items.setdefault(step, Site(step, item_type.of_type))
                    continue
                type_name, node = step
                parent = schema.type_map[type_name]
                assert isinstance(parent, GraphQLObjectType)
                key = response_key(node)
                if site is None:
                    root = site = root or Site(key, parent.fields[node.name.value].type)
                else:
                    site = site.children.setdefault(
                        key, Site(key, parent.fields[node.name.value].type)
                    )
            assert site is not None
            node = next(s[1] for s in reversed(refusal.steps) if not isinstance(s, int))
            assert node.loc is not None
            site.refused = (refusal.required, get_location(node.loc.source, node.loc.start))
        assert root is not None
        return cls(root)

    def finish(self, text: str | None) -> tuple[str | None, list[GraphQLError], bool]:
        """The root field's JSON text with its refused places null, their errors, and
        whether the null reaches the root of the response (a non-null root field)."""
        errors: list[GraphQLError] = []
        value = None if text is None else orjson.loads(text)
        try:
            value = _position(value, self.root, [self.root.key], errors)
        except _Refused as refused:
            errors.append(refused.error)
            return None, errors, True
        return orjson.dumps(value).decode(), errors, False


def _nullable(type_: GraphQLOutputType) -> Any:
    return type_.of_type if isinstance(type_, GraphQLNonNull) else type_


def _position(value: Any, site: Site, path: list[str | int], errors: list[GraphQLError]) -> Any:
    """The value at a place, null where refused; a null in a non-null place raises to
    the nearest nullable one, which keeps the error (GraphQL's propagation)."""
    try:
        if site.refused is not None:
            required, location = site.refused
            error = forbidden(required)
            error.path = list(path)
            error.locations = [location]
            raise _Refused(error)
        return _value(value, site, path, errors)
    except _Refused as refused:
        if isinstance(site.type, GraphQLNonNull):
            raise
        errors.append(refused.error)
        return None


def _value(value: Any, site: Site, path: list[str | int], errors: list[GraphQLError]) -> Any:
    if value is None:
        return None
    type_ = _nullable(site.type)
    if isinstance(type_, GraphQLList):
        return _items(value, type_.of_type, site, path, errors)
    for child in site.children.values():
        assert isinstance(child.key, str)
        value[child.key] = _position(value.get(child.key), child, [*path, child.key], errors)
    return value


def _items(
    value: list[Any],
    item_type: GraphQLOutputType,
    site: Site,
    path: list[str | int],
    errors: list[GraphQLError],
) -> list[Any]:
    for index, item in enumerate(value):
        at = [*path, index]
        try:
            if site.items:
                own = site.items.get(index)
                if own is not None:
                    value[index] = _position(item, own, at, errors)
            else:
                value[index] = _value(item, Site(index, item_type, site.children), at, errors)
        except _Refused as refused:
            if isinstance(item_type, GraphQLNonNull):
                raise
            errors.append(refused.error)
            value[index] = None
    return value


def refused(result: Any) -> bool:
    """Whether a refused field's error is in the result: an anonymous caller is then
    asked to authenticate (``schema.permissions.ask_for_token``)."""
    return any((e.extensions or {}).get("code") == FORBIDDEN for e in result.errors or ())
