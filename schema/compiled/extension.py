"""Plugs the compiled path into strawberry: answer before the resolvers run.

Setting ``execution_context.result`` in ``on_execute`` before yielding makes
strawberry skip execution; parsing and validation (and their caches) still apply.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import asyncpg
import orjson
import structlog
from graphql import (
    ExecutionResult,
    GraphQLError,
    OperationDefinitionNode,
    OperationType,
    get_operation_ast,
)
from graphql.execution.values import get_variable_values
from sqlalchemy import ColumnElement
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import asyncpg as postgresql_asyncpg
from sqlalchemy.dialects.postgresql.asyncpg import PGCompiler_asyncpg
from sqlalchemy.exc import CompileError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.util import EMPTY_DICT
from strawberry.extensions import SchemaExtension

from domain.caches import ByteLRU, text_bytes
from domain.errors import DomainError
from domain.models.computed import CLOCK
from domain.services import feed
from schema.compiled.binding import Binder, Declined
from schema.compiled.compiler import PRINCIPAL_PREFIX, Compiler, NotBound
from schema.compiled.errors import Sites, finish, refused
from schema.compiled.filters import REMEMBERED_VALUES_BYTES
from schema.compiled.parameters import (
    CANDIDATES,
    COMPUTED,
    NONE,
    PREFIX,
    Candidates,
    bound,
    variables_key,
)
from schema.compiled.presented import finisher
from schema.compiled.selection import Invalid, Unsupported, Walk, parsed_bytes, response_key
from schema.errors import connection_lost
from schema.permissions import ask_for_token

log = structlog.get_logger(__name__)

# The staleness clock as rendered SQL: a plan containing it answers differently over time.
CLOCK_SQL = str(CLOCK().compile(dialect=postgresql.dialect()))
# Tables whose writes send no change notification (migration 0009: a notification per
# delivery attempt would empty every replica's cache for nothing): a plan reading them
# cannot know when its answer goes stale, so its answers are never kept either.
UNNOTIFIED_TABLES = re.compile(r"\bwebhook_(endpoints|deliveries|attempts)\b")
# The change feed's horizon (``feed.HORIZON_FUNCTION``) moves when any transaction ends,
# a rollback included, which notifies nothing: a plan reading it is never kept either.
UNNOTIFIED_SQL = (CLOCK_SQL, f"{feed.HORIZON_FUNCTION}(")


class Rendered(NamedTuple):
    """A statement as SQL text: values inlined, except parameters, which are ``$1``,
    ``$2``... in the order of ``parameters`` (bind parameter names); and what finishes
    its JSON text in Python, if anything must (``schema.compiled.presented``), then
    where refused fields sit, whose errors it writes (``schema.compiled.errors``).
    No SQL: the root field itself is refused."""

    sql: str
    parameters: tuple[str, ...] = ()
    finish: Callable[[str], str] | None = None
    sites: Sites | None = None


@dataclass
class Plan:
    """Per root field, its response key and its statement; and how a request's values
    are bound to their parameters."""

    statements: list[tuple[str, Rendered]]
    binder: Binder
    # Bytes held besides the SQL: the parsed document, whose field nodes bind values.
    held: int = 0
    # The caller's attributes it binds (``viewer``): its answer is the caller's own.
    principal: tuple[str, ...] = ()
    # Whether its answer may change with no change notification: it depends on when it is
    # read (e.g. `isStale`), on the feed's horizon, or reads a table that does not notify
    # (UNNOTIFIED_SQL, UNNOTIFIED_TABLES).
    # Such an answer is never kept in the response cache.
    reads_clock: bool = field(init=False)

    def __post_init__(self) -> None:
        self.reads_clock = any(
            any(unnotified in statement.sql for unnotified in UNNOTIFIED_SQL)
            # The substring first: the pattern alone tries every position of a long text.
            or ("webhook_" in statement.sql and UNNOTIFIED_TABLES.search(statement.sql))
            for _, statement in self.statements
        )

    def bind(self, variables: Any, principal: Any) -> Bound | None:
        """The plan with this request's values and caller, or None if it does not serve
        them (the resolvers answer: they are what the resolvers refuse)."""
        try:
            values = self.binder.values(variables)
            for attribute in self.principal:
                values[f"{PREFIX}{PRINCIPAL_PREFIX}{attribute}"] = getattr(principal, attribute)
            return Bound(self, values)
        except Declined as declined:
            log.debug("compiled_path_values_declined", reason=str(declined))
            PLANS.declines["values"] += 1
            return None


class Bound(NamedTuple):
    plan: Plan
    values: dict[str, Any]

    def arguments(self, statement: Rendered) -> list[Any]:
        return [self.values[name] for name in statement.parameters]


PLAN_CACHE_BYTES = 64 * 1024 * 1024


def _plan_bytes(key: Hashable, plan: Plan | None) -> int:
    """The key's texts (document, operation, variables) and the plan's SQL text."""
    size = text_bytes(*key) if isinstance(key, tuple) else 0
    if isinstance(key, tuple) and len(key) > 3 and isinstance(key[3], tuple):
        size += text_bytes(*key[3])  # (variables' text, parameters' shapes)
    if plan is not None:
        size += text_bytes(key[0])  # type: ignore[index]  # the fast path's copy
        # What binds values: the parsed field nodes are the document cache's. A site's
        # argument template, and the values each of its filter fields remembers
        # (``filters.REMEMBERED_VALUES_BYTES``); the binder's remembered values.
        binder = plan.binder
        size += plan.held + 100 * len(binder.direct) + binder.remembered_bytes
        size += sum(4_000 + REMEMBERED_VALUES_BYTES * len(site.extracts) for site in binder.sites)
        for response, statement in plan.statements:
            size += text_bytes(response, statement.sql) + 100 * (len(statement.parameters) + 1)
    return size


class PlanCache:
    """Plans by (document, operation, scopes, variables): a plan depends on nothing
    else (not on the data), so a hit skips planning entirely. LRU bounded by the bytes
    of its keys and plans: documents and variables are the callers'. Variables bound as
    parameters count by their shape only (``schema.compiled.parameters``).

    A request seen for the first time is planned once, its statements rendered to SQL
    text at once and kept (None: declined, the resolvers answer that key)."""

    def __init__(self, max_bytes: int = PLAN_CACHE_BYTES) -> None:
        self._plans: ByteLRU[Hashable, Plan | None] = ByteLRU(max_bytes, self._evicted)
        # Plans held per document: the fast path's cheap test.
        self._documents: Counter[str] = Counter()
        # Documents planned (each costs milliseconds): what tests count.
        self.compilations = 0
        # Why plans were declined, by reason (``Unsupported``'s text, "values", ...):
        # what tests/test_compiled_coverage.py reports, to show what to compile next.
        self.declines: Counter[str] = Counter()

    @property
    def max_bytes(self) -> int:
        return self._plans.max_bytes

    @property
    def bytes(self) -> int:
        return self._plans.bytes

    def __len__(self) -> int:
        return len(self._plans)

    def _evicted(self, key: Hashable, plan: Plan | None) -> None:
        if plan is not None:
            document = key[0]  # type: ignore[index]
            self._documents[document] -= 1
            if self._documents[document] <= 0:
                del self._documents[document]

    def may_hold(self, query: str) -> bool:
        """Whether a plan may exist for this document: a cheap test before the key
        (which serialises the variables) is built, so mutations and new documents pay
        nothing for the fast path."""
        return query in self._documents

    def rendered(self, key: Hashable, variables: Any, principal: Any) -> Bound | None:
        """The plan of a request seen before, with this request's values and caller;
        None if there is none or it does not serve these values."""
        plan = self._plans.peek(key)
        if plan is None:  # unknown or declined
            return None
        self._plans.get(key)  # recently used
        return plan.bind(variables, principal)

    def get(self, key: Hashable) -> tuple[bool, Plan | None]:
        if key not in self._plans:
            return False, None
        return True, self._plans.get(key)

    def put(self, key: Hashable, plan: Plan | None) -> None:
        if self._plans.put(key, plan, _plan_bytes(key, plan)) and plan is not None:
            # Its document may now take the fast path.
            self._documents[key[0]] += 1  # type: ignore[index]


def provided_operation_name(execution: Any) -> str | None:
    """The operation name as the request gave it (None if absent), which is what the
    view sees before execution; ``execution.operation_name`` falls back to the name in
    the document, so keys built from it would never match the view's."""
    return getattr(execution, "_provided_operation_name", execution.operation_name)


def plan_key(
    query: str | None,
    operation_name: str | None,
    variables: Any,
    scopes: Any,
    schema: Any,
    candidates: Candidates = NONE,
) -> Hashable | None:
    """The schema is part of the key: each variant (production or not, depth, alias and
    token limits) validates differently, so a plan is reused only under the one that
    accepted its document."""
    values = variables_key(variables, candidates)
    if values is None:
        return None
    return plan_key_of(query, operation_name, values, scopes, schema)


def plan_key_of(
    query: str | None, operation_name: str | None, values: Hashable, scopes: Any, schema: Any
) -> Hashable:
    """``plan_key`` from the variables' key (``variables_key``) already made."""
    return (query, operation_name, scopes, values, id(schema))


def execution_candidates(execution: Any) -> Candidates:
    """The parameter candidates of the execution's document (none if it did not parse)."""
    document = execution.graphql_document
    if document is None or not isinstance(execution.query, str):
        return NONE
    return CANDIDATES.of(execution.query, document, provided_operation_name(execution))


PLANS = PlanCache()


async def run_plan(context: Any, bound: Bound) -> ExecutionResult:
    """Runs each root field's statement in the request's session."""
    context.answered_by = "compiled"
    async with context.lock:
        connection = await context.session.connection()

        async def fetch(statement: Rendered) -> Any:
            return await _fetch_text(connection, statement, bound)

        result, context.actual_cost, _ = await _collect(bound.plan, fetch)
    for error in result.errors or ():
        context.conflicted(error.original_error)  # a deadlock: the request is run again
    if refused(result):
        ask_for_token(context)  # as the resolvers' check does: 401 for an anonymous caller
    return result


async def run_rendered(
    connections: Callable[[], AbstractAsyncContextManager[Any]], bound: Bound, variables: Any
) -> tuple[ExecutionResult, int, int]:
    """Runs a known plan with its values (``PlanCache.rendered``) on a pooled driver
    connection, outside any ORM session: a read of one statement per root field needs no
    transaction. Returns the result, the objects it holds (the actual cost) and its
    characters of JSON."""
    async with connections() as driver:

        async def fetch(statement: Rendered) -> Any:
            return await driver.fetchval(statement.sql, *bound.arguments(statement))

        collected = await _collect(bound.plan, fetch)
        if any(connection_lost(error.original_error) for error in collected[0].errors or ()):
            driver.terminate()  # closed, so the pool drops it instead of handing it out
        return collected


async def _collect(
    plan: Plan, fetch: Callable[[Any], Awaitable[Any]]
) -> tuple[ExecutionResult, int, int]:
    """Each root field's answer; PostgreSQL's JSON goes into the response as it is, never
    parsed and serialised again (orjson.Fragment). A failure ends the request as a
    resolver's would: on the field, coded from its cause (connection lost, timeout) and
    never showing SQL."""
    data: dict[str, Any] = {}
    refused: dict[str, tuple[str | None, Sites]] = {}  # finished once all have run
    objects = chars = 0
    for key, statement in plan.statements:
        try:
            text = await fetch(statement) if statement.sql else None
        except (
            SQLAlchemyError,
            asyncpg.PostgresError,
            asyncpg.InterfaceError,
            asyncpg.InternalClientError,
            OSError,
        ) as error:
            failed = GraphQLError(str(error), path=[key], original_error=error)
            return ExecutionResult(data=None, errors=[failed]), objects, chars
        if isinstance(text, str):
            if statement.finish is not None:
                text = statement.finish(text)
            # Objects returned, counted on the text (braces in strings are rare).
            objects += text.count("{")
            chars += len(text)
        if statement.sites is not None:
            refused[key] = (text, statement.sites)
            data[key] = None  # in its place among the root fields
        else:
            data[key] = text if not isinstance(text, str) else orjson.Fragment(text)
    if not refused:
        return ExecutionResult(data=data), objects, chars
    finished, errors = finish(data, refused)
    return ExecutionResult(data=finished, errors=errors), objects, chars


async def _fetch_text(connection: AsyncConnection, statement: Rendered, bound: Bound) -> Any:
    """One statement on the driver itself: a read of one statement needs no transaction
    (SQLAlchemy begins one only when it runs a statement, so none is begun for this one,
    and the commit has nothing to send), and asyncpg keeps it prepared by its text."""
    raw = await connection.get_raw_connection()
    try:
        driver: Any = raw.driver_connection
        return await driver.fetchval(statement.sql, *bound.arguments(statement))
    except Exception as error:
        if connection_lost(error):
            # The connection is gone (database restarted): the pool must not hand it out
            # again. The same test as run_rendered's and as the error's code.
            await connection.invalidate()
        raise


class CompiledQueries(SchemaExtension):
    """Answers a query with one SQL statement per root field when the compiler covers
    it; otherwise lets the resolvers run."""

    async def on_execute(self) -> AsyncIterator[None]:
        execution = self.execution_context
        context = execution.context
        operation = _operation(execution)
        if execution.result is not None:  # already refused (limits)
            yield
            return
        compiled = getattr(context, "compiled", True)
        plan = self._cached_plan(execution, operation) if compiled else None
        bound = plan.bind(execution.variables, context.principal) if plan is not None else None
        if bound is not None:
            execution.result = await run_plan(context, bound)
        else:
            context.answered_by = "resolvers"
        yield

    def _cached_plan(
        self, execution: Any, operation: OperationDefinitionNode | None
    ) -> Plan | None:
        if (
            operation is None
            or operation.operation is not OperationType.QUERY
            or execution.pre_execution_errors
        ):
            # Only a query of a document that passed validation is compiled; mutations
            # and refused documents get no key (it serialises the variables).
            return None
        candidates = execution_candidates(execution)
        key = plan_key(
            execution.query,
            provided_operation_name(execution),
            execution.variables,
            execution.context.principal.scopes,
            execution.schema,
            candidates,
        )
        if key is not None:
            found, cached = PLANS.get(key)
            if found:
                return cached
        plan = self._plan(execution, operation, candidates)
        if isinstance(plan, _Invalid):
            return None
        if key is not None:
            PLANS.put(key, plan)  # None: declined, the resolvers answer this key every time
        return plan

    def _plan(
        self, execution: Any, operation: OperationDefinitionNode, candidates: Candidates
    ) -> Plan | _Invalid | None:
        document = execution.graphql_document
        schema = execution.schema._schema
        variables = get_variable_values(
            schema, operation.variable_definitions or [], execution.variables or {}
        )
        if isinstance(variables, list):  # coercion errors: the resolvers report them
            PLANS.declines["variables"] += 1
            return None
        fragments = {
            definition.name.value: definition
            for definition in document.definitions
            if definition.kind == "fragment_definition"
        }
        walk = Walk(schema, fragments, variables)
        context = execution.context
        parameters = bound(execution.variables, candidates)
        compiler = Compiler(
            walk,
            execution.schema,
            context.principal.scopes,
            context.settings.max_page_size,
            parameters,
        )
        PLANS.compilations += 1
        try:
            statements = [
                (response_key(node), _statement(compiler, node))
                for node in walk.fields("Query", operation.selection_set)
            ]
            direct = {
                name: candidates[name] for name in parameters if candidates[name] not in COMPUTED
            }
            computed = tuple(sorted(name for name in parameters if candidates[name] in COMPUTED))
            binder = Binder(
                execution.schema,
                operation.variable_definitions or (),
                direct,
                compiler.sites,
                computed,
            )
            held = parsed_bytes(execution.query, document) if compiler.sites else 0
            principal = tuple(sorted(compiler.principal_attributes))
            return Plan(statements, binder, held, principal)
        except NotBound as unbound:
            # A use the compiler inlines: the document keys those variables by value
            # from now on (a plan built so far is dropped; none was cached).
            log.debug("compiled_path_parameters_dropped", variables=str(unbound))
            PLANS.declines["parameters dropped"] += 1
            CANDIDATES.drop(execution.query, provided_operation_name(execution), unbound.names)
            return None
        except (Invalid, DomainError) as reason:
            # Invalid input: the resolvers report it with its code. With parameters bound,
            # other values of the same shape may be valid: nothing is kept for them.
            log.debug("compiled_path_declined", reason=str(reason))
            PLANS.declines[str(reason)] += 1
            return INVALID if parameters else None
        except (Unsupported, CompileError, NotImplementedError) as reason:
            # Invalid input is declined too: the resolvers report it with its code.
            log.debug("compiled_path_declined", reason=str(reason))
            PLANS.declines[str(reason)] += 1
            return None
        except Exception:
            # A bug in the compiler must not fail the request: the resolvers answer.
            log.exception("compiled_path_failed")
            PLANS.declines["compiler failed"] += 1
            return None


class _Invalid:
    """Planning refused these values, not this shape."""


INVALID = _Invalid()


def _operation(execution: Any) -> OperationDefinitionNode | None:
    """The operation the request runs, looked up once (None if the document did not
    parse, names no such operation, or holds several and the request named none: never
    the first of them, which strawberry's ``operation_name`` would fall back to)."""
    document = execution.graphql_document
    return get_operation_ast(document, provided_operation_name(execution)) if document else None


_PLAN_DIALECT = postgresql_asyncpg.dialect()


class _PlanCompiler(PGCompiler_asyncpg):
    """Renders values inline (``literal_binds``), except parameters: those become
    ``$1``, ``$2``... in the order they first appear."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.placeholders: dict[str, str] = {}
        # (subquery, correlation, options) -> (subquery, its text): the subquery is kept
        # so that its id is not reused meanwhile.
        self._subqueries: dict[Hashable, tuple[Any, str]] = {}
        super().__init__(*args, **kwargs)

    def visit_select(self, select_stmt: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        """A SELECT of column expressions only, compiled as Core: the ORM's compile state
        (which a mapped column in it calls for) would build a new SELECT of the same
        columns, a third of the cost of compiling a first-seen plan."""
        if select_stmt._propagate_attrs and all(
            isinstance(column, ColumnElement) for column in select_stmt._raw_columns
        ):
            select_stmt = select_stmt._generate()
            select_stmt._propagate_attrs = EMPTY_DICT
        return super().visit_select(select_stmt, **kwargs)

    def visit_subquery(self, subquery: Any, **kwargs: Any) -> str:
        """A subquery named in several places of one statement (a connection's page: its
        rows, its cursors, ``hasPreviousPage``) is compiled once per context, not once per
        place: the same object in the same correlation and options writes the same text."""
        if not self.stack:
            return str(super().visit_subquery(subquery, **kwargs))
        frame = self.stack[-1]
        try:
            key = (
                id(subquery),
                frozenset(map(id, frame["correlate_froms"])),
                frozenset(map(id, frame["asfrom_froms"])),
                tuple(sorted((name, _context(value)) for name, value in kwargs.items())),
            )
        except TypeError:  # an option that cannot be a key: compiled as it is
            return str(super().visit_subquery(subquery, **kwargs))
        found = self._subqueries.get(key)
        if found is None:
            found = self._subqueries[key] = (subquery, super().visit_subquery(subquery, **kwargs))
        return str(found[1])

    def visit_bindparam(self, bindparam: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        if bindparam.key.startswith(PREFIX):
            return self.placeholders.setdefault(bindparam.key, f"${len(self.placeholders) + 1}")
        return super().visit_bindparam(bindparam, **kwargs)


_PLAN_DIALECT.statement_compiler = _PlanCompiler


def _context(value: Any) -> Hashable:
    """A compile option as part of a key: plain values as they are, a mapping by its items,
    anything else (an enclosing alias) by identity, ``TypeError`` if it cannot be."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, dict):
        return tuple(sorted(value.items()))
    if callable(value):
        raise TypeError("a callback")
    return id(value)


def _statement(compiler: Compiler, node: Any) -> Rendered:
    """One root field's statement, rendered and finished; none if it is refused."""
    statement, sites = compiler.root(node)
    if statement is None:
        return Rendered("", sites=sites)
    return _finished(_render(statement), compiler)._replace(sites=sites)


def _finished(rendered: Rendered, compiler: Compiler) -> Rendered:
    """The statement with what presents its audit changes for the plan's scopes."""
    finish = finisher(rendered.sql, compiler.schema, compiler.scopes)
    return rendered if finish is None else rendered._replace(finish=finish)


def _render(statement: Any) -> Rendered:
    """The statement as SQL text with its values inlined (quoted by SQLAlchemy's literal
    renderers), except parameters: a cached plan is then a short string, cheap to keep
    and to run, instead of thousands of objects for the garbage collector to walk."""
    compiled = compile_for_plan(statement)
    return Rendered(str(compiled), tuple(compiled.placeholders))


def compile_for_plan(statement: Any) -> Any:
    """``statement`` compiled as plans are: values inlined, parameters as ``$n``
    (``_PlanCompiler``). Also how ``page_text`` and ``feed_text`` compile what they keep."""
    return statement.compile(
        dialect=_PLAN_DIALECT, compile_kwargs={"literal_binds": True, "render_postcompile": True}
    )
