"""A connection's SQL written as text around kept parts, instead of built and compiled by
SQLAlchemy in every plan that selects it.

What misses the fields' kept texts (``subtrees``) in a first-seen document is mostly
the structure around them: a connection's page of rows, its cursors, ``pageInfo`` and
``totalCount``, ~500 compile visits a statement (docs/performance.md, "A first-seen
document"). Of that structure only two parts depend on the connection's SQLAlchemy
definitions (its rows' source, filter, order and cursor, and the laterals its objects
join): the page's rows (``connections.page_rows``) and the count
(``connections.total_count``). They are compiled once per *listing* (the field, its
parent's model, its arguments but the page size, the scopes; and for the rows, how
many objects, cursors or not, one more row for ``pageInfo`` or not, the laterals),
with holes for the row aliases, the objects' JSON and the page size; everything around
them (the arrays, ``pageInfo``, the JSON object) is written here as text, the same SQL
``connections`` builds.

Only a connection whose objects are kept texts already (``subtrees``: their SQL is
known) and whose arguments hold no variable nor cursor is written so; any other is
built by ``connections`` as before.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from graphql import FieldNode
from sqlalchemy import ColumnElement, inspect, literal_column, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.elements import ColumnClause, ExpressionClauseList
from sqlalchemy.sql.visitors import InternalTraversal

from domain.caches import ByteLRU, text_bytes
from schema.compiled import connections, jsontext, subtrees
from schema.compiled.holes import OBJECT_MARK, SIZE, SIZE_MARK, Holes, split
from schema.compiled.page_info import page_info_fields
from schema.compiled.selection import Unsupported, response_key

if TYPE_CHECKING:
    from schema.compiled.compiler import Compiler
    from schema.compiled.connections import Listing

PAGE_TEXT_CACHE_BYTES = 4 * 1024 * 1024

# Kept parts by key, their holes the parent's alias, the listing's own (the first alias
# from ``start``), the objects' JSON and the page size; ``UNKEPT`` for a key whose part
# cannot be kept (it names a row of its own besides its listing's), so it is not
# compiled again for nothing.
UNKEPT = Holes("")
PARTS: ByteLRU[tuple[Any, ...], Holes] = ByteLRU(PAGE_TEXT_CACHE_BYTES)
# Connections written as text, and those left to ``connections`` (an object not known
# as text, a part not kept): counted for the tests and the benchmark.
COUNTS: Counter[str] = Counter()


def listing_key(
    c: Compiler, node: FieldNode, meta: dict[str, Any], listing: Listing
) -> tuple[Any, ...] | None:
    """What a listing's SQL depends on, but its page size; None when more does (a
    variable, a cursor) or its row aliases are not the compiler's numbered ones."""
    if listing.window or not isinstance(listing.size, int) or isinstance(listing.size, bool):
        return None
    if subtrees.alias_number(listing.alias) is None:
        return None
    parent: Any = None
    if listing.parent is not None:
        if subtrees.alias_number(listing.parent) is None:
            return None
        parent = inspect(listing.parent).mapper.class_
    arguments = subtrees.arguments_shape(
        tuple(a for a in node.arguments or () if a.name.value not in {"first", "last"})
    )
    if arguments is None:
        return None
    return (
        id(c.walk.schema),
        listing.type_name,
        node.name.value,
        id(meta),
        parent,
        arguments,
        listing.backwards,
        c.scopes,
    )


def connection(
    c: Compiler,
    key: tuple[Any, ...],
    listing: Listing,
    selections: list[FieldNode],
    objects: dict[tuple[str, ...], tuple[str, Any]],
    cursors: bool,
) -> ColumnElement[Any] | None:
    """The connection's JSON as a scalar subquery written as text; None if one of its
    objects' SQL is not known as text yet (``connections`` builds it then)."""
    written_objects: list[str] = []
    for _, row_json in objects.values():
        text = _text_of(row_json)
        if text is None:
            COUNTS["object not text"] += 1
            return None
        written_objects.append(text)
    wanted = {child.name.value for child in selections}
    page_info = "pageInfo" in wanted
    laterals = c.laterals_of(listing.alias)
    total = rows = None
    if "totalCount" in wanted:
        total = _part(
            ("total", *key), listing.parent, listing.alias, lambda: connections.total_count(listing)
        )
        if total is UNKEPT:
            COUNTS["part not kept"] += 1
            return None
    if wanted & {"nodes", "edges", "pageInfo"}:
        variant = ("rows", *key, len(objects), cursors, page_info, tuple(laterals))

        def build() -> Any:
            holes = {
                where: (label, literal_column(OBJECT_MARK.format(number), jsontext.JSON_TEXT))
                for number, (where, (label, _)) in enumerate(objects.items())
            }
            sized = replace(listing, size=SIZE_MARK)
            try:
                return connections.page_rows(c, sized, holes, cursors, page_info)
            finally:  # ``rows`` took them: joined again by whichever SQL is written
                c.restore_laterals(listing.alias, laterals)

        rows = _part(variant, listing.parent, listing.alias, build, sizes=1)
        if rows is UNKEPT:
            COUNTS["part not kept"] += 1
            return None
    c.drop_laterals(listing.alias)  # joined in the rows' text
    parent = None if listing.parent is None else subtrees.alias_number(listing.parent)
    own = subtrees.alias_number(listing.alias)
    assert own is not None  # listing_key checked it
    size = listing.size
    total_sql = None if total is None else total.render(parent, own, size=size)
    rows_sql = None if rows is None else rows.render(parent, own, written_objects, size)
    labels = {where: label for where, (label, _) in objects.items()}
    sql = _aggregate(c, listing, own, selections, labels, total_sql, rows_sql)
    COUNTS["written"] += 1
    return _Written(sql, listing.parent)


def reference(
    c: Compiler,
    meta: dict[str, Any],
    parent: Any,
    target: Any,
    row_json: Any,
    build: Callable[[Any], Any],
) -> ColumnElement[Any] | None:
    """A to-one reference's JSON (``build(object)``: the row of ``target`` its parent's
    row refers to, as ``objects`` selects it) written as text when its object's SQL is
    known; None if not."""
    written = _text_of(row_json)
    own = subtrees.alias_number(target)
    number = subtrees.alias_number(parent)
    if written is None or own is None or number is None:
        COUNTS["reference built"] += 1
        return None
    laterals = c.laterals_of(target)
    key = (
        "reference",
        id(c.walk.schema),
        id(meta),
        inspect(parent).mapper.class_,
        c.scopes,
        tuple(laterals),
    )

    def hole() -> Any:
        try:
            return build(literal_column(OBJECT_MARK.format(0), jsontext.JSON_TEXT))
        finally:  # ``rows`` took them: joined again by whichever SQL is written
            c.restore_laterals(target, laterals)

    part = _part(key, parent, target, hole)
    if part is UNKEPT:
        COUNTS["reference built"] += 1
        return None
    c.drop_laterals(target)  # joined in the text
    COUNTS["reference written"] += 1
    return _Written(part.render(number, own, [written]), parent)


def _part(
    key: tuple[Any, ...], parent: Any, own: Any, build: Callable[[], Any], sizes: int = 0
) -> Holes:
    """The part kept under ``key``, else ``build()`` compiled and kept. ``sizes``: how
    many page sizes it holds (the rows, one; else none)."""
    found = PARTS.get(key)
    if found is not None:
        return found
    part = _compiled(build(), parent, own, sizes)
    PARTS.put(key, part, text_bytes(*part.texts()) + 200)
    return part


def _compiled(statement: Any, parent_alias: Any, own_alias: Any, sizes: int) -> Holes:
    """``statement`` compiled where it sits (correlated to its parent's row), split at
    its holes; ``UNKEPT`` if it names another row or a parameter."""
    from schema.compiled.extension import compile_for_plan  # imports this module

    captured = _Captured(statement)
    probe = select(captured)
    if parent_alias is not None:
        probe = probe.select_from(parent_alias)
    compiled = compile_for_plan(probe)
    sql = captured.sql
    if sql is None or getattr(compiled, "placeholders", None) or "asof" in sql:
        return UNKEPT
    parent = None if parent_alias is None else subtrees.alias_number(parent_alias)
    own = subtrees.alias_number(own_alias)
    assert own is not None  # the callers checked it
    part = split(sql, parent=parent, start=own, names=1, objects=True, size=True)
    if part is None:  # a row of its own: numbered per statement
        return UNKEPT
    if part.count(SIZE) != sizes:  # the number also stands for something else
        return UNKEPT
    return part


class _Captured(ColumnElement[Any]):
    """A part compiled in its place, its text kept."""

    __visit_name__ = "portfolio_captured"
    _traverse_internals = [("inner", InternalTraversal.dp_clauseelement)]
    inherit_cache = False

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.sql: str | None = None
        self.type = jsontext.JSON_TEXT

    @property
    def _from_objects(self) -> Any:
        return []


@compiles(_Captured)
def _compile_captured(element: _Captured, compiler: Any, **kwargs: Any) -> str:
    element.sql = compiler.process(element.inner, **kwargs)
    return f"({element.sql})"


class _Written(ColumnElement[Any]):
    """A connection's JSON, written as text: a scalar subquery (NULL-able as one is)."""

    __visit_name__ = "portfolio_page_text"
    _traverse_internals = [("sql", InternalTraversal.dp_string)]
    inherit_cache = False

    def __init__(self, sql: str, parent: Any) -> None:
        self.sql = sql
        self.parent = parent
        self.type = jsontext.JSON_TEXT

    @property
    def _from_objects(self) -> Any:
        if self.parent is None:
            return []
        return inspect(self.parent).selectable._from_objects


@compiles(_Written)
def _compile_written(element: _Written, compiler: Any, **kwargs: Any) -> str:
    return f"({element.sql})"


def _text_of(value: Any) -> str | None:
    """The SQL of a JSON expression made only of constants and kept texts, as SQLAlchemy
    writes it; None if any part of it is anything else."""
    if isinstance(value, jsontext.Written):
        value = value.clause
    if isinstance(value, ExpressionClauseList):
        parts = [_text_of(part) for part in value.clauses]
        if None in parts:
            return None
        return " || ".join(parts)  # type: ignore[arg-type]
    if isinstance(value, ColumnClause) and value.is_literal:
        return str(value.name)
    if isinstance(value, subtrees.Replayed):
        return f"({value.sql})"
    if isinstance(value, _Written):
        return f"({value.sql})"
    return None


# ------------------------------------------------------------ the text around the parts
# The same SQL as ``connections`` builds (``jsontext``: each value made JSON text, a NULL
# written ``null``), the page's rows named after the listing's alias.


class _Json:
    """Concatenated JSON: fixed text and SQL values, neighbouring fixed text joined."""

    def __init__(self) -> None:
        self.parts: list[tuple[bool, str]] = []  # (fixed?, JSON text or SQL)

    def fixed(self, text: str) -> None:
        if self.parts and self.parts[-1][0]:
            self.parts[-1] = (True, self.parts[-1][1] + text)
        else:
            self.parts.append((True, text))

    def value(self, sql: str) -> None:
        self.parts.append((False, sql))

    def add(self, other: _Json) -> None:
        for fixed, text in other.parts:
            if fixed:
                self.fixed(text)
            else:
                self.value(text)

    def sql(self) -> str:
        return " || ".join(
            "'" + text.replace("'", "''") + "'" if fixed else text for fixed, text in self.parts
        )


def _object(pairs: list[tuple[str, _Json]]) -> _Json:
    if not pairs:
        raise Unsupported("empty selection")
    written = _Json()
    written.fixed("{")
    for number, (key, value) in enumerate(pairs):
        written.fixed(("," if number else "") + f'"{jsontext.name(key)}":')
        written.add(value)
    written.fixed("}")
    return written


def _value(sql: str) -> _Json:
    """A value of JSON text that may be NULL (``jsontext.json_text``, "as it is")."""
    written = _Json()
    written.value(f"coalesce({sql}, 'null')")
    return written


def _as_text(sql: str) -> _Json:
    """A count or a boolean: its text is its JSON ("as text")."""
    written = _Json()
    written.value(f"coalesce(CAST({sql} AS TEXT), 'null')")
    return written


def _constant(text: str) -> _Json:
    written = _Json()
    written.fixed(text)
    return written


def _aggregate(
    c: Compiler,
    listing: Listing,
    own: int,
    selections: list[FieldNode],
    labels: dict[tuple[str, ...], str],
    total_sql: str | None,
    rows_sql: str | None,
) -> str:
    page = f"page_n{own}"
    size = listing.size
    order = connections.list_order(listing, any(c.name.value == "pageInfo" for c in selections))
    direction = " DESC" if order.descending else ""
    by = ", ".join(f"{page}.{name}{direction}" for name in order.columns)
    shown = f" FILTER (WHERE {page}.{connections.NUMBER} <= {size})" if order.numbered else ""

    def items(item: _Json) -> _Json:
        written = _constant("[")
        written.value(f"coalesce(string_agg({item.sql()}, ',' ORDER BY {by}){shown}, '')")
        written.fixed("]")
        return written

    pairs: list[tuple[str, _Json]] = []
    for child in selections:
        key = response_key(child)
        name = child.name.value
        if name == "__typename":
            pairs.append((key, _constant(f'"{jsontext.name(listing.type_name)}"')))
        elif name == "totalCount":
            pairs.append((key, _as_text(f"({total_sql})")))
        elif name == "nodes":
            pairs.append((key, items(_value(f"{page}.{labels['nodes', key]}"))))
        elif name == "edges":
            pairs.append((key, items(_edge(c, listing, child, page, labels))))
        else:  # pageInfo
            assert rows_sql is not None
            pairs.append((key, _page_info(listing, child, page, rows_sql)))
    sql = f"SELECT {_object(pairs).sql()} AS page_json"
    if rows_sql is not None and any(c.name.value in {"nodes", "edges"} for c in selections):
        sql += f" \nFROM ({rows_sql}) AS {page}"
    return sql


def _edge(
    c: Compiler, listing: Listing, edges: FieldNode, page: str, labels: dict[Any, str]
) -> _Json:
    """As ``connections._edge_json``."""
    pairs: list[tuple[str, _Json]] = []
    for child in c.walk.fields(f"{listing.node_type}Edge", edges.selection_set):
        key = response_key(child)
        if child.name.value == "node":
            pairs.append((key, _value(f"{page}.{labels['edges', response_key(edges), key]}")))
        elif child.name.value == "cursor":
            pairs.append((key, _value(f"{page}.c")))
        elif child.name.value == "__typename":
            pairs.append((key, _constant(f'"{jsontext.name(listing.node_type)}Edge"')))
        else:
            raise Unsupported("edge field")
    return _object(pairs)


def _page_info(listing: Listing, node: FieldNode, page: str, rows_sql: str) -> _Json:
    """As ``connections._page_info`` without cursors in the arguments: the extra row of
    the page says more follow in the direction of travel; none precede it."""
    size, number = listing.size, connections.NUMBER
    pairs: list[tuple[str, _Json]] = []
    for field in page_info_fields(node, listing.backwards):
        if field.side is not None:
            value = (
                _as_text(f"(SELECT count(*) > {size} AS more \nFROM ({rows_sql}) AS {page})")
                if field.travelled
                else _constant("false")
            )
        elif field.first_row:
            value = _value(
                f"(SELECT {page}.c \nFROM ({rows_sql}) AS {page} \n"
                f"WHERE {page}.{number} = 1 AND {page}.{number} <= {size})"
            )
        else:
            value = _value(
                f"(SELECT {page}.c \nFROM ({rows_sql}) AS {page} \n"
                f"WHERE {page}.{number} <= {size} ORDER BY {page}.{number} DESC \n LIMIT 1)"
            )
        pairs.append((field.key, value))
    return _object(pairs)
