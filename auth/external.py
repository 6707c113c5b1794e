"""External OpenID Connect issuers: discovery, JWKS fetched and cached, key rotation."""

from __future__ import annotations

import time

import httpx
from joserfc.jwk import KeySet

from domain.settings import ExternalIssuer

CACHE_SECONDS = 300.0
# A token with an unknown kid may make us re-read the JWKS, at most this often.
REFRESH_INTERVAL_SECONDS = 30.0


class ExternalIssuers:
    def __init__(
        self,
        issuers: list[ExternalIssuer],
        http: httpx.AsyncClient | None = None,
        *,
        refresh_interval: float = REFRESH_INTERVAL_SECONDS,
    ) -> None:
        self.issuers = {issuer.issuer.rstrip("/"): issuer for issuer in issuers}
        self._http = http
        self.refresh_interval = refresh_interval
        self._cache: dict[str, tuple[float, KeySet]] = {}

    @property
    def http(self) -> httpx.AsyncClient:
        """Made on first use: its TLS context costs ~25 ms of CPU, and a process whose
        callers never present an external token never needs it."""
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=5.0)
        return self._http

    def config(self, issuer: str | None) -> ExternalIssuer | None:
        return self.issuers.get((issuer or "").rstrip("/"))

    async def key_set(self, issuer: ExternalIssuer, *, refresh: bool = False) -> KeySet:
        cached = self._cache.get(issuer.issuer)
        age = time.monotonic() - cached[0] if cached else None
        if cached and age is not None:
            fresh = age < CACHE_SECONDS
            too_soon = age < self.refresh_interval
            if (fresh and not refresh) or too_soon:
                return cached[1]
        discovery = await self.http.get(
            f"{issuer.issuer.rstrip('/')}/.well-known/openid-configuration"
        )
        discovery.raise_for_status()
        jwks = await self.http.get(discovery.json()["jwks_uri"])
        jwks.raise_for_status()
        key_set = KeySet.import_key_set(jwks.json())
        self._cache[issuer.issuer] = (time.monotonic(), key_set)
        return key_set

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
