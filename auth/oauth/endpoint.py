"""What every OAuth endpoint shares: the auth services, sessions and the throttle."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.requests import Request

from auth.models import OAuthClient
from auth.oauth.clients import authenticate_client
from auth.oauth.throttle import Throttle
from auth.services import AuthServices
from auth.tokens import AccessClaims, InvalidToken
from domain.settings import Settings


@dataclass
class OAuthEndpoint:
    auth: AuthServices
    sessions: async_sessionmaker[AsyncSession]
    throttle: Throttle

    @property
    def settings(self) -> Settings:
        return self.auth.settings

    async def client(self, session: AsyncSession, request: Request, form: Any) -> OAuthClient:
        return await authenticate_client(session, request, form, self.throttle)

    async def verified(self, token: str) -> AccessClaims | None:
        try:
            return await self.auth.tokens.verify(token)
        except InvalidToken:
            return None
