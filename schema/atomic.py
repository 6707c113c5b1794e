"""All-or-nothing mutation operations: ``mutation Sync @atomic { a: … b: … }``.

Without the directive every root mutation field is its own savepoint: a refused one
leaves nothing behind, the others stay (``schema.mutations.common.run``). With it, the
whole operation runs in one more savepoint of the request's transaction; each root
field still runs (serially, as GraphQL runs mutations) and reports its own
``userErrors``, and if any of them was refused or raised an error, the savepoint is
rolled back: the rows, their audit events, the webhook outbox rows and the change
notifications the triggers queued all vanish with it (PostgreSQL drops a
subtransaction's ``NOTIFY`` on its rollback). The answer says which happened in
``extensions.atomic``: ``{committed, failed, rolledBack}``, the response keys (aliases)
of the root fields that failed and of those whose work was undone.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import strawberry
from graphql import DirectiveLocation, OperationDefinitionNode, OperationType, get_operation_ast
from strawberry.extensions import FieldExtension, SchemaExtension

ATOMIC = "atomic"


@strawberry.directive(
    locations=[DirectiveLocation.MUTATION],
    name=ATOMIC,
    description="All or nothing: if any root field of this mutation is refused (userErrors) or "
    "fails (errors), every change of the operation is rolled back. Each field still reports "
    "its own userErrors; `extensions.atomic` says whether the operation was committed "
    "(`committed`), which root fields failed (`failed`) and which were undone (`rolledBack`), "
    "by response key (alias).",
)
def atomic() -> None:
    """Read by ``AtomicBatches`` from the operation; never resolved per field."""


@dataclass
class AtomicBatch:
    """What the root fields of one ``@atomic`` operation did, by response key, in the
    order they ran."""

    ran: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    def record(self, key: str, *, refused: bool) -> None:
        if key not in self.ran:
            self.ran.append(key)
        if refused and key not in self.failed:
            self.failed.append(key)

    def verdict(self) -> dict[str, Any]:
        committed = not self.failed
        return {
            "committed": committed,
            "failed": list(self.failed),
            "rolledBack": [] if committed else [k for k in self.ran if k not in self.failed],
        }


def is_atomic(operation: OperationDefinitionNode | None) -> bool:
    return (
        operation is not None
        and operation.operation is OperationType.MUTATION
        and any(d.name.value == ATOMIC for d in operation.directives or ())
    )


class AtomicBatches(SchemaExtension):
    """Runs an ``@atomic`` mutation operation in a savepoint, released only if every root
    field went through; reports the verdict in ``extensions.atomic``."""

    def __init__(self) -> None:
        self.verdict: dict[str, Any] | None = None

    async def on_execute(self) -> AsyncIterator[None]:
        execution = self.execution_context
        document = execution.graphql_document
        operation = get_operation_ast(document, execution.operation_name) if document else None
        if not is_atomic(operation) or execution.result is not None:
            yield
            return
        context = execution.context
        batch = context.atomic = AtomicBatch()
        async with context.lock:
            savepoint = await context.session.begin_nested()
        try:
            yield
        except BaseException:
            await context.settle()
            async with context.lock:
                await savepoint.rollback()
            raise
        await context.settle()  # no statement of a part may outlive the savepoint
        result = execution.result
        for error in getattr(result, "errors", None) or ():
            if error.path:
                batch.record(str(error.path[0]), refused=True)
        async with context.lock:
            if batch.failed:
                await savepoint.rollback()
                context.mutated = False  # nothing was written: the cached reads stand
            else:
                await savepoint.commit()
        self.verdict = batch.verdict()

    def get_results(self) -> dict[str, Any]:
        return {ATOMIC: self.verdict} if self.verdict is not None else {}


class AtomicPart(FieldExtension):
    """On a root mutation field: tells the operation's ``AtomicBatch`` (if it has one)
    whether the field went through; a payload with ``userErrors`` did not."""

    def resolve(self, next_: Callable[..., Any], source: Any, info: Any, **kwargs: Any) -> Any:
        return next_(source, info, **kwargs)  # mutations are async; nothing to track

    async def resolve_async(
        self, next_: Callable[..., Awaitable[Any]], source: Any, info: Any, **kwargs: Any
    ) -> Any:
        batch: AtomicBatch | None = getattr(info.context, "atomic", None)
        if batch is None:
            return await next_(source, info, **kwargs)
        key = str(info.path.key)
        try:
            payload = await next_(source, info, **kwargs)
        except BaseException:
            batch.record(key, refused=True)
            raise
        batch.record(key, refused=bool(getattr(payload, "user_errors", None)))
        return payload


def report_parts(mutation_type: type) -> None:
    """Give every root mutation field its ``AtomicPart``: a mutation added later is part
    of ``@atomic`` operations without declaring anything."""
    for mutation in mutation_type.__strawberry_definition__.fields:  # type: ignore[attr-defined]
        if not any(isinstance(e, AtomicPart) for e in mutation.extensions):
            mutation.extensions.append(AtomicPart())
