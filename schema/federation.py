"""The schema as an Apollo Federation 2 subgraph (``PORTFOLIO_FEDERATION=true``).

The public types stay as they are (``schema.graphql`` does not change): the subgraph
adds two root fields, ``_service { sdl }`` and ``_entities(representations:)``, and its
SDL is the public one with ``@key`` on the entity types and federation's ``@link``.

``_entities`` answers exactly as ``nodes(ids:)`` does: each representation needs its
type's scope (``schema.guards.NODE_TYPES``), asked before anything is looked up; a
refused or malformed one is null with an error at ``_entities.<index>``; a key that
matches nothing (or an archived object) is null; fields keep their own guards. The
lookups go through the request's dataloaders, so a batch costs one statement per type
and key (``id`` or ``key``), whatever its length.
"""

from __future__ import annotations

import json
from dataclasses import replace
from functools import cache
from typing import Annotated, Any, NewType

import strawberry
from graphql import (
    DocumentNode,
    ObjectTypeDefinitionNode,
    ObjectTypeExtensionNode,
    parse,
    print_ast,
    value_from_ast_untyped,
)

from domain.errors import InvalidInput
from schema.guards import NODE_TYPES
from schema.ids import decode_id
from schema.permissions import require
from schema.query import Query
from schema.types.constraint import TechnicalConstraint
from schema.types.initiative import Initiative
from schema.types.kpi import Kpi
from schema.types.product import Product

FEDERATION_SPEC = "https://specs.apollo.dev/federation/v2.3"
# Entity type -> the fields a representation may name it by, in order of preference.
ENTITY_KEYS: dict[str, tuple[str, ...]] = {
    "Product": ("id", "key"),
    "Initiative": ("id", "key"),
    "TechnicalConstraint": ("id", "key"),
    "Kpi": ("id", "key"),
}
MAX_REPRESENTATIONS = 500
# What the subgraph adds to the public schema, left out of the SDL it publishes (the
# gateway knows them).
_FEDERATION_FIELDS = {"_service", "_entities"}
_FEDERATION_TYPES = {"_Any", "_Entity", "_Service"}

Representation = NewType("Representation", object)


# The scalar of a representation, given to the schema as a scalar override.
def _as_given(value: Any) -> Any:
    return value


def _literal(node: Any, variables: dict[str, Any] | None = None) -> Any:
    return value_from_ast_untyped(node, variables)


REPRESENTATION_SCALAR = strawberry.scalar(
    name="_Any",
    description="An entity representation: `__typename` and one of the entity's keys.",
    serialize=_as_given,
    parse_value=_as_given,
    parse_literal=_literal,
)

Entity = Annotated[
    Product | Initiative | TechnicalConstraint | Kpi,
    strawberry.union("_Entity", description="Every type other subgraphs may extend."),
]


@strawberry.type(name="_Service", description="This subgraph, for the federation gateway.")
class Service:
    sdl: str = strawberry.field(description="The subgraph's SDL, with `@key` and `@link`.")


async def _load_entity(info: strawberry.Info, representation: Any, index: int) -> Any:
    at = f"representations.{index}"
    if not isinstance(representation, dict):
        raise InvalidInput(f"`{at}` must be an object with `__typename` and a key.", field=at)
    type_name = representation.get("__typename")
    if not isinstance(type_name, str) or type_name not in ENTITY_KEYS:
        raise InvalidInput(
            f"`{at}.__typename` must be one of {', '.join(ENTITY_KEYS)}; "
            f"got {json.dumps(type_name)[:80]}.",
            field=f"{at}.__typename",
        )
    model, scope = NODE_TYPES[type_name]
    require(info.context, scope)  # before any lookup, as node(id:) does
    keys = ENTITY_KEYS[type_name]
    key = next((k for k in keys if k in representation), None)
    if key is None:
        raise InvalidInput(
            f"`{at}` must give one of {', '.join(keys)} for a {type_name}.", field=at
        )
    value = representation[key]
    if not isinstance(value, str):
        raise InvalidInput(f"`{at}.{key}` must be a string.", field=f"{at}.{key}")
    if key == "key":
        return await info.context.by_key(model, model.key).load(value)
    found, pk = decode_id(value, field=f"{at}.id")
    if found != type_name:
        raise InvalidInput(f"`{at}.id` is a {found} ID, not a {type_name} ID.", field=f"{at}.id")
    return await info.context.by_id(model).load(pk)


@strawberry.type(name="Query", description="Reads of the portfolio graph.")
class FederatedQuery(Query):
    @strawberry.field(
        name="_entities",
        description="Federation: the entities the representations name, in their order; null "
        "for each that does not exist. Requires the scope of each entity's type, as `node`.",
    )
    async def entities(
        self,
        info: strawberry.Info,
        representations: Annotated[
            list[Representation],
            strawberry.argument(description="`__typename` and a key of each entity."),
        ],
    ) -> list[Entity | None]:
        if len(representations) > MAX_REPRESENTATIONS:
            raise InvalidInput(
                f"`representations` takes at most {MAX_REPRESENTATIONS} entities; "
                f"got {len(representations)}.",
                field="representations",
            )
        # One awaitable each: the loads batch (one statement per type and key), and a
        # refused representation is null with its own error, not the end of the list.
        return [
            _load_entity(info, representation, index)  # type: ignore[misc]
            for index, representation in enumerate(representations)
        ]

    @strawberry.field(
        name="_service",
        description="Federation: this subgraph's SDL. Public, like the committed schema.graphql.",
    )
    def service(self, info: strawberry.Info) -> Service:
        return Service(sdl=subgraph_sdl(info.schema))


@cache
def subgraph_sdl(schema: strawberry.Schema) -> str:
    """The SDL a gateway composes: the public schema's, the federation fields and types
    left out, ``@key`` on each entity type, and the ``@link`` importing it."""
    document = parse(schema.as_str())
    keys = {name: _key_directives(fields) for name, fields in ENTITY_KEYS.items()}
    definitions = []
    for definition in document.definitions:
        name = getattr(getattr(definition, "name", None), "value", None)
        if name in _FEDERATION_TYPES:
            continue
        if isinstance(definition, ObjectTypeDefinitionNode | ObjectTypeExtensionNode):
            if name == "Query":
                fields = definition.fields or ()
                definition = replace(
                    definition,
                    fields=tuple(f for f in fields if f.name.value not in _FEDERATION_FIELDS),
                )
            if name in keys:
                applied = (*(definition.directives or ()), *keys[name])
                definition = replace(definition, directives=applied)
        definitions.append(definition)
    link = f'extend schema @link(url: "{FEDERATION_SPEC}", import: ["@key"])'
    return f"{link}\n\n{print_ast(DocumentNode(definitions=tuple(definitions)))}\n"


def _key_directives(fields: tuple[str, ...]) -> tuple[Any, ...]:
    applied = " ".join(f'@key(fields: "{field}")' for field in fields)
    parsed = parse(f"type Keyed {applied} {{ id: ID }}").definitions[0]
    assert isinstance(parsed, ObjectTypeDefinitionNode)
    return tuple(parsed.directives or ())
