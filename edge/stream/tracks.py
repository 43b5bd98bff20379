"""aiortc glue for encode-once streaming: passthrough tracks and keyframe-request routing.

A track whose `recv()` returns an `av.Packet` makes aiortc's sender only packetize (no encode);
each extra viewer then costs about 1% of a core. On that path aiortc would answer a viewer's
PLI/FIR by flagging its own (unused) encoder, so `route_keyframe_requests` sends them to ours.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import av
from aiortc import RTCRtpSender, RTCRtpTransceiver
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from edge.media.packets import PacketSubscription


class PacketTrack(MediaStreamTrack):
    """A viewer's track fed from a fan-out subscription of already-encoded packets."""

    def __init__(self, kind: str, subscription: PacketSubscription) -> None:
        super().__init__()
        self.kind = kind
        self.subscription = subscription
        self.packets = 0
        self.keyframes = 0

    async def recv(self) -> av.Packet[Any]:
        """The next shared packet; ends the track when the lesson's fan-out closes."""
        packet = await self.subscription.get()
        if packet is None:
            self.stop()
            raise MediaStreamError
        out = av.Packet(packet.data)
        out.pts = packet.pts
        out.time_base = packet.time_base
        self.packets += 1
        self.keyframes += int(packet.keyframe)
        return out

    def stop(self) -> None:
        """End the track and its subscription (idempotent)."""
        self.subscription.close()
        super().stop()


def route_keyframe_requests(sender: RTCRtpSender, on_request: Callable[[], None]) -> None:
    """Make a PLI/FIR this sender receives call `on_request` instead of flagging aiortc's own encoder.

    aiortc 1.16 `RTCRtpSender._handle_rtcp_packet` calls `self._send_keyframe()` for PLI and FIR;
    this is the only place where we reach into aiortc (an instance attribute, no class patch).
    """
    sender._send_keyframe = on_request  # type: ignore[method-assign]


def prefer_codecs(transceiver: RTCRtpTransceiver, mime_type: str) -> None:
    """Offer only `mime_type` (H.264 constrained baseline first) so the shared packets fit every viewer."""
    capabilities = RTCRtpSender.getCapabilities(transceiver.kind).codecs
    chosen = [c for c in capabilities if c.mimeType.lower() == mime_type.lower()]
    chosen.sort(key=lambda c: 0 if c.parameters.get("profile-level-id") == "42e01f" else 1)
    rtx = [c for c in capabilities if c.mimeType.lower().endswith("/rtx")]
    transceiver.setCodecPreferences(chosen + rtx)
