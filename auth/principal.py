"""Who is calling, and with which effective scopes."""

from __future__ import annotations

from dataclasses import dataclass, field

from auth.scopes import READ_SCOPES


@dataclass(frozen=True)
class Principal:
    """The caller of one request. Anonymous until the OAuth issue adds tokens."""

    scopes: frozenset[str] = field(default_factory=frozenset)
    user_id: int | None = None
    client_id: str | None = None
    # Primary key of the OAuth client row, for the audit trail.
    client_pk: int | None = None

    def has(self, *required: str) -> bool:
        return set(required) <= self.scopes


def anonymous_principal(*, development: bool, configured: list[str] | None) -> Principal:
    """Unauthenticated callers: the configured scopes, else every read scope in
    development and nothing in production."""
    if configured is not None:
        return Principal(scopes=frozenset(configured))
    return Principal(scopes=frozenset(s.value for s in READ_SCOPES) if development else frozenset())
