"""Per-request context: one session (one transaction), the caller, and dataloaders.

Dataloaders live on the context, so they are never shared between requests.
All of a request's SQL goes through one session; a lock serialises the batch
functions because a session runs one statement at a time.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession
from strawberry.dataloader import DataLoader

from auth import identity
from auth.principal import Principal
from domain.database import RequestTransaction
from domain.errors import DomainError
from domain.services import external_refs, reads
from domain.services.pagination import Ordering, Page, PageRequest
from domain.settings import Settings
from schema.atomic import AtomicBatch
from schema.work import SharedLoader, Work

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

# SQLSTATEs of a transaction PostgreSQL aborted because of what ran beside it: run again
# from the start, it may well succeed.
RETRYABLE_SQLSTATES = {
    "40P01": "deadlock detected",
    "40001": "could not serialize access",
}


def transaction_conflict(error: BaseException | None) -> str | None:
    """The reason, if PostgreSQL aborted ``error``'s statement as a deadlock or a
    serialization failure; None for any other error."""
    while error is not None:
        reason = RETRYABLE_SQLSTATES.get(str(getattr(error, "sqlstate", "") or ""))
        if reason is not None:
            return reason
        error = error.__cause__ or getattr(error, "orig", None)
    return None


def concurrent_change(reason: str | None) -> str:
    """What the caller is told of a change such a conflict undid."""
    return (
        f"A concurrent request changed the same data at the same moment ({reason}): "
        "this change was rolled back. Send it again."
    )


def aborted_read(reason: str | None) -> str:
    """What the caller is told of a read such a conflict aborted."""
    return f"A concurrent change of the same data aborted this read ({reason}); send it again."


class TransactionConflict(DomainError):
    """A statement PostgreSQL aborted as a deadlock or serialization failure."""

    code = "CONFLICT"


@dataclass(frozen=True)
class EdgeQuery:
    """Everything but the parent that defines a nested page; loads sharing it batch together."""

    edge: str
    filter: Any
    ordering: Ordering
    page: PageRequest


@dataclass
class Context:
    session: AsyncSession
    principal: Principal
    settings: Settings
    # The HTTP response being prepared: a field may set its status (401) and headers.
    response: Any = None
    # Whether the compiled path may answer, and which path did (for tests and logs).
    compiled: bool = True
    answered_by: str = ""
    # Rate limiting: who is charged, by what, and what is left.
    rate_limiter: Any = None
    rate_limit_key: str = "anonymous"
    requested_cost: int = 0
    operation_name: str | None = None  # for the access log
    actual_cost: int | None = None
    budget: Any = None
    # A mutation wrote (``schema.mutations.common.run``): the answers cached of reads are
    # dropped once it is committed.
    mutated: bool = False
    # The request's transaction, when the endpoint owns it: a lone mutation that is
    # refused discards it instead of paying for a savepoint (``mutations.common.run``).
    transaction: RequestTransaction | None = None
    # The operation is ``@atomic`` (``schema.atomic``): its root fields report to it.
    atomic: AtomicBatch | None = None
    # The document came from the persisted store: it may exceed max_document_bytes.
    persisted_document: bool = False
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    # Why PostgreSQL aborted a statement of the request's transaction, if running the
    # transaction again may succeed (``transaction_conflict``): the endpoint then rolls
    # it back and runs the whole request again.
    conflict: str | None = None
    _loaders: dict[Hashable, DataLoader[Any, Any]] = field(default_factory=dict)
    # Loads and statements not yet done, tracked until the transaction ends (``finish``).
    work: Work = field(default_factory=Work)

    async def run(self, work: Callable[[AsyncSession], Awaitable[V]]) -> V:
        # graphql-core cancels a field's siblings when an error nulls their parent (a
        # FORBIDDEN item of `nodes` beside a connection): a statement cancelled in flight
        # leaves the connection's transaction unusable, and every later statement of the
        # request (and of a test's shared connection) fails. So the work runs to its end
        # in a task of its own, and ``settle`` waits for it before the transaction ends.
        self.work.check()
        task = asyncio.ensure_future(self._run_locked(work))
        self.work.track(task)
        return await asyncio.shield(task)

    async def settle(self) -> None:
        """Wait for database work whose caller was cancelled (see ``run``), dataloader
        batches asked for and not yet begun included (``schema.work``)."""
        await self.work.settle()

    async def finish(self) -> None:
        """The answer is decided and the transaction about to end: no more database
        work may begin, and all that began is waited for."""
        await self.work.finish()

    async def _run_locked(self, work: Callable[[AsyncSession], Awaitable[V]]) -> V:
        async with self.lock:
            try:
                return await work(self.session)
            except DBAPIError as error:
                if self.conflicted(error):
                    raise TransactionConflict(aborted_read(self.conflict)) from error
                raise

    def conflicted(self, error: BaseException | None) -> bool:
        """Whether ``error`` is a deadlock or serialization failure; if so, noted."""
        reason = transaction_conflict(error)
        if reason is not None:
            self.conflict = reason
        return reason is not None

    def _loader(
        self, name: Hashable, batch: Callable[[Sequence[Any]], Awaitable[Sequence[Any]]]
    ) -> DataLoader[Any, Any]:
        loader = self._loaders.get(name)
        if loader is None:
            loader = self._loaders[name] = SharedLoader(batch, self.work)
        return loader

    def by_id(self, model: Any) -> DataLoader[int, Any]:
        async def batch(ids: Sequence[int]) -> list[Any]:
            found = await self.run(lambda s: reads.by_ids(s, model, ids))
            return [found.get(i) for i in ids]

        return self._loader(("by_id", model), batch)

    def by_key(self, model: Any, column: Any) -> DataLoader[str, Any]:
        async def batch(keys: Sequence[str]) -> list[Any]:
            found = await self.run(lambda s: reads.by_keys(s, model, column, keys))
            return [found.get(k) for k in keys]

        return self._loader(("by_key", model), batch)

    def edge(self) -> DataLoader[tuple[int, EdgeQuery], Page[Any]]:
        async def batch(keys: Sequence[tuple[int, EdgeQuery]]) -> list[Page[Any]]:
            groups: dict[EdgeQuery, list[int]] = defaultdict(list)
            for parent_id, query in keys:
                groups[query].append(parent_id)
            answers: dict[tuple[int, EdgeQuery], Page[Any]] = {}
            for query, parent_ids in groups.items():
                pages = await self.run(
                    lambda s, q=query, p=parent_ids: reads.edge_pages(  # type: ignore[misc]
                        s,
                        reads.EDGES[q.edge],
                        p,
                        filter=q.filter,
                        ordering=q.ordering,
                        page=q.page,
                    )
                )
                for parent_id in parent_ids:
                    answers[(parent_id, query)] = pages.get(parent_id) or Page()
            return [answers[key] for key in keys]

        return self._loader("edge", batch)

    def user_roles(self) -> DataLoader[int, list[Any]]:
        async def batch(ids: Sequence[int]) -> list[list[Any]]:
            found = await self.run(lambda s: identity.user_roles(s, list(ids)))
            return [found.get(i, []) for i in ids]

        return self._loader("user_roles", batch)

    def external_refs(self, entity_type: str) -> DataLoader[int, list[Any]]:
        async def batch(ids: Sequence[int]) -> list[list[Any]]:
            found = await self.run(lambda s: external_refs.refs_of(s, entity_type, ids))
            return [found.get(i, []) for i in ids]

        return self._loader(("external_refs", entity_type), batch)

    def blocked_by(self) -> DataLoader[int, list[Any]]:
        async def batch(ids: Sequence[int]) -> list[list[Any]]:
            found = await self.run(lambda s: reads.blocking_constraints(s, ids))
            return [found.get(i, []) for i in ids]

        return self._loader("blocked_by", batch)

    def latest_measurement(self) -> DataLoader[int, Any]:
        async def batch(ids: Sequence[int]) -> list[Any]:
            found = await self.run(lambda s: reads.latest_measurements(s, ids))
            return [found.get(i) for i in ids]

        return self._loader("latest_measurement", batch)

    def trend(self) -> DataLoader[tuple[int, int], reads.Trend]:
        async def batch(keys: Sequence[tuple[int, int]]) -> list[reads.Trend]:
            groups: dict[int, list[int]] = defaultdict(list)
            for kpi_id, days in keys:
                groups[days].append(kpi_id)
            answers: dict[tuple[int, int], reads.Trend] = {}
            for days, kpi_ids in groups.items():
                found = await self.run(lambda s, d=days, k=kpi_ids: reads.trends(s, k, d))  # type: ignore[misc]
                answers.update({(kpi_id, days): found[kpi_id] for kpi_id in kpi_ids})
            return [answers[key] for key in keys]

        return self._loader("trend", batch)

    def series(
        self,
    ) -> DataLoader[tuple[int, datetime, datetime, reads.SeriesBucket], list[reads.SeriesPoint]]:
        SeriesKey = tuple[int, datetime, datetime, reads.SeriesBucket]

        async def batch(keys: Sequence[SeriesKey]) -> list[list[reads.SeriesPoint]]:
            groups: dict[tuple[datetime, datetime, reads.SeriesBucket], list[int]] = defaultdict(
                list
            )
            for kpi_id, start, end, bucket in keys:
                groups[(start, end, bucket)].append(kpi_id)
            answers: dict[SeriesKey, list[reads.SeriesPoint]] = {}
            for (start, end, bucket), kpi_ids in groups.items():
                found = await self.run(
                    lambda s, k=kpi_ids, a=start, b=end, c=bucket: reads.series(s, k, a, b, c)  # type: ignore[misc]
                )
                answers.update({(i, start, end, bucket): found.get(i, []) for i in kpi_ids})
            return [answers[key] for key in keys]

        return self._loader("series", batch)
