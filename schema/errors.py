"""Every GraphQL error leaves with a machine-readable ``extensions.code``."""

from __future__ import annotations

from graphql import GraphQLError

from domain.errors import DomainError
from schema.context import aborted_read, transaction_conflict

# Codes of errors raised before execution.
PARSE_FAILED = "GRAPHQL_PARSE_FAILED"
VALIDATION_FAILED = "GRAPHQL_VALIDATION_FAILED"
BAD_USER_INPUT = "BAD_USER_INPUT"  # variables that do not fit their declared types
INTERNAL = "INTERNAL_SERVER_ERROR"
TIMEOUT = "TIMEOUT"
CONFLICT = "CONFLICT"
UNAVAILABLE = "SERVICE_UNAVAILABLE"


def connection_lost(error: BaseException | None) -> bool:
    """The connection broke mid-request (database restarted): SQLSTATE class 08, or
    the driver's own connection errors."""
    while error is not None:
        if isinstance(error, ConnectionError | OSError):
            return True
        if str(getattr(error, "sqlstate", "") or "").startswith(("08", "57P")):
            return True
        if type(error).__name__ in {
            "ConnectionDoesNotExistError",
            "InterfaceError",
            "InternalClientError",  # the protocol broke off mid-operation
        }:
            return True
        error = error.__cause__ or getattr(error, "orig", None)
    return False


def _statement_timeout(error: BaseException | None) -> bool:
    """PostgreSQL cancelled the statement (statement_timeout): SQLSTATE 57014."""
    while error is not None:
        if getattr(error, "sqlstate", None) == "57014":
            return True
        error = error.__cause__ or getattr(error, "orig", None)
    return False


def with_code(error: GraphQLError) -> GraphQLError:
    """Add ``code`` (and ``field`` for input errors) to an error's extensions."""
    extensions = dict(error.extensions or {})
    if "code" not in extensions:
        original = error.original_error
        if isinstance(original, DomainError):
            extensions["code"] = original.code
            if original.field:
                extensions["field"] = original.field
        elif connection_lost(original):
            extensions["code"] = UNAVAILABLE
            error.message = "The database connection was lost; retry shortly."
        elif _statement_timeout(original):
            extensions["code"] = TIMEOUT
            error.message = "The database took too long to answer this field."
        elif (reason := transaction_conflict(original)) is not None:
            extensions["code"] = CONFLICT  # a deadlock or serialization failure
            error.message = aborted_read(reason)
        elif error.path is None and error.message.startswith("Syntax Error"):
            extensions["code"] = PARSE_FAILED
        elif error.path is None and error.message.startswith("Variable '$"):
            extensions["code"] = BAD_USER_INPUT  # variables that do not fit their types
        elif error.path is None and (original is None or isinstance(original, GraphQLError)):
            extensions["code"] = VALIDATION_FAILED  # the document does not fit the schema
        else:
            extensions["code"] = INTERNAL
    error.extensions = extensions
    return error
