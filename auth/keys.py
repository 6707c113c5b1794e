"""Signing keys: stored in PostgreSQL so every replica signs and verifies alike.

The newest unretired key signs. After `rotate`, the previous key is retired but
stays in the JWKS until every token it signed has expired.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from joserfc.jwk import KeySet, RSAKey
from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.models import SigningKey

ALGORITHM = "RS256"
# How long a replica trusts its cached copy of the keys before reading them again.
CACHE_SECONDS = 60.0


@dataclass(frozen=True)
class ActiveKey:
    kid: str
    key: RSAKey


class KeyStore:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], token_ttl_seconds: int) -> None:
        self.sessions = sessions
        self.publish_for = timedelta(seconds=token_ttl_seconds)
        self._cached: tuple[float, ActiveKey | None, KeySet] | None = None

    async def signing_key(self) -> ActiveKey:
        _, active, _ = await self._load()
        if active is None:
            await self.rotate()
            _, active, _ = await self._load(force=True)
        assert active is not None
        return active

    async def public_keys(self, *, refresh: bool = False) -> KeySet:
        _, _, published = await self._load(force=refresh)
        return published

    async def jwks(self) -> dict[str, Any]:
        return dict((await self.public_keys()).as_dict(private=False))

    async def rotate(self) -> str:
        """Create a new signing key and retire the current one; returns the new kid."""
        kid = f"{datetime.now(UTC):%Y%m%d}-{secrets.token_hex(4)}"
        key = RSAKey.generate_key(
            2048, parameters={"kid": kid, "use": "sig", "alg": ALGORITHM}, private=True
        )
        async with self.sessions() as session, session.begin():
            await session.execute(
                update(SigningKey)
                .where(SigningKey.retired_at.is_(None))
                .values(retired_at=datetime.now(UTC))
            )
            session.add(
                SigningKey(
                    kid=kid,
                    algorithm=ALGORITHM,
                    private_jwk=key.as_dict(private=True),
                    public_jwk=key.as_dict(private=False),
                )
            )
        self._cached = None
        return kid

    async def _load(self, *, force: bool = False) -> tuple[float, ActiveKey | None, KeySet]:
        if (
            self._cached is not None
            and not force
            and time.monotonic() - self._cached[0] < CACHE_SECONDS
        ):
            return self._cached
        cutoff = datetime.now(UTC) - self.publish_for
        async with self.sessions() as session:
            rows = list(
                await session.scalars(
                    select(SigningKey)
                    .where(or_(SigningKey.retired_at.is_(None), SigningKey.retired_at > cutoff))
                    .order_by(SigningKey.created_at.desc())
                )
            )
        active_row = next((row for row in rows if row.retired_at is None), None)
        active = (
            ActiveKey(active_row.kid, RSAKey.import_key(active_row.private_jwk))
            if active_row is not None
            else None
        )
        published = KeySet([RSAKey.import_key(row.public_jwk) for row in rows])
        self._cached = (time.monotonic(), active, published)
        return self._cached
