"""External references: an object's ID (and URL) in another system, e.g. Jira's
`PROJ-123`; read as ``externalRefs`` on products, initiatives, technical constraints and
KPIs, set in their create, update and upsert inputs."""

from __future__ import annotations

from typing import Annotated, Any

import strawberry

from auth.scopes import Scope
from domain.services import external_refs
from schema.permissions import guarded


@strawberry.type(description="The object's ID (and URL) in another system, e.g. Jira.")
class ExternalRef:
    system: str = strawberry.field(
        description="The other system, a short lowercase name such as `jira`."
    )
    external_id: str = strawberry.field(description="The object's ID there, e.g. `PROJ-123`.")
    url: str | None = strawberry.field(description="Where to see it there (http or https).")


def external_refs_field(type_name: str) -> Any:
    """``externalRefs``: the object's references, one per system, ordered by system."""

    async def resolve(root: Any, info: strawberry.Info) -> list[ExternalRef]:
        return await info.context.external_refs(type_name).load(root.id)

    resolve.__annotations__ = {"root": Any, "info": strawberry.Info, "return": list[ExternalRef]}
    return strawberry.field(
        resolver=resolve,
        **guarded(
            "Its IDs in other systems (Jira, ServiceNow, …), one per system, ordered by system.",
            Scope.PORTFOLIO_READ,
        ),
    )


@strawberry.input(description="An external reference to find objects by.")
class ExternalRefFilter:
    system: str = strawberry.field(description="The other system, e.g. `jira`.")
    external_id: str = strawberry.field(description="The object's ID there, e.g. `PROJ-123`.")


def by_external_ref_lookup(model: Any, type_name: str, node: Any, description: str) -> Any:
    """``initiativeByExternalRef(system:, externalId:)``: null when no active object has it."""

    async def resolve(info: strawberry.Info, system: str, external_id: str) -> Any:
        found = await info.context.run(
            lambda s: external_refs.active_owner(s, model, type_name, system, external_id)
        )
        return None if found is None else await info.context.by_id(model).load(found)

    resolve.__annotations__ = {
        "info": strawberry.Info,
        "system": Annotated[str, strawberry.argument(description="The other system, e.g. `jira`.")],
        "external_id": Annotated[
            str, strawberry.argument(description="The object's ID there, e.g. `PROJ-123`.")
        ],
        "return": node | None,
    }
    return strawberry.field(
        resolver=resolve,
        metadata={"external_ref_lookup": (model, type_name)},
        **guarded(description, Scope.PORTFOLIO_READ),
    )
