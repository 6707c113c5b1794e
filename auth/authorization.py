"""The built-in OAuth 2.1 authorization server, as Starlette routes (async all the way).

Grants: client credentials (services), authorization code with PKCE S256 (frontends,
through a server-rendered login and consent page), refresh tokens rotated at every
use with reuse detection (a reused token revokes its whole family). Endpoints:
token, authorize, revocation (RFC 7009), introspection (RFC 7662), metadata
(RFC 8414, and the OpenID discovery document) and JWKS.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import html
import math
import re
import secrets
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from authlib.oauth2.rfc7636 import create_s256_code_challenge
from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from auth.passwords import token_digest, verify_secret_off_loop
from auth.scopes import Scope
from auth.services import AuthServices
from auth.tokens import InvalidToken
from domain.models import (
    AuthorizationCode,
    LoginThrottle,
    OAuthClient,
    RefreshToken,
    RevokedAccessToken,
    Role,
    RoleGrant,
    User,
)

CODE_TTL = timedelta(seconds=60)
CSRF_COOKIE = "pg_csrf"
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


class OAuthError(Exception):
    """An RFC 6749 §5.2 error response."""

    def __init__(
        self,
        error: str,
        description: str,
        status: int = 400,
        basic: bool = False,
        retry_after: int | None = None,
    ):
        super().__init__(description)
        self.error, self.description, self.status, self.basic = error, description, status, basic
        self.retry_after = retry_after

    def response(self) -> JSONResponse:
        headers = dict(NO_STORE)
        if self.basic:
            headers["WWW-Authenticate"] = 'Basic realm="portfolio-graph"'
        if self.retry_after is not None:
            headers["Retry-After"] = str(self.retry_after)
        return JSONResponse(
            {"error": self.error, "error_description": self.description},
            status_code=self.status,
            headers=headers,
        )


class ClientAuthenticationFailed(OAuthError):
    """invalid_client, to be counted against ``limits`` once the request's transaction
    has rolled back."""

    def __init__(self, basic: bool, limits: list[Limit]) -> None:
        super().__init__("invalid_client", "Client authentication failed.", 401, basic)
        self.limits = limits


@dataclass(frozen=True)
class Limit:
    """At most ``max_failures`` failures under ``key`` in a window of ``window_seconds``
    (starting at the first failure); beyond it, requests under that key get 429."""

    key: str
    max_failures: int
    window_seconds: int


# A client id longer than any registered one is refused before it reaches the database.
CLIENT_ID_MAX_LENGTH = 64


@dataclass
class AuthorizationServer:
    auth: AuthServices
    sessions: async_sessionmaker[AsyncSession]
    # Client authentications under way in this process, per throttle key (``_admit``).
    _in_flight: Counter[str] = field(default_factory=Counter)
    _finished: asyncio.Condition = field(default_factory=asyncio.Condition)
    _released: int = 0  # attempts finished so far (their failures, if any, recorded)

    @property
    def settings(self) -> Any:
        return self.auth.settings

    def routes(self) -> list[Route]:
        return [
            Route("/oauth/token", self._admitting(self.token), methods=["POST"]),
            Route("/oauth/authorize", self.authorize, methods=["GET", "POST"]),
            Route("/oauth/revoke", self._admitting(self.revoke), methods=["POST"]),
            Route("/oauth/introspect", self._admitting(self.introspect), methods=["POST"]),
            Route("/.well-known/oauth-authorization-server", self.metadata, methods=["GET"]),
            Route("/.well-known/openid-configuration", self.metadata, methods=["GET"]),
            Route("/.well-known/jwks.json", self.jwks, methods=["GET"]),
        ]

    # ------------------------------------------------------------ discovery

    async def metadata(self, request: Request) -> JSONResponse:
        issuer = self.settings.issuer.rstrip("/")
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

    # ------------------------------------------------------------ token endpoint

    async def token(self, request: Request) -> Response:
        form = await request.form()
        try:
            async with self.sessions() as session, session.begin():
                client = await self._client(session, request, form)
                grant = form.get("grant_type")
                if grant not in client.grant_types:
                    raise OAuthError(
                        "unauthorized_client"
                        if grant in {"client_credentials", "authorization_code", "refresh_token"}
                        else "unsupported_grant_type",
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
            return await self._refused(error)
        if isinstance(body, OAuthError):  # refused, with changes that must stay (reuse)
            return body.response()
        return JSONResponse(body, headers=NO_STORE)

    async def _client(self, session: AsyncSession, request: Request, form: Any) -> OAuthClient:
        """Authenticate the client: HTTP Basic, form secret, or a public client's id.
        Failures are counted by ``_refused`` (see ``_admit`` for the policy)."""
        client_id, secret, basic = _credentials(request, form)
        by_address, by_client = self._limits(request, client_id)
        if by_client is None:
            raise ClientAuthenticationFailed(basic, [by_address])
        client = await session.scalar(select(OAuthClient).where(OAuthClient.client_id == client_id))
        usable = client is not None and client.is_active and client.archived_at is None
        if client is not None and client.secret_hash is None and usable and not secret:
            return client  # a public client: it proves itself with PKCE instead
        if (
            not await verify_secret_off_loop(
                client.secret_hash if client else None, str(secret or "")
            )
            or not usable
        ):
            # Only registered ids are counted, so made-up ids add no rows.
            limits = [by_address, by_client] if client is not None else [by_address]
            raise ClientAuthenticationFailed(basic, limits)
        assert client is not None
        return client

    def _limits(self, request: Request, client_id: str) -> tuple[Limit, Limit | None]:
        """The throttles of a client authentication: by address, and by client id (None
        for an id that cannot be registered)."""
        address = request.client.host if request.client else "unknown"
        by_address = Limit(
            f"client-address:{address}",
            self.settings.login_max_failures,
            self.settings.login_window_seconds,
        )
        if not client_id or len(client_id) > CLIENT_ID_MAX_LENGTH or "\x00" in client_id:
            return by_address, None
        by_client = Limit(
            f"client:{client_id}",
            self.settings.client_auth_max_failures,
            self.settings.client_auth_window_seconds,
        )
        return by_address, by_client

    def _admitting(
        self, endpoint: Callable[[Request], Awaitable[Response]]
    ) -> Callable[[Request], Awaitable[Response]]:
        """``endpoint`` (which authenticates a client), admitted by ``_admit`` first."""

        async def admitted(request: Request) -> Response:
            form = await request.form()  # kept by the request: the endpoint reads it again
            try:
                client_id, _, basic = _credentials(request, form)
            except OAuthError as error:
                return error.response()
            by_address, by_client = self._limits(request, client_id)
            limits = [by_address] if by_client is None else [by_address, by_client]
            refusal = await self._admit(limits, basic)
            if refusal is not None:
                return refusal.response()
            try:
                return await endpoint(request)
            finally:
                async with self._finished:
                    self._in_flight.subtract(limit.key for limit in limits)
                    self._in_flight += Counter()  # drops the keys that reached zero
                    self._released += 1
                    self._finished.notify_all()

        return admitted

    async def _admit(self, limits: list[Limit], basic: bool) -> OAuthError | None:
        """Admit a client authentication, or refuse it with 429 before any secret is
        hashed, so that guessing costs the guesser, not the server.

        Failed client authentications are counted like failed sign-ins (the same
        ``login_throttle`` rows, shared by replicas):
        - per address (``client-address:``): ``login_max_failures`` failures in
          ``login_window_seconds`` pause that address, whatever client id it names.
          One attacking address locks out only itself.
        - per client id (``client:``): ``client_auth_max_failures`` failures from all
          addresses pause that client id for what remains of a short window
          (``client_auth_window_seconds``, from the first failure). A higher threshold
          than per address, so that one address cannot pause a client, and a short
          window, so that a distributed attacker must keep failing from many addresses
          (each then paused for the long window) to keep a client paused.
        Success does not reset the counters: an attacker holding one valid client
        could otherwise reset his address.

        Attempts under way in this process count too: beyond a limit's remaining
        failures, an attempt waits for one under way to finish and looks again, so a
        burst of concurrent guesses is not all hashed before the first failures are
        recorded (a burst costs at most the limit's hashes per replica)."""
        while True:
            released = self._released
            async with self.sessions() as session:
                failures, retry_after = await self._window_state(session, limits)
            if retry_after is not None:
                return OAuthError(
                    "slow_down",
                    "Too many failed client authentications; try again later.",
                    429,
                    basic,
                    retry_after,
                )
            async with self._finished:
                if self._released != released:
                    continue  # a failure may have been recorded after we read: read again
                if all(
                    failures.get(limit.key, 0) + self._in_flight[limit.key] < limit.max_failures
                    for limit in limits
                ):
                    self._in_flight.update(limit.key for limit in limits)
                    return None
                await self._finished.wait()

    async def _refused(self, error: OAuthError) -> Response:
        """The error response; a failed client authentication is counted first, in a
        transaction of its own (the request's was rolled back)."""
        if isinstance(error, ClientAuthenticationFailed):
            async with self.sessions() as session, session.begin():
                await self._fail(session, error.limits)
        return error.response()

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

    # ------------------------------------------------------------ authorize

    async def authorize(self, request: Request) -> Response:
        params = dict(request.query_params)
        sent = list(params.values())
        if request.method == "POST":
            sent.extend(v for v in (await request.form()).values() if isinstance(v, str))
        if any("\x00" in value for value in sent):
            # PostgreSQL cannot hold NUL in text: a lookup by it would fail in the database.
            return _page("Authorization error", "<p>A parameter contains a NUL character.</p>", 400)
        async with self.sessions() as session, session.begin():
            client = await session.scalar(
                select(OAuthClient).where(OAuthClient.client_id == params.get("client_id", ""))
            )
            redirect_uri = params.get("redirect_uri", "")
            if client is None or not client.is_active or redirect_uri not in client.redirect_uris:
                # Never redirect to an unregistered address (RFC 6749 §4.1.2.1).
                return _page("Authorization error", "<p>Unknown client or redirect URI.</p>", 400)
            problem = redirect_uri_problem(redirect_uri)
            if problem:  # registered before registration checked it: never redirect there
                return _page("Authorization error", f"<p>{html.escape(problem)}</p>", 400)
            problem = self._check_request(params, client)
            if problem:
                return _redirect(
                    redirect_uri, params, error="invalid_request", error_description=problem
                )
            if request.method == "GET":
                return self._login_page(client, params)
            return await self._login(session, request, client, params)

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

    def _login_page(
        self, client: OAuthClient, params: dict[str, str], message: str = "", status: int = 200
    ) -> Response:
        csrf = secrets.token_urlsafe(24)
        scopes = "".join(f"<li>{html.escape(s)}</li>" for s in params.get("scope", "").split())
        notice = f'<p class="error">{html.escape(message)}</p>' if message else ""
        body = f"""
<p><strong>{html.escape(client.name)}</strong> asks to use Portfolio Graph on your behalf
with these scopes:</p><ul>{scopes or "<li>(none)</li>"}</ul>{notice}
<form method="post">
  <input type="hidden" name="csrf_token" value="{csrf}">
  <label>E-mail <input name="email" type="email" autocomplete="username" required></label>
  <label>Password <input name="password" type="password" autocomplete="current-password" required></label>
  <button name="decision" value="allow">Sign in and allow</button>
  <button name="decision" value="deny" formnovalidate>Deny</button>
</form>"""
        response = _page("Sign in", body, status)
        response.set_cookie(
            CSRF_COOKIE,
            csrf,
            httponly=True,
            samesite="strict",
            path="/oauth/authorize",
            secure=self.settings.issuer.startswith("https://"),
        )
        return response

    async def _login(
        self, session: AsyncSession, request: Request, client: OAuthClient, params: dict[str, str]
    ) -> Response:
        form = await request.form()
        cookie = request.cookies.get(CSRF_COOKIE, "")
        sent = str(form.get("csrf_token") or "")
        if not cookie or not hmac.compare_digest(cookie, sent):
            return _page("Authorization error", "<p>The form expired; start again.</p>", 400)
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
        retry_after = await self._throttled(session, keys)
        if retry_after is not None:
            page = self._login_page(
                client, params, "Too many failed sign-ins; try again later.", status=429
            )
            page.headers["Retry-After"] = str(retry_after)
            return page
        user = await session.scalar(select(User).where(User.email == email))
        password = str(form.get("password") or "")
        valid = await verify_secret_off_loop(user.password_hash if user else None, password)
        if not valid or user is None or not user.is_active:
            await self._fail(session, keys)
            return self._login_page(client, params, "Wrong e-mail or password.", status=401)
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

    async def _throttled(self, session: AsyncSession, limits: list[Limit]) -> int | None:
        """Seconds until every exhausted limit among ``limits`` ends, or None if none is."""
        return (await self._window_state(session, limits))[1]

    async def _window_state(
        self, session: AsyncSession, limits: list[Limit]
    ) -> tuple[dict[str, int], int | None]:
        """Failures in each key's current window, and the seconds until every exhausted
        limit ends (None if none is)."""
        now = datetime.now(UTC)
        windows = {limit.key: limit for limit in limits}
        rows = await session.execute(
            select(
                LoginThrottle.key, LoginThrottle.window_started_at, LoginThrottle.failures
            ).where(LoginThrottle.key.in_(list(windows)))
        )
        failures: dict[str, int] = {}
        ends: list[datetime] = []
        for key, started, count in rows:
            end = started + timedelta(seconds=windows[key].window_seconds)
            if end > now:
                failures[key] = count
                if count >= windows[key].max_failures:
                    ends.append(end)
        if not ends:
            return failures, None
        return failures, max(1, math.ceil((max(ends) - now).total_seconds()))

    async def _fail(self, session: AsyncSession, limits: list[Limit]) -> None:
        now = datetime.now(UTC)
        for limit in limits:
            since = now - timedelta(seconds=limit.window_seconds)
            statement = insert(LoginThrottle).values(
                key=limit.key, window_started_at=now, failures=1
            )
            await session.execute(
                statement.on_conflict_do_update(
                    index_elements=[LoginThrottle.key],
                    set_={
                        # A window that has run out starts again at this failure.
                        "failures": _case_window(since, LoginThrottle.failures + 1, 1),
                        "window_started_at": _case_window(
                            since, LoginThrottle.window_started_at, now
                        ),
                    },
                )
            )

    # ------------------------------------------------------------ revocation, introspection

    async def revoke(self, request: Request) -> Response:
        form = await request.form()
        try:
            async with self.sessions() as session, session.begin():
                client = await self._client(session, request, form)
                token = str(form.get("token") or "")
                refresh = await session.scalar(
                    select(RefreshToken).where(RefreshToken.token_hash == token_digest(token))
                )
                if refresh is not None:
                    if refresh.client_id == client.id and refresh.revoked_at is None:
                        refresh.revoked_at = datetime.now(UTC)
                else:
                    claims = await self._verified(token)
                    if claims is not None and claims.jti and claims.client_id == client.client_id:
                        await session.execute(
                            insert(RevokedAccessToken)
                            .values(
                                jti=claims.jti,
                                expires_at=datetime.fromtimestamp(claims.expires_at, UTC),
                            )
                            .on_conflict_do_nothing()
                        )
        except OAuthError as error:
            return await self._refused(error)
        # RFC 7009 §2.2: 200 whether or not the token was valid.
        return Response(status_code=200, headers=NO_STORE)

    async def _verified(self, token: str) -> Any:
        try:
            return await self.auth.tokens.verify(token)
        except InvalidToken:
            return None

    async def introspect(self, request: Request) -> Response:
        form = await request.form()
        inactive = JSONResponse({"active": False}, headers=NO_STORE)
        try:
            async with self.sessions() as session, session.begin():
                client = await self._client(session, request, form)
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
                claims = await self._verified(token)
                if claims is None or (claims.client_id != client.client_id and not everyone):
                    return inactive
                from auth.principal import resolve_principal
                from domain.database import session_driver

                try:
                    # Revoked or disabled.
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
            return await self._refused(error)


def _credentials(request: Request, form: Any) -> tuple[str, Any, bool]:
    """(client id, secret, whether they came as HTTP Basic) of a client authentication."""
    client_id, secret, basic = form.get("client_id"), form.get("client_secret"), False
    header = request.headers.get("authorization", "")
    if header.lower().startswith("basic "):
        basic = True
        try:
            decoded = base64.b64decode(header[6:]).decode()
            client_id, _, secret = decoded.partition(":")
        except (ValueError, UnicodeDecodeError):
            raise OAuthError("invalid_client", "Malformed Basic credentials.", 401, basic) from None
    return str(client_id or ""), secret, basic


def redirect_uri_problem(uri: str) -> str | None:
    """Why ``uri`` cannot be registered or used as a redirect URI, or None: https (http
    only to this machine, RFC 8252 §7.3) and no fragment (RFC 6749 §3.1.2, the server
    appends the code to the query and a fragment would be kept by the browser)."""
    if "#" in uri:
        return f"Redirect URI {uri!r} must not contain a fragment (#)."
    if not re.match(r"^https://|^http://(127\.0\.0\.1|localhost)(:\d+)?/", uri):
        return f"Redirect URI {uri!r} must use https (http only for localhost)."
    return None


def _case_window(since: datetime, inside: Any, outside: Any) -> Any:
    from sqlalchemy import case

    return case((LoginThrottle.window_started_at > since, inside), else_=outside)


def _redirect(redirect_uri: str, params: dict[str, str], **values: str) -> RedirectResponse:
    if params.get("state"):
        values["state"] = params["state"]
    separator = "&" if "?" in redirect_uri else "?"
    return RedirectResponse(f"{redirect_uri}{separator}{urlencode(values)}", status_code=303)


def _page(title: str, body: str, status: int) -> HTMLResponse:
    return HTMLResponse(
        f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>{html.escape(title)} · Portfolio Graph</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body><main><h1>{html.escape(title)}</h1>{body}</main></body></html>""",
        status_code=status,
        headers={
            "Content-Security-Policy": "default-src 'none'; style-src 'self'",
            "X-Frame-Options": "DENY",
            **NO_STORE,
        },
    )
