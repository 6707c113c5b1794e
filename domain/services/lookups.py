"""Objects named the way an integration knows them: by key or by external reference as
well as by ID. A mutation's input may name each object it touches either way
(``{key: "CHK-103"}``); the names are turned into primary keys here, all of a mutation's
in one statement, before the service runs. A name that matches nothing is NOT_FOUND
with the name in the message, and nothing is written."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import literal, select
from sqlalchemy.ext.asyncio import AsyncSession

from domain.models import ExternalRef
from domain.services.external_refs import RefIn
from domain.services.specs import SPECS
from domain.services.writes import Refused, UserError


@dataclass(frozen=True)
class Lookup:
    """One object of ``type_name``, named by exactly one of its primary key, its key or
    one of its external references."""

    type_name: str
    id: int | None = None
    key: str | None = None
    ref: RefIn | None = None
    # The input field that named it, for its NOT_FOUND (``parent.key``).
    field: str | None = None

    def describe(self) -> str:
        if self.key is not None:
            return f"key `{self.key}`"
        if self.ref is not None:
            return f"external reference `{self.ref.system}` `{self.ref.external_id}`"
        return "this ID"


def _probe(lookup: Lookup) -> Any:
    spec = SPECS[lookup.type_name]
    model = spec.model
    if lookup.id is not None:
        return literal(lookup.id)
    if lookup.key is not None:
        condition = getattr(model, spec.label_field) == lookup.key
    else:
        assert lookup.ref is not None
        condition = model.id.in_(
            select(ExternalRef.entity_id).where(
                ExternalRef.entity_type == lookup.type_name,
                ExternalRef.system == lookup.ref.system,
                ExternalRef.external_id == lookup.ref.external_id,
            )
        )
    return select(model.id).where(condition, model.archived_at.is_(None)).scalar_subquery()


async def resolve(session: AsyncSession, wanted: Mapping[str, Lookup]) -> dict[str, int]:
    """The primary key of each lookup (by input field): one statement for all; NOT_FOUND
    on the field of each that names no active object. IDs are passed through (the
    service checks them as it always did)."""
    if not wanted:
        return {}
    named = {field: lookup for field, lookup in wanted.items() if lookup.id is None}
    found: dict[str, int | None] = {
        field: lookup.id for field, lookup in wanted.items() if lookup.id is not None
    }
    if named:
        fields = list(named)
        row = (
            await session.execute(
                select(*(_probe(named[f]).label(f"l{i}") for i, f in enumerate(fields)))
            )
        ).one()
        found |= dict(zip(fields, row, strict=True))
    missing = [
        UserError(
            lookup.field or field, "NOT_FOUND", f"No {lookup.type_name} with {lookup.describe()}."
        )
        for field, lookup in wanted.items()
        if found[field] is None
    ]
    if missing:
        raise Refused(*missing)
    return {field: pk for field, pk in found.items() if pk is not None}


async def resolve_values(session: AsyncSession, values: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` with every ``Lookup`` among them replaced by its primary key."""
    wanted = {name: value for name, value in values.items() if isinstance(value, Lookup)}
    return {**values, **await resolve(session, wanted)}
