"""Password and client-secret hashing (argon2id), with constant-time behaviour."""

from __future__ import annotations

import hashlib

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

_hasher = PasswordHasher()
# Verified against when the account does not exist, so that the time taken does not
# tell an attacker whether it does.
_DUMMY_HASH = _hasher.hash("not a real password")


def hash_secret(secret: str) -> str:
    return _hasher.hash(secret)


def verify_secret(stored_hash: str | None, secret: str) -> bool:
    try:
        return _hasher.verify(stored_hash or _DUMMY_HASH, secret) and stored_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def token_digest(token: str) -> str:
    """Lookup key for high-entropy tokens (codes, refresh tokens): SHA-256 is enough
    for random secrets, and lets us find the row by an index."""
    return hashlib.sha256(token.encode()).hexdigest()
