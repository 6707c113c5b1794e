"""What every mutation shares: user errors, what undoes a refused one, input conversion."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from decimal import ROUND_HALF_UP, Decimal
from enum import Enum
from typing import Any, TypeVar

import strawberry
from graphql import FieldNode
from sqlalchemy import Numeric
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from domain.database import RequestTransaction
from domain.errors import DomainError, InvalidInput
from domain.models import Base
from domain.services import lookups
from domain.services.external_refs import RefIn
from domain.services.lookups import Lookup
from domain.services.spelling import camel, camel_path
from domain.services.writes import Actor, Refused
from domain.services.writes import UserError as ServiceError
from schema.context import concurrent_change
from schema.ids import decode_id

T = TypeVar("T")


@strawberry.enum(description="Why a mutation was refused.")
class UserErrorCode(Enum):
    NOT_FOUND = strawberry.enum_value("NOT_FOUND", description="An ID or key matches nothing.")
    INVALID = strawberry.enum_value("INVALID", description="A value breaks a rule of the domain.")
    CONFLICT = strawberry.enum_value(
        "CONFLICT",
        description="`expectedVersion` is stale (someone changed it since you read it), or a "
        "request running at the same moment changed the same data: read again and retry.",
    )
    FORBIDDEN = strawberry.enum_value("FORBIDDEN", description="The caller may not do this.")
    BLOCKED = strawberry.enum_value(
        "BLOCKED", description="An active BLOCKER constraint prevents this status change."
    )
    DUPLICATE = strawberry.enum_value(
        "DUPLICATE", description="A unique value (key, term) is already taken."
    )


@strawberry.type(description="A reason a mutation was refused. Nothing was changed.")
class UserError:
    field: str | None = strawberry.field(
        description="Path of the input field at fault (e.g. `targetEnd`, `measurements.3.kpiKey`)."
    )
    code: UserErrorCode = strawberry.field(description="Machine-readable reason.")
    message: str = strawberry.field(description="Human-readable explanation.")


def to_user_error(error: ServiceError) -> UserError:
    return UserError(
        field=camel_path(error.field), code=UserErrorCode(error.code), message=error.message
    )


# The argument every mutation takes, and the descriptions its kind shares.
WHAT_TO_DO = strawberry.argument(description="What to do.")
WHAT_TO_LINK = strawberry.argument(description="What to link.")


def creating(type_name: str) -> str:
    return f"Create a {type_name}."


def changing(type_name: str) -> str:
    return (
        f"Change a {type_name}. Pass `expectedVersion` to be refused (CONFLICT) instead of "
        "overwriting someone else's change."
    )


def archiving(type_name: str) -> str:
    return f"Archive a {type_name}: it leaves every list and lookup; its history stays."


def linking(owner: str, target: str, *, remove: bool = False) -> str:
    verb = "Unlink" if remove else "Link"
    return f"{verb} a {owner} and a {target}. Repeating it changes nothing."


@dataclasses.dataclass
class Outcome:
    """The result of a service call, or why it was refused."""

    value: Any = None
    errors: list[UserError] = dataclasses.field(default_factory=list)


async def run(
    info: strawberry.Info, work: Callable[[AsyncSession, Actor], Awaitable[Any]]
) -> Outcome:
    """Run one mutation so that a refused one leaves nothing behind (``undoable``). A
    mutation that went through marks the request: once it commits, the endpoint drops
    the answers cached of reads (``Context.mutated``)."""
    context = info.context
    actor = actor_of(context.principal)
    async with context.lock:
        session = context.session
        try:
            async with undoable(session, lone_request(info)):
                value = await work(session, actor)
            context.mutated = True
            return Outcome(value=value)
        except Refused as refused:
            # ``current`` was read by the refusing service, not loaded into the session:
            # the rollback leaves it as it was read.
            return Outcome(value=refused.current, errors=[to_user_error(e) for e in refused.errors])
        except DomainError as error:
            return Outcome(
                errors=[to_user_error(ServiceError(error.field, error.code, error.message))]
            )
        except DBAPIError as error:
            # A deadlock or serialization failure: the endpoint runs the whole request
            # again; this answer is what the caller gets once no attempt is left.
            if not context.conflicted(error):
                raise
            message = concurrent_change(context.conflict)
            return Outcome(errors=[to_user_error(ServiceError(None, "CONFLICT", message))])


def actor_of(principal: Any) -> Actor:
    """The caller as the audit trail records it, with the scopes it may grant."""
    return Actor(user_id=principal.user_id, client_id=principal.client_pk, scopes=principal.scopes)


def lone_request(info: strawberry.Info) -> RequestTransaction | None:
    """The request's transaction, if this mutation is all the request does: the only
    root field of a mutation that is not ``@atomic``, in a transaction the endpoint owns
    (and rolls back when told to). None otherwise: the mutation needs a savepoint."""
    context = info.context
    transaction: RequestTransaction | None = context.transaction
    if transaction is None or context.atomic is not None:
        return None
    roots = info.operation.selection_set.selections
    alone = len(roots) == 1 and isinstance(roots[0], FieldNode) and not roots[0].directives
    return transaction if alone else None


@asynccontextmanager
async def undoable(session: AsyncSession, lone: RequestTransaction | None) -> AsyncIterator[None]:
    """Where a mutation runs so that, refused or failed, it leaves nothing behind: the
    whole request's transaction when the mutation is all of it (``lone``: discarded on
    any exception, so no SAVEPOINT and RELEASE round trips for the common request),
    else a savepoint of its own, so that the request's other fields keep their work."""
    if lone is None:
        async with session.begin_nested():
            yield
        return
    try:
        yield
    except BaseException:
        lone.discard()
        raise


def entity_id(data: Any, type_name: str) -> int:
    """The primary key of the input's ``id``, which must name a ``type_name``."""
    return decode_reference(data.id, type_name, "id")


def decode_reference(global_id: str, type_name: str, field: str) -> int:
    """A global ID that must name a ``type_name``; refused as a user error otherwise."""
    found, pk = decode_id(global_id, field=field)
    if found != type_name:
        raise Refused(ServiceError(field, "INVALID", f"`{camel(field)}` expects a {type_name} ID."))
    return pk


# Input fields that are not values of the object: which object (``id``, ``key`` of an
# update), its version, its references (written beside it), an upsert's `match`.
NOT_VALUES = frozenset({"id", "key", "expected_version", "external_refs", "match"})


def given_values(
    data: Any,
    references: Mapping[str, str],
    lookups: Mapping[str, tuple[str, str]] | None = None,
    *,
    creating: bool = False,
) -> dict[str, Any]:
    """The input fields the caller set (UNSET ones left out), with global IDs of
    ``references`` (field -> type name) decoded to primary keys, and the objects named
    by ``lookups`` (field -> (column, type name), e.g. ``parent: {key: ...}``) as
    ``Lookup``s for ``lookups.resolve_values``. A create's ``key`` is a value."""
    lookups = lookups or {}
    skipped = NOT_VALUES - {"key"} if creating else NOT_VALUES
    values: dict[str, Any] = {}
    for field in dataclasses.fields(data):
        value = getattr(data, field.name)
        if value is strawberry.UNSET or field.name in skipped:
            continue
        if field.name in lookups:
            column, type_name = lookups[field.name]
            if getattr(data, column, strawberry.UNSET) not in (strawberry.UNSET, None):
                raise Refused(
                    ServiceError(
                        field.name,
                        "INVALID",
                        f"Give `{camel(column)}` or `{camel(field.name)}`, not both.",
                    )
                )
            values[column] = None if value is None else lookup_of(value, type_name, field.name)
            continue
        if field.name in references and value is not None:
            value = decode_reference(value, references[field.name], field.name)
        if isinstance(value, Decimal):
            check_decimal(field.name, value)
        values.setdefault(field.name, value)
    return values


def lookup_of(given: Any, type_name: str, field: str) -> Lookup:
    """A ``...Lookup`` input (one of id, key, externalRef: GraphQL's @oneOf checked it)."""
    if given.id is not strawberry.UNSET and given.id is not None:
        return Lookup(type_name, id=decode_reference(given.id, type_name, f"{field}.id"))
    if given.key is not strawberry.UNSET and given.key is not None:
        return Lookup(type_name, key=given.key, field=f"{field}.key")
    ref = given.external_ref
    return Lookup(type_name, ref=RefIn(ref.system, ref.external_id), field=f"{field}.external_ref")


def target_of(data: Any, type_name: str) -> Lookup:
    """The object an input changes, by ``id`` or by ``key``: exactly one."""
    key = getattr(data, "key", None)  # a glossary term's `term` is changeable: IDs only
    if (data.id is None) == (key is None):
        raise Refused(
            ServiceError(None, "INVALID", f"Name the {type_name} by `id` or by `key`: exactly one.")
        )
    if data.id is not None:
        return Lookup(type_name, id=decode_reference(data.id, type_name, "id"))
    return Lookup(type_name, key=key, field="key")


async def target_id(session: AsyncSession, data: Any, type_name: str) -> int:
    """The primary key of the object an input changes (NOT_FOUND for an unknown key)."""
    return (await lookups.resolve(session, {"id": target_of(data, type_name)}))["id"]


def refs_given(data: Any) -> list[RefIn]:
    """The external references an input sets (none when left out)."""
    given = getattr(data, "external_refs", None)
    if given is strawberry.UNSET or given is None:
        return []
    return [RefIn(r.system, r.external_id, r.url) for r in given]


def check_decimal(field: str, value: Decimal) -> None:
    """A decimal must be finite and fit its column (NUMERIC(precision, scale), once
    rounded to its scale as PostgreSQL rounds): "NaN", "Infinity" and "1e400" are the
    caller's mistake, not an overflow in the middle of an INSERT."""
    fits = value.is_finite()
    limit = "a finite number"
    if field in DECIMAL_COLUMNS:
        precision, scale = DECIMAL_COLUMNS[field]
        digits = precision - scale  # before the point
        limit = f"a finite number of at most {digits} digits before the point"
        # adjusted(): the exponent of the first digit; 1e400 is refused before it is
        # rounded, which the decimal context could not do.
        fits = fits and (value.is_zero() or value.adjusted() < digits)
        if fits:
            rounded = value.quantize(Decimal(1).scaleb(-scale), ROUND_HALF_UP)
            fits = abs(rounded) < Decimal(10) ** digits
    if not fits:
        raise InvalidInput(f"`{camel(field)}` must be {limit}.", field=field)


def _decimal_columns() -> dict[str, tuple[int, int]]:
    """The (precision, scale) of each NUMERIC column read as a Decimal, by attribute name
    (the strictest where two tables share a name)."""
    columns: dict[str, tuple[int, int]] = {}
    for table in Base.metadata.tables.values():
        for column in table.columns:
            kind = column.type
            if (
                isinstance(kind, Numeric)
                and kind.asdecimal
                and kind.precision is not None
                and kind.scale is not None
            ):
                found = (kind.precision, kind.scale)
                known = columns.get(column.key, found)
                columns[column.key] = min(known, found, key=lambda p: p[0] - p[1])
    return columns


DECIMAL_COLUMNS = _decimal_columns()
