"""The SQL text of a field's subtree, kept across documents.

A first-seen document is mostly made of parts seen before: ``owner { id name }`` under
an initiative, a KPI's ``measurements(first: 5) { ... }``. Building and compiling such
a part with SQLAlchemy is most of what planning a new document costs
(docs/performance.md, "A first-seen document"). A field with a selection set is
therefore compiled once per *shape*, and its SQL text is reused wherever the same
shape appears again, in any document:

- the key is everything its SQL depends on: the schema, the parent's type and model,
  the field as written (alias, arguments, directives, sub-selection, fragments
  followed: ``shape``), the caller's scopes and the page cap. A field using a variable
  has no shape (its SQL may change with the variable's value or parameters);
- the row aliases are numbered per statement (``n0``, ``n1``...): the text is kept
  with its parent's alias and its own as holes, renumbered where it is reused;
- a subtree that leaves anything in the plan besides its SQL is not kept: refused
  fields below it (their errors are written per path), bound or computed parameters,
  the caller's attributes, a lateral joined to a row above its parent. A lateral of
  the parent's row (a KPI's latest measurement, shared by ``status`` and
  ``latestValue``) is joined where that row is selected, outside the text: it is kept
  with the text (its name and lookup) and joined again wherever the text is reused.

The text is the one SQLAlchemy compiled within its first statement: it is recorded
when that statement is compiled, so both uses render the same SQL.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from graphql import (
    ArgumentNode,
    BooleanValueNode,
    DirectiveNode,
    EnumValueNode,
    FieldNode,
    FloatValueNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    InlineFragmentNode,
    IntValueNode,
    ListValueNode,
    Node,
    NullValueNode,
    ObjectValueNode,
    StringValueNode,
    ValueNode,
)
from sqlalchemy import ColumnElement, inspect
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm.util import AliasedInsp
from sqlalchemy.sql.visitors import InternalTraversal

from domain.caches import ByteLRU, text_bytes
from schema.compiled import jsontext
from schema.compiled.holes import Holes, split

if TYPE_CHECKING:
    from schema.compiled.compiler import Compiler, Lookup

SUBTREE_CACHE_BYTES = 16 * 1024 * 1024

_ALIAS = re.compile(r"n([0-9]+)")
# The rows of an ``asOf`` lookup (``schema.compiled.as_of``): never kept in a text.
_AS_OF_ROW = re.compile(r"(?<![A-Za-z0-9_$])asof[a-z_]*[0-9]+(?![A-Za-z0-9])")


@dataclass(frozen=True)
class Text:
    """A subtree's SQL: its parent's alias and its own as holes."""

    sql: Holes
    names: int  # the aliases it numbers
    type: Any  # its SQL type
    # The laterals of its parent's row it reads (name, lookup): joined again there.
    laterals: tuple[tuple[str, Lookup], ...] = ()


class SubtreeCache:
    """Subtrees' SQL by shape: an LRU bounded by the bytes of its keys and texts."""

    def __init__(self, max_bytes: int = SUBTREE_CACHE_BYTES) -> None:
        self._texts: ByteLRU[tuple[Any, ...], Text] = ByteLRU(max_bytes)
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._texts)

    @property
    def bytes(self) -> int:
        return self._texts.bytes

    @property
    def max_bytes(self) -> int:
        return self._texts.max_bytes

    def get(self, key: tuple[Any, ...]) -> Text | None:
        return self._texts.get(key)

    def put(self, key: tuple[Any, ...], text: Text) -> None:
        size = text_bytes(*key, *text.sql.texts())
        self._texts.put(key, text, size + 16 * (2 * len(text.sql.holes) + 1))

    def clear(self) -> None:
        for key in list(self._texts):
            self._texts.pop(key)


SUBTREES = SubtreeCache()


def cached(
    c: Compiler, type_name: str, alias: Any, node: FieldNode, build: Callable[[], Any]
) -> Any:
    """``build()``, the JSON text (never NULL) of the field ``node`` of ``type_name`` on
    the row ``alias``; its SQL text from an earlier plan when one built the same shape
    on the same kind of row."""
    parent = alias_number(alias)
    shape = c.shape(node) if parent is not None else None
    if parent is None or shape is None:
        return build()
    if not node.selection_set:  # a leaf's value does not depend on its response key
        shape = shape.partition(":")[2]
    key = (
        id(c.walk.schema),
        type_name,
        inspect(alias).mapper.class_,
        shape,
        c.scopes,
        c.max_page_size,
    )
    found = SUBTREES.get(key)
    start = c.next_name
    if found is not None:
        SUBTREES.hits += 1
        c.next_name += found.names
        for name, lookup in found.laterals:  # joined where the parent's rows are selected
            c.lateral(alias, name, lookup)
        return Replayed(found.sql.render(parent, start), found.type, alias)
    SUBTREES.misses += 1
    before, laterals = traces(c), len(c.lateral_rows)
    expression = build()
    if traces(c) != before or not isinstance(expression, ColumnElement):
        return expression
    parents: dict[tuple[str, Lookup], None] = {}
    for row, name, lookup in c.lateral_rows[laterals:]:
        number = alias_number(row)
        if number == parent:
            parents[name, lookup] = None
        elif number is None or number < start:  # joined where a row above it is selected
            return expression
    if jsontext.constant_text(expression) is not None:
        return expression  # written into its parent's text already
    return _Recording(expression, key, parent, start, c.next_name - start, tuple(parents))


def alias_number(alias: Any) -> int | None:
    """The number of a row alias the compiler named (``Compiler.alias``), else None."""
    number = _NUMBERS.get(alias)
    if number is not None:
        return number
    found = inspect(alias, raiseerr=False)
    named = _ALIAS.fullmatch(found.name or "") if isinstance(found, AliasedInsp) else None
    if named is None:  # not kept: other aliases may be made per plan
        return None
    number = _NUMBERS[alias] = int(named.group(1))
    return number


# The compiler's row aliases -> their number: few, and kept for good as the aliases are
# (``compiler._alias_named``).
_NUMBERS: dict[Any, int] = {}


def traces(c: Compiler) -> tuple[Any, ...]:
    """What building a field may leave in the plan besides its SQL."""
    return (
        len(c.refusals),
        len(c.sites),
        len(c.principal_attributes),
        c.computed_count,
        c.as_of_lookups,
    )


class _Recording(ColumnElement[Any]):
    """A subtree built for the first time: compiles as its expression, parenthesised,
    and keeps the text it compiled to under its key."""

    __visit_name__ = "portfolio_subtree"
    never_null = True  # JSON text (``jsontext.json_text``): taken as it is
    _traverse_internals = [("inner", InternalTraversal.dp_clauseelement)]
    inherit_cache = False

    def __init__(
        self,
        inner: Any,
        key: tuple[Any, ...],
        parent: int,
        start: int,
        names: int,
        laterals: tuple[tuple[str, Lookup], ...] = (),
    ) -> None:
        self.inner = inner
        self.subtree_key = key
        self.parent = parent
        self.start = start
        self.names = names
        self.laterals = laterals
        self.type = inner.type

    @property
    def _from_objects(self) -> Any:
        return self.inner._from_objects

    def keep(self, sql: str) -> None:
        if "asof" in sql and _AS_OF_ROW.search(sql) is not None:
            # An ``asOf`` row (``asof3``) is numbered per statement too, but is no hole:
            # a text naming one would name another statement's row when reused.
            return
        holes = split(sql, parent=self.parent, start=self.start, names=self.names)
        if holes is None:
            return  # a row above its parent: its text holds more than its shape
        SUBTREES.put(self.subtree_key, Text(holes, self.names, self.type, self.laterals))


@compiles(_Recording)
def _compile_recording(element: _Recording, compiler: Any, **kwargs: Any) -> str:
    placeholders = getattr(compiler, "placeholders", None)
    before = -1 if placeholders is None else len(placeholders)
    sql = compiler.process(element.inner, **kwargs)
    # Only a plan's own compiler's text, with no parameter: ``$n`` are numbered per
    # statement. Anonymous names (``anon_3``, ``count_2``) are numbered per statement
    # too, but a subtree is one value whose only reference out of it is its parent's
    # row: its names are its own scope's, whatever else the statement names so.
    if placeholders is not None and len(placeholders) == before:
        element.keep(sql)
    return f"({sql})"


class Replayed(ColumnElement[Any]):
    """A subtree's kept text, its aliases renumbered for this statement."""

    __visit_name__ = "portfolio_replayed"
    never_null = True
    _traverse_internals = [("sql", InternalTraversal.dp_string)]
    inherit_cache = False

    def __init__(self, sql: str, type_: Any, parent: Any) -> None:
        self.sql = sql
        self.type = type_
        self.parent = parent

    @property
    def _from_objects(self) -> Any:
        return inspect(self.parent).selectable._from_objects


@compiles(Replayed)
def _compile_replayed(element: Replayed, compiler: Any, **kwargs: Any) -> str:
    return f"({element.sql})"


def shape(
    node: Node, fragments: dict[str, FragmentDefinitionNode], memo: dict[int, str | None]
) -> str | None:
    """The field as written, fragments followed, as text; None if it uses a variable.
    ``memo`` (by id of the node, for one document) spares the fields below it."""
    key = id(node)
    if key in memo:
        return memo[key]
    found = memo[key] = _shape(node, fragments, memo)
    return found


def _shape(
    node: Any, fragments: dict[str, FragmentDefinitionNode], memo: dict[int, str | None]
) -> str | None:
    parts: list[str] = []
    if isinstance(node, FieldNode):
        arguments = arguments_shape(node.arguments)
        if arguments is None:
            return None
        parts.append(f"{node.alias.value if node.alias else ''}:{node.name.value}{arguments}")
    elif isinstance(node, InlineFragmentNode):
        condition = node.type_condition
        parts.append(f"...on {condition.name.value if condition else ''}")
    elif isinstance(node, FragmentSpreadNode):
        fragment = fragments.get(node.name.value)
        if fragment is None:
            return None
        parts.append(f"...on {fragment.type_condition.name.value}")
        directives = _directives(node.directives)
        if directives is None:
            return None
        parts.append(directives)
        node = fragment
    else:
        return None
    directives = _directives(node.directives)
    if directives is None:
        return None
    parts.append(directives)
    if node.selection_set is not None:
        parts.append("{")
        for selection in node.selection_set.selections:
            inner = shape(selection, fragments, memo)
            if inner is None:
                return None
            parts.append(inner)
            parts.append(" ")
        parts.append("}")
    return "".join(parts)


def _directives(directives: tuple[DirectiveNode, ...] | None) -> str | None:
    parts: list[str] = []
    for directive in directives or ():
        arguments = arguments_shape(directive.arguments)
        if arguments is None:
            return None
        parts.append(f"@{directive.name.value}{arguments}")
    return "".join(parts)


def arguments_shape(arguments: tuple[ArgumentNode, ...] | None) -> str | None:
    """A field's or a directive's arguments as text; None if one is a variable."""
    parts = ["("]
    for argument in arguments or ():
        value = _value(argument.value)
        if value is None:
            return None
        parts.append(f"{argument.name.value}:{value},")
    parts.append(")")
    return "".join(parts)


def _value(value: ValueNode) -> str | None:
    """A literal value as text that tells its kind; None for a variable."""
    if isinstance(value, StringValueNode):
        return repr(value.value)
    if isinstance(value, (IntValueNode, FloatValueNode)):
        return f"#{value.value}"
    if isinstance(value, EnumValueNode):
        return f"!{value.value}"
    if isinstance(value, BooleanValueNode):
        return "true" if value.value else "false"
    if isinstance(value, NullValueNode):
        return "null"
    if isinstance(value, ListValueNode):
        items = [_value(item) for item in value.values]
        return None if None in items else "[" + ",".join(items) + "]"  # type: ignore[arg-type]
    if isinstance(value, ObjectValueNode):
        fields = [(field.name.value, _value(field.value)) for field in value.fields]
        if any(item is None for _, item in fields):
            return None
        return "{" + ",".join(f"{name}:{item}" for name, item in fields) + "}"
    return None  # a variable
