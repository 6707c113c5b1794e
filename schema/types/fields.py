"""Field factories shared by every type: connections (root and nested) and lookups."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import strawberry

from auth.scopes import Scope
from domain.services import audit, reads
from domain.services.pagination import Ordering
from schema.permissions import guarded
from schema.types.connection import AFTER, BEFORE, FIRST, LAST, Connection, load_edge, page_of
from schema.types.enums import OrderDirection


def ordering_of(order_by: Any, order_type: Any) -> Ordering:
    if order_by is None:
        return Ordering(order_type.default, order_type.orderings[order_type.default])
    name = order_by.field.value
    return Ordering(
        name, order_type.orderings[name], descending=order_by.direction is OrderDirection.DESC
    )


def _signature(node: Any, filter_type: Any, order_type: Any) -> dict[str, Any]:
    return {
        "info": strawberry.Info,
        "first": Annotated[int | None, strawberry.argument(description=FIRST)],
        "after": Annotated[str | None, strawberry.argument(description=AFTER)],
        "last": Annotated[int | None, strawberry.argument(description=LAST)],
        "before": Annotated[str | None, strawberry.argument(description=BEFORE)],
        "filter": Annotated[
            filter_type | None,
            strawberry.argument(description="Narrow the list; every condition given must hold."),
        ],
        "order_by": Annotated[
            order_type | None,
            strawberry.argument(
                description=f"Sort order; {order_type.default} ascending by default."
            ),
        ],
        "return": Connection[node] | None,
    }


def edge_connection(
    edge: str,
    node: Any,
    filter_type: Any,
    order_type: Any,
    description: str,
    scope: Scope = Scope.PORTFOLIO_READ,
) -> Any:
    """A nested connection; rows for all parents come from one batched statement."""

    async def resolve(
        root: Any,
        info: strawberry.Info,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
        filter: Any = None,
        order_by: Any = None,
    ) -> Any:
        return await load_edge(
            info,
            root.id,
            edge,
            filter=(filter or filter_type()).to_filter(),
            ordering=ordering_of(order_by, order_type),
            first=first,
            after=after,
            last=last,
            before=before,
        )

    resolve.__annotations__ = {"root": Any, **_signature(node, filter_type, order_type)}
    return strawberry.field(
        resolver=resolve,
        metadata={"edge": edge, "filter_type": filter_type, "order_type": order_type},
        **guarded(description, scope),
    )


def root_connection(
    model: Any,
    node: Any,
    filter_type: Any,
    order_type: Any,
    description: str,
    scope: Scope = Scope.PORTFOLIO_READ,
) -> Any:
    """A root list of one entity."""

    async def resolve(
        info: strawberry.Info,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
        filter: Any = None,
        order_by: Any = None,
    ) -> Any:
        page = page_of(info, first, after, last, before)
        ordering = ordering_of(order_by, order_type)
        query_filter = (filter or filter_type()).to_filter()
        result = await info.context.run(
            lambda s: reads.root_page(s, model, filter=query_filter, ordering=ordering, page=page)
        )
        return Connection.of(result)

    resolve.__annotations__ = _signature(node, filter_type, order_type)
    return strawberry.field(
        resolver=resolve,
        metadata={"root_model": model, "filter_type": filter_type, "order_type": order_type},
        **guarded(description, scope),
    )


def by_key_lookup(model: Any, column: Any, node: Any, description: str) -> Any:
    """``product(key: "PAY")``-style lookup; null when nothing has that key."""

    async def resolve(info: strawberry.Info, key: str) -> Any:
        return await info.context.by_key(model, column).load(key)

    resolve.__annotations__ = {
        "info": strawberry.Info,
        "key": Annotated[str, strawberry.argument(description="The unique key.")],
        "return": node | None,
    }
    return strawberry.field(
        resolver=resolve,
        metadata={"lookup": (model, column)},
        **guarded(description, Scope.PORTFOLIO_READ),
    )


AS_OF = (
    "Return it as it was at this instant, rebuilt from the audit trail: stored fields and the "
    "scores computed from them are as of then; `isBlocked` and edges describe the present. "
    "Null if it did not exist or was archived then."
)


def by_key_as_of_lookup(
    model: Any, column: Any, node: Any, entity_type: str, description: str
) -> Any:
    """A lookup by key that can also travel back in time (``asOf``)."""

    async def resolve(info: strawberry.Info, key: str, as_of: datetime | None = None) -> Any:
        if as_of is None:
            return await info.context.by_key(model, column).load(key)
        return await info.context.run(
            lambda s: audit.by_key_as_of(s, model, entity_type, column, key, as_of)
        )

    resolve.__annotations__ = {
        "info": strawberry.Info,
        "key": Annotated[str, strawberry.argument(description="The unique key.")],
        "as_of": Annotated[datetime | None, strawberry.argument(description=AS_OF)],
        "return": node | None,
    }
    return strawberry.field(
        resolver=resolve,
        metadata={"lookup": (model, column)},
        **guarded(description, Scope.PORTFOLIO_READ),
    )


def by_id_reference(model: Any, attribute: str, node: Any, description: str) -> Any:
    """A to-one edge through a foreign key column of the parent row."""

    async def resolve(root: Any, info: strawberry.Info) -> Any:
        target = getattr(root, attribute)
        return None if target is None else await info.context.by_id(model).load(target)

    resolve.__annotations__ = {"root": Any, "info": strawberry.Info, "return": node | None}
    return strawberry.field(
        resolver=resolve,
        metadata={"reference": (model, attribute)},
        **guarded(description, Scope.PORTFOLIO_READ),
    )
