"""Writes for sync jobs: external references saved with their object's version and audit
event, and upserts (by key or by external reference), one or a batch.

An upsert is race-safe without a table lock: it looks the key up, and when nothing holds
it inserts with ``ON CONFLICT (key) DO NOTHING``; if a concurrent upsert inserted the
key first, PostgreSQL waits for that transaction to end and the row is then locked and
updated instead. Two upserts of one key always make one row.

An upsert that changes nothing (the same input twice) is UNCHANGED: no new version, no
audit event, so a sync job that re-sends everything does not churn versions.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from domain.errors import DomainError
from domain.services import external_refs, lookups, rules, writes
from domain.services.external_refs import RefIn
from domain.services.writes import Actor, Attached, EntitySpec, Refused, UserError, constraint_name

MAX_UPSERT_BATCH = 500
REFS_FIELD = "external_refs"


class Outcome(enum.Enum):
    CREATED = "CREATED"
    UPDATED = "UPDATED"
    UNCHANGED = "UNCHANGED"


def _describe(ref: RefIn) -> str:
    return f"`{ref.system}` `{ref.external_id}`"


async def attach(
    session: AsyncSession,
    spec: EntitySpec,
    entity_id: int | None,
    given: Sequence[RefIn],
    removed: Sequence[str] = (),
    *,
    field: str = REFS_FIELD,
) -> Attached | None:
    """The references to write with the object ``entity_id`` (None: being created), once
    checked: valid, and not another object's. None when there is nothing to do."""
    if not given and not removed:
        return None
    errors = rules.external_ref_rules(given, field)
    if errors:
        raise Refused(*errors)
    owners = await external_refs.owners_of(
        session, spec.name, [(r.system, r.external_id) for r in given]
    )
    taken = [
        UserError(
            f"{field}.{index}.external_id",
            "DUPLICATE",
            f"Another {spec.name} already has the reference {_describe(ref)}.",
        )
        for index, ref in enumerate(given)
        if owners.get((ref.system, ref.external_id), entity_id) != entity_id
    ]
    if taken:
        raise Refused(*taken)
    before: Sequence[Any] = []
    if entity_id is not None:
        before = (await external_refs.refs_of(session, spec.name, [entity_id])).get(entity_id, [])
    after = external_refs.merged(before, given, removed)
    old, new = external_refs.as_json(before), external_refs.as_json(after)
    if old == new:
        return Attached(changes={}, save=_nothing)

    async def save(session: AsyncSession, owner_id: int) -> None:
        try:
            async with session.begin_nested():
                await external_refs.replace(session, spec.name, owner_id, before, after)
        except IntegrityError as error:  # taken meanwhile by a concurrent write
            if constraint_name(error) != "uq_external_refs_external_id":
                raise
            raise Refused(
                UserError(field, "DUPLICATE", f"Another {spec.name} took one of these references.")
            ) from None

    return Attached(changes={REFS_FIELD: {"before": old, "after": new}}, save=save)


def _unlisted(error: UserError) -> UserError:
    field = (error.field or "").replace("match.0.", "match.")
    return UserError(field, error.code, error.message)


async def _nothing(session: AsyncSession, owner_id: int) -> None:
    return None


async def create(
    session: AsyncSession,
    actor: Actor,
    spec: EntitySpec,
    values: dict[str, Any],
    refs: Sequence[RefIn],
) -> Any:
    attached = await attach(session, spec, None, refs)
    return await writes.create(session, actor, spec, values, attached)


async def update(
    session: AsyncSession,
    actor: Actor,
    spec: EntitySpec,
    entity_id: int,
    expected_version: int | None,
    changes: dict[str, Any],
    refs: Sequence[RefIn] = (),
    removed: Sequence[str] = (),
) -> Any:
    if not refs and not removed:
        return await writes.update(session, actor, spec, entity_id, expected_version, changes)
    current = await writes.lock(session, spec, entity_id, expected_version)
    attached = await attach(session, spec, current.id, refs, removed)
    return await writes.change(session, actor, spec, current, changes, attached)


@dataclass(frozen=True)
class UpsertItem:
    """One object to create or update: found by ``match`` (a reference) if given, else
    by ``key``; ``values`` are the fields given (left out: as they are, or defaults)."""

    key: str
    values: dict[str, Any]
    refs: Sequence[RefIn] = ()
    match: RefIn | None = None
    expected_version: int | None = None
    # Values only a creation takes (an initial status), under those given.
    defaults: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Rejected:
    """An item of a batch refused before it reached the service (an input it could not
    read): reported with its index like the others."""

    errors: Sequence[UserError]


# Fields an upsert sets only when it creates: an existing object's status moves through
# its own mutation, with its transition rules.
CREATE_ONLY = {
    "status": {"Initiative": "setInitiativeStatus", "TechnicalConstraint": "setConstraintStatus"}
}


async def _by_key(session: AsyncSession, spec: EntitySpec, key: str) -> int | None:
    """The id of the row holding ``key``, archived ones included (``lock`` tells)."""
    model = spec.model
    return await session.scalar(select(model.id).where(getattr(model, spec.label_field) == key))


Target = tuple[int, bool] | None  # (id, whether found by its reference), or nothing


async def find(
    session: AsyncSession, spec: EntitySpec, items: Sequence[UpsertItem]
) -> list[Target]:
    """What each item names: the holder of its ``match`` reference, else the row with its
    key (archived ones included: ``lock`` refuses them). Two statements for any number
    of items."""
    if not items:
        return []
    model, key_column = spec.model, getattr(spec.model, spec.label_field)
    pairs = [(i.match.system, i.match.external_id) for i in items if i.match is not None]
    owners = await external_refs.owners_of(session, spec.name, pairs)
    keys = [i.key for i in items]
    rows = await session.execute(select(key_column, model.id).where(key_column.in_(keys)))
    ids: dict[str, int] = {key: pk for key, pk in rows}
    found: list[Target] = []
    for item in items:
        pair = None if item.match is None else (item.match.system, item.match.external_id)
        if pair is not None and pair in owners:
            found.append((owners[pair], True))
        else:
            found.append(None if item.key not in ids else (ids[item.key], False))
    return found


async def upsert(
    session: AsyncSession,
    actor: Actor,
    spec: EntitySpec,
    item: UpsertItem,
    found: Target | None = None,
    *,
    looked_up: bool = False,
) -> tuple[Any, Outcome]:
    """Create or update what ``item`` names; ``found`` is what ``find`` said of it when
    ``looked_up`` (a batch finds all its items at once)."""
    refs = list(item.refs)
    if item.match is not None:
        errors = rules.external_ref_rules([item.match], "match")
        if errors:
            # One reference, not a list: `match.system`, not `match.0.system`.
            raise Refused(*(_unlisted(e) for e in errors))
        if all(r.system != item.match.system for r in refs):
            refs.append(item.match)
    given = await lookups.resolve_values(session, item.values)
    target = found if looked_up else (await find(session, spec, [item]))[0]
    if target is None:
        if item.expected_version not in (None, 0):
            raise Refused(
                UserError(
                    "expected_version",
                    "CONFLICT",
                    f"No {spec.name} has the key `{item.key}`, so `expectedVersion` "
                    f"{item.expected_version} cannot match (0 means: only create).",
                )
            )
        attached = await attach(session, spec, None, refs)
        values = {spec.label_field: item.key, **item.defaults, **given}
        created = await writes.create(session, actor, spec, values, attached, if_absent=True)
        if created is not None:
            return created, Outcome.CREATED
        # A concurrent upsert inserted this key and has committed: update it instead.
        by_key = await _by_key(session, spec, item.key)
        assert by_key is not None
        target = (by_key, False)
    entity_id, by_reference = target
    try:
        current = await writes.lock(session, spec, entity_id, item.expected_version)
    except Refused as refused:
        if refused.errors[0].code != "NOT_FOUND":
            raise
        raise Refused(
            UserError(
                "match" if by_reference else "key",
                "CONFLICT",
                f"The {spec.name} holding {_describe(item.match)} is archived: an upsert "
                "does not bring it back."
                if by_reference and item.match is not None
                else f"{spec.name} `{item.key}` is archived: an upsert does not bring it back.",
            )
        ) from None
    if getattr(current, spec.label_field) != item.key:
        assert item.match is not None
        raise Refused(
            UserError(
                "key",
                "INVALID",
                f"The reference {_describe(item.match)} belongs to {writes.label(spec, current)}, "
                f"not `{item.key}`: keys never change.",
            )
        )
    changes = _without_create_only(spec, current, given)
    attached = await attach(session, spec, entity_id, refs)
    entity = await writes.change(session, actor, spec, current, changes, attached)
    return entity, (Outcome.UNCHANGED if entity.version == current.version else Outcome.UPDATED)


def _without_create_only(spec: EntitySpec, current: Any, values: dict[str, Any]) -> dict[str, Any]:
    """``values`` less the create-only fields, which must then equal the stored ones."""
    changes = dict(values)
    for name, mutations in CREATE_ONLY.items():
        if name not in changes:
            continue
        wanted, stored = changes.pop(name), getattr(current, name)
        if wanted != stored:
            raise Refused(
                UserError(
                    name,
                    "INVALID",
                    f"{writes.label(spec, current)} is {stored.value}: an existing "
                    f"{spec.name}'s `{name}` changes through `{mutations[spec.name]}`.",
                )
            )
    return changes


@dataclass
class BatchResult:
    """Per item: the object and its outcome, or None where refused; the errors carry
    the item's index in their field (``items.3.key``)."""

    results: list[tuple[Any, Outcome] | None] = field(default_factory=list)
    errors: list[UserError] = field(default_factory=list)


def _at(index: int, error: UserError) -> UserError:
    where = f"items.{index}"
    return UserError(f"{where}.{error.field}" if error.field else where, error.code, error.message)


def _repeated(spec: EntitySpec, items: Sequence[UpsertItem | Rejected]) -> dict[int, UserError]:
    """Items naming an object an earlier item of the batch names (same key or same
    reference): refused, since their order would decide the result."""
    first_key: dict[str, int] = {}
    first_ref: dict[tuple[str, str], int] = {}
    repeated: dict[int, UserError] = {}
    for index, item in enumerate(items):
        if isinstance(item, Rejected):
            continue
        earlier = first_key.setdefault(item.key, index)
        if earlier != index:
            repeated[index] = UserError(
                "key",
                "DUPLICATE",
                f"Item {earlier} has the same key `{item.key}`: name each {spec.name} once "
                "per batch.",
            )
            continue
        if item.match is not None:
            pair = (item.match.system, item.match.external_id)
            earlier = first_ref.setdefault(pair, index)
            if earlier != index:
                repeated[index] = UserError(
                    "match",
                    "DUPLICATE",
                    f"Item {earlier} has the same reference {_describe(item.match)}: name each "
                    f"{spec.name} once per batch.",
                )
    return repeated


async def upsert_many(
    session: AsyncSession, actor: Actor, spec: EntitySpec, items: Sequence[UpsertItem | Rejected]
) -> BatchResult:
    """Upsert each item in a savepoint of its own (one transaction for the batch): a
    refused item leaves nothing behind and is reported; the others are written."""
    if len(items) > MAX_UPSERT_BATCH:
        raise Refused(
            UserError(
                "items",
                "INVALID",
                f"`items` takes at most {MAX_UPSERT_BATCH} items; got {len(items)}.",
            )
        )
    repeated = _repeated(spec, items)
    valid = [i for n, i in enumerate(items) if isinstance(i, UpsertItem) and n not in repeated]
    targets = iter(await find(session, spec, valid))
    result = BatchResult()
    for index, item in enumerate(items):
        if isinstance(item, Rejected) or index in repeated:
            refused = item.errors if isinstance(item, Rejected) else [repeated[index]]
            result.results.append(None)
            result.errors += [_at(index, e) for e in refused]
            continue
        target = next(targets)
        try:
            async with session.begin_nested():
                done = await upsert(session, actor, spec, item, target, looked_up=True)
                result.results.append(done)
        except Refused as refused:
            result.results.append(None)
            result.errors += [_at(index, e) for e in refused.errors]
        except DomainError as error:
            result.results.append(None)
            result.errors.append(_at(index, UserError(error.field, error.code, error.message)))
    return result
