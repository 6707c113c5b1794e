"""Signing keys: stored in PostgreSQL so every replica signs and verifies alike.

The newest unretired key signs. After `rotate`, the previous key is retired but
stays in the JWKS until every token it signed has expired.

Verifying never reads the database nor imports a key on its own: the published
public keys are held in memory as imported key objects, read again when they are
older than ``CACHE_SECONDS`` or when a token names a key we do not hold (at most
once per ``REFRESH_INTERVAL_SECONDS``). A forged token thus costs one signature
check against a key already in memory. The private key is read and imported only
to sign, and only when the signing key changes.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from joserfc.jwk import KeySet, RSAKey
from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from domain.models import SigningKey

ALGORITHM = "RS256"
# How long a replica trusts its copy of the keys before reading them again: a key
# rotated on another replica is picked up by then (sooner through an unknown kid).
CACHE_SECONDS = 60.0
# A token naming an unknown kid re-reads the keys at most this often, so tokens
# with made-up kids cannot turn into one database read each (a flood of them costs a
# replica one small read a second). The price: a token signed with a key rotated on
# another replica within this second after our last read is refused until it passes.
REFRESH_INTERVAL_SECONDS = 1.0


@dataclass(frozen=True)
class ActiveKey:
    kid: str
    key: RSAKey


class KeyStore:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        token_ttl_seconds: int,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.sessions = sessions
        # A replica may sign with a key for CACHE_SECONDS after another retired it.
        self.publish_for = timedelta(seconds=token_ttl_seconds + CACHE_SECONDS)
        self.clock = clock
        # Published public keys, imported, by kid; and when they were read (None: never).
        self._public: dict[str, RSAKey] = {}
        self._key_set = KeySet([])
        self._public_read_at: float | None = None
        self._public_lock = asyncio.Lock()
        # The signing key (private), imported; and when its row was last checked.
        self._signing: ActiveKey | None = None
        self._signing_read_at: float | None = None
        self._signing_lock = asyncio.Lock()

    # ------------------------------------------------------------ signing

    async def signing_key(self) -> ActiveKey:
        """The key to sign with; imported again only when the active key changed."""
        if self._signing is not None and not self._stale(self._signing_read_at, CACHE_SECONDS):
            return self._signing
        async with self._signing_lock:
            if self._signing is None or self._stale(self._signing_read_at, CACHE_SECONDS):
                await self._read_signing_key()
        assert self._signing is not None
        return self._signing

    async def _read_signing_key(self) -> None:
        read_at = self.clock()
        async with self.sessions() as session:
            kid = await session.scalar(
                select(SigningKey.kid)
                .where(SigningKey.retired_at.is_(None))
                .order_by(SigningKey.created_at.desc())
                .limit(1)
            )
        if kid is None:
            kid = await self.rotate()
        if self._signing is None or self._signing.kid != kid:
            async with self.sessions() as session:
                private = await session.scalar(
                    select(SigningKey.private_jwk).where(SigningKey.kid == kid)
                )
            assert private is not None
            self._signing = ActiveKey(kid, RSAKey.import_key(private))
        self._signing_read_at = read_at

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
        # This replica signs with the new key at once and knows its public half.
        self._signing, self._signing_read_at = ActiveKey(kid, key), self.clock()
        self._public_read_at = None
        return kid

    # ------------------------------------------------------------ verifying

    async def public_key(self, kid: str) -> RSAKey | None:
        """The published key ``kid``, from memory; an unknown kid re-reads the keys, at
        most once per REFRESH_INTERVAL_SECONDS (concurrent callers share one read)."""
        await self._fresh_public_keys()
        key = self._public.get(kid)
        if key is None and self._stale(self._public_read_at, REFRESH_INTERVAL_SECONDS):
            async with self._public_lock:
                if kid not in self._public and self._stale(
                    self._public_read_at, REFRESH_INTERVAL_SECONDS
                ):
                    await self._read_public_keys()
            key = self._public.get(kid)
        return key

    async def public_keys(self) -> KeySet:
        await self._fresh_public_keys()
        return self._key_set

    async def jwks(self) -> dict[str, Any]:
        return dict((await self.public_keys()).as_dict(private=False))

    async def _fresh_public_keys(self) -> None:
        if not self._stale(self._public_read_at, CACHE_SECONDS):
            return
        async with self._public_lock:
            if self._stale(self._public_read_at, CACHE_SECONDS):
                await self._read_public_keys()

    async def _read_public_keys(self) -> None:
        read_at = self.clock()
        cutoff = datetime.now(UTC) - self.publish_for
        async with self.sessions() as session:
            rows = (
                await session.execute(
                    select(SigningKey.kid, SigningKey.public_jwk)
                    .where(or_(SigningKey.retired_at.is_(None), SigningKey.retired_at > cutoff))
                    .order_by(SigningKey.created_at.desc())
                )
            ).all()
        # Keys already imported are kept as they are: a key's content never changes.
        public = {kid: self._public.get(kid) or RSAKey.import_key(jwk) for kid, jwk in rows}
        self._public, self._key_set = public, KeySet(list(public.values()))
        self._public_read_at = read_at

    def _stale(self, read_at: float | None, seconds: float) -> bool:
        return read_at is None or self.clock() - read_at >= seconds
