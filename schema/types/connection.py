"""Relay cursor connections and the helpers that fill them from the services."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

import strawberry

from domain.services.pagination import Ordering, Page, PageRequest, page_request
from schema.context import EdgeQuery

T = TypeVar("T")

FIRST = "Return at most this many items from the start (0 to 100; 20 when neither first nor last)."
AFTER = "Return items after this cursor."
LAST = "Return at most this many items from the end (0 to 100)."
BEFORE = "Return items before this cursor."


@strawberry.type(description="Where a page sits in its list (Relay).")
class PageInfo:
    has_next_page: bool = strawberry.field(description="More items follow this page.")
    has_previous_page: bool = strawberry.field(description="More items precede this page.")
    start_cursor: str | None = strawberry.field(description="Cursor of the first item.")
    end_cursor: str | None = strawberry.field(description="Cursor of the last item.")


@strawberry.type(description="An item of a page with its cursor.")
class Edge(Generic[T]):
    cursor: str = strawberry.field(description="Opaque cursor of this item.")
    node: T = strawberry.field(description="The item.")


@strawberry.type(description="A page of a list, with cursors to fetch the next (Relay).")
class Connection(Generic[T]):
    edges: list[Edge[T]] = strawberry.field(description="The items of this page with cursors.")
    nodes: list[T] = strawberry.field(description="The items of this page.")
    page_info: PageInfo = strawberry.field(description="Where this page sits in the list.")
    total_count: int = strawberry.field(
        description="Number of items in the whole list (all pages), with the filter applied."
    )

    @classmethod
    def of(cls, page: Page[Any]) -> Connection[Any]:
        return cls(
            edges=[Edge(cursor=c, node=n) for c, n in zip(page.cursors, page.rows, strict=True)],
            nodes=page.rows,
            page_info=PageInfo(
                has_next_page=page.has_next_page,
                has_previous_page=page.has_previous_page,
                start_cursor=page.cursors[0] if page.cursors else None,
                end_cursor=page.cursors[-1] if page.cursors else None,
            ),
            total_count=page.total_count,
        )


def page_of(
    info: strawberry.Info,
    first: int | None,
    after: str | None,
    last: int | None,
    before: str | None,
) -> PageRequest:
    return page_request(
        first=first,
        after=after,
        last=last,
        before=before,
        max_page_size=info.context.settings.max_page_size,
    )


async def load_edge(
    info: strawberry.Info,
    parent_id: int,
    edge: str,
    *,
    filter: Any,
    ordering: Ordering,
    first: int | None,
    after: str | None,
    last: int | None,
    before: str | None,
) -> Connection[Any]:
    """A nested connection, batched with every sibling asking for the same page."""
    query = EdgeQuery(edge, filter, ordering, page_of(info, first, after, last, before))
    page = await info.context.edge().load((parent_id, query))
    return Connection.of(page)
