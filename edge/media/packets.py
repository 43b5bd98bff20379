"""Encoded packets and their fan-out: one encoder per layer, many subscribers (viewers, recorder).

The encoders run in their own threads and hand packets to the event loop with `publish_threadsafe`.
Each subscriber has a bounded queue; a video subscriber that falls behind drops to the next
keyframe instead of growing a queue (a slow viewer must never slow the others).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from fractions import Fraction
from typing import TypeVar

VIDEO_LAYERS = ("high", "low", "lowest")  # best first; "lowest" can be configured off
AUDIO_LAYER = "audio"
VIDEO_TIME_BASE = Fraction(1, 90_000)
AUDIO_TIME_BASE = Fraction(1, 48_000)


@dataclass(frozen=True)
class EncodedPacket:
    """One encoded access unit (H.264 Annex-B) or one Opus packet, as it goes to every subscriber."""

    layer: str  # "high" | "low" | "lowest" | "audio"
    data: bytes
    pts: int  # in time_base units, from the shared media clock
    time_base: Fraction
    keyframe: bool
    captured_at: float  # the monotonic time the source captured it (the media clock, the ink log's too)
    duration: int = 0  # in time_base units (0 when unknown)


@dataclass
class PacketSubscription:
    """A subscriber's bounded queue of packets for the layers it asked for."""

    layers: frozenset[str]
    maxsize: int = 240
    _queue: asyncio.Queue[EncodedPacket | None] = field(init=False)
    _waiting_keyframe: set[str] = field(init=False)
    dropped: int = 0
    closed: bool = False

    def __post_init__(self) -> None:
        self._queue = asyncio.Queue(self.maxsize + 1)
        self._waiting_keyframe = {layer for layer in self.layers if layer != AUDIO_LAYER}

    def offer(self, packet: EncodedPacket) -> None:
        """Queue a packet; video waits for a keyframe after a start or an overflow."""
        if self.closed or packet.layer not in self.layers:
            return
        if packet.layer in self._waiting_keyframe:
            if not packet.keyframe:
                self.dropped += 1
                return
            self._waiting_keyframe.discard(packet.layer)
        if self._queue.qsize() >= self.maxsize:
            self._overflow()
        self._queue.put_nowait(packet)

    def _overflow(self) -> None:
        while not self._queue.empty():
            self._queue.get_nowait()
            self.dropped += 1
        self._waiting_keyframe = {layer for layer in self.layers if layer != AUDIO_LAYER}

    def switch(self, layers: Iterable[str]) -> None:
        """Change the layers (e.g. a viewer's link got worse); new video layers start at a keyframe."""
        new = frozenset(layers)
        self._waiting_keyframe |= {layer for layer in new - self.layers if layer != AUDIO_LAYER}
        self.layers = new

    def waiting_keyframe(self, layer: str) -> bool:
        """True while this subscriber waits for a keyframe on `layer`."""
        return layer in self._waiting_keyframe

    async def get(self) -> EncodedPacket | None:
        """The next packet, or None once the fan-out has closed (the lesson ended)."""
        if self.closed and self._queue.empty():
            return None
        return await self._queue.get()

    def close(self) -> None:
        """No more packets; a pending `get()` returns None."""
        if not self.closed:
            self.closed = True
            with contextlib.suppress(asyncio.QueueFull):
                self._queue.put_nowait(None)

    async def __aiter__(self) -> AsyncIterator[EncodedPacket]:
        while (packet := await self.get()) is not None:
            yield packet


KeyframeRequest = Callable[[str], None]
Subscriber = TypeVar("Subscriber", bound=PacketSubscription)


class PacketFanout:
    """Delivers every encoded packet to every subscriber on the event loop."""

    def __init__(self, request_keyframe: KeyframeRequest | None = None) -> None:
        self._subscriptions: list[PacketSubscription] = []
        self._request_keyframe = request_keyframe
        self._loop: asyncio.AbstractEventLoop | None = None

    def bind(self, loop: asyncio.AbstractEventLoop, request_keyframe: KeyframeRequest | None = None) -> None:
        """Remember the loop that encoder threads hand packets to."""
        self._loop = loop
        if request_keyframe is not None:
            self._request_keyframe = request_keyframe

    def subscribe(self, layers: Iterable[str], maxsize: int = 240) -> PacketSubscription:
        """A new subscription; asks the encoders for a keyframe so video starts promptly."""
        return self.add(PacketSubscription(frozenset(layers), maxsize))

    def add(self, subscription: Subscriber) -> Subscriber:
        """Start delivering to `subscription` (e.g. a viewer's feed); asks for a keyframe as `subscribe` does."""
        self._subscriptions.append(subscription)
        for layer in subscription.layers:
            if layer != AUDIO_LAYER:
                self.request_keyframe(layer)
        return subscription

    def unsubscribe(self, subscription: PacketSubscription) -> None:
        """Remove and close a subscription (idempotent)."""
        subscription.close()
        if subscription in self._subscriptions:
            self._subscriptions.remove(subscription)

    def request_keyframe(self, layer: str) -> None:
        """Ask the shared encoder of `layer` for a keyframe (the encoder rate-limits)."""
        if self._request_keyframe is not None:
            self._request_keyframe(layer)

    def publish(self, packet: EncodedPacket) -> None:
        """Deliver a packet to every subscriber (on the event loop)."""
        for subscription in self._subscriptions:
            subscription.offer(packet)

    def publish_threadsafe(self, packet: EncodedPacket) -> None:
        """Deliver from an encoder thread."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self.publish, packet)

    def close(self) -> None:
        """End every subscription (the lesson ended)."""
        for subscription in list(self._subscriptions):
            self.unsubscribe(subscription)

    @property
    def subscribers(self) -> int:
        """How many subscriptions are open."""
        return len(self._subscriptions)


# The packet source port: the media's shared packets once the media component exists (what viewers,
# the uplink and the recorder read). It lives here, not in edge/core/ports.py: its value is this
# module's PacketFanout, whose surface (subscriptions, keyframe routing) is too wide to mirror in core.
PacketSource = Callable[[], PacketFanout | None]
