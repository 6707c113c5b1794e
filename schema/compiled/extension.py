"""Plugs the compiled path into strawberry: answer before the resolvers run.

Setting ``execution_context.result`` in ``on_execute`` before yielding makes
strawberry skip execution; parsing and validation (and their caches) still apply.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import AsyncIterator, Hashable
from typing import Any

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
from sqlalchemy.dialects.postgresql import asyncpg as postgresql_asyncpg
from sqlalchemy.exc import CompileError, SQLAlchemyError
from strawberry.extensions import SchemaExtension

from api.errors import DomainError
from schema.compiled.compiler import Compiler
from schema.compiled.selection import Unsupported, Walk, response_key

log = structlog.get_logger(__name__)


# A plan: per root field, its response key and its statement, either rendered SQL text
# (values inlined) or a SQLAlchemy construct (values bound).
Plan = list[tuple[str, Any]]
SEEN_ONCE: Plan = []  # the key was planned once; render its text if it comes again


class PlanCache:
    """Plans by (document, operation, scopes, variables): a plan depends on nothing
    else (not on the data), so a hit skips planning entirely. Bounded LRU.

    A request seen for the first time runs its statements with bound values: SQLAlchemy
    reuses the compiled SQL of any statement of the same structure, and PostgreSQL its
    prepared statement, so requests whose variables vary are not compiled from scratch.
    A request that comes again gets its SQL text rendered once and kept."""

    def __init__(self, size: int = 1024) -> None:
        self.size = size
        self._plans: OrderedDict[Hashable, Plan | None] = OrderedDict()
        self._documents: set[str] = set()

    def key(self, execution: Any) -> Hashable | None:
        return plan_key(
            execution.query,
            provided_operation_name(execution),
            execution.variables,
            execution.context.principal.scopes,
            execution.schema,
        )

    def may_hold(self, query: str) -> bool:
        """Whether a rendered plan may exist for this document: a cheap test before the
        key (which serialises the variables) is built, so mutations and new documents
        pay nothing for the fast path."""
        return query in self._documents

    def rendered(self, key: Hashable) -> Plan | None:
        """The plan of a request seen at least twice, as SQL text; None otherwise."""
        plan = self._plans.get(key)
        if not plan:  # unknown, declined or seen once
            return None
        self._plans.move_to_end(key)
        return plan

    def get(self, key: Hashable) -> tuple[bool, Plan | None]:
        if key not in self._plans:
            return False, None
        self._plans.move_to_end(key)
        return True, self._plans[key]

    def put(self, key: Hashable, plan: Plan | None) -> None:
        self._plans[key] = plan
        self._plans.move_to_end(key)
        while len(self._plans) > self.size:
            self._plans.popitem(last=False)
        if plan:  # rendered: its document may now take the fast path
            self._documents.add(key[0])  # type: ignore[index]
            if len(self._documents) > self.size * 2:  # forget documents whose plans are gone
                self._documents = {k[0] for k, held in self._plans.items() if held}  # type: ignore[index]


def provided_operation_name(execution: Any) -> str | None:
    """The operation name as the request gave it (None if absent), which is what the
    view sees before execution; ``execution.operation_name`` falls back to the name in
    the document, so keys built from it would never match the view's."""
    return getattr(execution, "_provided_operation_name", execution.operation_name)


def plan_key(
    query: str | None, operation_name: str | None, variables: Any, scopes: Any, schema: Any
) -> Hashable | None:
    """The schema is part of the key: each variant (production or not, depth, alias and
    token limits) validates differently, so a plan is reused only under the one that
    accepted its document."""
    try:
        encoded = orjson.dumps(variables or {}, option=orjson.OPT_SORT_KEYS)
    except TypeError:
        return None
    return (query, operation_name, scopes, encoded, id(schema))


PLANS = PlanCache()


CUSTOM_PLANS = "SET LOCAL plan_cache_mode = force_custom_plan"


async def run_plan(context: Any, plan: Plan) -> ExecutionResult:
    """Runs each root field's statement; PostgreSQL's JSON goes into the response as it
    is, never parsed and serialised again (orjson.Fragment)."""
    data: dict[str, Any] = {}
    objects = 0
    context.answered_by = "compiled"
    async with context.lock:
        connection = await context.session.connection()
        if any(not isinstance(statement, str) for _, statement in plan):
            # A statement with bound values is prepared once and run with many: plan
            # each run for its values, rather than let PostgreSQL settle on a generic
            # plan that fits some values badly (an overview went from 20 to 120 ms).
            # Rendered text keeps the default: its cached plan is always right.
            await connection.exec_driver_sql(CUSTOM_PLANS)
        for key, statement in plan:
            try:
                if isinstance(statement, str):
                    text = (await connection.exec_driver_sql(statement)).scalar()
                else:
                    text = (await connection.execute(statement)).scalar()
            except SQLAlchemyError as error:
                # As a resolver's failure would be: on the field, coded from its cause
                # (connection lost, timeout) and never showing SQL.
                return ExecutionResult(
                    data=None, errors=[GraphQLError(str(error), path=[key], original_error=error)]
                )
            if isinstance(text, str):
                data[key] = orjson.Fragment(text)
                # Objects returned, counted on the text (braces in strings are rare).
                objects += text.count("{")
            else:
                data[key] = text
    context.actual_cost = objects
    return ExecutionResult(data=data)


class CompiledQueries(SchemaExtension):
    """Answers a query with one SQL statement per root field when the compiler covers
    it; otherwise lets the resolvers run."""

    async def on_execute(self) -> AsyncIterator[None]:
        execution = self.execution_context
        context = execution.context
        if execution.result is not None:  # already refused (limits)
            yield
            return
        plan = self._cached_plan(execution) if getattr(context, "compiled", True) else None
        if plan is not None:
            execution.result = await run_plan(context, plan)
        else:
            context.answered_by = "resolvers"
        yield

    def _cached_plan(self, execution: Any) -> Plan | None:
        key = PLANS.key(execution)
        if key is None:
            return self._plan(execution)
        found, cached = PLANS.get(key)
        if found and cached is not SEEN_ONCE:
            return cached
        plan = self._plan(execution)
        if plan is None:
            PLANS.put(key, None)  # declined: the resolvers answer this one every time
        elif not found:
            PLANS.put(key, SEEN_ONCE)
        else:
            plan = [(response, _render(statement)) for response, statement in plan]
            PLANS.put(key, plan)
        return plan

    def _plan(self, execution: Any) -> Plan | None:
        document = execution.graphql_document
        if document is None or execution.pre_execution_errors:
            return None
        operation = get_operation_ast(document, execution.operation_name)
        if not isinstance(operation, OperationDefinitionNode):
            return None
        if operation.operation is not OperationType.QUERY:
            return None
        schema = execution.schema._schema
        variables = get_variable_values(
            schema, operation.variable_definitions or [], execution.variables or {}
        )
        if isinstance(variables, list):  # coercion errors: the resolvers report them
            return None
        fragments = {
            definition.name.value: definition
            for definition in document.definitions
            if definition.kind == "fragment_definition"
        }
        walk = Walk(schema, fragments, variables)
        context = execution.context
        compiler = Compiler(walk, context.principal.scopes, context.settings.max_page_size)
        try:
            return [
                (response_key(node), compiler.root(node))
                for node in walk.fields("Query", operation.selection_set)
            ]
        except (Unsupported, DomainError, CompileError, NotImplementedError) as reason:
            # Invalid input is declined too: the resolvers report it with its code.
            log.debug("compiled_path_declined", reason=str(reason))
            return None
        except Exception:
            # A bug in the compiler must not fail the request: the resolvers answer.
            log.exception("compiled_path_failed")
            return None


_DIALECT = postgresql_asyncpg.dialect()


def _render(statement: Any) -> str:
    """The statement as SQL text with its values inlined (quoted by SQLAlchemy's literal
    renderers): a cached plan is then a short string, cheap to keep and to run, instead
    of thousands of objects for the garbage collector to walk."""
    compiled = statement.compile(
        dialect=_DIALECT, compile_kwargs={"literal_binds": True, "render_postcompile": True}
    )
    return str(compiled)
