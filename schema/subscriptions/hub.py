"""Fan-out: the process's one LISTEN connection (``domain.changes.ChangeFeed``) feeds
every subscription of the process.

Each notification becomes domain events (``domain.events``); each subscriber gets, in
its bounded queue, the events of that notification it asked for. A subscriber whose
queue is full (its client does not read what is sent) is dropped and its connection
told so, never allowed to grow memory. Changes to identity (a token revoked, a user
disabled, roles changed: the ``portfolio_principals`` channel) make every connection
check its caller again.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import structlog

from domain.events import DomainEvent, events_from_notification, products_concerned

log = structlog.get_logger(__name__)

# Notifications the hub may hold before handing them out (a bulk ingest of 10,000
# measurements is 67 of them).
BACKLOG = 10_000


class Topic(Protocol):
    """What one subscription asked for."""

    needs_products: bool  # matching needs the products each event concerns

    def matches(self, event: DomainEvent, products: frozenset[int]) -> bool: ...


class Watched(Protocol):
    """A connection whose caller must be checked again when identity changes."""

    def identity_changed(self) -> None: ...

    def not_listening(self) -> None: ...


class Dropped(Exception):
    """The subscriber was dropped: too slow, or its connection ended."""


@dataclass(eq=False)
class Subscriber:
    topic: Topic
    caller: str
    queue: asyncio.Queue[list[DomainEvent]]
    on_overflow: Callable[[], None]
    dropped: bool = False
    _wake: asyncio.Event = field(default_factory=asyncio.Event)

    async def next(self) -> list[DomainEvent]:
        """The events of the next notification this subscriber asked for."""
        while self.queue.empty():
            if self.dropped:
                raise Dropped
            self._wake.clear()
            await self._wake.wait()
        if self.dropped:
            raise Dropped
        return self.queue.get_nowait()

    def offer(self, events: list[DomainEvent]) -> bool:
        """Queues the events; False if the queue was full (the subscriber is dropped)."""
        try:
            self.queue.put_nowait(events)
        except asyncio.QueueFull:
            self.drop()
            self.on_overflow()
            return False
        self._wake.set()
        return True

    def drop(self) -> None:
        self.dropped = True
        self._wake.set()


class SubscriptionHub:
    """Every subscription of the process, fed from one LISTEN connection."""

    def __init__(self, reads: Callable[[], Any], queue_size: int) -> None:
        self.reads = reads  # a pooled connection for the neighbourhood lookups
        self.queue_size = queue_size
        self.subscribers: set[Subscriber] = set()
        self.connections: set[Watched] = set()
        self.callers: Counter[str] = Counter()
        self.listening = False
        # Notifications not yet handed out: bounded, as every subscriber's queue is.
        self._payloads: asyncio.Queue[str] = asyncio.Queue(BACKLOG)
        self._task: asyncio.Task[None] | None = None
        # For the metrics.
        self.handed = 0
        self.too_slow = 0

    # The feed's callbacks (``ChangeFeed.watch``), called on the event loop.
    def notified(self, payload: str) -> None:
        if not (self.subscribers or self.connections):
            return
        try:
            self._payloads.put_nowait(payload)
        except asyncio.QueueFull:
            # The hub itself cannot keep up (its lookups wait on the database): what it
            # drops, every subscriber would miss, so every one is told.
            log.warning("subscription_backlog_full", backlog=BACKLOG)
            while not self._payloads.empty():
                self._payloads.get_nowait()
            self._missed()

    def principals_changed(self, payload: str) -> None:
        """Something that may shrink what a token may do changed (``portfolio_principals``,
        migration 0007: a token or family revoked, a user or client disabled, roles or
        grants changed): every connection checks its caller again."""
        for connection in list(self.connections):
            connection.identity_changed()

    def set_listening(self, listening: bool) -> None:
        was, self.listening = self.listening, listening
        if was and not listening:
            self._missed()

    def _missed(self) -> None:
        """Changes were lost (not heard, or dropped): the clients are told to subscribe
        again and read what they show afresh."""
        for connection in list(self.connections):
            connection.not_listening()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="subscription-hub")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def subscribe(self, topic: Topic, caller: str, on_overflow: Callable[[], None]) -> Subscriber:
        subscriber = Subscriber(topic, caller, asyncio.Queue(self.queue_size), on_overflow)
        self.subscribers.add(subscriber)
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        subscriber.drop()
        self.subscribers.discard(subscriber)

    async def _run(self) -> None:
        while True:
            payload = await self._payloads.get()
            try:
                await self._deliver(events_from_notification(payload))
            except Exception:  # one bad notification must not stop every subscription
                log.exception("subscription_delivery_failed")

    async def _deliver(self, events: Sequence[DomainEvent]) -> None:
        subscribers = list(self.subscribers)
        if not subscribers:
            return
        products: dict[DomainEvent, frozenset[int]] = {}
        if any(s.topic.needs_products for s in subscribers):
            async with self.reads() as connection:
                products = await products_concerned(connection, events)
        none: frozenset[int] = frozenset()
        for subscriber in subscribers:
            if subscriber.dropped:
                continue
            matched = [e for e in events if subscriber.topic.matches(e, products.get(e, none))]
            if matched:
                if subscriber.offer(matched):
                    self.handed += 1
                else:
                    self.too_slow += 1

    def admit(self, caller: str, limit: int) -> bool:
        """Counts one more subscription of ``caller``, unless it has ``limit`` open."""
        if self.callers[caller] >= limit:
            return False
        self.callers[caller] += 1
        return True

    def release(self, caller: str) -> None:
        self.callers[caller] -= 1
        if self.callers[caller] <= 0:
            del self.callers[caller]
