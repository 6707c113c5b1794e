"""The limits extension: refuses too costly or too wide operations before any SQL
runs (the cost and the limit in the error), charges the caller's budget, and reports
the cost in ``extensions.cost``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from graphql import ExecutionResult, GraphQLError
from strawberry.extensions import SchemaExtension

from schema.limits.cost import actual_cost
from schema.limits.measured import cached_query_cost


def cost_extension(settings: Any, requested: int, actual: int, budget: Any) -> dict[str, Any]:
    """``extensions.cost`` of a response."""
    return {
        "requested": requested,
        "actual": actual,
        "limit": settings.max_query_cost,
        **({"remaining": budget.remaining, "budget": budget.limit} if budget is not None else {}),
    }


def _refuse(message: str, code: str, **extensions: Any) -> ExecutionResult:
    return ExecutionResult(
        data=None, errors=[GraphQLError(message, extensions={"code": code, **extensions})]
    )


class QueryLimits(SchemaExtension):
    """Refuses too costly or too wide operations, charges the caller's budget and
    reports the cost in ``extensions.cost``."""

    async def on_execute(self) -> AsyncIterator[None]:
        execution = self.execution_context
        context = execution.context
        settings = context.settings
        measured = cached_query_cost(execution)
        context.operation_name = measured.operation_name if measured else None
        if measured is not None:
            cost, roots, introspection_refusal, _ = measured
            context.requested_cost = cost
            if cost > settings.max_query_cost:
                execution.result = _refuse(
                    f"This query costs {cost} points; the limit is {settings.max_query_cost}. "
                    "Ask for fewer items (first/last) or fewer nested connections.",
                    "QUERY_TOO_COSTLY",
                    cost=cost,
                    limit=settings.max_query_cost,
                )
            elif introspection_refusal is not None:
                execution.result = _refuse(introspection_refusal, "INTROSPECTION_TOO_DEEP")
            elif roots > settings.max_root_fields:
                execution.result = _refuse(
                    f"This operation selects {roots} root fields; the limit is "
                    f"{settings.max_root_fields}.",
                    "TOO_MANY_ROOT_FIELDS",
                )
            else:
                # Charged already if the fast path looked at this request first.
                budget = context.budget or await context.rate_limiter.charge(
                    context.rate_limit_key, max(cost, 1)
                )
                context.budget = budget
                if not budget.allowed:
                    context.response.status_code = 429
                    context.response.headers["Retry-After"] = str(budget.retry_after)
                    execution.result = _refuse(
                        f"Rate limit exceeded: {budget.remaining} of {budget.limit} points left "
                        f"in this window and this query costs {cost}. Retry after "
                        f"{budget.retry_after} seconds.",
                        "RATE_LIMITED",
                        retryAfter=budget.retry_after,
                    )
        yield
        result = execution.result
        if measured is not None and result is not None:
            budget = getattr(context, "budget", None)
            actual = getattr(context, "actual_cost", None)
            if actual is None:
                actual = actual_cost(result.data) if result.data else 0
            execution.extensions_results["cost"] = cost_extension(
                settings, measured.cost, actual, budget
            )
