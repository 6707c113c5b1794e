"""Field factories for the create / update / archive mutations of every entity."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Annotated, Any

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession

from auth.scopes import Scope
from domain.services import links, writes
from domain.services.writes import Actor, EntitySpec
from schema.mutations.common import decode_reference, given_values, run, to_user_error
from schema.permissions import guarded

__all__ = ["archive", "create", "guarded", "link", "link_pair", "to_user_error", "update"]

Work = Callable[[AsyncSession, Actor, Any], Awaitable[Any]]


def mutation_field(
    input_type: Any,
    payload: Any,
    result_fields: str | tuple[str, ...],
    description: str,
    scope: Scope,
    work: Work,
    *,
    name: str | None = None,
) -> Any:
    """A mutation: one ``input``, the service call in a savepoint, a payload with the
    result (a tuple result fills several payload fields) and the user errors."""
    fields = (result_fields,) if isinstance(result_fields, str) else result_fields

    async def resolve(info: strawberry.Info, input: Any) -> Any:
        outcome = await run(info, lambda session, actor: work(session, actor, input))
        values = (outcome.value,) if len(fields) == 1 else outcome.value or (None,) * len(fields)
        return payload(**dict(zip(fields, values, strict=True)), user_errors=outcome.errors)

    resolve.__annotations__ = {
        "info": strawberry.Info,
        "input": Annotated[input_type, strawberry.argument(description="What to do.")],
        "return": payload | None,
    }
    return strawberry.field(resolver=resolve, name=name, **guarded(description, scope))


_field = mutation_field


def create(
    spec: EntitySpec,
    input_type: Any,
    payload: Any,
    field: str,
    scope: Scope,
    references: Mapping[str, str] = {},
) -> Any:
    async def work(session: AsyncSession, actor: Actor, data: Any) -> Any:
        return await writes.create(session, actor, spec, given_values(data, references))

    return _field(input_type, payload, field, f"Create a {spec.name}.", scope, work)


def update(
    spec: EntitySpec,
    input_type: Any,
    payload: Any,
    field: str,
    scope: Scope,
    references: Mapping[str, str] = {},
) -> Any:
    async def work(session: AsyncSession, actor: Actor, data: Any) -> Any:
        entity_id = decode_reference(data.id, spec.name, "id")
        changes = given_values(data, references)
        return await writes.update(session, actor, spec, entity_id, data.expected_version, changes)

    return _field(
        input_type,
        payload,
        field,
        f"Change a {spec.name}. Pass `expectedVersion` to be refused (CONFLICT) instead of "
        "overwriting someone else's change.",
        scope,
        work,
    )


def archive(spec: EntitySpec, input_type: Any, payload: Any, field: str, scope: Scope) -> Any:
    async def work(session: AsyncSession, actor: Actor, data: Any) -> Any:
        entity_id = decode_reference(data.id, spec.name, "id")
        return await writes.archive(session, actor, spec, entity_id, data.expected_version)

    return _field(
        input_type,
        payload,
        field,
        f"Archive a {spec.name}: it leaves every list and lookup; its history stays.",
        scope,
        work,
    )


def link(
    spec: links.LinkSpec,
    input_type: Any,
    payload: Any,
    fields: tuple[str, str],
    scope: Scope,
    *,
    remove: bool,
) -> Any:
    """Link (or unlink) two entities; repeating it is a no-op."""
    owner_field, target_field = fields

    async def work(session: AsyncSession, actor: Actor, data: Any) -> Any:
        owner_id = decode_reference(
            getattr(data, spec.owner_column), spec.owner.name, spec.owner_column
        )
        target_id = decode_reference(
            getattr(data, spec.target_column), spec.target.name, spec.target_column
        )
        change = links.unlink if remove else links.link
        return await change(session, actor, spec, owner_id, target_id)

    async def resolve(info: strawberry.Info, input: Any) -> Any:
        outcome = await run(info, lambda session, actor: work(session, actor, input))
        owner, target = outcome.value or (None, None)
        return payload(**{owner_field: owner, target_field: target, "user_errors": outcome.errors})

    resolve.__annotations__ = {
        "info": strawberry.Info,
        "input": Annotated[input_type, strawberry.argument(description="What to link.")],
        "return": payload | None,
    }
    verb = "Unlink" if remove else "Link"
    description = (
        f"{verb} a {spec.owner.name} and a {spec.target.name}. Repeating it changes nothing."
    )
    return strawberry.field(resolver=resolve, **guarded(description, scope))


def link_pair(
    spec: links.LinkSpec, input_type: Any, payload: Any, fields: tuple[str, str], scope: Scope
) -> tuple[Any, Any]:
    """The link and the unlink mutation of one kind of link."""
    return (
        link(spec, input_type, payload, fields, scope, remove=False),
        link(spec, input_type, payload, fields, scope, remove=True),
    )
