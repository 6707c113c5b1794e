"""The change feed's statement kept as text by its selection.

``changes`` binds all its arguments as parameters computed per request (``feed``), so
its SQL depends only on what is selected and the caller's scopes; yet building and
compiling it (a page of events, each event's fields, one object lookup per feed type)
was the costliest root field of a first-seen document (docs/performance.md). It is
compiled once per selection and scopes, with holes for its parameters (compiled as
each plan's own ``$n``) and its row aliases (renumbered), and written from the text
in any later plan.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from graphql import FieldNode
from sqlalchemy import ColumnElement, literal_column, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.visitors import InternalTraversal

from domain.caches import ByteLRU, text_bytes
from schema.compiled import jsontext, subtrees
from schema.compiled.holes import PARAMETER, PARAMETER_MARK, Holes, split
from schema.compiled.selection import Unsupported

if TYPE_CHECKING:
    from schema.compiled.compiler import Compiler

FEED_TEXT_CACHE_BYTES = 1024 * 1024


@dataclass(frozen=True)
class Kept:
    sql: Holes  # its parameters and row aliases (from the first of the statement) as holes
    names: int  # the row aliases it numbers


TEXTS: ByteLRU[tuple[Any, ...], Kept] = ByteLRU(FEED_TEXT_CACHE_BYTES)
COUNTS = {"written": 0, "compiled": 0}


def key_of(c: Compiler, node: FieldNode) -> tuple[Any, ...] | None:
    """The selection as written (fragments followed) and the scopes; None if a variable
    is used in it (a directive's) or it selects no aggregate (one row per event then)."""
    if node.selection_set is None:
        return None
    shapes = [c.shape(selection) for selection in node.selection_set.selections]  # type: ignore[arg-type]
    if None in shapes:
        return None
    names = {child.name.value for child in c.walk.fields("FeedPage", node.selection_set)}
    if not names & {"events", "cursor", "hasMore"}:
        return None
    return (id(c.walk.schema), tuple(shapes), c.scopes)


def written(
    c: Compiler,
    key: tuple[Any, ...],
    parameters: Sequence[Any],
    types: Sequence[Any],
    build: Callable[[list[Any]], Any],
) -> Any:
    """The statement, from its kept text; else ``build(holes)`` (the statement over holes
    standing for ``parameters``) compiled, and kept when it leaves nothing in the plan
    but its SQL (a refused field's error is the plan's own)."""
    start = c.next_name
    kept = TEXTS.get(key)
    if kept is not None:
        c.next_name += kept.names
        COUNTS["written"] += 1
    else:
        before = subtrees.traces(c)
        holes = [
            literal_column(PARAMETER_MARK.format(number), type_)
            for number, type_ in enumerate(types)
        ]
        statement = build(holes)
        kept = _kept(statement, start, c.next_name - start)
        if kept is None:  # unreachable for a feed: it names no other row, no parameter
            raise Unsupported("feed text")
        if subtrees.traces(c) == before:
            TEXTS.put(key, kept, text_bytes(*kept.sql.texts()) + 64)
        COUNTS["compiled"] += 1
    return select(_Written(kept, start, list(parameters)))


def _kept(statement: Any, start: int, names: int) -> Kept | None:
    from schema.compiled.extension import compile_for_plan  # imports this module's users

    compiled = compile_for_plan(statement)
    sql = str(compiled)
    if getattr(compiled, "placeholders", None) or "asof" in sql:
        return None
    holes = split(sql, start=start, names=names, parameters=True)
    return None if holes is None else Kept(holes, names)


class _Written(ColumnElement[Any]):
    """The kept statement as a scalar subquery, its aliases renumbered and its
    parameters compiled in their holes (each plan numbers its own ``$n``)."""

    __visit_name__ = "portfolio_feed_text"
    _traverse_internals = [("parameters", InternalTraversal.dp_clauseelement_list)]
    inherit_cache = False

    def __init__(self, kept: Kept, start: int, parameters: list[Any]) -> None:
        self.kept = kept
        self.start = start
        self.parameters = parameters
        self.type = jsontext.JSON_TEXT

    @property
    def _from_objects(self) -> Any:
        return []


@compiles(_Written)
def _compile_written(element: _Written, compiler: Any, **kwargs: Any) -> str:
    sql = element.kept.sql
    # Each compiled where it first appears: the compiler numbers ``$n`` in that order.
    parameters = [""] * len(element.parameters)
    for number in sql.first(PARAMETER):
        parameters[number] = compiler.process(element.parameters[number], **kwargs)
    return f"({sql.render(start=element.start, parameters=parameters)})"
