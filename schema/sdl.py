"""The committed contract: ``schema.graphql`` is ``render_sdl``'s output; documents are
checked against it before they are registered."""

from __future__ import annotations

from graphql import GraphQLError, parse, validate

from schema.build import schema


def render_sdl() -> str:
    return schema.as_str().rstrip("\n") + "\n"


def document_problems(document: str) -> list[str]:
    """Why a document cannot run against the schema (syntax, then validation); none if
    it can. For documents registered ahead of time (``portfolio persist-queries``)."""
    try:
        parsed = parse(document)
    except GraphQLError as error:
        return [error.message]
    return [error.message for error in validate(schema._schema, parsed)]
