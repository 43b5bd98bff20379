"""A viewer's feed: the shared encoded packets, turned into that viewer's SRTP and sent at once.

aiortc's own sender runs a task per viewer and media kind, and for every RTP packet builds an
`RtpPacket`, serializes it and awaits four layers of coroutines down to the socket. At 40-60
viewers that Python per packet, not the encoding, is what a 2-core box runs out of. A feed does
the same work straight from the fan-out callback: each encoded packet is split into RTP payloads
once for every viewer (`SharedPacketizer`), and per viewer only the 12-byte header, the header
extensions, SRTP protection and a `sendto` remain.

aiortc still does everything else: ICE, DTLS and the SRTP keys, RTCP (its sender reports use the
counts a feed keeps up to date; receiver reports, PLI/FIR and NACK come in as before, and a NACK is
answered from the feed's own history). This module is the one place that reaches into aiortc's
and aioice's private state; the versions are pinned by the lock file, and the stream tests fail
if that state moves.

When the viewer negotiated transport-wide congestion control, every packet also carries the
transport-wide sequence number, noted with its send time and size in the viewer's `SendHistory`;
the viewer's transport feedback goes to its `BandwidthEstimator`, and while the estimator probes,
the video feed pads the link with RTX copies of recent packets.
"""

from __future__ import annotations

import functools
import logging
import random
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from aiortc import RTCPeerConnection, RTCRtpSender, RTCRtpTransceiver
from aiortc.codecs.h264 import H264Encoder
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.rtcdtlstransport import RTCDtlsTransport, State
from aiortc.rtcrtpparameters import RTCRtcpFeedback, RTCRtpHeaderExtensionParameters, RTCRtpSendParameters
from aiortc.rtp import (
    RTCP_PSFB_APP,
    AnyRtcpPacket,
    HeaderExtensions,
    HeaderExtensionsMap,
    RtcpPsfbPacket,
    RtpPacket,
    unpack_remb_fci,
    wrap_rtx,
)
from aiortc.sdp import SessionDescription

from edge.media.packets import AUDIO_LAYER, EncodedPacket, PacketSubscription
from edge.stream.bwe import (
    TRANSPORT_CC_URI,
    BandwidthEstimator,
    TransportFeedback,
    now_us,
    parse_transport_feedback,
    transport_feedback_payloads,
)
from sync.clock import steady_wall

log = logging.getLogger(__name__)

RTP_HEADER = struct.Struct("!BBHLL")
EXTENSION_HEADER = struct.Struct("!HH")
HISTORY_SIZE = 512  # packets kept for NACK retransmission (about 2.5 s of the high layer)
CLOCK_RATES = {"video": 90_000, "audio": 48_000}
NTP_UNIX_OFFSET_S = 2_208_988_800  # 1900-01-01 to 1970-01-01
SRTP_TAG_BYTES = 10
TWO_BYTE_PROFILE = 0x1000
ONE_BYTE_ELEMENT = struct.Struct("!BHx")  # id and length - 1, the 16-bit sequence number, one byte of padding
TWO_BYTE_ELEMENT = struct.Struct("!BBH")  # id, length, the sequence number


class SharedPacketizer:
    """Splits each encoded packet into RTP payloads once, for every viewer of its layer."""

    def __init__(self) -> None:
        self._last: dict[str, tuple[EncodedPacket, list[bytes]]] = {}

    def payloads(self, packet: EncodedPacket) -> list[bytes]:
        """The packet's RTP payloads (H.264: single NAL units, STAP-A and FU-A; Opus: the packet)."""
        last = self._last.get(packet.layer)
        if last is not None and last[0] is packet:
            return last[1]
        if packet.layer == AUDIO_LAYER:
            payloads = [packet.data]
        else:
            payloads = H264Encoder._packetize(H264Encoder._split_bitstream(packet.data))
        self._last[packet.layer] = (packet, payloads)
        return payloads


@dataclass
class Route:
    """What a feed needs to send: negotiated once DTLS is up."""

    payload_type: int
    rtx_payload_type: int | None
    ssrc: int
    rtx_ssrc: int
    mid: str | None
    extensions: HeaderExtensionsMap
    dtls: RTCDtlsTransport
    clock_rate: int
    transport_cc_id: int | None = None  # the transport-wide sequence number's extension id, when negotiated

    def protect(self, data: bytes) -> bytes:
        """SRTP-protect one RTP packet."""
        srtp = self.dtls._tx_srtp
        if self.dtls._state != State.CONNECTED or srtp is None:
            raise ConnectionError("the viewer's DTLS session is closed")
        protected: bytes = srtp.protect(data)
        return protected

    def header_extensions(self, ntp: int) -> bytes:
        """This packet's header extension block (mid, abs-send-time), as aiortc's sender writes it."""
        abs_send_time = (ntp >> 14) & 0x00FFFFFF
        profile, value = self.extensions.set(HeaderExtensions(mid=self.mid, abs_send_time=abs_send_time))
        return EXTENSION_HEADER.pack(profile, len(value) >> 2) + value if value else b""

    def sequenced_extensions(self, ntp: int) -> tuple[bytes, Callable[[int], bytes]]:
        """The frame's extension block and, per packet, its transport-wide sequence number element.

        The shared block is built once per frame; a packet adds 4 bytes (element and padding).
        """
        abs_send_time = (ntp >> 14) & 0x00FFFFFF
        profile, value = self.extensions.set(HeaderExtensions(mid=self.mid, abs_send_time=abs_send_time))
        ext_id = self.transport_cc_id or 0
        if not value:
            profile = TWO_BYTE_PROFILE if ext_id > 14 else 0xBEDE
        block = EXTENSION_HEADER.pack(profile, (len(value) >> 2) + 1) + value
        if profile == TWO_BYTE_PROFILE:
            return block, functools.partial(TWO_BYTE_ELEMENT.pack, ext_id, 2)
        return block, functools.partial(ONE_BYTE_ELEMENT.pack, (ext_id << 4) | 1)

    def destination(self) -> tuple[Callable[[bytes, tuple[str, int]], None], tuple[str, int]]:
        """The nominated ICE pair's datagram send (a UDP socket, or aioice's TURN relay) and remote address."""
        pair = self.dtls.transport._connection._nominated.get(1)
        transport = None if pair is None else getattr(pair.protocol, "transport", None)
        if pair is None or transport is None:
            raise ConnectionError("the viewer's ICE connection has no nominated pair")
        return transport.sendto, pair.remote_addr


class ViewerFeed(PacketSubscription):
    """One viewer's audio or video: a fan-out subscription that sends each packet as this viewer's RTP."""

    def __init__(
        self,
        kind: str,
        layers: Iterable[str],
        packetizer: SharedPacketizer,
        on_ready: Callable[[ViewerFeed], None] = lambda feed: None,
        estimator: BandwidthEstimator | None = None,
    ) -> None:
        super().__init__(frozenset(layers), maxsize=1)
        self.kind = kind
        self.packetizer = packetizer
        self.on_ready = on_ready
        self.packets = 0  # encoded packets (frames) sent
        self.keyframes = 0
        self.rtp_packets = 0
        self.retransmitted = 0
        self.padding_packets = 0
        self.estimator = estimator
        self._pad_from = 0
        self._sender: RTCRtpSender | None = None
        self._parameters: RTCRtpSendParameters | None = None
        self._route: Route | None = None
        self._sequence = random.getrandbits(15)  # below 2^15 so SRTP's rollover counter stays simple
        self._rtx_sequence = random.getrandbits(15)
        self._layer_from = self._sequence
        self._timestamp_origin = random.getrandbits(32)
        self._history: list[tuple[int, int, bool, bytes] | None] = [None] * HISTORY_SIZE
        self._failed = False

    # -- wiring into aiortc ---------------------------------------------------------------------

    def track(self) -> FeedTrack:
        """The track to give aiortc: it carries nothing, it only ends when the feed closes."""
        return FeedTrack(self)

    def attach(self, sender: RTCRtpSender) -> None:
        """Take over `sender`'s RTP: note its negotiated parameters and answer its NACKs."""
        self._sender = sender
        send = sender.send

        async def sending(parameters: RTCRtpSendParameters) -> None:
            self._parameters = parameters
            await send(parameters)

        sender.send = sending  # type: ignore[method-assign]
        sender._retransmit = self._retransmit  # type: ignore[method-assign]

    def _bind(self) -> Route | None:
        sender, parameters = self._sender, self._parameters
        if sender is None or parameters is None or not parameters.codecs:
            return None
        dtls = sender.transport
        if dtls._state != State.CONNECTED or dtls._tx_srtp is None:
            return None
        codec = parameters.codecs[0]
        if codec.payloadType is None:
            return None
        extensions = HeaderExtensionsMap()
        extensions.configure(parameters)
        transport_cc = [e.id for e in parameters.headerExtensions if e.uri == TRANSPORT_CC_URI]
        rtx = [
            c.payloadType
            for c in parameters.codecs
            if c.mimeType.lower().endswith("/rtx") and c.parameters.get("apt") == codec.payloadType
        ]
        self._route = Route(
            payload_type=codec.payloadType,
            rtx_payload_type=rtx[0] if rtx else None,
            ssrc=sender._ssrc,
            rtx_ssrc=sender._rtx_ssrc,
            mid=parameters.muxId or None,
            extensions=extensions,
            dtls=dtls,
            clock_rate=codec.clockRate or CLOCK_RATES[self.kind],
            transport_cc_id=transport_cc[0] if transport_cc and self.estimator is not None else None,
        )
        if self.estimator is not None and self._route.transport_cc_id is not None:
            route_transport_feedback(dtls, self.estimator)
            if self.kind == "video" and self._route.rtx_payload_type is not None:
                self.estimator.pad = self._pad
        self._waiting_keyframe = {layer for layer in self.layers if layer != AUDIO_LAYER}
        self.on_ready(self)
        return self._route

    # -- sending --------------------------------------------------------------------------------

    def offer(self, packet: EncodedPacket) -> None:
        """Send `packet` to this viewer now (video starts at a keyframe); never raises."""
        if self.closed or packet.layer not in self.layers:
            return
        route = self._route or self._bind()
        if route is None:
            return  # not connected yet
        if packet.layer in self._waiting_keyframe:
            if not packet.keyframe:
                self.dropped += 1
                return
            self._waiting_keyframe.discard(packet.layer)
        try:
            self._send_packet(route, packet)
        except (ConnectionError, OSError) as err:
            self._lost(err)
        except Exception:  # one viewer's failure must never stop the fan-out to the others
            if not self._failed:
                log.exception("a %s feed failed; this viewer gets no more %s", self.kind, self.kind)
            self._failed = True
            self._route = None

    def _lost(self, err: Exception) -> None:
        self.dropped += 1
        self._route = None  # bind again (and restart at a keyframe) once the connection is back
        log.debug("a %s feed lost its connection: %s", self.kind, err)

    def _send_packet(self, route: Route, packet: EncodedPacket) -> None:
        payloads = self.packetizer.payloads(packet)
        timestamp = (self._timestamp_origin + rtp_time(packet, route.clock_rate)) & 0xFFFFFFFF
        ntp = ntp_now()
        if route.transport_cc_id is not None and self.estimator is not None:
            datagrams, octets = self._sequenced(route, payloads, timestamp, ntp, self.estimator)
        else:
            datagrams, octets = self._plain(route, payloads, timestamp, ntp)
        self._send(route, datagrams)
        self.packets += 1
        self.keyframes += packet.keyframe
        self.rtp_packets += len(datagrams)
        self._note_sent(ntp, timestamp, len(datagrams), octets)
        if self.estimator is not None and self.estimator.probe is not None:
            self.estimator.after_media(sum(len(d) for d in datagrams))

    def _plain(self, route: Route, payloads: list[bytes], timestamp: int, ntp: int) -> tuple[list[bytes], int]:
        extensions = route.header_extensions(ntp)
        first = 0x90 if extensions else 0x80
        last = len(payloads) - 1
        datagrams = []
        sequence, history, octets = self._sequence, self._history, 0
        for i, payload in enumerate(payloads):
            marker = i == last
            header = RTP_HEADER.pack(first, (marker << 7) | route.payload_type, sequence, timestamp, route.ssrc)
            datagrams.append(route.protect(header + extensions + payload))
            history[sequence % HISTORY_SIZE] = (sequence, timestamp, marker, payload)
            sequence = (sequence + 1) & 0xFFFF
            octets += len(payload)
        self._sequence = sequence
        return datagrams, octets

    def _sequenced(
        self, route: Route, payloads: list[bytes], timestamp: int, ntp: int, estimator: BandwidthEstimator
    ) -> tuple[list[bytes], int]:
        """As `_plain`, each packet with its transport-wide sequence number, noted in the send history."""
        block, element = route.sequenced_extensions(ntp)
        overhead = RTP_HEADER.size + len(block) + 4 + SRTP_TAG_BYTES
        wide = estimator.history.take_run(now_us(), [overhead + len(payload) for payload in payloads])
        last = len(payloads) - 1
        datagrams = []
        sequence, history, octets = self._sequence, self._history, 0
        for i, payload in enumerate(payloads):
            marker = i == last
            header = RTP_HEADER.pack(0x90, (marker << 7) | route.payload_type, sequence, timestamp, route.ssrc)
            datagrams.append(route.protect(header + block + element((wide + i) & 0xFFFF) + payload))
            history[sequence % HISTORY_SIZE] = (sequence, timestamp, marker, payload)
            sequence = (sequence + 1) & 0xFFFF
            octets += len(payload)
        self._sequence = sequence
        return datagrams, octets

    def _pad(self, due_bytes: int) -> int:
        """Probe padding: RTX copies of the most recent packets until `due_bytes` went out; the bytes sent."""
        route, sent = self._route, 0
        if route is None or route.rtx_payload_type is None:
            return 0
        start = (self._sequence - 1) & 0xFFFF
        for back in range(HISTORY_SIZE):
            if sent >= due_bytes:
                break
            entry = self._history[(start - ((self._pad_from + back) % 64)) % HISTORY_SIZE]
            if entry is None:
                break
            sent += self._resend(route, entry)
            self.padding_packets += 1
        self._pad_from = (self._pad_from + 1) % 64
        return sent

    def _send(self, route: Route, datagrams: list[bytes]) -> None:
        sendto, address = route.destination()
        for datagram in datagrams:
            sendto(datagram, address)

    def _note_sent(self, ntp: int, timestamp: int, packets: int, octets: int) -> None:
        """Keep aiortc's sender counts true: its RTCP sender reports and getStats() read them."""
        sender = self._sender
        if sender is None:
            return
        sender._RTCRtpSender__ntp_timestamp = ntp  # type: ignore[attr-defined]
        sender._RTCRtpSender__rtp_timestamp = timestamp  # type: ignore[attr-defined]
        sender._RTCRtpSender__packet_count += packets  # type: ignore[attr-defined]
        sender._RTCRtpSender__octet_count += octets  # type: ignore[attr-defined]

    async def _retransmit(self, sequence_number: int) -> None:
        """Answer a viewer's NACK from the history (as RTX when negotiated)."""
        route, entry = self._route, self._history[sequence_number % HISTORY_SIZE]
        if route is None or entry is None or entry[0] != sequence_number:
            return
        if (sequence_number - self._layer_from) & 0xFFFF >= 0x8000:
            return  # a packet of the layer the viewer had before: its decoder restarted at a keyframe
        if self.estimator is not None and not self.estimator.may_retransmit(len(entry[3])):
            return  # a congested link: repairs beyond a share of the estimate only keep its queue full
        if self._resend(route, entry):
            self.retransmitted += 1

    def switch(self, layers: Iterable[str]) -> None:
        """Change the layers; what was sent of the old one is no longer repaired."""
        super().switch(layers)
        self._layer_from = self._sequence

    def _resend(self, route: Route, entry: tuple[int, int, bool, bytes]) -> int:
        """Send a packet from the history again (as RTX when negotiated); the bytes sent (0 if it failed)."""
        sequence_number, timestamp, marker, payload = entry
        packet = RtpPacket(
            payload_type=route.payload_type, marker=int(marker), sequence_number=sequence_number, timestamp=timestamp
        )
        packet.ssrc, packet.payload = route.ssrc, payload
        if route.rtx_payload_type is not None:
            packet = wrap_rtx(packet, route.rtx_payload_type, self._rtx_sequence, route.rtx_ssrc)
            self._rtx_sequence = (self._rtx_sequence + 1) & 0xFFFF
        packet.extensions.mid = route.mid
        estimator = self.estimator
        if route.transport_cc_id is not None and estimator is not None:
            size = len(packet.payload) + 40  # header, extensions and SRTP tag, near enough for a rate
            packet.extensions.transport_sequence_number = estimator.history.take(now_us(), size)
        try:
            datagram = route.protect(packet.serialize(route.extensions))
            self._send(route, [datagram])
        except (ConnectionError, OSError) as err:
            self._lost(err)
            return 0
        return len(datagram)


def ntp_now() -> int:
    """The 64-bit NTP time for sender reports and abs-send-time, on a clock that never steps.

    Receivers only compare these with each other (bandwidth estimates, A/V sync), so a wall-clock
    step (NTP answering mid-lesson) must not show up in them.
    """
    return int((steady_wall() + NTP_UNIX_OFFSET_S) * (1 << 32))


def rtp_time(packet: EncodedPacket, clock_rate: int) -> int:
    """The packet's presentation time in RTP clock units."""
    if packet.time_base.numerator == 1 and packet.time_base.denominator == clock_rate:
        return packet.pts
    return int(packet.pts * packet.time_base * clock_rate)


class FeedTrack(MediaStreamTrack):
    """The track a feed gives aiortc: its `recv()` waits until the feed closes, then ends the track.

    The feed sends the packets itself, so aiortc's own sending loop only waits here.
    """

    def __init__(self, feed: ViewerFeed) -> None:
        super().__init__()
        self.kind = feed.kind
        self.feed = feed

    async def recv(self) -> Any:
        """Never yields a frame; raises MediaStreamError once the feed has closed."""
        while await self.feed.get() is not None:
            pass
        self.stop()
        raise MediaStreamError

    def stop(self) -> None:
        """End the track and its feed (idempotent)."""
        self.feed.close()
        super().stop()


def route_keyframe_requests(sender: RTCRtpSender, on_request: Callable[[], None]) -> None:
    """Make a PLI/FIR this sender receives call `on_request` instead of flagging aiortc's own encoder.

    aiortc 1.16 `RTCRtpSender._handle_rtcp_packet` calls `self._send_keyframe()` for PLI and FIR.
    """
    sender._send_keyframe = on_request  # type: ignore[method-assign]


def route_bitrate_estimates(sender: RTCRtpSender, on_estimate: Callable[[int], None]) -> None:
    """Make each REMB (the viewer's estimate of its link, bits/s) for this sender call `on_estimate`.

    aiortc would hand it to its own (unused) encoder; the shared encoder cannot follow one viewer,
    so the estimate goes to that viewer's layer choice instead.
    """
    handle = sender._handle_rtcp_packet

    async def handling(packet: AnyRtcpPacket) -> None:
        if isinstance(packet, RtcpPsfbPacket) and packet.fmt == RTCP_PSFB_APP:
            try:
                bitrate, ssrcs = unpack_remb_fci(packet.fci)
            except ValueError:
                return  # a malformed REMB is ignored, as aiortc does
            if sender._ssrc in ssrcs:
                on_estimate(bitrate)
        await handle(packet)

    sender._handle_rtcp_packet = handling  # type: ignore[method-assign]


def route_transport_feedback(dtls: RTCDtlsTransport, estimator: BandwidthEstimator) -> None:
    """Hand every RTCP transport feedback (RTPFB fmt 15) this transport receives to `estimator`.

    aiortc 1.16 reads fmt 15 as a NACK list and drops it (`RTCRtpSender` acts on fmt 1 only), so the
    raw datagram is read here before aiortc parses it. Hooked once per transport (BUNDLE shares one).
    """
    if id(dtls) in estimator.transports:
        return
    estimator.transports.add(id(dtls))
    handle = dtls._handle_rtcp_data

    async def handling(data: bytes) -> None:
        for payload in transport_feedback_payloads(data):
            try:
                feedback: TransportFeedback = parse_transport_feedback(payload)
            except ValueError:
                continue  # a malformed feedback is ignored, as aiortc ignores malformed RTCP
            estimator.on_feedback(feedback)
        await handle(data)

    dtls._handle_rtcp_data = handling  # type: ignore[method-assign]


def accept_transport_cc(pc: RTCPeerConnection, offer_sdp: str) -> None:
    """Answer transport-wide congestion control where the offer has it (its extension and rtcp-fb).

    Call after setRemoteDescription, before createAnswer: aiortc 1.16 answers only the extensions
    and feedback it knows itself (`HEADER_EXTENSIONS`, `CODECS`), which leave transport-cc out.
    """
    offered = {m.rtp.muxId: m for m in SessionDescription.parse(offer_sdp).media}
    for transceiver in pc.getTransceivers():
        media = offered.get(transceiver.mid or "")
        if media is None:
            continue
        extension = [e for e in media.rtp.headerExtensions if e.uri == TRANSPORT_CC_URI]
        if not extension or any(e.uri == TRANSPORT_CC_URI for e in transceiver._headerExtensions):
            continue
        transceiver._headerExtensions.append(RTCRtpHeaderExtensionParameters(id=extension[0].id, uri=TRANSPORT_CC_URI))
        feedback = RTCRtcpFeedback(type="transport-cc")
        wanted = {c.payloadType for c in media.rtp.codecs if feedback in c.rtcpFeedback}
        for codec in transceiver._codecs:
            if codec.payloadType in wanted and feedback not in codec.rtcpFeedback:
                codec.rtcpFeedback.append(feedback)


def prefer_codecs(transceiver: RTCRtpTransceiver, mime_type: str) -> None:
    """Offer only `mime_type` (H.264 constrained baseline first) so the shared packets fit every viewer."""
    capabilities = RTCRtpSender.getCapabilities(transceiver.kind).codecs
    chosen = [c for c in capabilities if c.mimeType.lower() == mime_type.lower()]
    chosen.sort(key=lambda c: 0 if c.parameters.get("profile-level-id") == "42e01f" else 1)
    rtx = [c for c in capabilities if c.mimeType.lower().endswith("/rtx")]
    transceiver.setCodecPreferences(chosen + rtx)
