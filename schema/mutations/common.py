"""What every mutation shares: user errors, the savepoint around it, input conversion."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Mapping
from decimal import ROUND_HALF_UP, Decimal
from enum import Enum
from typing import Any, TypeVar

import strawberry
from sqlalchemy import Numeric
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from domain.errors import DomainError, InvalidInput
from domain.models import Base
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


def _camel_path(path: str | None) -> str | None:
    if path is None:
        return None
    return ".".join(_camel(part) for part in path.split("."))


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def to_user_error(error: ServiceError) -> UserError:
    return UserError(
        field=_camel_path(error.field), code=UserErrorCode(error.code), message=error.message
    )


@dataclasses.dataclass
class Outcome:
    """The result of a service call, or why it was refused."""

    value: Any = None
    errors: list[UserError] = dataclasses.field(default_factory=list)


async def run(
    info: strawberry.Info, work: Callable[[AsyncSession, Actor], Awaitable[Any]]
) -> Outcome:
    """Run one mutation in a savepoint: a refused mutation leaves nothing behind."""
    context = info.context
    actor = Actor(
        user_id=context.principal.user_id,
        client_id=context.principal.client_pk,
        scopes=context.principal.scopes,
    )
    async with context.lock:
        session = context.session
        try:
            async with session.begin_nested():
                return Outcome(value=await work(session, actor))
        except Refused as refused:
            if refused.current is not None:
                await session.refresh(refused.current)
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


def decode_reference(global_id: str, type_name: str, field: str) -> int:
    """A global ID that must name a ``type_name``; refused as a user error otherwise."""
    found, pk = decode_id(global_id, field=field)
    if found != type_name:
        raise Refused(
            ServiceError(field, "INVALID", f"`{_camel(field)}` expects a {type_name} ID.")
        )
    return pk


def given_values(data: Any, references: Mapping[str, str]) -> dict[str, Any]:
    """The input fields the caller set (UNSET ones left out), with global IDs of
    ``references`` (field -> type name) decoded to primary keys."""
    values = {}
    for field in dataclasses.fields(data):
        value = getattr(data, field.name)
        if value is strawberry.UNSET or field.name in {"id", "expected_version"}:
            continue
        if field.name in references and value is not None:
            value = decode_reference(value, references[field.name], field.name)
        if isinstance(value, Decimal):
            check_decimal(field.name, value)
        values[field.name] = value
    return values


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
        raise InvalidInput(f"`{_camel(field)}` must be {limit}.", field=field)


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
