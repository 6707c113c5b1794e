"""Who a token speaks for, remembered in memory until something that could shrink it changes.

Resolving a token's principal (``auth.principal.resolve_principal``) reads whether it,
its refresh-token family (``sid``) or its client or user was revoked or disabled, and
the scopes of the user's roles: one statement. A token is sent again and again, so its
principal is kept here, keyed by the token, and that statement runs once per token
instead of once per request.

Forgetting is what makes it safe:
- **in this process**, at once: whoever changes users, roles, grants, clients or token
  revocations calls ``principals_changed(session)``, which empties every cache of the
  process immediately and again when the session commits;
- **in other processes**, as soon as the database tells them: migration 0007 sends
  ``NOTIFY portfolio_principals`` when such a change commits (from any replica, the CLI
  or psql), and each process's change feed calls ``PrincipalCache.changed``;
- **while that feed cannot hear** (not yet connected, connection lost), nothing is
  remembered and every request asks the database: fail closed.

A principal read before a change is never kept after it: each lookup records the
generation it started under, and every change starts a new one.
"""

from __future__ import annotations

import asyncio
import weakref
from collections import OrderedDict

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from auth.principal import Principal

# The database's channel (migration 0007).
CHANNEL = "portfolio_principals"
# Principals kept per process (least recently used dropped first).
REMEMBERED_PRINCIPALS = 10_000

# Every cache of this process, so that a change made here reaches them all at once.
_CACHES: weakref.WeakSet[PrincipalCache] = weakref.WeakSet()
_PENDING = "auth.principals_changed"


class PrincipalCache:
    def __init__(self, size: int = REMEMBERED_PRINCIPALS) -> None:
        self.size = size
        self.generation = 0
        self.listening = False  # changes made elsewhere are heard
        self._entries: OrderedDict[str, Principal] = OrderedDict()
        # Set and replaced at every change: ``await cache.forgot.wait()``.
        self.forgot = asyncio.Event()
        _CACHES.add(self)

    def get(self, token: str) -> Principal | None:
        if not self.listening:
            return None
        found = self._entries.get(token)
        if found is not None:
            self._entries.move_to_end(token)
        return found

    def put(self, token: str, generation: int, principal: Principal) -> None:
        """Keep a principal looked up under ``generation``, unless something changed since."""
        if not self.listening or generation != self.generation:
            return
        self._entries[token] = principal
        self._entries.move_to_end(token)
        if len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def changed(self, payload: str = "") -> None:
        """Forget every principal: something that may shrink one has changed."""
        self.generation += 1
        self._entries.clear()
        forgot, self.forgot = self.forgot, asyncio.Event()
        forgot.set()

    def set_listening(self, listening: bool) -> None:
        # Whatever was kept may have missed changes while the feed was deaf.
        self.listening = listening
        self.changed()

    def __len__(self) -> int:
        return len(self._entries)


def principals_changed(session: AsyncSession) -> None:
    """Call when ``session`` changes what a token may do (revokes a token or a family,
    disables a user or a client, changes roles or grants): this process forgets every
    principal now, and again once the change commits, so that a lookup made in between
    (which saw the old state) is not kept either."""
    _forget_everywhere()
    sync = session.sync_session
    if not sync.info.get(_PENDING):
        sync.info[_PENDING] = True
        event.listen(sync, "after_commit", _committed, once=True)


def _committed(session: Session) -> None:
    session.info.pop(_PENDING, None)
    _forget_everywhere()


def _forget_everywhere() -> None:
    for cache in list(_CACHES):
        cache.changed("this process")
