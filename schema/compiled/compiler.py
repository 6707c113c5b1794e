"""The entry point of planning: a query's root field compiled into one SQL statement that
builds the JSON answer in PostgreSQL (as text: ``schema.compiled.jsontext``).

``Compiler`` holds what one plan shares (the caller's scopes, the row aliases, the
variables bound as parameters) and answers the root fields; objects, connections,
filters, cursors and the fields with SQL of their own are built by the modules named
after them. Every field is taken from the definitions the resolvers use: columns and
computed expressions of the models, the edges, filters and orderings of
``domain.services``, the scopes declared on the strawberry fields (a field they refuse
is null, its error written after the statement: ``schema.compiled.errors``). Whatever
is not covered raises ``Unsupported`` and the resolvers answer the whole operation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from functools import cache, partial
from typing import Any

import strawberry
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
    BigInteger,
    ColumnElement,
    Select,
    Text,
    bindparam,
    cast,
    inspect,
    literal,
    select,
    true,
)
from sqlalchemy.orm import aliased
from sqlalchemy.sql.sqltypes import NullType
from sqlalchemy.sql.util import ClauseAdapter
from strawberry.types.arguments import convert_arguments

from domain.errors import DomainError
from domain.services import external_refs, reads
from domain.services.pagination import PageRequest, page_request
from schema.compiled import (
    as_of,
    connections,
    feed,
    jsontext,
    objects,
    subtrees,
    viewer,
    webhooks,
)
from schema.compiled.binding import Site
from schema.compiled.errors import Refusal, Refused, Sites, Step, forbidden_field
from schema.compiled.parameters import PREFIX
from schema.compiled.selection import Invalid, Unsupported, Walk, response_key
from schema.guards import NODE_TYPES, refused_scopes
from schema.ids import decode_id
from schema.query import MAX_NODES

# Computed parameters are named ``gqlvar_$0``, ``gqlvar_$1``...: no variable's name holds
# a ``$`` (GraphQL names are letters, digits and ``_``).
COMPUTED_PREFIX = "$"
# The caller's attributes are ``gqlvar_$principal_user_id``...: not a number after ``$``.
PRINCIPAL_PREFIX = "$principal_"


# A lateral lookup of a row: ``lookup(compiler, row alias)``.
Lookup = Callable[["Compiler", Any], Select[Any]]


class NotBound(Exception):
    """A variable meant to be a parameter was used where the compiler inlines values."""

    def __init__(self, names: set[str]) -> None:
        super().__init__(", ".join(sorted(names)))
        self.names = names


class Compiler:
    def __init__(
        self,
        walk: Walk,
        schema: strawberry.Schema,
        scopes: frozenset[str],
        max_page_size: int,
        parameters: frozenset[str] = frozenset(),
    ) -> None:
        self.walk = walk
        self.schema = schema  # strawberry's, to convert arguments as the resolvers get them
        self.scopes = scopes
        self.max_page_size = max_page_size
        self.node_types = NODE_TYPES
        self.next_name = 0
        self._computed = 0
        # Variables bound as SQL parameters (schema.compiled.parameters): each of their
        # uses that the compiler reads must become a bind parameter, never a literal.
        self.parameters = parameters
        self._read: dict[int, str] = {}  # id(variable node) -> name, uses read
        self._bound: set[int] = set()  # uses made bind parameters
        # Attributes of the caller (``Principal``) bound per request: who is calling is
        # not part of a plan's key, only the scopes are.
        self.principal_attributes: set[str] = set()
        self.as_of_lookups = 0  # ``asOf`` lookups planned: each names its parameters
        # Fields whose parameters are computed from their arguments per request.
        self.sites: list[Site] = []
        self._sites: dict[int, Site] = {}  # id(field node) -> its site
        self._definitions: dict[int, tuple[Any, Any]] = {}  # id(field node) -> definitions
        # Row alias -> lookups its fields share, LEFT JOIN LATERAL-ed where its rows are
        # selected (``rows``): the KPI's latest measurement, found once for both
        # ``latestValue`` and ``status``.
        self._laterals: dict[Any, dict[str, Any]] = {}
        # Each lateral used, with its row: a field using one of its parent's row is kept
        # with it, one of a row above that is not kept as text (``subtrees``).
        self.lateral_rows: list[tuple[Any, str, Lookup]] = []
        # Where the field being built sits, and the refused fields of the root field.
        self.path: list[Step] = []
        self.refusals: list[Refusal] = []
        self._shapes: dict[int, str | None] = {}  # id(node) -> its shape (``subtrees``)

    # ------------------------------------------------------------ root fields

    def root(self, node: FieldNode) -> tuple[Select[Any] | None, Sites | None]:
        """The statement answering one root field: a single row and column, the JSON
        text of the field's value (text, so it is parsed once, by orjson); none if the
        field itself is refused. And where refused fields sit in it, if anywhere."""
        self.path, self.refusals = [("Query", node)], []
        try:
            statement = self._root(node)
        except Refused as refused:
            if refused.node is not node:  # a field below, refused where it is not recorded
                raise
            self.refuse(refused)
            return None, Sites.of(self.walk.schema, self.refusals)
        sites = Sites.of(self.walk.schema, self.refusals) if self.refusals else None
        (column,) = statement.selected_columns
        unbound = {name for use, name in self._read.items() if use not in self._bound}
        if unbound:
            raise NotBound(unbound)
        if self._laterals:  # a lookup no select joined: a bug, answered by the resolvers
            raise Unsupported("lateral not joined")
        return statement.with_only_columns(cast(column, Text)), sites

    def _root(self, node: FieldNode) -> Select[Any]:
        definition, field = self.definition("Query", node)
        meta = field.metadata
        args = self.arguments(definition, field, node)
        named = get_named_type(definition.type).name
        if "root_model" in meta:
            return select(self.connection(named, node, meta, args, None, None))
        if "lookup" in meta:
            model, column = meta["lookup"]
            if args.get("as_of") is not None:
                return as_of.lookup(self, named, node, model, column, args["as_of"])
            alias = self.alias(model)
            key = self.parameter(node, ("key",), args["key"], Text)
            if key is None:
                key = args["key"]
            statement = select(self.object(named, alias, node)).select_from(alias)
            return self.rows(statement, alias).where(
                self.adapt(alias, column) == key, alias.archived_at.is_(None)
            )
        if "external_ref_lookup" in meta:
            return self._by_external_ref(node, named, meta["external_ref_lookup"], args)
        if node.name.value == "node":
            return self._node(node, args["id"])
        if node.name.value == "nodes":
            return self._nodes(node, args["ids"])
        if node.name.value == "viewer":
            return viewer.viewer(self, node)
        if node.name.value == "webhooks":
            return webhooks.webhooks(self, node)
        if node.name.value == "changes":
            return feed.changes(self, node, args)
        raise Unsupported(f"Query.{node.name.value}")

    def _by_external_ref(
        self, node: FieldNode, named: str, lookup: tuple[Any, str], args: dict[str, Any]
    ) -> Select[Any]:
        """``initiativeByExternalRef(system:, externalId:)``: the active object holding
        the reference, as ``external_refs.active_owner`` finds it."""
        model, entity_type = lookup
        alias = self.alias(model)
        system = self.parameter(node, ("system",), args["system"], Text)
        external_id = self.parameter(node, ("externalId",), args["external_id"], Text)
        holds = external_refs.matches(
            entity_type,
            alias.id,
            args["system"] if system is None else system,
            args["external_id"] if external_id is None else external_id,
        )
        statement = select(self.object(named, alias, node)).select_from(alias)
        return self.rows(statement, alias).where(holds, alias.archived_at.is_(None))

    def _nodes(self, node: FieldNode, ids: list[str]) -> Select[Any]:
        """``nodes(ids:)``: each as ``node(id:)`` would find it, in the order given. The
        list's length and types make the statement: its variable keys by value."""
        if len(ids) > MAX_NODES:
            raise Invalid("too many ids")
        items: list[Any] = []
        for index, global_id_value in enumerate(ids):
            self.path.append(index)
            try:
                found = self._node(node, global_id_value, bind=False)
            except Refused as refused:  # null, with its own error at `nodes.<index>`
                if refused.node is not node:
                    raise
                self.refuse(refused)
                items.append(jsontext.NULL)
                continue
            finally:
                self.path.pop()
            unknown = isinstance(found.selected_columns[0].type, NullType)
            items.append(jsontext.NULL if unknown else found.scalar_subquery())
        return select(jsontext.json_list(items))

    def _node(self, node: FieldNode, global_id_value: str, *, bind: bool = True) -> Select[Any]:
        try:
            type_name, pk = decode_id(global_id_value)
        except DomainError:
            raise Unsupported("invalid id") from None
        known = self.node_types.get(type_name)
        if known is None:
            if bind:
                self.parameter(node, ("id",), pk, BigInteger)  # null whatever the key
            return select(literal(None))
        model, scope = known
        bound_pk = self.parameter(node, ("id",), pk, BigInteger) if bind else None
        if scope.value not in self.scopes:  # refused before any lookup, whatever the key
            raise forbidden_field(node, (scope.value,))
        alias = self.alias(model)
        conditions = [alias.id == (pk if bound_pk is None else bound_pk)]
        if hasattr(model, "archived_at"):
            conditions.append(alias.archived_at.is_(None))
        statement = select(self.object(type_name, alias, node)).select_from(alias)
        return self.rows(statement, alias).where(*conditions)

    # ------------------------------------------------------------ the parts

    def object(self, type_name: str, alias: Any, node: FieldNode) -> ColumnElement[Any]:
        """The JSON object of the fields selected on one row (``objects``)."""
        return objects.object_json(self, type_name, alias, node)

    def connection(
        self,
        type_name: str,
        node: FieldNode,
        meta: dict[str, Any],
        args: dict[str, Any],
        parent: Any,
        edge: reads.Edge | None,
    ) -> ColumnElement[Any]:
        """A page of a list and what is selected of it (``connections``)."""
        return connections.connection(self, type_name, node, meta, args, parent, edge)

    # ------------------------------------------------------------ shared by the parts

    def alias(self, model: Any) -> Any:
        name = f"n{self.next_name}"
        self.next_name += 1
        return _alias_named(model, name)

    def definition(self, type_name: str, node: FieldNode) -> tuple[Any, Any]:
        """The field's GraphQL and strawberry definitions, once its scopes are checked."""
        graphql_type = self.walk.schema.type_map[type_name]
        assert isinstance(graphql_type, GraphQLObjectType)
        definition = graphql_type.fields.get(node.name.value)
        if definition is None:
            raise Unsupported(node.name.value)
        strawberry_field = definition.extensions["strawberry-definition"]
        self.check_scopes(strawberry_field, node)
        return definition, strawberry_field

    def check_scopes(self, strawberry_field: Any, node: FieldNode) -> None:
        """Scopes are checked here, at planning: a missing one raises ``Refused``,
        which the field's builder turns into a null and a ``refuse``."""
        required = refused_scopes(strawberry_field, self.scopes)
        if required is not None:
            raise forbidden_field(node, required)

    def refuse(self, refused: Refused) -> None:
        """The field at ``path`` is null, with the resolvers' error."""
        self.refusals.append(Refusal(tuple(self.path), refused.error))

    def placed(self, type_name: str, node: FieldNode, build: Callable[[], Any]) -> Any:
        """``build()``: the value of the field ``node`` of ``type_name``, its place
        recorded (``path``) for the fields refused below it; null, its error written
        after the statement, when the field itself is refused."""
        self.path.append((type_name, node))
        try:
            return build()
        except Refused as refused:
            if refused.node is not node:  # a field below, refused where it is not recorded
                raise
            self.refuse(refused)
            return jsontext.NULL
        finally:
            self.path.pop()

    def pairs(
        self, type_name: str, node: FieldNode, value: Callable[[FieldNode], Any]
    ) -> list[tuple[str, Any]]:
        """(response key, JSON value) of each field selected on ``type_name`` in
        ``node``, ``value`` building the field's (``placed``); for the types built
        field by field rather than from a model's row (``objects``)."""
        pairs: list[tuple[str, Any]] = []
        for child in self.walk.fields(type_name, node.selection_set):
            if child.name.value == "__typename":
                json = jsontext.string_constant(type_name)
            else:
                json = self.placed(type_name, child, partial(value, child))
            pairs.append((response_key(child), json))
        return pairs

    def arguments(self, definition: Any, strawberry_field: Any, node: FieldNode) -> dict[str, Any]:
        """The field's arguments as its resolver gets them (strawberry inputs, enums)."""
        self._definitions[id(node)] = (definition, strawberry_field)
        if self.parameters:
            for argument in node.arguments or ():
                for use in _variables(argument.value):
                    if use.name.value in self.parameters:
                        self._read[id(use)] = use.name.value
        raw = self.walk.arguments(definition, node)
        return convert_arguments(
            raw,
            strawberry_field.arguments,
            scalar_registry=self.schema.schema_converter.scalar_registry,
            config=self.schema.config,
        )

    @staticmethod
    def adapt(alias: Any, clause: Any) -> Any:
        if hasattr(clause, "__clause_element__"):  # a mapped attribute
            clause = clause.__clause_element__()
        return ClauseAdapter(inspect(alias).selectable).traverse(clause)

    def adapt_static(self, alias: Any, clause: Any) -> Any:
        """``adapt`` for module-level clauses (orderings, edges): memoised."""
        key = (id(clause), alias)
        adapted = _ADAPTED.get(key)
        if adapted is None:
            adapted = _ADAPTED[key] = (clause, self.adapt(alias, clause))
        return adapted[1]

    def parameter(self, node: FieldNode, path: tuple[str, ...], value: Any, type_: Any) -> Any:
        """``value`` as a bind parameter if it is a parameter variable's (at ``path``
        in the field's arguments), else None: the plan inlines it."""
        use = _argument_value(node, path)
        if not isinstance(use, VariableNode) or use.name.value not in self.parameters:
            return None
        self._bound.add(id(use))
        return bindparam(PREFIX + use.name.value, value=value, type_=type_)

    def parameter_use(self, node: FieldNode, path: tuple[str, ...]) -> VariableNode | None:
        """The parameter variable at ``path`` of the field's arguments, or None: the plan
        inlines the value there. A use the caller binds it marks so (``mark_bound``);
        one left unmarked makes planning fail with ``NotBound``."""
        use = _argument_value(node, path)
        if not isinstance(use, VariableNode) or use.name.value not in self.parameters:
            return None
        return use

    def mark_bound(self, use: VariableNode) -> None:
        self._bound.add(id(use))

    def bound_use(self, node: FieldNode, path: tuple[str, ...]) -> VariableNode | None:
        """``parameter_use``, marked bound."""
        use = self.parameter_use(node, path)
        if use is not None:
            self.mark_bound(use)
        return use

    def check(self, node: FieldNode, check: Callable[[dict[str, Any]], Any]) -> None:
        """Each request's arguments of ``node`` (as GraphQL coerced them) must pass
        ``check`` (which raises on what the resolvers refuse) for the plan to serve it."""
        self._site(node).extracts.append(lambda arguments: (check(arguments), {})[1])

    def check_values(
        self, node: FieldNode, extract: Callable[[dict[str, Any]], dict[str, Any]]
    ) -> None:
        """Parameters of ``node`` named by the caller, each request's values computed
        from its arguments by ``extract`` (which raises on what the resolvers refuse)."""
        self._site(node).extracts.append(extract)

    def _site(self, node: FieldNode) -> Site:
        site = self._sites.get(id(node))
        if site is None:
            definition, _ = self._definitions[id(node)]
            site = self._sites[id(node)] = Site(definition, node)
            self.sites.append(site)
        return site

    def computed(
        self,
        node: FieldNode,
        values: list[tuple[Any, Any]],
        extract: Callable[[dict[str, Any]], Sequence[Any]],
    ) -> list[Any]:
        """Bind parameters of the field ``node`` (one per (value, type) of this request)
        whose values each request computes from the field's arguments as GraphQL coerced
        them (``extract``, which raises on values the resolvers refuse):
        ``schema.compiled.binding``."""
        names = [f"{PREFIX}{COMPUTED_PREFIX}{self._computed + n}" for n in range(len(values))]
        self._computed += len(values)
        self._site(node).extracts.append(
            lambda arguments: dict(zip(names, extract(arguments), strict=True))
        )
        return [
            bindparam(name, value=value, type_=type_)
            for name, (value, type_) in zip(names, values, strict=True)
        ]

    def principal(self, attribute: str, type_: Any) -> Any:
        """A bind parameter of the caller's ``attribute`` (``Principal.user_id``...),
        bound for each request by ``Plan.bind``."""
        self.principal_attributes.add(attribute)
        return bindparam(f"{PREFIX}{PRINCIPAL_PREFIX}{attribute}", type_=type_)

    def page_size(self, node: FieldNode, page: PageRequest) -> Any:
        """The size of a page (`first` or `last`, else the default): ``LIMIT $n`` when it
        is a parameter, checked per request as the resolvers check it."""
        argument = "last" if page.backwards else "first"
        if self.bound_use(node, (argument,)) is None:
            return page.size
        cap = self.max_page_size

        def size(arguments: dict[str, Any]) -> list[int]:
            requested = page_request(
                first=arguments.get("first"),
                after=arguments.get("after"),
                last=arguments.get("last"),
                before=arguments.get("before"),
                max_page_size=cap,
            )
            return [requested.size]

        (parameter,) = self.computed(node, [(page.size, BigInteger)], size)
        return cast(parameter, BigInteger)

    def lateral(self, alias: Any, name: str, lookup: Lookup) -> Any:
        """The lateral subquery ``name`` joined to the rows of ``alias``, built once
        (``lookup(self, alias)``: a function of its own, so that a field's kept text
        can join it again where it is reused: ``subtrees``)."""
        self.lateral_rows.append((alias, name, lookup))
        laterals = self._laterals.setdefault(alias, {})
        if name not in laterals:
            laterals[name] = lookup(self, alias).lateral(f"{name}_{inspect(alias).name}")
        return laterals[name]

    def laterals_of(self, alias: Any) -> dict[str, Any]:
        """The laterals the fields on ``alias`` use so far (name -> lateral), a copy."""
        return dict(self._laterals.get(alias, {}))

    def restore_laterals(self, alias: Any, laterals: dict[str, Any]) -> None:
        """``laterals`` (from ``laterals_of``) to be joined again where ``alias``'s rows
        are selected (``rows``)."""
        if laterals:
            self._laterals[alias] = laterals

    def drop_laterals(self, alias: Any) -> None:
        """The laterals of ``alias`` are joined in a text written elsewhere
        (``schema.compiled.page_text``)."""
        self._laterals.pop(alias, None)

    def shape(self, node: FieldNode) -> str | None:
        """The field as written, fragments followed (``subtrees.shape``)."""
        return subtrees.shape(node, self.walk.fragments, self._shapes)

    @property
    def computed_count(self) -> int:
        """Computed parameters named so far."""
        return self._computed

    def rows(self, statement: Select[Any], alias: Any) -> Select[Any]:
        """``statement`` (which selects from ``alias``) with the laterals its fields use."""
        for lateral in self._laterals.pop(alias, {}).values():
            statement = statement.outerjoin_from(alias, lateral, true())
        return statement


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


@cache
def _alias_named(model: Any, name: str) -> Any:
    """Aliases are reused across plans: each memoises its adapted attributes and
    computed expressions, which are the costly part of planning."""
    return aliased(model, name=name)


# (id(clause), alias) -> (clause, adapted); the clause is kept so its id stays unique.
_ADAPTED: dict[tuple[int, Any], tuple[Any, Any]] = {}
