"""The authorization server's routes, each endpoint with its own short transaction."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.routing import Route

from auth.oauth.authorize import AuthorizeEndpoint
from auth.oauth.discovery import Discovery
from auth.oauth.introspect import IntrospectEndpoint
from auth.oauth.revoke import RevokeEndpoint
from auth.oauth.throttle import Throttle
from auth.oauth.token import TokenEndpoint
from auth.services import AuthServices


@dataclass
class AuthorizationServer:
    auth: AuthServices
    sessions: async_sessionmaker[AsyncSession]
    throttle: Throttle = field(init=False)

    def __post_init__(self) -> None:
        self.throttle = Throttle(self.auth.settings, self.sessions)

    def routes(self) -> list[Route]:
        shared = (self.auth, self.sessions, self.throttle)
        # Endpoints that authenticate a client are admitted by the throttle first.
        admitted = self.throttle.admitting
        discovery = Discovery(self.auth)
        return [
            Route("/oauth/token", admitted(TokenEndpoint(*shared).handle), methods=["POST"]),
            Route("/oauth/authorize", AuthorizeEndpoint(*shared).handle, methods=["GET", "POST"]),
            Route("/oauth/revoke", admitted(RevokeEndpoint(*shared).handle), methods=["POST"]),
            Route(
                "/oauth/introspect", admitted(IntrospectEndpoint(*shared).handle), methods=["POST"]
            ),
            Route("/.well-known/oauth-authorization-server", discovery.metadata, methods=["GET"]),
            Route("/.well-known/openid-configuration", discovery.metadata, methods=["GET"]),
            Route("/.well-known/jwks.json", discovery.jwks, methods=["GET"]),
        ]
