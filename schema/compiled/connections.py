"""Connections (root and nested): one page of rows in the order of travel, narrowed by
the filter and the cursors, and what is selected of it: `nodes`, `edges { cursor node }`,
`pageInfo` and `totalCount`, as ``domain.services.pagination`` answers them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from graphql import FieldNode, GraphQLObjectType, get_named_type
from sqlalchemy import ColumnElement, Select, func, literal, not_, or_, select

from domain.errors import DomainError
from domain.services import reads
from domain.services.pagination import page_request
from schema.compiled import jsontext, page_text, subtrees
from schema.compiled.cursors import beyond, cursor_text
from schema.compiled.filters import conditions_of
from schema.compiled.page_info import page_info_fields
from schema.compiled.selection import Invalid, Unsupported, response_key

if TYPE_CHECKING:
    from schema.compiled.compiler import Compiler

CONNECTION_FIELDS = frozenset({"nodes", "edges", "totalCount", "pageInfo", "__typename"})


@dataclass
class Listing:
    """The rows of one connection, before paging: where they come from, which pass, in
    which order, and the page asked for."""

    type_name: str
    node_type: str
    alias: Any
    base: Select[Any]  # FROM the rows (and the join of a many-to-many edge)
    conditions: list[Any]  # the filter's and the edge's
    window: list[Any]  # the cursors' bounds
    after: Any
    before: Any
    ordering_name: str
    sort: Any
    order: list[Any]  # in the order of travel: from the end for `last`
    descending: bool  # the list's order (the ordering asked for), whichever way it travels
    size: Any  # an int, or a bound `first`/`last`
    backwards: bool
    parent: Any

    def exists(self, condition: Any) -> Any:
        found = self.base.add_columns(literal(1)).where(*self.conditions, condition).exists()
        return found.correlate(self.parent) if self.parent is not None else found


def connection(
    c: Compiler,
    type_name: str,
    node: FieldNode,
    meta: dict[str, Any],
    args: dict[str, Any],
    parent: Any,
    edge: reads.Edge | None,
) -> ColumnElement[Any]:
    """The connection's JSON, as a scalar subquery (correlated to ``parent`` if nested)."""
    before = subtrees.traces(c)
    listing = _listing(c, type_name, node, meta, args, parent, edge)
    # Its SQL written as text when nothing but its arguments decides it (page_text).
    listed = page_text.listing_key(c, node, meta, listing) if subtrees.traces(c) == before else None
    selections = c.walk.fields(type_name, node.selection_set)
    wanted = {child.name.value for child in selections}
    if wanted - CONNECTION_FIELDS:
        raise Unsupported("connection field")
    rows: Any = None
    objects: dict[tuple[str, ...], tuple[str, Any]] = {}
    cursors = False
    if wanted & {"nodes", "edges", "pageInfo"}:
        objects, cursors = _page_objects(c, listing, selections)
    if listed is not None:
        written = page_text.connection(c, listed, listing, selections, objects, cursors)
        if written is not None:
            return written
    page_info = "pageInfo" in wanted
    if wanted & {"nodes", "edges", "pageInfo"}:
        rows = page_rows(c, listing, objects, cursors, page_info).subquery()
    pairs: list[tuple[str, Any]] = []
    for child in selections:
        key = response_key(child)
        name = child.name.value
        if name == "__typename":
            pairs.append((key, jsontext.string_constant(type_name)))
        elif name == "totalCount":
            pairs.append((key, _total_count(listing)))
        elif name == "nodes":
            nodes = rows.c[objects["nodes", key][0]]
            pairs.append((key, _items(listing, rows, nodes, page_info)))
        elif name == "edges":
            item = _edge_json(c, listing.node_type, child, rows, objects)
            pairs.append((key, _items(listing, rows, item, page_info)))
        else:  # pageInfo
            pairs.append((key, _page_info(listing, child, rows)))
    aggregate = select(jsontext.json_object(pairs))
    if rows is not None and wanted & {"nodes", "edges"}:
        # The arrays aggregate the page's rows into one; `pageInfo` alone reads them
        # in its own subquery, and selecting from them here would give a row each.
        aggregate = aggregate.select_from(rows)
    if parent is not None:
        aggregate = aggregate.correlate(parent)
    return aggregate.scalar_subquery()


def _listing(
    c: Compiler,
    type_name: str,
    node: FieldNode,
    meta: dict[str, Any],
    args: dict[str, Any],
    parent: Any,
    edge: reads.Edge | None,
) -> Listing:
    try:
        page = page_request(
            first=args.get("first"),
            after=args.get("after"),
            last=args.get("last"),
            before=args.get("before"),
            max_page_size=c.max_page_size,
        )
    except DomainError:
        raise Invalid("invalid arguments") from None
    order_type = meta["order_type"]
    order_by = args.get("order_by")
    ordering_name = order_type.default if order_by is None else order_by.field.value
    descending = order_by is not None and order_by.direction.value == "DESC"
    model = edge.model if edge is not None else meta["root_model"]
    alias = c.alias(model)
    conditions = conditions_of(c, node, meta["filter_type"], args.get("filter"), model, alias)
    base = select().select_from(alias)
    if edge is not None:
        if edge.join is not None:
            target, onclause = edge.join
            base = base.join(target, c.adapt_static(alias, onclause))
        if edge.condition is not None:
            conditions.append(c.adapt_static(alias, edge.condition))
        conditions.append(c.adapt_static(alias, edge.parent_key) == parent.id)
    sort = c.adapt_static(alias, order_type.orderings[ordering_name])
    reverse = descending != page.backwards
    order = [sort.desc(), alias.id.desc()] if reverse else [sort.asc(), alias.id.asc()]
    # Cursors narrow the window (``pagination.fetch_pages``): the rows after `after`
    # and before `before`.
    bounds: dict[str, Any] = {}
    for argument, cursor in (("after", page.after), ("before", page.before)):
        if cursor is not None:
            bounds[argument] = beyond(
                c, node, argument, args[argument], cursor, ordering_name, sort, alias, descending
            )
    return Listing(
        type_name=type_name,
        node_type=_node_type(c, type_name),
        alias=alias,
        base=base,
        conditions=conditions,
        window=list(bounds.values()),
        after=bounds.get("after"),
        before=bounds.get("before"),
        ordering_name=ordering_name,
        sort=sort,
        order=order,
        descending=descending,
        size=c.page_size(node, page),
        backwards=page.backwards,
        parent=parent,
    )


def _node_type(c: Compiler, connection_type: str) -> str:
    connection_definition = c.walk.schema.type_map[connection_type]
    assert isinstance(connection_definition, GraphQLObjectType)
    return get_named_type(connection_definition.fields["nodes"].type).name


def _page_objects(
    c: Compiler, listing: Listing, selections: list[FieldNode]
) -> tuple[dict[tuple[str, ...], tuple[str, Any]], bool]:
    """The JSON of one row for each object selected on it (by `nodes`, by each
    `edges { node }`), keyed by where it is selected, with its column's label; and
    whether the rows' cursors are selected (by edges or pageInfo)."""
    objects: dict[tuple[str, ...], tuple[str, Any]] = {}
    node_type, alias = listing.node_type, listing.alias

    def add(where: tuple[str, ...], *steps: tuple[str, FieldNode]) -> None:
        # Where the object sits (``Compiler.path``), for the fields refused in it.
        c.path.extend(steps)
        try:
            row_json = c.object(node_type, alias, steps[-1][1])
        finally:
            del c.path[-len(steps) :]
        objects[where] = (f"j{len(objects)}", row_json)

    cursors = False
    for child in selections:
        if child.name.value == "nodes":
            add(("nodes", response_key(child)), (listing.type_name, child))
        elif child.name.value == "edges":
            edge_type = f"{node_type}Edge"
            for item in c.walk.fields(edge_type, child.selection_set):
                if item.name.value == "cursor":
                    cursors = True
                elif item.name.value == "node":
                    where = ("edges", response_key(child), response_key(item))
                    add(where, (listing.type_name, child), (edge_type, item))
        elif child.name.value == "pageInfo":
            for item in c.walk.fields("PageInfo", child.selection_set):
                if item.name.value in {"startCursor", "endCursor"}:
                    cursors = True
    return objects, cursors


def page_rows(
    c: Compiler,
    listing: Listing,
    objects: dict[tuple[str, ...], tuple[str, Any]],
    cursors: bool,
    page_info: bool,
) -> Select[Any]:
    """The page's rows in the order of travel, with their objects' JSON and cursors,
    and what puts them in list order (``list_order``); one row more when `pageInfo`
    needs to know whether more follow."""
    alias = listing.alias
    columns: list[Any]
    if page_info:
        columns = [func.row_number().over(order_by=listing.order).label(NUMBER)]
    else:
        # Without the extra row, the rows' own sort keys order the list: a window
        # function would number them again in every parent row (one WindowAgg rescan
        # per KPI of a dashboard, per constraint of a board).
        columns = [listing.sort.label(SORT_KEYS[0]), alias.id.label(SORT_KEYS[1])]
    columns += [row_json.label(label) for label, row_json in objects.values()]
    if cursors:
        columns.append(cursor_text(listing.ordering_name, listing.sort, alias.id).label("c"))
    selected = (
        c.rows(listing.base.add_columns(*columns), alias)
        .where(*listing.conditions, *listing.window)
        .order_by(*listing.order)
        # One row more tells pageInfo whether a next page exists; without pageInfo,
        # that row's JSON (its whole subtree) would be built for nothing.
        .limit(listing.size + 1 if page_info else listing.size)
    )
    if listing.parent is not None:
        selected = selected.correlate(listing.parent)
    return selected


# The columns of ``page_rows`` that order its rows: their number in the order of travel
# when it holds the extra row for `pageInfo`, else the sort key and the id.
NUMBER = "rn"
SORT_KEYS = ("s", "i")


@dataclass(frozen=True)
class ListOrder:
    """How the items of a page (``page_rows``) are aggregated in list order: by these
    columns in this direction; when ``numbered`` (the page holds the extra row), only
    the rows numbered within the page size."""

    columns: tuple[str, ...]
    descending: bool
    numbered: bool


def list_order(listing: Listing, page_info: bool) -> ListOrder:
    """For ``_items`` and ``page_text``: numbered rows are listed by their number (from
    the end for `last`); others by the ordering asked for, which is the list's order
    whichever way the page travelled."""
    if page_info:
        return ListOrder((NUMBER,), listing.backwards, numbered=True)
    return ListOrder(SORT_KEYS, listing.descending, numbered=False)


def total_count(listing: Listing) -> Select[Any]:
    count = listing.base.add_columns(func.count()).where(*listing.conditions)
    if listing.parent is not None:
        count = count.correlate(listing.parent)
    # Every item the filters keep, wherever the cursors put the window (a page after
    # the last item too), as ``pagination.fetch_pages`` counts it.
    return count


def _total_count(listing: Listing) -> Any:
    total: Any = total_count(listing).scalar_subquery()
    return total


def _items(listing: Listing, rows: Any, item: Any, page_info: bool) -> Any:
    """`nodes` or `edges`: the page's items in list order (for `last`, from the end)."""
    order = list_order(listing, page_info)
    by = [rows.c[name].desc() if order.descending else rows.c[name] for name in order.columns]
    shown = rows.c[NUMBER] <= listing.size if order.numbered else None
    return jsontext.json_array(item, by, shown)


def _edge_json(
    c: Compiler,
    node_type: str,
    edges: FieldNode,
    rows: Any,
    objects: dict[tuple[str, ...], tuple[str, Any]],
) -> Any:
    pairs: list[tuple[str, Any]] = []
    for child in c.walk.fields(f"{node_type}Edge", edges.selection_set):
        key = response_key(child)
        if child.name.value == "node":
            pairs.append((key, rows.c[objects["edges", response_key(edges), key][0]]))
        elif child.name.value == "cursor":
            pairs.append((key, rows.c.c))
        elif child.name.value == "__typename":
            pairs.append((key, jsontext.string_constant(f"{node_type}Edge")))
        else:
            raise Unsupported("edge field")
    return jsontext.json_object(pairs)


def _page_info(listing: Listing, node: FieldNode, rows: Any) -> Any:
    """As the resolvers: rows lie outside a cursor (even when none is left inside the
    window); or the extra row of the page says more follow in the direction of travel."""
    beside: dict[str, Any] = {}
    for side, cursor in (("previous", listing.after), ("next", listing.before)):
        if cursor is not None:
            beside[side] = listing.exists(not_(cursor))
    size = listing.size
    on_page = rows.c[NUMBER] <= size
    more = select(func.count() > size).select_from(rows).scalar_subquery()
    pairs: list[tuple[str, Any]] = []
    for field in page_info_fields(node, listing.backwards):
        value: Any
        if field.side is not None:
            found = [more] if field.travelled else []
            if field.side in beside:
                found.append(beside[field.side])
            value = or_(*found) if found else jsontext.FALSE
        elif field.first_row:
            value = select(rows.c.c).where(rows.c[NUMBER] == 1, on_page).scalar_subquery()
        else:
            value = (
                select(rows.c.c)
                .where(on_page)
                .order_by(rows.c[NUMBER].desc())
                .limit(1)
                .scalar_subquery()
            )
        pairs.append((field.key, value))
    return jsontext.json_object(pairs)
