"""The authorization endpoint: a server-rendered sign-in and consent page that issues a
one-time code (authorization code grant, PKCE S256 required)."""

from __future__ import annotations

import hmac
import secrets
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from auth.models import AuthorizationCode, OAuthClient, Role, RoleGrant, User
from auth.oauth.clients import redirect_uri_problem
from auth.oauth.endpoint import OAuthEndpoint
from auth.oauth.pages import error_page, sign_in_page
from auth.oauth.throttle import Limit
from auth.passwords import token_digest, verify_secret_off_loop

CODE_TTL = timedelta(seconds=60)
CSRF_COOKIE = "pg_csrf"


class AuthorizeEndpoint(OAuthEndpoint):
    async def handle(self, request: Request) -> Response:
        params = dict(request.query_params)
        sent = list(params.values())
        if request.method == "POST":
            sent.extend(v for v in (await request.form()).values() if isinstance(v, str))
        if any("\x00" in value for value in sent):
            # PostgreSQL cannot hold NUL in text: a lookup by it would fail in the database.
            return error_page("A parameter contains a NUL character.")
        async with self.sessions() as session, session.begin():
            client = await session.scalar(
                select(OAuthClient).where(OAuthClient.client_id == params.get("client_id", ""))
            )
            redirect_uri = params.get("redirect_uri", "")
            if client is None or not client.is_active or redirect_uri not in client.redirect_uris:
                # Never redirect to an unregistered address (RFC 6749 §4.1.2.1).
                return error_page("Unknown client or redirect URI.")
            problem = redirect_uri_problem(redirect_uri)
            if problem:  # registered before registration checked it: never redirect there
                return error_page(problem)
            problem = self._check_request(params, client)
            if problem:
                return _redirect(
                    redirect_uri, params, error="invalid_request", error_description=problem
                )
            if request.method == "GET":
                return self._sign_in_page(client, params)
            return await self._sign_in(session, request, client, params)

    def _check_request(self, params: dict[str, str], client: OAuthClient) -> str | None:
        if params.get("response_type") != "code":
            return "response_type must be code."
        if "authorization_code" not in client.grant_types:
            return "This client may not use the authorization code grant."
        if not params.get("code_challenge") or params.get("code_challenge_method") != "S256":
            return "PKCE with code_challenge_method=S256 is required."
        requested = set(params.get("scope", "").split())
        if not requested <= set(client.scopes):
            return f"Not allowed: {' '.join(sorted(requested - set(client.scopes)))}."
        return None

    def _sign_in_page(
        self, client: OAuthClient, params: dict[str, str], message: str = "", status: int = 200
    ) -> Response:
        csrf = secrets.token_urlsafe(24)
        response = sign_in_page(client.name, params.get("scope", "").split(), csrf, message, status)
        response.set_cookie(
            CSRF_COOKIE,
            csrf,
            httponly=True,
            samesite="strict",
            path="/oauth/authorize",
            secure=self.settings.issuer.startswith("https://"),
        )
        return response

    async def _sign_in(
        self, session: AsyncSession, request: Request, client: OAuthClient, params: dict[str, str]
    ) -> Response:
        form = await request.form()
        cookie = request.cookies.get(CSRF_COOKIE, "")
        sent = str(form.get("csrf_token") or "")
        if not cookie or not hmac.compare_digest(cookie, sent):
            return error_page("The form expired; start again.")
        redirect_uri = params["redirect_uri"]
        if form.get("decision") == "deny":
            return _redirect(redirect_uri, params, error="access_denied")
        email = str(form.get("email") or "").strip().lower()
        address = request.client.host if request.client else "unknown"
        max_failures, window = self.settings.login_max_failures, self.settings.login_window_seconds
        keys = [
            Limit(f"account:{email}", max_failures, window),
            Limit(f"address:{address}", max_failures, window),
        ]
        retry_after = await self.throttle.throttled(session, keys)
        if retry_after is not None:
            page = self._sign_in_page(
                client, params, "Too many failed sign-ins; try again later.", status=429
            )
            page.headers["Retry-After"] = str(retry_after)
            return page
        user = await session.scalar(select(User).where(User.email == email))
        password = str(form.get("password") or "")
        valid = await verify_secret_off_loop(user.password_hash if user else None, password)
        if not valid or user is None or not user.is_active:
            await self.throttle.fail(session, keys)
            return self._sign_in_page(client, params, "Wrong e-mail or password.", status=401)
        role_scopes = await session.scalars(
            select(Role.scopes)
            .join(RoleGrant, RoleGrant.role_id == Role.id)
            .where(RoleGrant.user_id == user.id, Role.archived_at.is_(None))
        )
        # Only what the user's roles allow is granted, whatever was asked.
        allowed = {scope for scopes in role_scopes for scope in scopes}
        granted = sorted(set(params.get("scope", "").split() or client.scopes) & allowed)
        code = secrets.token_urlsafe(32)
        session.add(
            AuthorizationCode(
                code_hash=token_digest(code),
                client_id=client.id,
                user_id=user.id,
                redirect_uri=redirect_uri,
                scopes=granted,
                code_challenge=params["code_challenge"],
                nonce=params.get("nonce"),
                expires_at=datetime.now(UTC) + CODE_TTL,
            )
        )
        return _redirect(redirect_uri, params, code=code)


def _redirect(redirect_uri: str, params: dict[str, str], **values: str) -> RedirectResponse:
    if params.get("state"):
        values["state"] = params["state"]
    separator = "&" if "?" in redirect_uri else "?"
    return RedirectResponse(f"{redirect_uri}{separator}{urlencode(values)}", status_code=303)
