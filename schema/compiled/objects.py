"""Objects: the JSON of the fields selected on one row, each field from its definition (a
column, a computed column, a to-one reference, a nested connection, or a field with SQL
of its own in ``schema.compiled.special``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from graphql import FieldNode, get_named_type
from sqlalchemy import ColumnElement, select

from domain.services import reads
from schema.compiled import jsontext, page_text, subtrees
from schema.compiled.selection import Unsupported, response_key
from schema.compiled.special import SPECIAL
from schema.compiled.values import column_value, global_id

if TYPE_CHECKING:
    from schema.compiled.compiler import Compiler


def object_json(c: Compiler, type_name: str, alias: Any, node: FieldNode) -> ColumnElement[Any]:
    """The JSON object of the fields selected on one row of ``alias``."""
    return jsontext.json_object(
        [
            (response_key(child), field(c, type_name, alias, child))
            for child in c.walk.fields(type_name, node.selection_set)
        ]
    )


def field(c: Compiler, type_name: str, alias: Any, node: FieldNode) -> Any:
    """A field's value as JSON text. One with no variable is compiled once per shape,
    whatever the document (``subtrees``)."""
    return c.placed(type_name, node, lambda: _field(c, type_name, alias, node))


def _field(c: Compiler, type_name: str, alias: Any, node: FieldNode) -> Any:
    return subtrees.cached(
        c, type_name, alias, node, lambda: jsontext.json_text(_build(c, type_name, alias, node))
    )


def _build(c: Compiler, type_name: str, alias: Any, node: FieldNode) -> Any:
    name = node.name.value
    if name == "__typename":
        return jsontext.string_constant(type_name)
    definition, strawberry_field = c.definition(type_name, node)
    meta = strawberry_field.metadata
    if "global_id" in meta:
        return global_id(meta["global_id"], alias.id)
    special = SPECIAL.get((type_name, name))
    if special is not None:
        return special(c, alias, node, definition, strawberry_field)
    named = get_named_type(definition.type).name
    if "edge" in meta:
        args = c.arguments(definition, strawberry_field, node)
        return c.connection(named, node, meta, args, alias, reads.EDGES[meta["edge"]])
    if "reference" in meta:
        model, attribute = meta["reference"]
        target = c.alias(model)
        conditions = [target.id == getattr(alias, attribute)]
        if hasattr(model, "archived_at"):
            conditions.append(target.archived_at.is_(None))
        row_json = object_json(c, named, target, node)

        def selected(json: Any) -> Any:
            statement = select(json).select_from(target)
            return c.rows(statement, target).where(*conditions).correlate(alias)

        written = page_text.reference(c, meta, alias, target, row_json, selected)
        return written if written is not None else selected(row_json).scalar_subquery()
    if strawberry_field.base_resolver is None and not node.selection_set:
        return column_value(getattr(alias, strawberry_field.python_name))
    raise Unsupported(f"{type_name}.{name}")
