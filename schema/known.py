"""The repeated-query fast path: a read the compiler answered before, with these scopes
and variables of the same shapes, runs its rendered SQL at once, without strawberry's
parsing, validation or execution and without an ORM session; its answer may come from
the response cache. The view (``schema.view``) tries it first for a JSON POST and
falls back to strawberry's path whenever this declines (``lookup`` returns None)."""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

import orjson
from strawberry.types import ExecutionResult

from domain.database import ReadConnections
from domain.ratelimit import Budget, RateLimiter
from domain.settings import Settings
from schema.compiled.errors import written
from schema.compiled.extension import PLANS, plan_key_of, run_rendered
from schema.compiled.parameters import CANDIDATES, Candidates, variables_key
from schema.compiled.responses import Cached, ResponseCache
from schema.limits import cost_extension, known_measurement
from schema.limits.cost import Measurement
from schema.limits.documents import document_bytes


@dataclass(eq=False)
class KnownPath:
    """What a path that answers a document seen before, without strawberry, works with:
    the known reads here, the known updates (``schema.known_writes``)."""

    settings: Settings
    schema: Any
    rate_limiter: RateLimiter
    reads: ReadConnections
    responses: ResponseCache

    def candidates(self, request: Any) -> Candidates | None:
        """The parameter candidates of a well-formed request whose document strawberry's
        path ran before; None otherwise, and for an ad-hoc document over the size limit:
        strawberry's path answers, with its errors."""
        if not (
            isinstance(request.query, str)
            and isinstance(request.operation_name, str | None)
            and isinstance(request.variables, dict | None)
        ):
            return None  # strawberry reports malformed parameters
        limit = self.settings.max_document_bytes
        if len(request.query) > limit and document_bytes(request.query) > limit:
            return None  # refused by strawberry's path, unless it is a persisted one
        return CANDIDATES.get(request.query, request.operation_name)

    def within_limits(self, measured: Measurement | None) -> bool:
        """Whether a measured document is within the cost and root-field limits (if not,
        strawberry's path refuses it with the limits' errors)."""
        return (
            measured is not None
            and measured.cost <= self.settings.max_query_cost
            and measured.root_fields <= self.settings.max_root_fields
        )


class KnownReads(KnownPath):
    """The repeated-query fast path for reads (the module's docstring)."""

    def lookup(self, principal: Any, request: Any) -> tuple[Any, Any] | None:
        """The rendered plan and the measurement of a query answered before with the
        caller's scopes and these variables (or values of the same shape), if it is within
        the limits; None otherwise. Changes nothing."""
        candidates = self.candidates(request)
        if candidates is None or not PLANS.may_hold(request.query):
            return None
        values = variables_key(request.variables, candidates)
        if values is None:
            return None
        key = plan_key_of(
            request.query, request.operation_name, values, principal.scopes, self.schema
        )
        plan = PLANS.rendered(key, request.variables, principal)
        if plan is None:
            return None
        measured = known_measurement(
            request.query, request.operation_name, request.variables, candidates, values
        )
        if not self.within_limits(measured):
            return None
        return plan, measured

    async def run(
        self,
        known: tuple[Any, Any],
        request: Any,
        scopes: Any,
        rate_limit_key: str,
        charged: Budget | None = None,
    ) -> tuple[ExecutionResult | None, Any, str]:
        """A query already answered by the compiler, with these variables (or, for
        variables bound as parameters, values of the same shape) and scopes (``lookup``),
        runs its SQL text at once: its document was parsed, validated and measured within
        the limits before, so strawberry's execution is skipped. The same request asked
        again before the data changed is answered from memory (``ResponseCache``).
        Returns the result (None if the caller's budget refuses it), the budget charged
        and which path answered. ``charged``: the budget an earlier attempt of the
        request was charged (``GraphQLEndpoint._attempt``), which this one spends."""
        plan, measured = known
        cost = measured.cost
        budget = charged or await self.rate_limiter.charge(rate_limit_key, max(cost, 1))
        if not budget.allowed:
            return None, budget, ""  # the ordinary path refuses it (without charging twice)
        responses = self.responses
        # An answer about the caller (``viewer``: the key is not the caller's) or one that
        # depends on when it is read (``Plan.reads_clock``) is never kept.
        keep = responses.active and not plan.plan.principal and not plan.plan.reads_clock
        key = _answer_key(request, scopes) if keep else None
        cached = responses.get(key) if key is not None else None
        data: dict[str, Any] | None
        if cached is not None:
            data, actual, answered_by = cached.data, cached.objects, "cached"
            errors = list(cached.errors) or None
        else:
            generation = responses.generation
            result, actual, chars = await run_rendered(self.reads, plan, request.variables)
            # A failure is not kept; the refused fields' errors are the answer's own.
            if key is not None and all(written(e) for e in result.errors or ()):
                kept = tuple(result.errors or ())
                chars += sum(len(e.message) + 100 for e in kept)
                responses.put(key, generation, Cached(result.data, actual, chars, 0, kept))
            data, errors, answered_by = result.data, result.errors, "repeated"
        extensions = {"cost": cost_extension(self.settings, cost, actual, budget)}
        return ExecutionResult(data=data, errors=errors, extensions=extensions), budget, answered_by


def _answer_key(request: Any, scopes: Any) -> Hashable:
    """What a known read's answer depends on: the document, the operation, the values
    of its variables and the caller's effective scopes (the view is per schema)."""
    # As text: orjson's bytes keep a 4 KB buffer each, for as long as the key lives.
    variables = orjson.dumps(request.variables, option=orjson.OPT_SORT_KEYS).decode()
    return (request.query, request.operation_name, variables, scopes)
