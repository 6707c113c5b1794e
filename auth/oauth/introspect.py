"""Token introspection (RFC 7662): a client learns about its own tokens; a resource
server holding ``tokens:introspect`` about every token presented to it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from auth.models import RefreshToken, User
from auth.oauth.endpoint import OAuthEndpoint
from auth.oauth.errors import NO_STORE, OAuthError
from auth.passwords import token_digest
from auth.principal import resolve_principal
from auth.scopes import Scope
from auth.tokens import InvalidToken
from domain.database import session_driver


class IntrospectEndpoint(OAuthEndpoint):
    async def handle(self, request: Request) -> Response:
        form = await request.form()
        inactive = JSONResponse({"active": False}, headers=NO_STORE)
        try:
            async with self.sessions() as session, session.begin():
                client = await self.client(session, request, form)
                if client.secret_hash is None:
                    raise OAuthError("invalid_client", "Public clients cannot introspect.", 401)
                # RFC 7662 §4: a client learns about its own tokens only; a resource
                # server (tokens:introspect) about every token presented to it.
                everyone = Scope.TOKENS_INTROSPECT.value in client.scopes
                token = str(form.get("token") or "")
                refresh = await session.scalar(
                    select(RefreshToken).where(RefreshToken.token_hash == token_digest(token))
                )
                if refresh is not None:
                    if (
                        (refresh.client_id != client.id and not everyone)
                        or refresh.rotated_at
                        or refresh.revoked_at
                        or refresh.expires_at < datetime.now(UTC)
                    ):
                        return inactive
                    return JSONResponse(
                        {
                            "active": True,
                            "token_type": "refresh_token",
                            "scope": " ".join(refresh.scopes),
                            "exp": int(refresh.expires_at.timestamp()),
                            "sub": f"user:{refresh.user_id}",
                        },
                        headers=NO_STORE,
                    )
                claims = await self.verified(token)
                if claims is None or (claims.client_id != client.client_id and not everyone):
                    return inactive
                try:
                    # Revoked or disabled: asked of the database, never of memory, since
                    # the answer is what another server will act on.
                    await resolve_principal(await session_driver(session), claims)
                except InvalidToken:
                    return inactive
                body: dict[str, Any] = {
                    "active": True,
                    "token_type": "Bearer",
                    "scope": " ".join(sorted(claims.scopes)),
                    "client_id": claims.client_id,
                    "sub": claims.subject,
                    "exp": claims.expires_at,
                    "iat": claims.issued_at,
                    "iss": claims.issuer,
                    "aud": claims.raw.get("aud"),
                    "jti": claims.jti,
                }
                if claims.user_id is not None:
                    user = await session.get(User, claims.user_id)
                    body["username"] = user.email if user else None
                return JSONResponse(body, headers=NO_STORE)
        except OAuthError as error:
            return await self.throttle.refused(error)
