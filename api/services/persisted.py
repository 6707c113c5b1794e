"""Persisted queries: documents registered under their SHA-256 (Apollo's protocol).

Clients send ``extensions.persistedQuery.sha256Hash`` instead of (or with) the
document. In the persisted-only mode, only documents registered ahead of time
(`portfolio persist-queries`) run: nothing else reaches the GraphQL engine.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from api.models import PersistedQuery

CACHE_SIZE = 4096


def digest(document: str) -> str:
    return hashlib.sha256(document.encode()).hexdigest()


class PersistedQueryStore:
    """Content-addressed, so a cached entry can never be stale."""

    def __init__(self) -> None:
        self._cache: OrderedDict[str, str] = OrderedDict()

    async def find(self, session: AsyncSession, sha256: str) -> str | None:
        document = self._cache.get(sha256)
        if document is None:
            document = await session.scalar(
                select(PersistedQuery.document).where(PersistedQuery.sha256 == sha256)
            )
            if document is not None:
                self._remember(sha256, document)
        return document

    async def register(self, session: AsyncSession, document: str) -> str:
        sha256 = digest(document)
        await session.execute(
            insert(PersistedQuery).values(sha256=sha256, document=document).on_conflict_do_nothing()
        )
        self._remember(sha256, document)
        return sha256

    def _remember(self, sha256: str, document: str) -> None:
        self._cache[sha256] = document
        self._cache.move_to_end(sha256)
        while len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)
