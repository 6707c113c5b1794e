"""Webhook signing secrets at rest: sealed with AES-256-GCM under
``PORTFOLIO_WEBHOOK_SECRET_KEY``, a key kept outside the database (a dump or a replica of
the database alone does not reveal them; HMAC needs each secret in clear, so a hash would
not do).

A sealed value is ``aesgcm:{key id}:{base64url(nonce ‖ ciphertext)}``; the key id (the
first 8 hex digits of the key's SHA-256) says which key opens it, so the key can be
rotated: the new key in ``PORTFOLIO_WEBHOOK_SECRET_KEY``, the old one in
``PORTFOLIO_WEBHOOK_SECRET_OLD_KEYS`` until ``portfolio reseal-webhook-secrets`` has
sealed every secret again under the new one. A value starting ``whsec_`` is in clear:
stored without a key (development only) or before one was set.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from domain.errors import InvalidInput
from domain.settings import Settings

SEALED_PREFIX = "aesgcm:"
# Binds a ciphertext to its purpose: a value sealed for something else does not open.
PURPOSE = b"portfolio-graph webhook secret"
NONCE_BYTES = 12
KEY_BYTES = 32


class SecretUnavailable(Exception):
    """A stored secret cannot be opened with the configured keys; the message says why."""


def key_id(key: bytes) -> str:
    return hashlib.sha256(key).hexdigest()[:8]


def decode_key(encoded: str) -> bytes:
    """A key as the settings give it: base64 of 32 random bytes (``openssl rand -base64 32``)."""
    try:
        key = base64.b64decode(encoded, validate=True)
    except binascii.Error:
        raise ValueError("a webhook secret key must be base64") from None
    if len(key) != KEY_BYTES:
        raise ValueError(f"a webhook secret key must be {KEY_BYTES} bytes, base64-encoded")
    return key


class SecretBox:
    """Seals secrets under the current key; opens what any configured key sealed."""

    def __init__(self, settings: Settings) -> None:
        self.current = (
            decode_key(settings.webhook_secret_key) if settings.webhook_secret_key else None
        )
        keys = [self.current] if self.current else []
        keys += [decode_key(old) for old in settings.webhook_secret_old_keys]
        self.keys = {key_id(key): AESGCM(key) for key in keys}
        self.development = settings.is_development

    def seal(self, secret: str) -> str:
        if self.current is None:
            if self.development:
                return secret  # development without a key: kept in clear
            raise InvalidInput(
                "Webhook secrets are stored encrypted: the server needs "
                "PORTFOLIO_WEBHOOK_SECRET_KEY (see docs/configuration.md).",
                field=None,
            )
        nonce = os.urandom(NONCE_BYTES)
        sealed = AESGCM(self.current).encrypt(nonce, secret.encode(), PURPOSE)
        encoded = base64.urlsafe_b64encode(nonce + sealed).decode()
        return f"{SEALED_PREFIX}{key_id(self.current)}:{encoded}"

    def open(self, stored: str) -> str:
        if not stored.startswith(SEALED_PREFIX):
            return stored
        kid, _, encoded = stored.removeprefix(SEALED_PREFIX).partition(":")
        cipher = self.keys.get(kid)
        if cipher is None:
            raise SecretUnavailable(
                f"the secret is sealed under key {kid}, which is neither "
                "PORTFOLIO_WEBHOOK_SECRET_KEY nor one of PORTFOLIO_WEBHOOK_SECRET_OLD_KEYS"
            )
        raw = base64.urlsafe_b64decode(encoded)
        try:
            return cipher.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], PURPOSE).decode()
        except InvalidTag:
            raise SecretUnavailable(f"the secret sealed under key {kid} was altered") from None

    def is_current(self, stored: str) -> bool:
        """Whether ``stored`` is sealed under the current key (nothing to reseal)."""
        if self.current is None:
            return not stored.startswith(SEALED_PREFIX)
        return stored.startswith(f"{SEALED_PREFIX}{key_id(self.current)}:")
