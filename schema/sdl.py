"""The committed contract: ``schema.graphql`` is ``render_sdl``'s output; documents are
checked against it before they are registered."""

from __future__ import annotations

from graphql import GraphQLError, parse, validate

from schema.build import build_schema, schema
from schema.federation import subgraph_sdl


def render_sdl(*, federation: bool = False) -> str:
    """The committed contract; with ``federation``, the subgraph's SDL that a gateway
    composes (the same types, with ``@key`` and ``@link``)."""
    if federation:
        return subgraph_sdl(build_schema(federation=True))
    return schema.as_str().rstrip("\n") + "\n"


def document_problems(document: str) -> list[str]:
    """Why a document cannot run against the schema (syntax, then validation); none if
    it can. For documents registered ahead of time (``portfolio persist-queries``)."""
    try:
        parsed = parse(document)
    except GraphQLError as error:
        return [error.message]
    return [error.message for error in validate(schema._schema, parsed)]
