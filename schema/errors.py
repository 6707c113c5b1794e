"""Every GraphQL error leaves with a machine-readable ``extensions.code``."""

from __future__ import annotations

from graphql import GraphQLError

from api.errors import DomainError

# Codes of errors raised before execution.
PARSE_FAILED = "GRAPHQL_PARSE_FAILED"
VALIDATION_FAILED = "GRAPHQL_VALIDATION_FAILED"
BAD_USER_INPUT = "BAD_USER_INPUT"  # variables that do not fit their declared types
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
        elif error.path is None:
            # Before execution: the document or the variables are wrong.
            if error.message.startswith("Syntax Error"):
                extensions["code"] = PARSE_FAILED
            elif error.message.startswith("Variable '$"):
                extensions["code"] = BAD_USER_INPUT
            else:
                extensions["code"] = VALIDATION_FAILED
        else:
            extensions["code"] = INTERNAL
    error.extensions = extensions
    return error
