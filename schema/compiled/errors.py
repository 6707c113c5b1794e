"""Errors the plan writes itself: fields the caller's scopes may not read, and
arguments the resolver refuses (a series window).

A field refused by its scopes (``schema.guards.refused_scopes``, the one rule) or by
the resolver's own check of its arguments compiles to JSON null, and the compiler
records where it sits (``Compiler.path``: the fields and list indices above it). After the statement ran, the answer is walked along those
places only (``finish``; a plan without them is never parsed): each occurrence
gets the resolvers' error (FORBIDDEN: ``schema.permissions.forbidden``; or the check's
``DomainError``) with its concrete path (list indices included) and location, and a null in a non-null position
propagates to the nearest nullable one, as GraphQL does: errors in the order the
resolvers write them, none for a position already nulled.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import orjson
from graphql import (
    FieldNode,
    GraphQLAbstractType,
    GraphQLError,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLSchema,
    get_named_type,
    located_error,
)
from graphql.language.location import SourceLocation, get_location

from domain.errors import DomainError
from schema.compiled.selection import Unsupported, response_key
from schema.permissions import FORBIDDEN, forbidden

# Where a field sits: (parent type name, field node) per field, an int per fixed list
# index (``nodes(ids:)``: each item has its own type).
Step = tuple[str, FieldNode] | int


Error = Callable[[], GraphQLError]


class Refused(Unsupported):
    """The field ``node`` is answered with an error: what builds that very field
    catches it and calls ``Compiler.refuse``; anywhere else it is an ``Unsupported``
    (the resolvers answer, as before)."""

    def __init__(self, reason: str, node: FieldNode, error: Error) -> None:
        super().__init__(reason)
        self.node = node
        self.error = error


def forbidden_field(node: FieldNode, required: tuple[str, ...]) -> Refused:
    return Refused(f"missing scope {', '.join(required)}", node, lambda: forbidden(required))


def invalid_field(node: FieldNode, reason: str, error: Exception) -> Refused:
    """The resolver's check raised ``error`` (a ``DomainError``): its error, coded by
    the view as the resolver's is (``schema.errors.with_code``)."""
    return Refused(reason, node, lambda: located_error(error))


@dataclass
class Refusal:
    steps: tuple[Step, ...]
    error: Error


# When the resolvers get to a field (``_when``): an awaiting resolver's check runs when
# its task starts, a step after what its parent completes at once; what is below an
# awaiting resolver waits for its statement. A list at the root runs its statement at
# once; a dataloader (any other awaiting field) sends its batch a step later, so its
# statement queues behind those (the session runs one at a time); `nodes(ids:)` awaits
# no statement itself, each ID's dataloader does.
TASK_STARTS, ROOT_LIST, DATALOADER, NODES = 1, 2, 4, 1


@dataclass
class Site:
    """A place on the way to refused fields: its response key (or list index), GraphQL
    type, whether its resolver awaits and what the fields below it wait for it (in
    steps: ``DATALOADER``...); the places below it in document order."""

    key: str | int
    type: GraphQLOutputType
    awaits: bool = False
    waits: int = 0
    children: dict[str, Site] = field(default_factory=dict)
    items: dict[int, Site] = field(default_factory=dict)
    refused: tuple[Error, SourceLocation] | None = None


@dataclass
class Sites:
    """One root field's refused places."""

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
                    # Each ID is loaded by an awaitable of its own (``Query.nodes``).
                    made_item = Site(step, item_type.of_type, True, DATALOADER)
                    site = site.items.setdefault(step, made_item)
                    continue
                type_name, node = step
                parent = schema.type_map[type_name]
                assert isinstance(parent, GraphQLObjectType)
                if site is not None and not _within(schema, site.type, parent):
                    # An object built where its field's place was not recorded: its
                    # error's path is unknown, so the resolvers answer.
                    raise Unsupported("a refused field where its path is unknown")
                definition = parent.fields[node.name.value]
                strawberry_field = definition.extensions.get("strawberry-definition")
                awaits = bool(strawberry_field is not None and strawberry_field.is_async)
                made = Site(
                    response_key(node),
                    definition.type,
                    awaits,
                    _waits(type_name, node.name.value, strawberry_field) if awaits else 0,
                )
                if site is None:
                    root = site = root or made
                else:
                    site = site.children.setdefault(made.key, made)  # type: ignore[arg-type]
            assert site is not None
            node = next(s[1] for s in reversed(refusal.steps) if not isinstance(s, int))
            assert node.loc is not None
            site.refused = (refusal.error, get_location(node.loc.source, node.loc.start))
        assert root is not None
        return cls(root)


def _within(schema: GraphQLSchema, type_: GraphQLOutputType, parent: GraphQLObjectType) -> bool:
    """Whether objects of ``parent`` are what a field of type ``type_`` holds."""
    named = get_named_type(type_)
    return named is parent or (
        isinstance(named, GraphQLAbstractType) and schema.is_sub_type(named, parent)
    )


def _waits(type_name: str, name: str, strawberry_field: Any) -> int:
    if type_name != "Query":
        return DATALOADER
    if name == "nodes":
        return NODES
    if "root_model" in strawberry_field.metadata or name in {"webhooks", "changes"}:
        return ROOT_LIST
    return DATALOADER


class _Event(NamedTuple):
    """A refused field met in the answer: when the resolvers meet it (``_when``), its
    concrete path, and the positions above it (their path lengths) that are nullable."""

    when: int
    path: tuple[str | int, ...]
    nullable: tuple[bool, ...]  # per position of ``path``'s prefixes, from the root
    site: Site


def finish(
    data: dict[str, Any], roots: dict[str, tuple[str | None, Sites]]
) -> tuple[dict[str, Any] | None, list[GraphQLError]]:
    """``data`` with the refused places of ``roots`` (root field -> its JSON text, its
    places) null and their errors, in the order the resolvers write them: by when
    their resolvers get to them (``_waits``: GraphQL runs what is ready first), then in
    document order; an error below a position already nulled is not written, and a null in a
    non-null position propagates to the nearest nullable one (to ``data`` itself)."""
    events: list[_Event] = []
    values: dict[str, Any] = {}
    for key, (text, sites) in roots.items():
        values[key] = None if text is None else orjson.loads(text)
        _meet(values[key], sites.root, (key,), (), 0, events)
    # Stable: document order within a step. A null that propagates (a non-null field)
    # is written when it reaches its nullable position, after the rest of its step.
    events.sort(key=lambda event: (event.when, not event.nullable[-1]))
    errors: list[GraphQLError] = []
    nulled: set[tuple[str | int, ...]] = set()
    for event in events:
        if any(event.path[:n] in nulled for n in range(1, len(event.path) + 1)):
            continue
        assert event.site.refused is not None
        make, location = event.site.refused
        error = make()
        error.path = list(event.path)
        error.locations = [location]
        errors.append(error)
        length = next((n for n in range(len(event.path), 0, -1) if event.nullable[n - 1]), 0)
        if length == 0:  # no nullable position up to the root: no data at all
            return None, errors
        position = event.path[:length]
        nulled.add(position)
        _set_null(values, position)
    for key in roots:
        data[key] = orjson.Fragment(orjson.dumps(values[key]))
    return data, errors


def _meet(
    value: Any,
    site: Site,
    path: tuple[str | int, ...],
    nullable: tuple[bool, ...],
    awaited: int,
    events: list[_Event],
) -> None:
    """The refused places at and below ``site`` whose parent is in the answer."""
    here = (*nullable, not isinstance(site.type, GraphQLNonNull))
    if site.refused is not None:
        # A check in an awaiting resolver runs when its task starts: after what the
        # completion of its parent runs at once.
        events.append(_Event(awaited + TASK_STARTS * site.awaits, path, here, site))
        return
    if value is None:
        return
    below = awaited + site.waits
    type_ = _nullable(site.type)
    if isinstance(type_, GraphQLList):
        _meet_items(value, type_.of_type, site, path, here, below, events)
        return
    for child in site.children.values():
        assert isinstance(child.key, str)
        if child.key in value:  # not there: an object of another type (the feed's `node`)
            _meet(value[child.key], child, (*path, child.key), here, below, events)


def _meet_items(
    value: list[Any],
    item_type: GraphQLOutputType,
    site: Site,
    path: tuple[str | int, ...],
    nullable: tuple[bool, ...],
    awaited: int,
    events: list[_Event],
) -> None:
    for index, item in enumerate(value):
        if site.items:
            own = site.items.get(index)
            if own is not None:
                _meet(item, own, (*path, index), nullable, awaited, events)
        else:
            as_item = Site(index, item_type, children=site.children)
            _meet(item, as_item, (*path, index), nullable, awaited, events)


def _set_null(values: dict[str, Any], position: tuple[str | int, ...]) -> None:
    container: Any = values
    for key in position[:-1]:
        container = container[key]
    container[position[-1]] = None


def _nullable(type_: GraphQLOutputType) -> Any:
    return type_.of_type if isinstance(type_, GraphQLNonNull) else type_


def written(error: GraphQLError) -> bool:
    """Whether the plan wrote the error (a refused field), not a failure of the run:
    only such answers may be kept (``schema.known``)."""
    original = error.original_error
    return original is None or isinstance(original, DomainError)


def refused(result: Any) -> bool:
    """Whether a refused field's error is in the result: an anonymous caller is then
    asked to authenticate (``schema.permissions.ask_for_token``)."""
    return any((e.extensions or {}).get("code") == FORBIDDEN for e in result.errors or ())
