"""Password and client-secret hashing (argon2id), with constant-time behaviour.

Hashing is slow and memory-hard by design, so the server never does it on the event
loop: ``hash_secret_off_loop`` and ``verify_secret_off_loop`` run it in a small pool of
threads (argon2 releases the GIL). A token request or sign-in then costs the other
requests nothing, and a burst of them waits its turn instead of taking a hash's
memory each at once. The plain functions are for scripts and tests.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
from concurrent.futures import ThreadPoolExecutor

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

# OWASP's recommended argon2id cost: 19 MiB, 2 passes, 1 lane (~35 ms here). argon2-cffi's
# default (64 MiB, 3 passes, 4 lanes) took 175 ms and 64 MiB per hash. Hashes stored with
# other parameters still verify: each hash carries its own.
_hasher = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)
# Two at a time: this machine's cores, and at most 38 MiB of hashing memory.
_HASHING = ThreadPoolExecutor(max_workers=2, thread_name_prefix="argon2")


@functools.cache
def _dummy_hash() -> str:
    """Verified against when the account does not exist, so that the time taken does
    not tell an attacker whether it does."""
    return _hasher.hash("not a real password")


def hash_secret(secret: str) -> str:
    return _hasher.hash(secret)


def verify_secret(stored_hash: str | None, secret: str) -> bool:
    try:
        return _hasher.verify(stored_hash or _dummy_hash(), secret) and stored_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


async def hash_secret_off_loop(secret: str) -> str:
    return await asyncio.get_running_loop().run_in_executor(_HASHING, hash_secret, secret)


async def verify_secret_off_loop(stored_hash: str | None, secret: str) -> bool:
    return await asyncio.get_running_loop().run_in_executor(
        _HASHING, verify_secret, stored_hash, secret
    )


def token_digest(token: str) -> str:
    """Lookup key for high-entropy tokens (codes, refresh tokens): SHA-256 is enough
    for random secrets, and lets us find the row by an index."""
    return hashlib.sha256(token.encode()).hexdigest()
