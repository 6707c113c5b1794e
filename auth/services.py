"""The authentication services of one process, built once at start-up."""

from __future__ import annotations

from dataclasses import dataclass

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from auth.external import ExternalIssuers
from auth.keys import KeyStore
from auth.tokens import TokenService
from domain.settings import Settings


@dataclass
class AuthServices:
    settings: Settings
    keys: KeyStore
    tokens: TokenService
    external: ExternalIssuers

    @classmethod
    def create(
        cls,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession],
        http: httpx.AsyncClient | None = None,
    ) -> AuthServices:
        keys = KeyStore(sessions, settings.access_token_ttl_seconds)
        external = ExternalIssuers(settings.external_issuers, http)
        return cls(settings, keys, TokenService(keys, settings, external), external)
