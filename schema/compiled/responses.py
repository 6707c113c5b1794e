"""Answers of known reads, kept until the data changes.

A known read (``schema.known.KnownReads``) is answered by SQL that depends on nothing
but its document, its variables and the caller's effective scopes, so the same
request gets the same answer until a write commits. The cache is keyed by exactly
those, so one caller's answer is never another's unless it would be the same answer.

It is dropped whole on every change: a mutation committed by this process (before its
answer is released), and any write committed anywhere, which the database reports
(``domain.changes``). While that report cannot be heard (connection lost), nothing is
cached. A read that began before a change is not stored after it: each entry is put
with the generation it was read under, and a change starts a new generation.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Hashable
from typing import Any, NamedTuple

# What an entry costs beyond its JSON (key, tuples, dicts), in characters: counted so
# that many small answers are bounded too (20,000 node lookups are 3 MB of JSON).
ENTRY_OVERHEAD = 600


class Cached(NamedTuple):
    # Per root field, PostgreSQL's JSON (orjson.Fragment); None if a refused non-null
    # root field nulled the whole answer.
    data: dict[str, Any] | None
    objects: int  # the actual cost
    json_chars: int  # characters of JSON (and of the errors' messages)
    key_chars: int = 0  # characters of its key's texts (set by ``ResponseCache.put``)
    # The refused fields' errors (``schema.compiled.errors``): part of the same answer.
    errors: tuple[Any, ...] = ()

    @property
    def size(self) -> int:
        """What the bound counts."""
        return self.json_chars + self.key_chars + ENTRY_OVERHEAD


def _key_chars(key: Hashable) -> int:
    parts = key if isinstance(key, tuple) else (key,)
    return sum(len(part) for part in parts if isinstance(part, str))


class ResponseCache:
    def __init__(self, max_chars: int) -> None:
        self.max_chars = max_chars
        self.generation = 0
        self.listening = False  # the database's changes are heard
        self._entries: OrderedDict[Hashable, Cached] = OrderedDict()
        self.chars = 0
        self.hits = self.misses = 0  # known reads asked while active, for /metrics
        # Set and replaced at every change: ``await cache.changed.wait()``.
        self.changed = asyncio.Event()

    @property
    def active(self) -> bool:
        return self.listening and self.max_chars > 0

    def get(self, key: Hashable) -> Cached | None:
        if not self.listening:
            return None
        found = self._entries.get(key)
        if found is None:
            self.misses += 1
        else:
            self.hits += 1
            self._entries.move_to_end(key)
        return found

    def put(self, key: Hashable, generation: int, entry: Cached) -> None:
        """Keep an answer read under ``generation``, unless the data changed since."""
        # The key's texts (document, variables) are the caller's: counted with the answer.
        entry = entry._replace(key_chars=_key_chars(key))
        if not self.active or generation != self.generation or entry.size > self.max_chars:
            return
        previous = self._entries.pop(key, None)
        if previous is not None:
            self.chars -= previous.size
        self._entries[key] = entry
        self.chars += entry.size
        while self.chars > self.max_chars:
            _, dropped = self._entries.popitem(last=False)
            self.chars -= dropped.size

    def invalidate(self) -> None:
        self.generation += 1
        self._entries.clear()
        self.chars = 0
        changed, self.changed = self.changed, asyncio.Event()
        changed.set()

    def set_listening(self, listening: bool) -> None:
        # Whatever was kept may have missed changes while the feed was deaf.
        self.listening = listening
        self.invalidate()

    def __len__(self) -> int:
        return len(self._entries)
