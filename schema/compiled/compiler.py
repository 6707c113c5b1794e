"""Compile a query's selection into SQL that builds the JSON answer in PostgreSQL
(as text: ``schema.compiled.jsontext``).

Every field is taken from the definitions the resolvers use: columns and computed
expressions of the models (``column_property``), the edges, filters and orderings of
``domain.services``, the scopes declared on the strawberry fields. Whatever is not
covered raises ``Unsupported`` and the resolvers answer the whole operation.
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from collections.abc import Callable, Iterator
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from functools import cache
from typing import Any

from graphql import (
    FieldNode,
    GraphQLObjectType,
    ListValueNode,
    ObjectValueNode,
    ValueNode,
    VariableNode,
    get_named_type,
)
from sqlalchemy import (
    JSON,
    BigInteger,
    ColumnElement,
    Date,
    DateTime,
    Double,
    Select,
    Text,
    and_,
    any_,
    bindparam,
    case,
    cast,
    func,
    inspect,
    literal,
    literal_column,
    not_,
    or_,
    select,
    true,
    tuple_,
    type_coerce,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import aliased
from sqlalchemy.sql.util import ClauseAdapter

from domain import models
from domain.errors import DomainError
from domain.models.computed import constraint_blocks, latest_first, status_of_latest
from domain.services import reads
from domain.services.pagination import Cursor, page_request
from domain.services.pagination import _coerce as pagination_coerce
from schema.compiled import jsontext
from schema.compiled.parameters import PREFIX
from schema.compiled.selection import Unsupported, Walk, response_key
from schema.guards import NODE_TYPES, scopes_of
from schema.ids import decode_id


def iso_timestamp(column: Any) -> ColumnElement[Any]:
    """A timestamptz as JSON, written as Python's ``isoformat()`` writes it in UTC (what
    the resolvers send). On whole seconds (nearly every value) that is PostgreSQL's own
    JSON form, since the connection's TimeZone is UTC (``domain.database``); ``to_char``
    costs ~0.7 µs a value, so it only writes values with a fraction, which Python pads
    to six digits and PostgreSQL does not."""
    utc = column.op("AT TIME ZONE")(literal("UTC"))
    written = case(
        (column == func.date_trunc("second", column), func.to_json(column)),
        else_=func.to_json(func.to_char(utc, 'YYYY-MM-DD"T"HH24:MI:SS.US') + "+00:00"),
    )
    return type_coerce(written, JSON)


def json_float(column: Any) -> ColumnElement[Any]:
    """A float as GraphQL's Float (and Python's ``repr``) writes it: ``1500.0``, not
    PostgreSQL's ``1500`` (``graphql_float``, migration 0004)."""
    return func.graphql_float(cast(column, Double), type_=JSON)


def global_id(type_name: str, id_column: Any) -> ColumnElement[str]:
    """``schema.ids.encode_id`` in SQL: base64url of ``Type:pk`` without padding, as a
    JSON string (base64url needs no escaping)."""
    raw = func.convert_to(literal(f"{type_name}:") + cast(id_column, Text), "UTF8")
    encoded = func.rtrim(func.translate(func.encode(raw, "base64"), "+/", "-_"), "=")
    return jsontext.plain_string(encoded)


def cursor_text(ordering: str, sort: Any, id_column: Any) -> ColumnElement[str]:
    """``domain.services.pagination.encode_cursor`` in SQL, as a JSON string: base64url
    without padding of ``["ORDERING",value,id]``, the value written as orjson writes
    the Python value the resolvers read (``_cursor_value``). PostgreSQL's base64 wraps
    lines every 76 characters: the newlines go."""
    raw = (
        literal_column("'" + '["' + jsontext.name(ordering) + '",' + "'", Text)
        + _cursor_value(sort)
        + literal_column("','", Text)
        + cast(id_column, Text)
        + literal_column("']'", Text)
    )
    encoded = func.encode(func.convert_to(raw, "UTF8"), "base64")
    unwrapped = func.translate(encoded, literal_column("E'+/\\n'", Text), "-_")
    return jsontext.plain_string(func.rtrim(unwrapped, "="))


def _cursor_value(sort: Any) -> ColumnElement[str]:
    """The JSON text of a sort value, as orjson writes what asyncpg reads of it."""
    python_type = _python_type(sort)
    if python_type is date:
        # asyncpg reads the orderings' ±infinity fallbacks as date.min / date.max.
        return case(
            (
                sort == cast(literal_column("'-infinity'"), Date),
                literal_column("'\"0001-01-01\"'", Text),
            ),
            (
                sort == cast(literal_column("'infinity'"), Date),
                literal_column("'\"9999-12-31\"'", Text),
            ),
            else_=cast(func.to_json(sort), Text),
        )
    if python_type is datetime:
        return cast(iso_timestamp(sort), Text)
    if python_type is float:
        return cast(json_float(sort), Text)
    if python_type is int:
        return cast(sort, Text)
    if python_type is str or (isinstance(python_type, type) and issubclass(python_type, Enum)):
        return cast(func.to_json(sort), Text)  # an enum's value is its name
    raise Unsupported(f"cursor of {python_type!r}")


_CURSOR_CASTS: dict[Any, Any] = {datetime: DateTime(timezone=True), float: Double, int: BigInteger}


def _decoded_cursor(parameter: Any, sort: Any) -> tuple[Any, Any]:
    """The sort value and id of a cursor bound as its text: ``decode_cursor`` in SQL,
    each an init plan (computed once). The parameter's shape (``parameters``) holds
    only cursors these casts read as the resolvers' coercion does."""
    padding = func.repeat("=", (4 - func.length(parameter) % 4) % 4)
    base64 = func.translate(parameter, "-_", "+/").op("||")(padding)
    decoded = cast(func.convert_from(func.decode(base64, "base64"), "UTF8"), JSONB)
    element = decoded[1].astext
    value: Any
    python_type = _python_type(sort)
    if python_type is date:
        value = case(
            (element == "0001-01-01", cast(literal_column("'-infinity'"), Date)),
            (element == "9999-12-31", cast(literal_column("'infinity'"), Date)),
            else_=cast(element, Date),
        )
    elif python_type is str:
        value = element
    elif python_type in _CURSOR_CASTS:
        value = cast(element, _CURSOR_CASTS[python_type])
    elif isinstance(python_type, type) and issubclass(python_type, Enum):
        value = cast(element, sort.type)  # the shape holds the member itself
    else:
        raise Unsupported(f"bound cursor of {python_type!r}")
    row_id = cast(decoded[2].astext, BigInteger)
    return select(value).scalar_subquery(), select(row_id).scalar_subquery()


class NotBound(Exception):
    """A variable meant to be a parameter was used where the compiler inlines values."""

    def __init__(self, names: set[str]) -> None:
        super().__init__(", ".join(sorted(names)))
        self.names = names


class Compiler:
    def __init__(
        self,
        walk: Walk,
        scopes: frozenset[str],
        max_page_size: int,
        parameters: frozenset[str] = frozenset(),
    ) -> None:
        self.walk = walk
        self.scopes = scopes
        self.max_page_size = max_page_size
        self.node_types = NODE_TYPES
        self._next_name = 0
        # Variables bound as SQL parameters (schema.compiled.parameters): each of their
        # uses that the compiler reads must become a bind parameter, never a literal.
        self.parameters = parameters
        self._read: dict[int, str] = {}  # id(variable node) -> name, uses read
        self._bound: set[int] = set()  # uses made bind parameters
        # Row alias -> lookups its fields share, LEFT JOIN LATERAL-ed where its rows are
        # selected (``_rows``): the KPI's latest measurement, found once for both
        # ``latestValue`` and ``status``.
        self._laterals: dict[Any, dict[str, Any]] = {}

    # ------------------------------------------------------------ helpers

    def _alias(self, model: Any) -> Any:
        name = f"n{self._next_name}"
        self._next_name += 1
        return _alias_named(model, name)

    def _definition(self, type_name: str, node: FieldNode) -> tuple[Any, Any]:
        graphql_type = self.walk.schema.type_map[type_name]
        assert isinstance(graphql_type, GraphQLObjectType)
        definition = graphql_type.fields.get(node.name.value)
        if definition is None:
            raise Unsupported(node.name.value)
        strawberry_field = definition.extensions["strawberry-definition"]
        self._check_scopes(strawberry_field)
        return definition, strawberry_field

    def _check_scopes(self, strawberry_field: Any) -> None:
        """Scopes are checked here, at planning: a missing one lets the resolvers answer,
        with their FORBIDDEN error on exactly that field."""
        if not scopes_of(strawberry_field) <= self.scopes:
            raise Unsupported("missing scope")

    def _arguments(self, definition: Any, strawberry_field: Any, node: FieldNode) -> dict[str, Any]:
        from strawberry.types.arguments import convert_arguments

        from schema.build import schema

        if self.parameters:
            for argument in node.arguments or ():
                for use in _variables(argument.value):
                    if use.name.value in self.parameters:
                        self._read[id(use)] = use.name.value
        raw = self.walk.arguments(definition, node)
        return convert_arguments(
            raw,
            strawberry_field.arguments,
            scalar_registry=schema.schema_converter.scalar_registry,
            config=schema.config,
        )

    @staticmethod
    def _adapt(alias: Any, clause: Any) -> Any:
        if hasattr(clause, "__clause_element__"):  # a mapped attribute
            clause = clause.__clause_element__()
        return ClauseAdapter(inspect(alias).selectable).traverse(clause)

    def _adapt_static(self, alias: Any, clause: Any) -> Any:
        """``_adapt`` for module-level clauses (orderings, edges): memoised."""
        key = (id(clause), alias)
        adapted = _ADAPTED.get(key)
        if adapted is None:
            adapted = _ADAPTED[key] = (clause, self._adapt(alias, clause))
        return adapted[1]

    def _parameter(self, node: FieldNode, path: tuple[str, ...], value: Any, type_: Any) -> Any:
        """``value`` as a bind parameter if it is a parameter variable's (at ``path``
        in the field's arguments), else None: the plan inlines it."""
        use = _argument_value(node, path)
        if not isinstance(use, VariableNode) or use.name.value not in self.parameters:
            return None
        self._bound.add(id(use))
        return bindparam(PREFIX + use.name.value, value=value, type_=type_)

    def _lateral(self, alias: Any, name: str, build: Callable[[], Any]) -> Any:
        """The lateral subquery ``name`` joined to the rows of ``alias``, built once."""
        laterals = self._laterals.setdefault(alias, {})
        if name not in laterals:
            laterals[name] = build().lateral(f"{name}_{inspect(alias).name}")
        return laterals[name]

    def _rows(self, statement: Select[Any], alias: Any) -> Select[Any]:
        """``statement`` (which selects from ``alias``) with the laterals its fields use."""
        for lateral in self._laterals.pop(alias, {}).values():
            statement = statement.outerjoin_from(alias, lateral, true())
        return statement

    # ------------------------------------------------------------ root fields

    def root(self, node: FieldNode) -> Select[Any]:
        """The statement answering one root field: a single row and column, the JSON
        text of the field's value (text, so it is parsed once, by orjson)."""
        statement = self._root(node)
        (column,) = statement.selected_columns
        unbound = {name for use, name in self._read.items() if use not in self._bound}
        if unbound:
            raise NotBound(unbound)
        if self._laterals:  # a lookup no select joined: a bug, answered by the resolvers
            raise Unsupported("lateral not joined")
        return statement.with_only_columns(cast(column, Text))

    def _root(self, node: FieldNode) -> Select[Any]:
        definition, field = self._definition("Query", node)
        meta = field.metadata
        args = self._arguments(definition, field, node)
        named = get_named_type(definition.type).name
        if "root_model" in meta:
            return select(self._connection(named, node, meta, args, None, None))
        if "lookup" in meta:
            if args.get("as_of") is not None:
                raise Unsupported("asOf")
            model, column = meta["lookup"]
            alias = self._alias(model)
            key = self._parameter(node, ("key",), args["key"], Text)
            if key is None:
                key = args["key"]
            statement = select(self._object(named, alias, node)).select_from(alias)
            return self._rows(statement, alias).where(
                self._adapt(alias, column) == key, alias.archived_at.is_(None)
            )
        if node.name.value == "node":
            return self._node(node, args["id"])
        raise Unsupported(f"Query.{node.name.value}")

    def _node(self, node: FieldNode, global_id_value: str) -> Select[Any]:
        try:
            type_name, pk = decode_id(global_id_value)
        except DomainError:
            raise Unsupported("invalid id") from None
        known = self.node_types.get(type_name)
        if known is None:
            self._parameter(node, ("id",), pk, BigInteger)  # null whatever the key
            return select(literal(None))
        model, scope = known
        if scope.value not in self.scopes:
            raise Unsupported("missing scope")
        alias = self._alias(model)
        bound_pk = self._parameter(node, ("id",), pk, BigInteger)
        conditions = [alias.id == (pk if bound_pk is None else bound_pk)]
        if hasattr(model, "archived_at"):
            conditions.append(alias.archived_at.is_(None))
        statement = select(self._object(type_name, alias, node)).select_from(alias)
        return self._rows(statement, alias).where(*conditions)

    # ------------------------------------------------------------ objects

    def _object(self, type_name: str, alias: Any, node: FieldNode) -> ColumnElement[Any]:
        """The JSON object of the fields selected on one row of ``alias``."""
        return jsontext.json_object(
            [
                (response_key(child), self._field(type_name, alias, child))
                for child in self.walk.fields(type_name, node.selection_set)
            ]
        )

    def _field(self, type_name: str, alias: Any, node: FieldNode) -> Any:
        """A field's SQL expression. One whose subtree uses no variable is the same for
        every request of the document: it is built once and reused (variables change
        only the root, so requests with new variables build little)."""
        if not node.selection_set or not self.walk.variable_free(node):
            return self._build_field(type_name, alias, node)
        key = (id(node), type_name, alias, self.scopes, self.max_page_size, self._next_name)
        found = _SUBTREES.get(key)
        if found is not None:
            _SUBTREES.move_to_end(key)
            _, expression, names = found
            self._next_name += names
            return expression
        start = self._next_name
        expression = self._build_field(type_name, alias, node)
        # The node is kept with the entry, so that its id is not reused meanwhile.
        _SUBTREES[key] = (node, expression, self._next_name - start)
        while len(_SUBTREES) > _SUBTREES_SIZE:
            _SUBTREES.popitem(last=False)
        return expression

    def _build_field(self, type_name: str, alias: Any, node: FieldNode) -> Any:
        name = node.name.value
        if name == "__typename":
            return jsontext.string_constant(type_name)
        definition, field = self._definition(type_name, node)
        meta = field.metadata
        if "global_id" in meta:
            return global_id(meta["global_id"], alias.id)
        special = SPECIAL.get((type_name, name))
        if special is not None:
            return special(self, alias, node, definition, field)
        named = get_named_type(definition.type).name
        if "edge" in meta:
            args = self._arguments(definition, field, node)
            return self._connection(named, node, meta, args, alias, reads.EDGES[meta["edge"]])
        if "reference" in meta:
            model, attribute = meta["reference"]
            target = self._alias(model)
            conditions = [target.id == getattr(alias, attribute)]
            if hasattr(model, "archived_at"):
                conditions.append(target.archived_at.is_(None))
            statement = select(self._object(named, target, node)).select_from(target)
            return (
                self._rows(statement, target).where(*conditions).correlate(alias).scalar_subquery()
            )
        if field.base_resolver is None and not node.selection_set:
            return self._column(getattr(alias, field.python_name))
        raise Unsupported(f"{type_name}.{name}")

    @staticmethod
    def _column(column: Any) -> Any:
        python_type = _python_type(column)
        if python_type is float:
            return json_float(column)
        if python_type is datetime:
            return iso_timestamp(column)
        if python_type is Decimal:
            return cast(column, Text)  # money is sent as a decimal string
        return column

    # ------------------------------------------------------------ connections

    def _connection(
        self,
        type_name: str,
        node: FieldNode,
        meta: dict[str, Any],
        args: dict[str, Any],
        parent: Any,
        edge: reads.Edge | None,
    ) -> ColumnElement[Any]:
        try:
            page = page_request(
                first=args.get("first"),
                after=args.get("after"),
                last=args.get("last"),
                before=args.get("before"),
                max_page_size=self.max_page_size,
            )
            query_filter = (args.get("filter") or meta["filter_type"]()).to_filter()
        except DomainError:
            raise Unsupported("invalid arguments") from None
        order_type = meta["order_type"]
        order_by = args.get("order_by")
        ordering_name = order_type.default if order_by is None else order_by.field.value
        descending = order_by is not None and order_by.direction.value == "DESC"
        size = page.size
        backwards = page.backwards

        model = edge.model if edge is not None else meta["root_model"]
        node_type = self._node_type(type_name)
        alias = self._alias(model)
        keys = getattr(query_filter, "keys", None)
        bound_keys = None
        if keys is not None:
            bound_keys = self._parameter(node, ("filter", "keys"), list(keys), ARRAY(Text))
        if bound_keys is not None:
            # key IN (...) as key = ANY($n): one parameter whatever the number of keys.
            query_filter = dataclasses.replace(query_filter, keys=None)
        statement = query_filter.apply(select(model))
        conditions = (
            [self._adapt(alias, statement.whereclause)] if statement.whereclause is not None else []
        )
        if bound_keys is not None:
            conditions.append(alias.key == any_(cast(bound_keys, ARRAY(Text))))
        base = select().select_from(alias)
        if edge is not None:
            if edge.join is not None:
                target, onclause = edge.join
                base = base.join(target, self._adapt_static(alias, onclause))
            if edge.condition is not None:
                conditions.append(self._adapt_static(alias, edge.condition))
            conditions.append(self._adapt_static(alias, edge.parent_key) == parent.id)
        sort = self._adapt_static(alias, order_type.orderings[ordering_name])
        # The page's rows in the order of travel: from the end for `last`.
        reverse = descending != backwards
        order = [sort.desc(), alias.id.desc()] if reverse else [sort.asc(), alias.id.asc()]
        # Cursors narrow the window (``pagination.fetch_pages``): the rows after `after`
        # and before `before`.
        after = before = None
        if page.after is not None:
            after = self._beyond(
                node, "after", args["after"], page.after, ordering_name, sort, alias, descending
            )
        if page.before is not None:
            before = self._beyond(
                node, "before", args["before"], page.before, ordering_name, sort, alias, descending
            )
        window = [c for c in (after, before) if c is not None]

        selections = self.walk.fields(f"{type_name}", node.selection_set)
        wanted = {child.name.value for child in selections}
        if wanted - {"nodes", "edges", "totalCount", "pageInfo", "__typename"}:
            raise Unsupported("connection field")

        pairs: list[tuple[str, Any]] = []
        rows: Any = None
        if wanted & {"nodes", "edges", "pageInfo"}:
            objects, cursors = self._page_rows_json(node_type, alias, selections)
            columns = [func.row_number().over(order_by=order).label("rn")]
            columns += [row_json.label(label) for label, row_json in objects.values()]
            if cursors:
                columns.append(cursor_text(ordering_name, sort, alias.id).label("c"))
            page_rows = (
                self._rows(base.add_columns(*columns), alias)
                .where(*conditions, *window)
                .order_by(*order)
                # One row more tells pageInfo whether a next page exists; without
                # pageInfo, that row's JSON (its whole subtree) would be built for nothing.
                .limit(size + 1 if "pageInfo" in wanted else size)
            )
            if parent is not None:
                page_rows = page_rows.correlate(parent)
            rows = page_rows.subquery()
        for child in selections:
            key = response_key(child)
            name = child.name.value
            if name == "__typename":
                pairs.append((key, jsontext.string_constant(type_name)))
            elif name == "totalCount":
                count = base.add_columns(func.count()).where(*conditions)
                if parent is not None:
                    count = count.correlate(parent)
                total: Any = count.scalar_subquery()
                if window:
                    # The resolvers read the total from the page's rows: none in the
                    # window, a total of 0 (``pagination.fetch_pages``).
                    total = case(
                        (self._exists(base, conditions, and_(*window), parent), total), else_=0
                    )
                pairs.append((key, total))
            elif name in {"nodes", "edges"}:
                assert rows is not None
                if name == "nodes":
                    item = rows.c[objects["nodes", key][0]]
                else:
                    item = self._edge_json(node_type, child, rows, objects)
                shown = rows.c.rn.desc() if backwards else rows.c.rn  # last: from the end
                pairs.append((key, jsontext.json_array(item, shown, rows.c.rn <= size)))
            elif name == "pageInfo":
                assert rows is not None
                # As the resolvers: rows lie outside a cursor, and the page is not empty;
                # or the extra row of the page says more follow in the direction of travel.
                beside: dict[str, Any] = {}
                for side, cursor in (("previous", after), ("next", before)):
                    if cursor is not None:
                        beside[side] = and_(
                            self._exists(base, conditions, and_(*window), parent),
                            self._exists(base, conditions, not_(cursor), parent),
                        )
                pairs.append((key, self._page_info(child, rows, size, backwards, beside)))
        aggregate = select(jsontext.json_object(pairs))
        if rows is not None and wanted & {"nodes", "edges"}:
            # The arrays aggregate the page's rows into one; `pageInfo` alone reads them
            # in its own subquery, and selecting from them here would give a row each.
            aggregate = aggregate.select_from(rows)
        if parent is not None:
            aggregate = aggregate.correlate(parent)
        return aggregate.scalar_subquery()

    def _node_type(self, connection_type: str) -> str:
        connection = self.walk.schema.type_map[connection_type]
        assert isinstance(connection, GraphQLObjectType)
        nodes = connection.fields["nodes"]
        return get_named_type(nodes.type).name

    def _page_rows_json(
        self, node_type: str, alias: Any, selections: list[FieldNode]
    ) -> tuple[dict[tuple[str, ...], tuple[str, Any]], bool]:
        """The JSON of one row for each object selected on it (by `nodes`, by each
        `edges { node }`), keyed by where it is selected, with its column's label; and
        whether the rows' cursors are selected (by edges or pageInfo)."""
        objects: dict[tuple[str, ...], tuple[str, Any]] = {}

        def add(where: tuple[str, ...], selected: FieldNode) -> None:
            objects[where] = (f"j{len(objects)}", self._object(node_type, alias, selected))

        cursors = False
        for child in selections:
            if child.name.value == "nodes":
                add(("nodes", response_key(child)), child)
            elif child.name.value == "edges":
                for item in self.walk.fields(f"{node_type}Edge", child.selection_set):
                    if item.name.value == "cursor":
                        cursors = True
                    elif item.name.value == "node":
                        add(("edges", response_key(child), response_key(item)), item)
            elif child.name.value == "pageInfo":
                for item in self.walk.fields("PageInfo", child.selection_set):
                    if item.name.value in {"startCursor", "endCursor"}:
                        cursors = True
        return objects, cursors

    def _beyond(
        self,
        node: FieldNode,
        argument: str,
        text: str,
        cursor: Cursor,
        ordering_name: str,
        sort: Any,
        alias: Any,
        descending: bool,
    ) -> Any:
        """``pagination._beyond``: the rows after an `after` cursor, before a `before`
        one. A cursor
        the resolvers refuse is theirs to answer, with their error. A cursor variable
        is bound as its text, decoded in SQL (``_decoded_cursor``): its plan serves every
        cursor of the same shape (``parameters._cursor_token``)."""
        if cursor.ordering != ordering_name:
            raise Unsupported("cursor of another ordering")
        if isinstance(cursor.value, bool) or isinstance(cursor.id, bool):
            raise Unsupported("invalid cursor")
        if isinstance(cursor.value, str) and "\x00" in cursor.value:
            raise Unsupported("invalid cursor")  # PostgreSQL text cannot hold it
        try:
            value = pagination_coerce(cursor.value, sort, argument)
        except DomainError:
            raise Unsupported("invalid cursor") from None
        if isinstance(value, datetime) and value.tzinfo is None:
            raise Unsupported("cursor without time zone")
        if isinstance(value, date) and cursor.value != value.isoformat():
            # Only as encode_cursor writes them: the shape of a bound cursor says so.
            raise Unsupported("cursor not canonical")
        parameter = self._parameter(node, (argument,), text, Text)
        if parameter is not None:
            bound_value, bound_id = _decoded_cursor(parameter, sort)
        elif type(value) is date and value in (date.min, date.max):
            # asyncpg sends date.min and date.max as -infinity and infinity.
            infinity = "'-infinity'" if value == date.min else "'infinity'"
            bound_value = cast(literal_column(infinity), Date)
            bound_id = literal(cursor.id, BigInteger)
        else:
            bound_value, bound_id = literal(value, sort.type), literal(cursor.id, BigInteger)
        row = tuple_(sort, alias.id)
        bound = tuple_(bound_value, bound_id)
        forward = (argument == "after") != descending
        return row > bound if forward else row < bound

    @staticmethod
    def _exists(base: Select[Any], conditions: list[Any], condition: Any, parent: Any) -> Any:
        found = base.add_columns(literal(1)).where(*conditions, condition).exists()
        return found.correlate(parent) if parent is not None else found

    def _edge_json(
        self,
        node_type: str,
        edges: FieldNode,
        rows: Any,
        objects: dict[tuple[str, ...], tuple[str, Any]],
    ) -> Any:
        pairs: list[tuple[str, Any]] = []
        for child in self.walk.fields(f"{node_type}Edge", edges.selection_set):
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

    def _page_info(
        self, node: FieldNode, rows: Any, size: int, backwards: bool, beside: dict[str, Any]
    ) -> Any:
        pairs: list[tuple[str, Any]] = []
        on_page = rows.c.rn <= size
        more = select(func.count() > size).select_from(rows).scalar_subquery()
        travelled = "previous" if backwards else "next"
        for child in node.selection_set.selections if node.selection_set else ():
            if not isinstance(child, FieldNode):
                raise Unsupported("fragment in pageInfo")
            name = child.name.value
            if name in {"hasNextPage", "hasPreviousPage"}:
                side = "next" if name == "hasNextPage" else "previous"
                found = [more] if side == travelled else []
                if side in beside:
                    found.append(beside[side])
                value: Any = or_(*found) if found else jsontext.FALSE
            elif name in {"startCursor", "endCursor"}:
                # The first row of travel is the page's start, or its end for `last`.
                if (name == "startCursor") != backwards:
                    value = select(rows.c.c).where(rows.c.rn == 1, on_page).scalar_subquery()
                else:
                    value = (
                        select(rows.c.c)
                        .where(on_page)
                        .order_by(rows.c.rn.desc())
                        .limit(1)
                        .scalar_subquery()
                    )
            else:
                raise Unsupported(f"pageInfo.{name}")
            pairs.append((response_key(child), value))
        return jsontext.json_object(pairs)


def _argument_value(node: FieldNode, path: tuple[str, ...]) -> ValueNode | None:
    """The value node at ``path`` (argument name, then input fields) of a field."""
    name, *fields = path
    value: ValueNode | None = next(
        (a.value for a in node.arguments or () if a.name.value == name), None
    )
    for field_name in fields:
        if not isinstance(value, ObjectValueNode):
            return None
        value = next((f.value for f in value.fields if f.name.value == field_name), None)
    return value


def _variables(value: ValueNode) -> Iterator[VariableNode]:
    if isinstance(value, VariableNode):
        yield value
    elif isinstance(value, ListValueNode):
        for item in value.values:
            yield from _variables(item)
    elif isinstance(value, ObjectValueNode):
        for field in value.fields:
            yield from _variables(field.value)


# (id(node), type, parent alias, scopes, page cap, first alias number) ->
# (node, expression, aliases used): the reusable subtrees of recent documents.
_SUBTREES: OrderedDict[tuple[Any, ...], tuple[FieldNode, Any, int]] = OrderedDict()
_SUBTREES_SIZE = 4096


@cache
def _alias_named(model: Any, name: str) -> Any:
    """Aliases are reused across plans: each memoises its adapted attributes and
    computed expressions, which are the costly part of planning."""
    return aliased(model, name=name)


# (id(clause), alias) -> (clause, adapted); the clause is kept so its id stays unique.
_ADAPTED: dict[tuple[int, Any], tuple[Any, Any]] = {}


def _python_type(column: Any) -> Any:
    try:
        return column.type.python_type
    except (NotImplementedError, AttributeError):
        return None


# ---------------------------------------------------------------- fields with their own SQL

Special = Callable[[Compiler, Any, FieldNode, Any, Any], Any]


def _score(score: str, explanation: str) -> Special:
    def compile_score(c: Compiler, alias: Any, node: FieldNode, definition: Any, field: Any) -> Any:
        pairs: list[tuple[str, Any]] = []
        for child in c.walk.fields("ScoreExplanation", node.selection_set):
            name = child.name.value
            value = {
                "score": json_float(getattr(alias, score)),
                "explanation": getattr(alias, explanation),
                "__typename": jsontext.string_constant("ScoreExplanation"),
            }.get(name)
            if value is None:
                raise Unsupported(name)
            pairs.append((response_key(child), value))
        return jsontext.json_object(pairs)

    return compile_score


def _blocked_by(c: Compiler, alias: Any, node: FieldNode, definition: Any, field: Any) -> Any:
    constraint = models.TechnicalConstraint
    return (
        select(
            jsontext.json_array(c._object("TechnicalConstraint", constraint, node), constraint.key)
        )
        .where(constraint_blocks(alias.id))
        .correlate(alias)
        .scalar_subquery()
    )


def _latest(c: Compiler, alias: Any, node: FieldNode, definition: Any, field: Any) -> Any:
    measurement = c._alias(models.KpiMeasurement)
    return (
        select(c._object("KpiMeasurement", measurement, node))
        .select_from(measurement)
        .where(measurement.kpi_id == alias.id)
        .order_by(*latest_first(measurement))
        .limit(1)
        .correlate(alias)
        .scalar_subquery()
    )


def _latest_value_of(c: Compiler, alias: Any) -> Any:
    """The KPI's latest value, from one lookup per row shared by the fields using it."""

    def build() -> Any:
        measurement = c._alias(models.KpiMeasurement)
        return (
            select(measurement.value)
            .where(measurement.kpi_id == alias.id)
            .order_by(*latest_first(measurement))
            .limit(1)
        )

    return c._lateral(alias, "latest", build).c.value


def _latest_value(c: Compiler, alias: Any, node: FieldNode, definition: Any, field: Any) -> Any:
    return json_float(_latest_value_of(c, alias))


def _status(c: Compiler, alias: Any, node: FieldNode, definition: Any, field: Any) -> Any:
    return c._adapt(alias, status_of_latest(_latest_value_of(c, alias)))


def _series(c: Compiler, alias: Any, node: FieldNode, definition: Any, field: Any) -> Any:
    args = c._arguments(definition, field, node)
    start, end, bucket = args["from_"], args["to"], reads.SeriesBucket(args["bucket"].value)
    try:
        reads.check_series_range(start, end, bucket)
    except DomainError:
        raise Unsupported("invalid series") from None
    measurement = c._alias(models.KpiMeasurement)
    bucket_start = reads.bucket_expression(bucket, measurement.observed_at).label("bucket_start")
    children = c.walk.fields("KpiSeriesPoint", node.selection_set)
    selected = {child.name.value for child in children}
    aggregates = {
        "average": func.avg(measurement.value),
        "minimum": func.min(measurement.value),
        "maximum": func.max(measurement.value),
        "count": func.count(),
    }
    grouped = (
        select(  # only the aggregates selected: each costs PostgreSQL per measurement
            bucket_start,
            *(aggregate.label(name) for name, aggregate in aggregates.items() if name in selected),
        )
        .select_from(measurement)
        .where(
            measurement.kpi_id == alias.id,
            measurement.observed_at >= start,
            measurement.observed_at < end,
        )
        .group_by(bucket_start)
        .correlate(alias)
        .subquery()
    )
    pairs: list[tuple[str, Any]] = []
    for child in children:
        name = child.name.value
        if name == "bucketStart":
            # A bucket starts on a whole second (date_bin from a whole-second origin by
            # whole days, or the start of a month), so PostgreSQL's own JSON form is
            # Python's: no fraction to pad.
            value: Any = func.to_json(grouped.c.bucket_start, type_=JSON)
        elif name == "count":
            value = grouped.c.count
        elif name in aggregates:
            value = json_float(grouped.c[name])
        elif name == "__typename":
            value = jsontext.string_constant("KpiSeriesPoint")
        else:
            raise Unsupported(name)
        pairs.append((response_key(child), value))
    point = jsontext.json_object(pairs)
    return (
        select(jsontext.json_array(point, grouped.c.bucket_start))
        .select_from(grouped)
        .correlate(alias)
        .scalar_subquery()
    )


def _estimated_cost(c: Compiler, alias: Any, node: FieldNode, definition: Any, field: Any) -> Any:
    return cast(alias.estimated_cost, Text)


SPECIAL: dict[tuple[str, str], Special] = {
    ("Initiative", "rice"): _score("rice_score", "rice_explanation"),
    ("Initiative", "wsjf"): _score("wsjf_score", "wsjf_explanation"),
    ("Initiative", "blockedBy"): _blocked_by,
    ("Initiative", "estimatedCost"): _estimated_cost,
    ("Kpi", "latest"): _latest,
    ("Kpi", "latestValue"): _latest_value,
    ("Kpi", "status"): _status,
    ("Kpi", "series"): _series,
}
