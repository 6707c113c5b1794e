"""A least-recently-used map bounded by the bytes its entries hold, not by their count.

Caches keyed by what callers send (document texts, variables) cannot be bounded by
entries: a thousand 5 MB documents are 5 GB. Each entry is put with its size, as the
caller accounts it (the key's text included); the least recently used go first once
the total passes the bound, and an entry larger than the bound is not kept at all.
"""

from __future__ import annotations

import sys
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from enum import Enum
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

# What an entry costs beyond the sizes its caller counts: the map's slot, the key's
# tuple and the size kept beside the value.
ENTRY_OVERHEAD = 200


def text_bytes(*texts: object) -> int:
    """The memory of the strings among ``texts`` (exact for str: CPython's object size)."""
    return sum(sys.getsizeof(text) for text in texts if isinstance(text, str | bytes))


def held_bytes(value: object) -> int:
    """About the memory ``value`` holds: its containers (dicts, lists, tuples, sets) and
    the strings and other objects in them, each counted once per place it stands (an
    upper bound where objects are shared); an enum member counts nothing, being one
    object for the whole process. For the values a request sends, kept beside a plan:
    measured on every value not seen before, so the common kinds are told apart by
    their exact type first."""
    size = 0
    stack = [value]
    pop, extend, sizeof = stack.pop, stack.extend, sys.getsizeof
    while stack:
        item = pop()
        kind = type(item)
        if kind is str or kind is int or kind is float or kind is bool:
            size += sizeof(item)
        elif kind is list or kind is tuple:
            size += sizeof(item)
            extend(item)  # type: ignore[arg-type]
        elif kind is dict:
            size += sizeof(item)
            extend(item.keys())  # type: ignore[attr-defined]
            extend(item.values())  # type: ignore[attr-defined]
        elif isinstance(item, Enum):
            continue
        else:
            size += sizeof(item)
            if isinstance(item, list | tuple | set | frozenset):
                extend(item)
            elif isinstance(item, dict):
                extend(item.keys())
                extend(item.values())
    return size


class ByteLRU(Generic[K, V]):
    def __init__(self, max_bytes: int, on_evict: Callable[[K, V], None] | None = None) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0  # what the entries held account for
        self._entries: OrderedDict[K, tuple[V, int]] = OrderedDict()
        self._on_evict = on_evict

    def get(self, key: K) -> V | None:
        """The value (now the most recently used), or None."""
        found = self._entries.get(key)
        if found is None:
            return None
        self._entries.move_to_end(key)
        return found[0]

    def peek(self, key: K) -> V | None:
        found = self._entries.get(key)
        return None if found is None else found[0]

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[K]:
        return iter(self._entries)

    def put(self, key: K, value: V, size: int) -> bool:
        """Keep ``value`` under ``key``, accounted as ``size`` bytes (plus the entry's
        overhead); False if it alone would pass the bound (then it is not kept). A value
        it replaces counts as evicted."""
        self.pop(key)
        size += ENTRY_OVERHEAD
        if size > self.max_bytes:
            return False
        self._entries[key] = (value, size)
        self.bytes += size
        self._shrink()
        return True

    def resize(self, key: K, size: int) -> None:
        """Account an entry held as ``size`` bytes now (it grew while in use: now the
        most recently used); others may go."""
        found = self._entries.get(key)
        if found is None:
            return
        size += ENTRY_OVERHEAD
        self._entries[key] = (found[0], size)
        self._entries.move_to_end(key)
        self.bytes += size - found[1]
        self._shrink()

    def _shrink(self) -> None:
        while self.bytes > self.max_bytes and self._entries:
            evicted, (dropped, dropped_size) = self._entries.popitem(last=False)
            self.bytes -= dropped_size
            if self._on_evict is not None:
                self._on_evict(evicted, dropped)

    def pop(self, key: K) -> V | None:
        found = self._entries.pop(key, None)
        if found is None:
            return None
        self.bytes -= found[1]
        if self._on_evict is not None:
            self._on_evict(key, found[0])
        return found[0]

    def clear(self) -> None:
        for key in list(self._entries):
            self.pop(key)
