"""Token revocation (RFC 7009): a refresh token (and so its family's access tokens) or
an access token, by the client it was issued to."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from starlette.requests import Request
from starlette.responses import Response

from auth.models import RefreshToken, RevokedAccessToken
from auth.oauth.endpoint import OAuthEndpoint
from auth.oauth.errors import NO_STORE, OAuthError
from auth.passwords import token_digest
from auth.principal_cache import principals_changed


class RevokeEndpoint(OAuthEndpoint):
    async def handle(self, request: Request) -> Response:
        form = await request.form()
        try:
            async with self.sessions() as session, session.begin():
                client = await self.client(session, request, form)
                token = str(form.get("token") or "")
                refresh = await session.scalar(
                    select(RefreshToken).where(RefreshToken.token_hash == token_digest(token))
                )
                if refresh is not None:
                    if refresh.client_id == client.id and refresh.revoked_at is None:
                        refresh.revoked_at = datetime.now(UTC)
                        principals_changed(session)
                else:
                    claims = await self.verified(token)
                    if claims is not None and claims.jti and claims.client_id == client.client_id:
                        principals_changed(session)
                        await session.execute(
                            insert(RevokedAccessToken)
                            .values(
                                jti=claims.jti,
                                expires_at=datetime.fromtimestamp(claims.expires_at, UTC),
                            )
                            .on_conflict_do_nothing()
                        )
        except OAuthError as error:
            return await self.throttle.refused(error)
        # RFC 7009 §2.2: 200 whether or not the token was valid.
        return Response(status_code=200, headers=NO_STORE)
