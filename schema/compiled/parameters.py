"""Variables a compiled plan takes as SQL parameters, so that one plan serves every value.

A plan is keyed by its document and its variables. A variable that changes the SQL
(``orderBy``, ``@include``, a series' bucket) keys it by value; every other one is a
*parameter*: the key holds its shape (null or not; a list of strings; an ID of type
Initiative; a cursor of the RICE_SCORE ordering) instead of its value, the plan's SQL has
``$n`` in its place, and each request binds its own values. Parameters are:

- the keys of ``filter: {keys: $keys}``, the ID of ``node(id: $id)``, a lookup's key,
  bound as they are (``bound_value``);
- the cursors of ``after: $a`` and ``before: $b`` on any connection, bound as their text
  and decoded in SQL;
- ``first: $n`` and ``last: $n`` on any connection (``LIMIT $n``), a series' ``from``
  and ``to``, and any field of a filter given as a variable (enum lists, IDs, search
  text, dates, booleans): their SQL
  values are computed per request from the field's own arguments, as the resolvers
  would get them (``schema.compiled.binding``), which also checks them (a value the
  resolvers refuse is not served by the plan: they answer, with their error).

A variable is a parameter only if every use of it in the operation is one of those
places (found here, from the document alone) and if the compiler bound every use it
met (checked after planning; otherwise the plan is keyed by the value, as any other).
A cost depends on ``first`` and ``last``: costs keep their values (``variables_key``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Hashable, Mapping
from datetime import date, datetime
from enum import Enum
from functools import cache, lru_cache
from typing import Any

import orjson
from graphql import (
    ArgumentNode,
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    ObjectFieldNode,
    OperationDefinitionNode,
    OperationType,
    VariableNode,
    Visitor,
    get_operation_ast,
    visit,
)
from graphql.language.visitor import SKIP

from domain.caches import ByteLRU, text_bytes
from domain.errors import DomainError
from domain.services import filters
from domain.services.pagination import decode_cursor, encode_cursor
from schema.ids import decode_id

STRINGS = "strings"  # filter: {keys: $v}, a list of strings
NODE_ID = "node_id"  # node(id: $v), a global ID; its type is part of the key
STRING = "string"  # a lookup's key: $v
CURSOR = "cursor"  # a connection's after: $v or before: $v, bound as its text
LIMIT = "limit"  # a connection's first: $v or last: $v (LIMIT $n, checked per request)
FILTER = "filter"  # filter: {field: $v}, any field but keys (computed per request)
RANGE = "range"  # a series' from: $v or to: $v (checked per request)
# Kinds whose SQL value the compiler computes per request from the field's arguments
# (``schema.compiled.binding``): not bound as they are.
COMPUTED = frozenset({LIMIT, FILTER, RANGE})
# Kinds a query's cost depends on: costs are keyed by their values.
COSTED = frozenset({LIMIT})
PREFIX = "gqlvar_"  # bind parameter names of parameters

Candidates = Mapping[str, str]  # variable name -> kind
NONE: Candidates = {}


def candidates(document: DocumentNode, operation_name: str | None) -> Candidates:
    """The variables of the operation used only where a plan can bind them."""
    operation = get_operation_ast(document, operation_name)
    if not isinstance(operation, OperationDefinitionNode):
        return NONE
    if operation.operation is not OperationType.QUERY:
        return NONE
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    finder = _Uses(operation)
    pending: list[Any] = [operation]
    seen: set[str] = set()
    while pending:
        visit(pending.pop(), finder)
        for name in finder.spreads - seen:
            seen.add(name)
            if name in fragments:
                pending.append(fragments[name])
    found: dict[str, str] = {}
    for name, kinds in finder.kinds.items():
        (kind, *others) = kinds
        if kind is not None and not others:
            found[name] = kind
    return found


class _Uses(Visitor):
    """The kind of each use of each variable (None: a use that cannot be bound)."""

    def __init__(self, operation: OperationDefinitionNode) -> None:
        super().__init__()
        self.root_fields = {
            id(s) for s in operation.selection_set.selections if isinstance(s, FieldNode)
        }
        self.kinds: dict[str, set[str | None]] = {}
        self.spreads: set[str] = set()

    def enter_fragment_spread(self, node: FragmentSpreadNode, *_: Any) -> None:
        self.spreads.add(node.name.value)

    def enter_variable_definition(self, *_: Any) -> Any:
        return SKIP  # declarations are not uses

    def enter_variable(
        self, node: VariableNode, key: Any, parent: Any, path: Any, ancestors: Any
    ) -> None:
        self.kinds.setdefault(node.name.value, set()).add(self._kind(parent, ancestors))

    def _kind(self, parent: Any, ancestors: Any) -> str | None:
        nodes = [a for a in ancestors if not isinstance(a, list | tuple)]
        # The compiler binds each only where it says (checked after planning).
        if isinstance(parent, ArgumentNode) and nodes and isinstance(nodes[-1], FieldNode):
            field = nodes[-1]
            argument = parent.name.value
            if argument in {"after", "before"}:
                return CURSOR
            if argument in {"first", "last"}:
                return LIMIT
            if argument in {"from", "to"}:
                return RANGE
            if id(field) not in self.root_fields:
                return None
            if argument == "id" and field.name.value == "node":
                return NODE_ID
            if argument == "key":
                return STRING
            return None
        if (
            isinstance(parent, ObjectFieldNode)
            and len(nodes) >= 3
            and isinstance(nodes[-2], ArgumentNode)
            and nodes[-2].name.value == "filter"
        ):
            return STRINGS if parent.name.value == "keys" else FILTER
        return None


def _token(kind: str, value: Any) -> Hashable | None:
    """The shape of a value that the kind binds, or None if it must key by value."""
    if kind == LIMIT:
        return "Int" if type(value) is int else None
    if kind == RANGE:
        return "String" if type(value) is str else None
    if kind == FILTER:
        # Null leaves the condition out: that is another statement. Any other value is
        # checked per request by the plan that binds it (``schema.compiled.binding``).
        if value is None:
            return None
        if type(value) is list:
            return "[]" if not value else "list"  # an empty list is written into the plan
        return type(value).__name__
    if kind == STRINGS:
        if type(value) is list and all(type(item) is str for item in value):
            return "[String]"
        return None
    if type(value) is not str:
        return None
    if kind == CURSOR:
        return _cursor_token(value)
    if kind == NODE_ID:
        decoded = _decoded(value)
        return None if decoded is None else decoded[0]
    return "String"


_BIGINT = range(-(2**63), 2**63)


def _cursor_token(text: str) -> Hashable | None:
    """``_cursor_shape``, remembered for cursors as long as this server writes them
    (the cache is keyed by what callers send: its keys must stay short)."""
    if len(text) > MAX_CACHED_CURSOR:
        return _cursor_shape(text)
    return _cursor_shape_cached(text)


# A cursor of the longest sort value (a 300-character title, each character up to
# 4 bytes of UTF-8, or 6 once JSON-escaped) is well under this.
MAX_CACHED_CURSOR = 2600


def _cursor_shape(text: str) -> Hashable | None:
    """The shape of a cursor: its ordering and the kind of its value. Only a cursor as
    ``encode_cursor`` writes it has one (so PostgreSQL decodes its text as Python does),
    and only values whose kind decides how both sides read them: the compiler checks
    the value it plans with, and any cursor of the same shape is read alike in SQL."""
    try:
        cursor = decode_cursor(text, "after")
    except DomainError:
        return None
    value = cursor.value
    if cursor.id not in _BIGINT or type(cursor.id) is not int:
        return None
    if encode_cursor(cursor.ordering, value, cursor.id) != text:
        return None  # not canonical: padding, stray characters, another JSON spelling
    kind: str
    if type(value) is float:
        kind = "float"
    elif type(value) is int and value in _BIGINT:
        kind = "int"
    elif type(value) is str and "\x00" not in value:
        kind = "str"
        with contextlib.suppress(ValueError):
            if date.fromisoformat(value).isoformat() == value:
                kind = "date"
        with contextlib.suppress(ValueError):
            moment = datetime.fromisoformat(value)
            if moment.tzinfo is not None and moment.isoformat() == value:
                kind = "datetime"
    else:
        return None
    if cursor.ordering in _enum_orderings():
        # A text cast to an enum fails on a non-member: one plan per member instead.
        return ("Cursor", cursor.ordering, kind, value)
    return ("Cursor", cursor.ordering, kind)


_cursor_shape_cached = lru_cache(maxsize=4096)(_cursor_shape)


@cache
def _enum_orderings() -> frozenset[str]:
    """Names of the orderings that sort by an enum on some list."""
    found = set()
    for name in dir(filters):
        if name.endswith("_ORDERINGS"):
            for ordering, expression in getattr(filters, name).items():
                try:
                    python_type = expression.type.python_type
                except NotImplementedError:
                    continue
                if isinstance(python_type, type) and issubclass(python_type, Enum):
                    found.add(ordering)
    return frozenset(found)


# Longer strings are not global IDs this server made: decoded, never kept (the cache
# is keyed by what callers send, so its keys must be short to bound its bytes).
MAX_CACHED_ID = 64


def _decoded(global_id: str) -> tuple[str, int] | None:
    """``decode_id``, or None for a malformed ID: a request needs it for the plan's
    key, the cost's key and the parameter, and dashboards ask for the same IDs again."""
    if len(global_id) > MAX_CACHED_ID:
        return _decode(global_id)
    return _decoded_short(global_id)


def _decode(global_id: str) -> tuple[str, int] | None:
    try:
        return decode_id(global_id)
    except DomainError:
        return None


_decoded_short = lru_cache(maxsize=4096)(_decode)


def bound_value(kind: str, value: Any) -> Any:
    """The SQL parameter of a request's value (whose shape fits the plan's key)."""
    if kind == NODE_ID:
        decoded = _decoded(value)
        assert decoded is not None  # its token was taken: it decodes
        return decoded[1]
    if kind == STRINGS:
        return list(value)
    return value


def bound(variables: Any, candidates: Candidates) -> frozenset[str]:
    """The candidates that this request's values let the plan bind."""
    if not candidates or not isinstance(variables, dict):
        return frozenset()
    return frozenset(
        name
        for name, kind in candidates.items()
        if name in variables and _token(kind, variables[name]) is not None
    )


def variables_key(
    variables: Any, candidates: Candidates, by_value: frozenset[str] = frozenset()
) -> Hashable | None:
    """What of the variables a plan (or a cost) depends on: the value of each variable,
    except the shape of those bound as parameters (unless their kind is ``by_value``:
    a cost depends on ``first``). None if they cannot be keyed."""
    tokens: tuple[tuple[str, Hashable], ...] = ()
    raw = variables or {}
    if candidates and isinstance(variables, dict):
        kept = dict(variables)
        found = []
        for name, kind in candidates.items():
            if name in kept and kind not in by_value:
                token = _token(kind, kept[name])
                if token is not None:
                    del kept[name]
                    found.append((name, token))
        tokens = tuple(sorted(found))
        raw = kept
    try:
        # As text: orjson's bytes keep a 4 KB buffer each, for as long as the key lives.
        return (orjson.dumps(raw, option=orjson.OPT_SORT_KEYS).decode(), tokens)
    except TypeError:
        return None


CANDIDATE_CACHE_BYTES = 16 * 1024 * 1024


def _candidates_bytes(key: tuple[str, str | None], found: Candidates) -> int:
    return text_bytes(*key) + sum(text_bytes(name) + 100 for name in found)


class CandidateCache:
    """``candidates`` by (document text, operation name): the view needs them before
    it parses anything. LRU bounded by bytes, the documents' texts included."""

    def __init__(self, max_bytes: int = CANDIDATE_CACHE_BYTES) -> None:
        self._found: ByteLRU[tuple[str, str | None], Candidates] = ByteLRU(max_bytes)

    @property
    def max_bytes(self) -> int:
        return self._found.max_bytes

    @property
    def bytes(self) -> int:
        return self._found.bytes

    def __len__(self) -> int:
        return len(self._found)

    def get(self, query: str, operation_name: str | None) -> Candidates | None:
        return self._found.get((query, operation_name))

    def of(self, query: str, document: DocumentNode, operation_name: str | None) -> Candidates:
        key = (query, operation_name)
        found = self._found.get(key)
        if found is None:
            found = candidates(document, operation_name)
            self._found.put(key, found, _candidates_bytes(key, found))
        return found

    def drop(self, query: str, operation_name: str | None, names: set[str]) -> None:
        """Stop binding these variables of the document (the compiler inlined a use)."""
        key = (query, operation_name)
        found = self._found.peek(key)
        if found is not None:
            kept = {n: kind for n, kind in found.items() if n not in names}
            self._found.put(key, kept, _candidates_bytes(key, kept))


CANDIDATES = CandidateCache()
