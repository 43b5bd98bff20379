"""In-process event bus: the service layer publishes, doors subscribe (WebSocket/SSE, console).

A slow subscriber never slows the publisher: each subscription has a bounded queue that drops
its oldest event when full and counts what it dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from sync.clock import monotonic, wall

ENDED = "subscription.ended"  # the last event a subscription of an ended group gets


@dataclass(frozen=True)
class Event:
    """Something that happened in the box: when on the wall clock (a label) and on the monotonic clock."""

    topic: str
    data: dict[str, Any] = field(default_factory=dict)
    at: float = field(default_factory=wall)
    mono: float = field(default_factory=monotonic)


class Subscription:
    """One subscriber's bounded queue of events whose topic starts with `prefix`."""

    def __init__(self, bus: EventBus, prefix: str, maxsize: int) -> None:
        self._bus = bus
        self.prefix = prefix
        self._queue: asyncio.Queue[Event] = asyncio.Queue(maxsize)
        self.dropped = 0

    def offer(self, event: Event) -> None:
        """Queue `event`, dropping the oldest one if the queue is full."""
        if not event.topic.startswith(self.prefix):
            return
        if self._queue.full():
            self._queue.get_nowait()
            self.dropped += 1
        self._queue.put_nowait(event)

    async def get(self) -> Event:
        """The next event."""
        return await self._queue.get()

    def close(self) -> None:
        """Stop receiving events (idempotent)."""
        self._bus.unsubscribe(self)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aiter__(self) -> AsyncIterator[Event]:
        while True:
            yield await self.get()


class EventBus:
    """Publish/subscribe within the daemon's event loop."""

    def __init__(self) -> None:
        self._subscriptions: list[Subscription] = []
        self._loop: asyncio.AbstractEventLoop | None = None

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Remember the loop that `publish_threadsafe` hands events to."""
        self._loop = loop

    def publish(self, topic: str, **data: Any) -> Event:
        """Deliver an event to every matching subscriber (call from the event loop)."""
        event = Event(topic, data)
        for subscription in list(self._subscriptions):
            subscription.offer(event)
        return event

    def publish_threadsafe(self, topic: str, **data: Any) -> None:
        """Publish from a driver thread; a no-op before the bus is bound or after the loop closed."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # the loop closed between the check and the call
            loop.call_soon_threadsafe(lambda: self.publish(topic, **data))

    def subscribe(self, prefix: str = "", maxsize: int = 256) -> Subscription:
        """A new subscription to topics starting with `prefix` (all when empty)."""
        subscription = Subscription(self, prefix, maxsize)
        self._subscriptions.append(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        """Remove a subscription (idempotent)."""
        if subscription in self._subscriptions:
            self._subscriptions.remove(subscription)


class Subscribable(Protocol):
    """What hands out subscriptions to its events (the bus, or the box in front of it)."""

    def subscribe(self, prefix: str = "", maxsize: int = 256) -> Subscription: ...


class SubscriptionGroup:
    """Subscriptions a door holds for its clients (event streams), so that stopping the door can end them all."""

    def __init__(self) -> None:
        self._open: set[Subscription] = set()

    @contextlib.contextmanager
    def subscribe(self, source: Subscribable, prefix: str = "", maxsize: int = 256) -> Iterator[Subscription]:
        """A subscription of `source` in this group, closed and forgotten when the block ends."""
        subscription = source.subscribe(prefix, maxsize)
        self._open.add(subscription)
        try:
            yield subscription
        finally:
            self._open.discard(subscription)
            subscription.close()

    def end_all(self) -> None:
        """Give every subscription of the group the ENDED event: its reader stops at it."""
        for subscription in list(self._open):
            subscription.offer(Event(ENDED))

    def __len__(self) -> int:
        return len(self._open)
