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

from sqlalchemy.ext.asyncio import AsyncSession
from strawberry.dataloader import DataLoader

from api.services import identity, reads
from api.services.pagination import Ordering, Page, PageRequest
from api.settings import Settings
from auth.principal import Principal

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


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
    # A mutation ran: the answers cached of reads are dropped once it is committed.
    mutated: bool = False
    # The document came from the persisted store: it may exceed max_document_bytes.
    persisted_document: bool = False
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _loaders: dict[Hashable, DataLoader[Any, Any]] = field(default_factory=dict)

    async def run(self, work: Callable[[AsyncSession], Awaitable[V]]) -> V:
        async with self.lock:
            return await work(self.session)

    def _loader(
        self, name: Hashable, batch: Callable[[Sequence[Any]], Awaitable[Sequence[Any]]]
    ) -> DataLoader[Any, Any]:
        loader = self._loaders.get(name)
        if loader is None:
            loader = self._loaders[name] = DataLoader(load_fn=batch)
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
