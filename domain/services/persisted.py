"""Persisted queries: documents registered under their SHA-256 (Apollo's protocol).

Clients send ``extensions.persistedQuery.sha256Hash`` instead of (or with) the
document. In the persisted-only mode, only documents registered ahead of time
(`portfolio persist-queries`) run: nothing else reaches the GraphQL engine.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from domain.caches import ByteLRU, text_bytes
from domain.models import PersistedQuery

# Persisted documents may be large (they are exempt from the ad-hoc size cap).
CACHE_BYTES = 16 * 1024 * 1024


def digest(document: str) -> str:
    return hashlib.sha256(document.encode()).hexdigest()


class PersistedQueryStore:
    """Content-addressed, so a cached entry can never be stale."""

    def __init__(self) -> None:
        self._cache: ByteLRU[str, str] = ByteLRU(CACHE_BYTES)

    async def find(self, session: Callable[[], Awaitable[AsyncSession]], sha256: str) -> str | None:
        """The document stored under ``sha256``; ``session`` is asked for only when it is
        not in memory, so a request whose document is (the usual case) begins no
        transaction for it."""
        document = self._cache.get(sha256)
        if document is None:
            document = await (await session()).scalar(
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
        self._cache.put(sha256, document, text_bytes(sha256, document))
