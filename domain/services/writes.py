"""The write path shared by every entity: create, update, archive.

Services validate before they write, lock the row they change, check
``expectedVersion``, bump ``version`` and write the audit event in the same
transaction. They never commit: the request's transaction (a savepoint per
mutation) is committed or rolled back in one place.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from domain.models import AuditAction
from domain.services import audit


@dataclass(frozen=True)
class Actor:
    """Who makes a change, as the audit trail records it."""

    user_id: int | None = None
    client_id: int | None = None
    # The effective scopes it holds: the most it may grant (see domain.services.identity).
    # Empty by default, so an actor built without them can grant nothing.
    scopes: frozenset[str] = frozenset()


@dataclass(frozen=True)
class UserError:
    """A reason a mutation was refused. ``field`` is the input field (snake_case here)."""

    field: str | None
    code: str
    message: str


class Refused(Exception):
    """A mutation refused with user errors; ``current`` is the entity as stored, if any."""

    def __init__(self, *errors: UserError, current: Any = None) -> None:
        super().__init__("; ".join(e.message for e in errors))
        self.errors = list(errors)
        self.current = current


Validator = Callable[[AsyncSession, Mapping[str, Any], Any], Awaitable[list[UserError]]]


async def no_rules(session: AsyncSession, state: Mapping[str, Any], entity: Any) -> list[UserError]:
    return []


@dataclass(frozen=True)
class EntitySpec:
    """How one entity is written: its model, writable fields, references and rules."""

    model: Any
    name: str
    fields: tuple[str, ...]
    label_field: str = "key"
    # Foreign key attribute -> (model, entity name) that it must point at.
    references: Mapping[str, tuple[Any, str]] = field(default_factory=dict)
    validate: Validator = no_rules


def camel(name: str) -> str:
    """The GraphQL spelling of a field name, for messages."""
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def label(spec: EntitySpec, entity: Any) -> str:
    return f"{spec.name} {getattr(entity, spec.label_field)}"


async def load_for_update(
    session: AsyncSession, spec: EntitySpec, entity_id: int, expected_version: int | None
) -> Any:
    """Lock an active row; refuse when it is missing or its version is not the expected one.

    FOR NO KEY UPDATE, the lock the UPDATE itself takes (ids never change): a FOR UPDATE
    lock would also make every other transaction that references the row (a foreign key
    check, FOR KEY SHARE: a child moved under it) wait for this one, and two crossing
    moves ("A under B" and "B under A") then wait for each other: a deadlock."""
    entity = await session.scalar(
        select(spec.model)
        .where(spec.model.id == entity_id, spec.model.archived_at.is_(None))
        .with_for_update(key_share=True)
        .execution_options(populate_existing=True)
    )
    if entity is None:
        raise Refused(UserError("id", "NOT_FOUND", f"No {spec.name} with this ID."))
    if expected_version is not None and entity.version != expected_version:
        raise Refused(
            UserError(
                "expected_version",
                "CONFLICT",
                f"{label(spec, entity)} is at version {entity.version}, not {expected_version}: "
                "it changed since you read it.",
            ),
            current=entity,
        )
    return entity


async def _check(
    session: AsyncSession, spec: EntitySpec, state: Mapping[str, Any], entity: Any
) -> None:
    columns = spec.model.__table__.c
    errors = [
        UserError(name, "INVALID", f"`{camel(name)}` cannot be null.")
        for name in spec.fields
        if state.get(name) is None and not columns[name].nullable
    ]
    # A reference the update leaves as it is was checked when it was set: only new
    # ones are looked up (an edit of a title needs no query about its team).
    references = {
        name: value
        for name, value in state.items()
        if entity is None or getattr(entity, name) != value
    }
    errors += await check_references(session, spec, references)
    errors += await spec.validate(session, state, entity)
    if errors:
        raise Refused(*errors)


async def check_references(
    session: AsyncSession, spec: EntitySpec, state: Mapping[str, Any]
) -> list[UserError]:
    errors = []
    for attribute, (model, name) in spec.references.items():
        target = state.get(attribute)
        if target is None:
            continue
        found = await session.scalar(
            select(model.id).where(model.id == target, model.archived_at.is_(None))
        )
        if found is None:
            errors.append(UserError(attribute, "NOT_FOUND", f"No {name} with this ID."))
    return errors


async def create(
    session: AsyncSession, actor: Actor, spec: EntitySpec, values: dict[str, Any]
) -> Any:
    state = {name: values.get(name) for name in spec.fields}
    await _check(session, spec, state, None)
    entity = spec.model(**{k: v for k, v in values.items() if v is not None})
    session.add(entity)
    await flush(session, spec)
    await session.refresh(entity)
    await audit.record(
        session, actor, spec.name, entity.id, AuditAction.CREATE, audit.created(entity, spec.fields)
    )
    return entity


async def update(
    session: AsyncSession,
    actor: Actor,
    spec: EntitySpec,
    entity_id: int,
    expected_version: int | None,
    changes: dict[str, Any],
) -> Any:
    entity = await load_for_update(session, spec, entity_id, expected_version)
    before = {name: getattr(entity, name) for name in spec.fields}
    state = {**before, **changes}
    await _check(session, spec, state, entity)
    changed = {name: value for name, value in changes.items() if before[name] != value}
    if not changed:
        return entity  # nothing to change: no new version, no audit event
    for name, value in changed.items():
        setattr(entity, name, value)
    await bump_version(session, spec, entity)
    await audit.record(
        session,
        actor,
        spec.name,
        entity.id,
        AuditAction.UPDATE,
        audit.diff(before, changed, version=(entity.version - 1, entity.version)),
    )
    return entity


async def archive(
    session: AsyncSession,
    actor: Actor,
    spec: EntitySpec,
    entity_id: int,
    expected_version: int | None,
) -> Any:
    entity = await load_for_update(session, spec, entity_id, expected_version)
    entity.archived_at = func.now()
    await bump_version(session, spec, entity)
    await audit.record(
        session,
        actor,
        spec.name,
        entity.id,
        AuditAction.ARCHIVE,
        audit.diff(
            {"archived_at": None},
            {"archived_at": entity.archived_at},
            version=(entity.version - 1, entity.version),
        ),
    )
    return entity


async def bump_version(session: AsyncSession, spec: EntitySpec, entity: Any) -> None:
    entity.version = entity.version + 1
    entity.updated_at = func.now()
    await flush(session, spec)
    await session.refresh(entity)


def constraint_name(error: IntegrityError) -> str:
    """The violated constraint's name (asyncpg keeps it on the driver exception)."""
    driver_error = getattr(error.orig, "__cause__", None) or error.orig
    return getattr(driver_error, "constraint_name", None) or ""


async def flush(session: AsyncSession, spec: EntitySpec) -> None:
    """Flush, turning a unique violation into DUPLICATE on the field it concerns."""
    try:
        await session.flush()
    except IntegrityError as error:
        constraint = constraint_name(error)
        table = spec.model.__tablename__
        if constraint.startswith(f"uq_{table}_"):
            column = constraint[len(f"uq_{table}_") :]
            raise Refused(
                UserError(column, "DUPLICATE", f"Another {spec.name} already has this {column}.")
            ) from None
        raise
