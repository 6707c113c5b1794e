"""The write path shared by every entity: create, update, archive.

Services validate before they write, lock the row they change, check
``expectedVersion``, bump ``version`` and write the audit event in the same
transaction. They never commit: the request's transaction (a savepoint per
mutation) is committed or rolled back in one place.

Entity writes go through SQLAlchemy Core, not the ORM's unit of work; the entity
handed back is built from the row the write returned, computed fields included. An
update is one statement when the rules can decide from the input alone (``update``:
they are asked first, on a ``Given`` state), else two: the row locked and read
(``lock``), the rules run on it in Python, then one statement that changes it, inserts
the audit event and returns it (``rows.write``). Either way nothing is written before
the rules pass.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Row, RowMapping, func
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from domain.models import AuditAction, TechnicalConstraint
from domain.services import audit, blocking, rows
from domain.services.spelling import camel


@dataclass(frozen=True)
class Actor:
    """Who makes a change, as the audit trail records it."""

    user_id: int | None = None
    client_id: int | None = None
    # The effective scopes it holds: the most it may grant (see auth.identity).
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


# The rules of an entity: user errors for the state a write would leave (``state``: every
# field; ``entity``: the row as it is, None for a creation). A validator reads the
# database only about a reference that changes (``update`` relies on it).
Validator = Callable[[AsyncSession, Mapping[str, Any], Any], Awaitable[list[UserError]]]


class NeedsRow(Exception):
    """The rules asked for a value the input does not give: read the row first."""


class Given(Mapping[str, Any]):
    """The state of an update as far as its input tells: the fields it sets. A rule
    about one field skips a field left out (it passed when it was stored:
    ``rules.Checks``); asking for its value raises ``NeedsRow``."""

    def __init__(self, values: Mapping[str, Any]) -> None:
        self._values = values

    def __getitem__(self, name: str) -> Any:
        try:
            return self._values[name]
        except KeyError:
            raise NeedsRow(name) from None

    def __contains__(self, name: object) -> bool:
        return name in self._values

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)


class _Unread:
    """The row of an update whose rules run before it is read: any look at it needs it."""

    def __getattr__(self, name: str) -> Any:
        raise NeedsRow(name)


UNREAD: Any = _Unread()


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


@dataclass(frozen=True)
class Attached:
    """What a write stores beside its row (external references): saved once the row is
    there, and recorded in the row's own audit event (``changes``: audit entries), so
    that a change of them alone is a new version of the object too."""

    changes: Mapping[str, Any]
    save: Callable[[AsyncSession, int], Awaitable[None]]


def label(spec: EntitySpec, entity: Any) -> str:
    return f"{spec.name} {getattr(entity, spec.label_field)}"


async def lock(
    session: AsyncSession,
    spec: EntitySpec,
    entity_id: int,
    expected_version: int | None,
    *,
    now: bool = False,
) -> Row[Any]:
    """Lock an active row and read it (computed fields included: a refusal or a write
    that changes nothing answers with it); refuse when it is missing or its version is
    not the expected one. ``now`` adds the transaction's ``now()`` as ``now``.

    FOR NO KEY UPDATE, the lock the UPDATE itself takes (ids never change): a FOR UPDATE
    lock would also make every other transaction that references the row (a foreign key
    check, FOR KEY SHARE: a child moved under it) wait for this one, and two crossing
    moves ("A under B" and "B under A") then wait for each other: a deadlock."""
    row = await rows.locked(session, spec.model, entity_id, now=now)
    refusal = refused_lock(spec, row, expected_version)
    if refusal is not None:
        refusal.current = None if row is None else rows.detached(spec.model, row)
        raise refusal
    assert row is not None
    return row


def refused_lock(spec: EntitySpec, row: Any, expected_version: int | None) -> Refused | None:
    """Why ``lock`` refuses the locked ``row`` (None: missing or archived), if it does; its
    ``current`` is for the caller to set (the entity as stored, on CONFLICT)."""
    if row is None:
        return Refused(UserError("id", "NOT_FOUND", f"No {spec.name} with this ID."))
    if expected_version is not None and row.version != expected_version:
        return Refused(
            UserError(
                "expected_version",
                "CONFLICT",
                f"{label(spec, row)} is at version {row.version}, not {expected_version}: "
                "it changed since you read it.",
            )
        )
    return None


async def load_for_update(
    session: AsyncSession, spec: EntitySpec, entity_id: int, expected_version: int | None
) -> Any:
    """``lock`` for a caller that changes the ORM object itself (passwords, secrets and
    flags of identities, then ``bump_version``): the entity, in the session."""
    row = await lock(session, spec, entity_id, expected_version)
    return rows.adopt(session, spec.model, row)


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
    """Every reference set in ``state`` must name an active row: one statement for all."""
    wanted = {
        attribute: (model, name, state[attribute])
        for attribute, (model, name) in spec.references.items()
        if state.get(attribute) is not None
    }
    if not wanted:
        return []
    found = await rows.existing(session, {a: (m, pk) for a, (m, _, pk) in wanted.items()})
    return [
        UserError(attribute, "NOT_FOUND", f"No {name} with this ID.")
        for attribute, (_, name, _) in wanted.items()
        if not found[attribute]
    ]


async def create(
    session: AsyncSession,
    actor: Actor,
    spec: EntitySpec,
    values: dict[str, Any],
    attached: Attached | None = None,
    *,
    if_absent: bool = False,
) -> Any:
    """Insert the row (and ``attached``); with ``if_absent``, None instead of DUPLICATE
    when its key is taken, after waiting for a transaction that is inserting it."""
    state = {name: values.get(name) for name in spec.fields}
    await _check(session, spec, state, None)
    try:
        row = await rows.insert_row(
            session,
            spec.model,
            {k: v for k, v in values.items() if v is not None},
            if_absent=spec.label_field if if_absent else None,
        )
    except IntegrityError as error:
        raise duplicate(spec, error) from None
    if row is None:
        return None
    # The values as stored (rounded, defaulted), as the audit trail always showed them.
    changes = audit.created(row, spec.fields)
    if attached is not None:
        await attached.save(session, row.id)
        changes |= attached.changes
    await audit.record(session, actor, spec.name, row.id, AuditAction.CREATE, changes)
    return rows.adopt(session, spec.model, row)


async def update(
    session: AsyncSession,
    actor: Actor,
    spec: EntitySpec,
    entity_id: int,
    expected_version: int | None,
    changes: dict[str, Any],
) -> Any:
    """Apply ``changes`` once the rules pass on the new state. In one statement
    (``rows.write_changed``) when the rules decide from the input alone, else the row is
    locked and read first (``lock``, ``change``); also when the one statement wrote
    nothing, which then says why (missing, stale, nothing to change)."""
    if await decided_by_input(session, spec, changes):
        written = await _write_changed(session, actor, spec, entity_id, expected_version, changes)
        if written is not None:
            return written
    current = await lock(session, spec, entity_id, expected_version)
    return await change(session, actor, spec, current, changes)


async def decided_by_input(session: Any, spec: EntitySpec, changes: Mapping[str, Any]) -> bool:
    """Whether the rules pass on ``changes`` without the row: no reference changes (those
    are looked up) and no rule asks for a field the input leaves out. False also when
    they refuse (the row's path says so), for a column whose audit value PostgreSQL
    cannot render as Python does (``rows.foldable``), and when there is nothing to do.
    ``session`` may be ``UNREAD`` (a caller without one): a rule that asks the database
    then needs the row, and the answer is False."""
    if not changes or any(name in spec.references for name in changes):
        return False
    if not rows.foldable(spec.model, tuple(sorted(changes))):
        return False
    columns = spec.model.__table__.c
    errors = [
        UserError(name, "INVALID", f"`{camel(name)}` cannot be null.")
        for name, value in changes.items()
        if value is None and not columns[name].nullable
    ]
    try:
        errors += await spec.validate(session, Given(changes), UNREAD)
    except NeedsRow:
        return False
    # Refused: by the row's path, which reports a missing or stale row first, as always.
    return not errors


async def _write_changed(
    session: AsyncSession,
    actor: Actor,
    spec: EntitySpec,
    entity_id: int,
    expected_version: int | None,
    changes: dict[str, Any],
) -> Any:
    """``rows.write_changed``, then what follows a write (a blocker's initiatives bumped);
    None when it wrote nothing."""
    event = update_event(actor, spec, entity_id, changes)
    try:
        row = await rows.write_changed(
            session, spec.model, entity_id, expected_version, changes, spec.fields, event
        )
    except IntegrityError as error:
        raise duplicate(spec, error) from None
    if row is None:
        return None
    if blocking_changed(spec, row._mapping, changes):
        await blocking.bump_initiatives_of_constraint(
            session, entity_id, actor.user_id, actor.client_id
        )
    return rows.adopt(session, spec.model, row)


def update_event(
    actor: Actor, spec: EntitySpec, entity_id: int, changes: Mapping[str, Any]
) -> dict[str, Any]:
    """The audit event's values of an update by ``write_changed`` (which computes the
    diff's "before" side itself)."""
    after = {name: audit.to_json(value) for name, value in changes.items()}
    return audit.values(actor, spec.name, entity_id, AuditAction.UPDATE, after)


def blocking_changed(
    spec: EntitySpec, written: Mapping[str, Any] | RowMapping, changes: Mapping[str, Any]
) -> bool:
    """Whether a ``write_changed`` row (its ``before_<field>`` values) made a constraint
    an active blocker or stopped it being one: its initiatives are then bumped too."""
    if spec.model is not TechnicalConstraint:
        return False
    before = {name: written[f"before_{name}"] for name in spec.fields}
    return _blocking(before) != _blocking({**before, **changes})


async def change(
    session: AsyncSession,
    actor: Actor,
    spec: EntitySpec,
    current: Row[Any],
    changes: dict[str, Any],
    attached: Attached | None = None,
) -> Any:
    """Apply ``changes`` (and ``attached``) to a row ``lock`` returned, once the rules
    pass on the new state."""
    before = {name: getattr(current, name) for name in spec.fields}
    state = {**before, **changes}
    await _check(session, spec, state, current)
    changed = {name: value for name, value in changes.items() if before[name] != value}
    if not changed and (attached is None or not attached.changes):
        # Nothing to change: no new version, no audit event.
        return rows.adopt(session, spec.model, current)
    version = (current.version, current.version + 1)
    events = audit.diff(before, changed, version=version)
    if attached is not None and attached.changes:
        await attached.save(session, current.id)
        events |= attached.changes
    written = await _write(session, actor, spec, current.id, changed, AuditAction.UPDATE, events)
    if spec.model is TechnicalConstraint and _blocking(before) != _blocking(state):
        await blocking.bump_initiatives_of_constraint(
            session, current.id, actor.user_id, actor.client_id
        )
    return written


def _blocking(state: Mapping[str, Any]) -> bool:
    """Whether a constraint with these values is an active blocker (not archived)."""
    return blocking.active_blocker(state["severity"], state["status"], None)


async def archive(
    session: AsyncSession,
    actor: Actor,
    spec: EntitySpec,
    entity_id: int,
    expected_version: int | None,
) -> Any:
    current = await lock(session, spec, entity_id, expected_version, now=True)
    # The transaction's now(), read with the lock: the audit event records the very
    # value stored.
    archived_at = {"archived_at": current.now}
    version = (current.version, current.version + 1)
    written = await _write(
        session,
        actor,
        spec,
        entity_id,
        archived_at,
        AuditAction.ARCHIVE,
        audit.diff({"archived_at": None}, archived_at, version=version),
    )
    if spec.model is TechnicalConstraint and blocking.active_blocker(
        current.severity, current.status, None
    ):
        await blocking.bump_initiatives_of_constraint(
            session, entity_id, actor.user_id, actor.client_id
        )
    return written


async def _write(
    session: AsyncSession,
    actor: Actor,
    spec: EntitySpec,
    entity_id: int,
    values: dict[str, Any],
    action: AuditAction,
    changes: dict[str, Any],
) -> Any:
    event = audit.values(actor, spec.name, entity_id, action, changes)
    try:
        row = await rows.write(session, spec.model, entity_id, values, event)
    except IntegrityError as error:
        raise duplicate(spec, error) from None
    return rows.adopt(session, spec.model, row)


async def bump_version(session: AsyncSession, spec: EntitySpec, entity: Any) -> None:
    """For ORM objects changed in place (``load_for_update``): flush them with a new version."""
    entity.version = entity.version + 1
    entity.updated_at = func.now()
    await flush(session, spec)
    await session.refresh(entity)


def constraint_name(error: IntegrityError) -> str:
    """The violated constraint's name (asyncpg keeps it on the driver exception)."""
    driver_error = getattr(error.orig, "__cause__", None) or error.orig
    return getattr(driver_error, "constraint_name", None) or ""


def duplicate(spec: EntitySpec, error: IntegrityError) -> Exception:
    """A unique violation as DUPLICATE on the field it concerns; any other error as is."""
    constraint = constraint_name(error)
    table = spec.model.__tablename__
    if constraint.startswith(f"uq_{table}_"):
        column = constraint[len(f"uq_{table}_") :]
        return Refused(
            UserError(column, "DUPLICATE", f"Another {spec.name} already has this {column}.")
        )
    return error


async def flush(session: AsyncSession, spec: EntitySpec) -> None:
    """Flush, turning a unique violation into DUPLICATE on the field it concerns."""
    try:
        await session.flush()
    except IntegrityError as error:
        raise duplicate(spec, error) from None
