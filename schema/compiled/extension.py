"""Plugs the compiled path into strawberry: answer before the resolvers run.

Setting ``execution_context.result`` in ``on_execute`` before yielding makes
strawberry skip execution; parsing and validation (and their caches) still apply.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
import structlog
from graphql import ExecutionResult, OperationDefinitionNode, OperationType, get_operation_ast
from graphql.execution.values import get_variable_values
from strawberry.extensions import SchemaExtension

from api.errors import DomainError
from schema.compiled.compiler import Compiler
from schema.compiled.selection import Unsupported, Walk, response_key

log = structlog.get_logger(__name__)


class CompiledQueries(SchemaExtension):
    """Answers a query with one SQL statement per root field when the compiler covers
    it; otherwise lets the resolvers run."""

    async def on_execute(self) -> AsyncIterator[None]:
        execution = self.execution_context
        context = execution.context
        if execution.result is not None:  # already refused (limits)
            yield
            return
        plan = self._plan(execution) if getattr(context, "compiled", True) else None
        if plan is not None:
            data: dict[str, Any] = {}
            async with context.lock:
                for key, statement in plan:
                    text = await context.session.scalar(statement)
                    data[key] = orjson.loads(text) if isinstance(text, str) else text
            context.answered_by = "compiled"
            execution.result = ExecutionResult(data=data)
        else:
            context.answered_by = "resolvers"
        yield

    def _plan(self, execution: Any) -> list[tuple[str, Any]] | None:
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
        except (Unsupported, DomainError) as reason:
            # Invalid input is declined too: the resolvers report it with its code.
            log.debug("compiled_path_declined", reason=str(reason))
            return None
