"""Values the plan finishes in Python after PostgreSQL built the answer: an audit
event's ``changes``, presented per caller by ``schema.guards.AuditChanges`` (the one
declaration of who may read what), not by a copy of that rule in SQL.

The statement writes each such value as ``{"$changes":[entity type, stored changes]}``
(``marked``); a root field whose SQL holds that marker is parsed once, each marker
replaced by what ``AuditChanges.present`` shows the plan's scopes (a plan is keyed by
them), and written again by orjson: the bytes the resolver's answer has. ``$`` is in no
GraphQL name, so no response key can be the marker; and the stored changes inside a
marker are never searched for markers themselves.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
import strawberry
from sqlalchemy import ColumnElement

from schema.compiled import jsontext
from schema.guards import AuditChanges

CHANGES = "$changes"
# The marker's opening in the statement's SQL text, inside a constant that may start
# before it (``jsontext`` joins neighbouring constants). A value written into the SQL
# that holds it too only costs a parse: no answer has a key ``$changes``.
_IN_SQL = '{"' + CHANGES + '":'

_PRESENTERS: dict[int, tuple[strawberry.Schema, AuditChanges]] = {}


def changes(entity_type: Any, stored: Any) -> ColumnElement[str]:
    """The marker of one event's changes, for ``finisher`` to present."""
    return jsontext.marked(CHANGES, jsontext.json_list([entity_type, stored]))


def finisher(
    sql: str, schema: strawberry.Schema, scopes: frozenset[str]
) -> Callable[[str], str] | None:
    """What finishes the JSON text of a statement holding markers; None if it holds
    none (PostgreSQL's text is then the answer as it is)."""
    if _IN_SQL not in sql:
        return None
    presenter = _presenter(schema)

    def finish(text: str) -> str:
        return orjson.dumps(_presented(orjson.loads(text), presenter, scopes)).decode()

    return finish


def _presented(value: Any, presenter: AuditChanges, scopes: frozenset[str]) -> Any:
    if isinstance(value, dict):
        if len(value) == 1 and CHANGES in value:
            entity_type, stored = value[CHANGES]
            return presenter.present(entity_type, stored, scopes)
        return {key: _presented(item, presenter, scopes) for key, item in value.items()}
    if isinstance(value, list):
        return [_presented(item, presenter, scopes) for item in value]
    return value


def _presenter(schema: strawberry.Schema) -> AuditChanges:
    """One per schema variant: its tables are built once."""
    found = _PRESENTERS.get(id(schema))
    if found is None or found[0] is not schema:
        found = _PRESENTERS[id(schema)] = (schema, AuditChanges(schema))
    return found[1]
