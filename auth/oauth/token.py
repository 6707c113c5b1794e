"""The token endpoint: client credentials, authorization code with PKCE, and refresh
tokens rotated at every use (a reused one revokes its whole family)."""

from __future__ import annotations

import hmac
import secrets
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from authlib.oauth2.rfc7636 import create_s256_code_challenge
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from auth.models import AuthorizationCode, OAuthClient, RefreshToken, User
from auth.oauth.endpoint import OAuthEndpoint
from auth.oauth.errors import NO_STORE, OAuthError
from auth.passwords import token_digest
from auth.principal_cache import principals_changed

GRANTS = {"client_credentials", "authorization_code", "refresh_token"}


class TokenEndpoint(OAuthEndpoint):
    async def handle(self, request: Request) -> Response:
        form = await request.form()
        try:
            async with self.sessions() as session, session.begin():
                client = await self.client(session, request, form)
                grant = form.get("grant_type")
                if grant not in client.grant_types:
                    raise OAuthError(
                        "unauthorized_client" if grant in GRANTS else "unsupported_grant_type",
                        f"This client may not use the {grant} grant.",
                    )
                body: dict[str, Any] | OAuthError
                if grant == "client_credentials":
                    body = await self._client_credentials(client, form)
                elif grant == "authorization_code":
                    body = await self._authorization_code(session, client, form)
                else:
                    body = await self._refresh(session, client, form)
        except OAuthError as error:
            return await self.throttle.refused(error)
        if isinstance(body, OAuthError):  # refused, with changes that must stay (reuse)
            return body.response()
        return JSONResponse(body, headers=NO_STORE)

    def _scopes(self, requested: Any, allowed: frozenset[str]) -> frozenset[str]:
        if not requested:
            return allowed
        asked = frozenset(str(requested).split())
        if not asked <= allowed:
            raise OAuthError("invalid_scope", f"Not allowed: {' '.join(sorted(asked - allowed))}.")
        return asked

    async def _issue(
        self,
        session: AsyncSession,
        client: OAuthClient,
        user_id: int | None,
        scopes: frozenset[str],
        *,
        family: str | None = None,
    ) -> dict[str, Any]:
        refreshable = user_id is not None and "refresh_token" in client.grant_types
        if refreshable:
            # The access token names its family, so it dies with the family (reuse).
            family = family or str(uuid.uuid4())
        token, ttl = await self.auth.tokens.issue(
            client_id=client.client_id,
            user_id=user_id,
            scopes=scopes,
            family=family if refreshable else None,
        )
        body: dict[str, Any] = {
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": ttl,
            "scope": " ".join(sorted(scopes)),
        }
        if refreshable:
            assert family is not None
            refresh = secrets.token_urlsafe(32)
            session.add(
                RefreshToken(
                    token_hash=token_digest(refresh),
                    family_id=family,
                    client_id=client.id,
                    user_id=user_id,
                    scopes=sorted(scopes),
                    expires_at=datetime.now(UTC)
                    + timedelta(seconds=self.settings.refresh_token_ttl_seconds),
                )
            )
            body["refresh_token"] = refresh
        return body

    async def _client_credentials(self, client: OAuthClient, form: Any) -> dict[str, Any]:
        if client.secret_hash is None:
            raise OAuthError("unauthorized_client", "Public clients cannot use this grant.")
        scopes = self._scopes(form.get("scope"), frozenset(client.scopes))
        token, ttl = await self.auth.tokens.issue(
            client_id=client.client_id, user_id=None, scopes=scopes
        )
        return {
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": ttl,
            "scope": " ".join(sorted(scopes)),
        }

    async def _authorization_code(
        self, session: AsyncSession, client: OAuthClient, form: Any
    ) -> dict[str, Any]:
        code = await session.scalar(
            select(AuthorizationCode)
            .where(AuthorizationCode.code_hash == token_digest(str(form.get("code") or "")))
            .with_for_update()
        )
        if code is None or code.client_id != client.id:
            raise OAuthError("invalid_grant", "Unknown authorization code.")
        if code.used_at is not None:
            raise OAuthError("invalid_grant", "This authorization code was already used.")
        if code.expires_at < datetime.now(UTC):
            raise OAuthError("invalid_grant", "This authorization code has expired.")
        if form.get("redirect_uri") != code.redirect_uri:
            raise OAuthError("invalid_grant", "redirect_uri does not match the authorization.")
        verifier = str(form.get("code_verifier") or "")
        expected = create_s256_code_challenge(verifier) if verifier else ""
        if not verifier or not hmac.compare_digest(expected, code.code_challenge):
            raise OAuthError("invalid_grant", "The PKCE code_verifier does not match.")
        code.used_at = datetime.now(UTC)
        user = await session.get(User, code.user_id)
        if user is None or not user.is_active:
            raise OAuthError("invalid_grant", "The user is disabled.")
        return await self._issue(session, client, user.id, frozenset(code.scopes))

    async def _refresh(
        self, session: AsyncSession, client: OAuthClient, form: Any
    ) -> dict[str, Any] | OAuthError:
        presented = await session.scalar(
            select(RefreshToken)
            .where(RefreshToken.token_hash == token_digest(str(form.get("refresh_token") or "")))
            .with_for_update()
        )
        now = datetime.now(UTC)
        if presented is None or presented.client_id != client.id:
            raise OAuthError("invalid_grant", "Unknown refresh token.")
        if presented.rotated_at is not None or presented.revoked_at is not None:
            # Reuse of a rotated token: someone holds a copy. End the whole family.
            principals_changed(session)
            await session.execute(
                update(RefreshToken)
                .where(
                    RefreshToken.family_id == presented.family_id, RefreshToken.revoked_at.is_(None)
                )
                .values(revoked_at=now)
            )
            # Returned, not raised: the revocation must be committed.
            return OAuthError("invalid_grant", "This refresh token was already used.")
        if presented.expires_at < now:
            raise OAuthError("invalid_grant", "This refresh token has expired.")
        user = await session.get(User, presented.user_id) if presented.user_id else None
        if user is None or not user.is_active:
            raise OAuthError("invalid_grant", "The user is disabled.")
        scopes = self._scopes(form.get("scope"), frozenset(presented.scopes))
        presented.rotated_at = now
        return await self._issue(session, client, user.id, scopes, family=presented.family_id)
