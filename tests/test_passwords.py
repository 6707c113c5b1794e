"""Secret hashing: OWASP's argon2id cost for new hashes, older hashes still verify, and
the server's hashing never runs on the event loop."""

from __future__ import annotations

import asyncio

from argon2 import PasswordHasher

from auth.passwords import (
    hash_secret,
    hash_secret_off_loop,
    verify_secret,
    verify_secret_off_loop,
)


def test_new_hashes_use_owasps_argon2id_cost() -> None:
    stored = hash_secret("correct horse battery")
    assert stored.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert verify_secret(stored, "correct horse battery")
    assert not verify_secret(stored, "correct horse battery!")


def test_hashes_made_with_the_former_cost_still_verify() -> None:
    # argon2-cffi's defaults, which every hash stored before this change used.
    former = PasswordHasher().hash("s3cret-of-old")
    assert former.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    assert verify_secret(former, "s3cret-of-old")
    assert not verify_secret(former, "s3cret-of-new")


def test_no_stored_hash_or_a_malformed_one_never_verifies() -> None:
    assert not verify_secret(None, "not a real password")  # the dummy's own text
    assert not verify_secret("not-a-hash", "anything")


async def test_hashing_waits_off_the_event_loop() -> None:
    """The coroutine's first step hands the work to a thread: were the hash computed on
    the loop, the task would be done after that one step."""
    stored = hash_secret("correct horse battery")
    for work in (
        verify_secret_off_loop(stored, "correct horse battery"),
        verify_secret_off_loop(None, "correct horse battery"),
        hash_secret_off_loop("a new secret"),
    ):
        task = asyncio.ensure_future(work)
        await asyncio.sleep(0)  # one step of the task
        assert not task.done()
        await task
    assert await verify_secret_off_loop(stored, "correct horse battery") is True
    assert await verify_secret_off_loop(None, "correct horse battery") is False
    assert verify_secret(await hash_secret_off_loop("a new secret"), "a new secret")
