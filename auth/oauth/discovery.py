"""What a client learns before it asks: the server's metadata (RFC 8414, and the OpenID
discovery document) and its signing keys (JWKS)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse

from auth.scopes import Scope
from auth.services import AuthServices


class Discovery:
    def __init__(self, auth: AuthServices) -> None:
        self.auth = auth

    async def metadata(self, request: Request) -> JSONResponse:
        issuer = self.auth.settings.issuer.rstrip("/")
        return JSONResponse(
            {
                "issuer": issuer,
                "authorization_endpoint": f"{issuer}/oauth/authorize",
                "token_endpoint": f"{issuer}/oauth/token",
                "revocation_endpoint": f"{issuer}/oauth/revoke",
                "introspection_endpoint": f"{issuer}/oauth/introspect",
                "jwks_uri": f"{issuer}/.well-known/jwks.json",
                "grant_types_supported": [
                    "authorization_code",
                    "client_credentials",
                    "refresh_token",
                ],
                "response_types_supported": ["code"],
                "code_challenge_methods_supported": ["S256"],
                "token_endpoint_auth_methods_supported": [
                    "client_secret_basic",
                    "client_secret_post",
                    "none",
                ],
                "scopes_supported": [scope.value for scope in Scope],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
            }
        )

    async def jwks(self, request: Request) -> JSONResponse:
        return JSONResponse(
            await self.auth.keys.jwks(), headers={"Cache-Control": "public, max-age=300"}
        )
