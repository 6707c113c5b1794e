"""Access tokens: RFC 9068 JWTs issued by the built-in server, verified against the
JWKS of the built-in server or of a configured external OpenID Connect issuer."""

from __future__ import annotations

import json
import secrets
import time
from base64 import urlsafe_b64decode
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet, RSAKey

from auth.external import ExternalIssuers
from auth.keys import ALGORITHM, KeyStore
from domain.settings import ExternalIssuer, Settings

# Asymmetric algorithms only: "none" and HMAC (which would let a public key act as a
# shared secret) are refused before any signature check.
ACCEPTED_ALGORITHMS = ["RS256", "ES256", "PS256"]
USER_SUBJECT_PREFIX = "user:"
# The claim naming the refresh-token family (the grant) an access token was minted
# from: the OpenID "session id" claim, since a family is one sign-in's session. When
# the family is revoked (reuse detected, or the grant revoked) its tokens stop working.
FAMILY_CLAIM = "sid"


class InvalidToken(Exception):
    """The token cannot be accepted; ``description`` goes to WWW-Authenticate."""

    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = description


@dataclass(frozen=True)
class AccessClaims:
    issuer: str
    subject: str
    client_id: str | None
    scopes: frozenset[str]
    jti: str | None
    issued_at: int
    expires_at: int
    external: ExternalIssuer | None = None
    raw: dict[str, Any] = field(default_factory=dict, compare=False)
    # The refresh-token family of a token of ours minted by a user's grant, if any.
    family: str | None = None

    @property
    def user_id(self) -> int | None:
        if self.external is None and self.subject.startswith(USER_SUBJECT_PREFIX):
            return int(self.subject.removeprefix(USER_SUBJECT_PREFIX))
        return None


# A verified token is trusted this long before its signature is checked again (and at
# most until it expires): the signature of a token cannot change, but a key may be
# withdrawn from an issuer's JWKS. Revocation and disabled accounts are checked on every
# request (``resolve_principal``), not here.
VERIFIED_FOR_SECONDS = 60.0
VERIFIED_TOKENS = 10_000


class TokenService:
    def __init__(
        self,
        keys: KeyStore,
        settings: Settings,
        external: ExternalIssuers,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.keys = keys
        self.settings = settings
        self.external = external
        self.clock = clock
        # token -> (its claims, when they were verified); least recently used first.
        self._verified: OrderedDict[str, tuple[AccessClaims, float]] = OrderedDict()

    async def issue(
        self,
        *,
        client_id: str,
        user_id: int | None,
        scopes: frozenset[str] | set[str],
        family: str | None = None,
    ) -> tuple[str, int]:
        """Sign an access token; returns it with its lifetime in seconds. ``family``: the
        refresh-token family it belongs to (see FAMILY_CLAIM)."""
        now = int(time.time())
        ttl = self.settings.access_token_ttl_seconds
        claims = {
            "iss": self.settings.issuer,
            "sub": f"{USER_SUBJECT_PREFIX}{user_id}" if user_id is not None else client_id,
            "aud": self.settings.audience,
            "client_id": client_id,
            "scope": " ".join(sorted(scopes)),
            "iat": now,
            "nbf": now,
            "exp": now + ttl,
            "jti": secrets.token_urlsafe(16),
        }
        if family is not None:
            claims[FAMILY_CLAIM] = family
        signing = await self.keys.signing_key()
        header = {"alg": ALGORITHM, "kid": signing.kid, "typ": "at+jwt"}
        return jwt.encode(header, claims, signing.key), ttl

    async def verify(self, token: str) -> AccessClaims:
        """The claims of a valid access token; InvalidToken otherwise. A token verified
        in the last minute is taken from memory (a signature check costs more than the
        rest of a small read), as long as it has not expired."""
        now = self.clock()
        remembered = self._verified.get(token)
        if remembered is not None:
            claims, verified_at = remembered
            leeway = self.settings.clock_leeway_seconds
            if now - verified_at < VERIFIED_FOR_SECONDS and now < claims.expires_at + leeway:
                self._verified.move_to_end(token)
                return claims
            del self._verified[token]
        claims = await self._verify(token)
        self._verified[token] = (claims, now)
        if len(self._verified) > VERIFIED_TOKENS:
            self._verified.popitem(last=False)
        return claims

    async def _verify(self, token: str) -> AccessClaims:
        header, unverified = _peek(token)
        issuer = unverified.get("iss")
        if not isinstance(issuer, str):
            raise InvalidToken("The token lacks an issuer.")
        external = self.external.config(issuer) if issuer != self.settings.issuer else None
        if issuer != self.settings.issuer and external is None:
            raise InvalidToken("The token was not issued by a trusted issuer.")
        if header.get("alg") not in ACCEPTED_ALGORITHMS:
            raise InvalidToken("The token's signing algorithm is not accepted.")
        if external is None and header.get("typ", "").lower() not in {
            "at+jwt",
            "application/at+jwt",
        }:
            raise InvalidToken("Not an access token (typ must be at+jwt).")

        decoded = await self._decode(token, header.get("kid"), external)
        claims = decoded.claims
        audience = external.audience if external else self.settings.audience
        registry = jwt.JWTClaimsRegistry(
            now=lambda: int(self.clock()),
            leeway=self.settings.clock_leeway_seconds,
            iss={"essential": True, "value": issuer},
            aud={"essential": True, "value": audience},
            exp={"essential": True},
            sub={"essential": True},
        )
        try:
            registry.validate(claims)
        except JoseError as error:
            raise InvalidToken(_describe(error)) from None
        scope = claims.get("scope") or claims.get("scp") or ""
        scopes = frozenset(scope.split() if isinstance(scope, str) else scope)
        return AccessClaims(
            issuer=issuer,
            subject=str(claims["sub"]),
            client_id=claims.get("client_id") or claims.get("azp"),
            scopes=scopes,
            jti=claims.get("jti"),
            issued_at=int(claims.get("iat", 0)),
            expires_at=int(claims["exp"]),
            external=external,
            raw=claims,
            family=_family(claims) if external is None else None,
        )

    async def _decode(self, token: str, kid: Any, external: ExternalIssuer | None) -> Any:
        """Check the signature against keys held in memory. Only a kid we do not hold
        makes us read the keys again (rate-limited by the key stores); a bad signature
        under a known key is refused at once, at the cost of one signature check."""
        key: RSAKey | KeySet | None
        if external is None:
            if not isinstance(kid, str):
                raise InvalidToken("The token's signing key is unknown.")
            key = await self.keys.public_key(kid)
        else:
            key = await self.external.key_set(external)
            if isinstance(kid, str) and not any(k.kid == kid for k in key.keys):
                key = await self.external.key_set(external, refresh=True)
                if not any(k.kid == kid for k in key.keys):
                    key = None
        if key is None:
            raise InvalidToken("The token's signing key is unknown.")
        try:
            return jwt.decode(token, key, algorithms=ACCEPTED_ALGORITHMS)
        except JoseError as error:
            raise InvalidToken(_describe(error)) from None
        except ValueError:
            raise InvalidToken("The token is malformed.") from None


def _peek(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and claims before verification, only to choose the keys to verify with."""
    try:
        header_b64, payload_b64, _ = token.split(".")
        header = json.loads(urlsafe_b64decode(header_b64 + "=" * (-len(header_b64) % 4)))
        claims = json.loads(urlsafe_b64decode(payload_b64 + "=" * (-len(payload_b64) % 4)))
    except (ValueError, UnicodeDecodeError):
        raise InvalidToken("The token is malformed.") from None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise InvalidToken("The token is malformed.")
    return header, claims


def _family(claims: dict[str, Any]) -> str | None:
    family = claims.get(FAMILY_CLAIM)
    return family if isinstance(family, str) else None


def _describe(error: JoseError) -> str:
    messages = {
        "expired_token": "The token has expired.",
        "invalid_claim": "The token's claims are not valid here.",
        "missing_claim": "The token lacks a required claim.",
        "bad_signature": "The token's signature is invalid.",
    }
    return messages.get(error.error, f"The token is invalid ({error.error}).")
