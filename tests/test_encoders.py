"""The shared encoders on their own: H.264 layers from real driver frames, keyframes on request, Opus."""

from __future__ import annotations

import threading
import time

import av
import numpy as np
from aiortc.codecs.h264 import H264Encoder

from drivers.audio import RING_FRAMES, SyntheticAudioSource
from drivers.camera import SyntheticVideoSource
from edge.media.encoders import AudioEncoder, KeyframeGate, VideoLayer, VideoLayerEncoder
from edge.media.packets import EncodedPacket
from edge.stream.feeds import SharedPacketizer
from tests.helpers import wait_for


def test_keyframe_requests_are_rate_limited_but_never_lost() -> None:
    gate = KeyframeGate(min_gap_s=0.5)
    for _ in range(20):  # a flood of PLIs from one bad link
        gate.request()
    assert gate.take(now=10.0)
    assert not gate.take(now=10.1)
    gate.request()
    assert not gate.take(now=10.2)  # inside the quiet period: kept for later
    assert gate.take(now=10.5)
    assert not gate.take(now=11.5)  # nothing asked since
    assert gate.requests == 21


def collect(layer: VideoLayer, count: int, ask_after: int | None = None) -> tuple[list[EncodedPacket], int]:
    """At least `count` packets of the synthetic camera from a real encoder; a keyframe asked for after `ask_after`."""
    camera = SyntheticVideoSource("test", 640, 360, 30)
    packets: list[EncodedPacket] = []
    lock = threading.Lock()

    def publish(packet: EncodedPacket) -> None:
        with lock:
            packets.append(packet)

    encoder = VideoLayerEncoder(layer, lambda: camera, publish, origin=time.monotonic(), keyframe_interval_s=10)
    camera.start()
    encoder.start()
    try:
        if ask_after is not None:
            wait_for(lambda: len(packets) >= ask_after, 10, 0.01, f"{ask_after} packets")
            encoder.request_keyframe()
        wait_for(lambda: len(packets) >= count, 10, 0.01, f"{count} packets")
    finally:
        encoder.stop()
        camera.stop()
    return packets, encoder.forced_keyframes


def test_layer_encodes_at_its_own_size_and_rate_with_a_keyframe_on_request() -> None:
    low = VideoLayer("low", 320, 180, 10, 150)
    packets, forced = collect(low, 16, ask_after=8)
    steps = sorted(float((b.pts - a.pts) * b.time_base) for a, b in zip(packets, packets[1:], strict=False))
    assert 0.08 <= steps[len(steps) // 2] <= 0.16  # ~10 fps of a 30 fps camera, by the capture clock
    assert packets[0].keyframe  # a stream starts with one
    assert forced == 1
    assert sum(p.keyframe for p in packets) == 2  # the first and the requested one; the GOP is 10 s
    assert all(b.pts > a.pts for a, b in zip(packets, packets[1:], strict=False))
    decoder = av.CodecContext.create("h264", "r")
    sizes = {(f.width, f.height) for p in packets for f in decoder.decode(av.Packet(p.data))}
    assert sizes == {(320, 180)}


def test_opus_packets_follow_the_capture_clock() -> None:
    mic = SyntheticAudioSource("test")
    packets: list[EncodedPacket] = []
    encoder = AudioEncoder(lambda: mic, packets.append, origin=time.monotonic())
    mic.start()
    encoder.start()
    try:
        wait_for(lambda: len(packets) >= 15, timeout=5, what="15 Opus packets")
    finally:
        encoder.stop()
        mic.stop()
    assert {p.layer for p in packets} == {"audio"}
    steps = [b.pts - a.pts for a, b in zip(packets, packets[1:], strict=False)]
    assert min(steps) >= 960  # never backwards; a stalled machine may re-anchor forwards once
    assert steps.count(960) >= len(steps) - 1
    decoder = av.CodecContext.create("opus", "r")
    samples = sum(f.samples for p in packets[:5] for f in decoder.decode(av.Packet(p.data)))
    assert samples == 5 * 960


def test_each_packet_is_split_into_rtp_payloads_once_for_every_viewer_as_aiortc_would() -> None:
    packets, _ = collect(VideoLayer("high", 640, 360, 30, 1500), 24)
    packetizer, aiortc = SharedPacketizer(), H264Encoder()
    for packet in packets:
        payloads = packetizer.payloads(packet)
        assert packetizer.payloads(packet) is payloads  # every other viewer of the layer gets the same list
        own = av.Packet(packet.data)
        own.pts, own.time_base = packet.pts, packet.time_base
        assert payloads == aiortc.pack(own)[0]
    assert len(packetizer.payloads(packets[0])) > 1  # a keyframe needs fragmentation units


def test_a_lesson_s_sound_starts_at_the_lesson_not_with_the_second_the_microphone_still_holds() -> None:
    mic = SyntheticAudioSource("test")
    mic.start()
    packets: list[EncodedPacket] = []
    try:
        wait_for(lambda: (latest := mic.latest()) and latest.index > RING_FRAMES, 10, what="a full ring of room sound")
        origin = time.monotonic()  # the lesson starts (the media clock): the ring holds the second before it
        encoder = AudioEncoder(lambda: mic, packets.append, origin=origin)
        encoder.start()
        try:
            wait_for(lambda: len(packets) >= 10, 10, what="ten Opus packets")
        finally:
            encoder.stop()
        newest = mic.latest()
    finally:
        mic.stop()
    assert newest is not None
    # Opus pts say when the sound was captured: the last packet holds the newest frames, give or take the codec delay.
    lag = newest.captured_at - (origin + packets[-1].pts / 48_000)
    assert -0.1 < lag < 0.5, f"the sound is stamped {lag:.2f} s away from when it was captured"
    assert packets[0].captured_at >= origin - 0.05, "sound from before the lesson started"


class StallingTone(SyntheticAudioSource):
    """The synthetic tone from a device that stalls once, then hands over what it buffered meanwhile."""

    def __init__(self, stall_s: float) -> None:
        super().__init__("stalling")
        self.stall_s = stall_s
        self.stalled = threading.Event()

    def _read(self) -> np.ndarray:
        if self._index == RING_FRAMES and not self.stalled.is_set():
            self.stalled.set()
            time.sleep(self.stall_s)  # the reader thread is starved; the keeper fills silence meanwhile
        return super()._read()


def test_a_burst_after_a_stalled_microphone_does_not_make_the_sound_late() -> None:
    mic = StallingTone(stall_s=0.45)
    mic.start()
    packets: list[EncodedPacket] = []
    try:
        origin = time.monotonic()
        encoder = AudioEncoder(lambda: mic, packets.append, origin=origin)
        encoder.start()
        try:
            wait_for(mic.stalled.is_set, 10, what="the stall")
            stalled_at = len(packets)
            wait_for(lambda: len(packets) >= stalled_at + 50, 10, what="a second of sound after the stall")
        finally:
            encoder.stop()
        newest = mic.latest()
    finally:
        mic.stop()
    assert newest is not None
    lag = newest.captured_at - (origin + packets[-1].pts / 48_000)
    assert lag > -0.2, f"after the stall the sound is stamped {-lag:.2f} s later than it was captured"
    assert encoder.dropped_frames > 0
