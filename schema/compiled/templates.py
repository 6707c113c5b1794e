"""SQL over one value, written as text once and filled in for every use.

A first-seen document is planned once, and most of that is SQLAlchemy building and
compiling its statement node by node (docs/performance.md, "A first-seen document").
The same few expressions over one column recur in every plan: an instant as JSON
(``values.iso_timestamp``, some twenty nodes), a global ID, a value made JSON text
(``jsontext.json_text``). ``filled`` builds such an expression once over a hole,
keeps its SQL text, and from then on stands for it with one node that compiles its
value and puts it in the hole: the same SQL, without the nodes.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any

from sqlalchemy import ColumnElement, literal_column
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql import coercions, roles
from sqlalchemy.sql.elements import ColumnClause
from sqlalchemy.sql.visitors import InternalTraversal

_HOLE = "__portfolio_hole__"
_DIALECT = postgresql.dialect()
# By the expression's name, its constant arguments and the value's SQL type: a handful.
_TEXTS: dict[Hashable, str] = {}


class Filled(ColumnElement[Any]):
    """A template's SQL text with its value compiled into the hole."""

    __visit_name__ = "portfolio_filled"
    # Traversed (cloned, adapted to an alias) through its value, like any expression.
    _traverse_internals = [
        ("value", InternalTraversal.dp_clauseelement),
        ("template", InternalTraversal.dp_string),
    ]
    inherit_cache = True

    def __init__(self, template: str, value: Any, type_: Any) -> None:
        self.template = template
        # A mapped attribute (``Model.column``) as the column it stands for.
        self.value = coercions.expect(roles.ExpressionElementRole, value)
        self.type = type_

    @property
    def _from_objects(self) -> Any:
        return self.value._from_objects


@compiles(Filled)
def _compile_filled(element: Filled, compiler: Any, **kwargs: Any) -> str:
    value = compiler.process(element.value, **kwargs)
    if not (isinstance(element.value, ColumnClause) and not element.value.is_literal):
        value = f"({value})"  # anything but a column keeps its own precedence
    return element.template.replace(_HOLE, value)


def filled(
    key: Hashable, value: Any, build: Callable[[Any], ColumnElement[Any]], type_: Any
) -> Filled:
    """``build(value)``, from the text of ``build`` over a hole of the value's type, kept
    under ``key`` with the type's class (what ``build`` may depend on besides the key)."""
    full = (key, type(value.type))
    template = _TEXTS.get(full)
    if template is None:
        hole = literal_column(_HOLE, value.type)
        compiled = build(hole).compile(dialect=_DIALECT, compile_kwargs={"literal_binds": True})
        template = _TEXTS[full] = str(compiled)
    return Filled(template, value, type_)
