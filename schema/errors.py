"""Every GraphQL error leaves with a machine-readable ``extensions.code``."""

from __future__ import annotations

from graphql import GraphQLError

from api.errors import DomainError

# Codes of errors raised before execution.
PARSE_FAILED = "GRAPHQL_PARSE_FAILED"
VALIDATION_FAILED = "GRAPHQL_VALIDATION_FAILED"
INTERNAL = "INTERNAL_SERVER_ERROR"


def with_code(error: GraphQLError) -> GraphQLError:
    """Add ``code`` (and ``field`` for input errors) to an error's extensions."""
    extensions = dict(error.extensions or {})
    if "code" not in extensions:
        original = error.original_error
        if isinstance(original, DomainError):
            extensions["code"] = original.code
            if original.field:
                extensions["field"] = original.field
        elif original is None and error.path is None:
            is_syntax = error.message.startswith("Syntax Error")
            extensions["code"] = PARSE_FAILED if is_syntax else VALIDATION_FAILED
        elif original is None:
            extensions["code"] = VALIDATION_FAILED
        else:
            extensions["code"] = INTERNAL
    error.extensions = extensions
    return error
