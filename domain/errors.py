"""Errors the services raise; the GraphQL layer turns them into coded errors."""

from __future__ import annotations


class DomainError(Exception):
    """A request the service refuses. ``code`` is one of the documented error codes."""

    code = "INVALID"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class InvalidInput(DomainError):
    code = "INVALID"


class NotFound(DomainError):
    code = "NOT_FOUND"
