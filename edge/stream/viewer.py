"""One student's session with the live lesson (`Viewer`), the table of those watching, and what reports them."""

from __future__ import annotations

import json
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from aiortc import RTCPeerConnection
from aiortc.rtcdatachannel import RTCDataChannel
from aiortc.rtcrtpsender import RTCRtpSender

from edge.stream.bwe import BandwidthEstimator, SendHistory
from edge.stream.feeds import ViewerFeed
from edge.stream.layers import LayerPolicy
from edge.stream.viewers_service import WatchingStudent

HUB_LOG = "edge.stream.viewers"  # the stream component's log: its parts write there, as before they were split
FEEDBACK_WAIT_S = 3.0  # a viewer that offered transport feedback sends its first within this of its first media
SWITCH_WINDOW_S = 60.0


@dataclass
class Viewer:
    """One student's connection to the live lesson."""

    id: str
    lesson_id: str
    name: str
    pc: RTCPeerConnection
    video: ViewerFeed
    audio: ViewerFeed
    video_sender: RTCRtpSender | None = None
    audio_sender: RTCRtpSender | None = None
    channel: RTCDataChannel | None = None
    layer: str = "high"
    data_saver: bool = False
    hand_raised: bool = False
    preview: bool = False  # the teacher's panel watching what students see: never counted as a student
    joined_at: float = field(default_factory=time.time)
    policy: LayerPolicy = field(default_factory=LayerPolicy)
    keyframe_requests: int = 0
    loss: float = 0.0
    rtt_s: float | None = None
    kbps: float = 0.0
    bandwidth_kbps: float | None = None  # the viewer's latest REMB estimate
    estimator: BandwidthEstimator = field(default_factory=lambda: BandwidthEstimator(SendHistory()))
    switches: deque[float] = field(default_factory=deque)  # when its layer changed, over the last minute
    switches_total: int = 0
    feedback_due_at: float | None = None  # started low to probe up: transport feedback must come by then
    _bandwidth_fresh: bool = False
    _bytes_sent: int = 0
    _lost_seen: tuple[int, int] = (0, 0)
    _stats_at: float = field(default_factory=time.monotonic)

    def send(self, kind: str, **data: Any) -> None:
        """Send a lesson event on the data channel (dropped if it is not open)."""
        self.send_text(json.dumps({**data, "type": kind}))

    def send_text(self, text: str) -> None:
        """Send an already-encoded message on the data channel (dropped if it is not open)."""
        channel = self.channel
        if channel is not None and channel.readyState == "open":
            channel.send(text)

    def bandwidth_estimated(self, bits_per_second: int) -> None:
        """The viewer's REMB: kept for the next check and handed to its estimator."""
        self.bandwidth_kbps, self._bandwidth_fresh = bits_per_second / 1000, True
        self.estimator.on_remb(bits_per_second)

    def estimate_kbps(self) -> float | None:
        """The box's own estimate of this viewer's link, once its transport feedback arrives."""
        if self.estimator.feedback_packets == 0:
            return None
        return round(self.estimator.estimate_bps / 1000, 1)

    def switches_per_minute(self, now: float | None = None) -> int:
        """Layer switches over the last minute."""
        now = time.monotonic() if now is None else now
        while self.switches and self.switches[0] < now - SWITCH_WINDOW_S:
            self.switches.popleft()
        return len(self.switches)

    def report(self) -> WatchingStudent:
        """The viewer as the panel and the API see it."""
        return WatchingStudent(
            id=self.id,
            name=self.name,
            layer=self.layer,
            data_saver=self.data_saver,
            hand_raised=self.hand_raised,
            state=self.pc.connectionState,
            joined_at=self.joined_at,
            kbps=round(self.kbps, 1),
            loss=round(self.loss, 4),
            rtt_ms=None if self.rtt_s is None else round(self.rtt_s * 1000, 1),
            bandwidth_kbps=None if self.bandwidth_kbps is None else round(self.bandwidth_kbps, 1),
            estimate_kbps=self.estimate_kbps(),
            layer_switches_per_min=self.switches_per_minute(),
            probes=self.estimator.probes,
            padding_packets=self.video.padding_packets,
            keyframe_requests=self.keyframe_requests,
            video_packets=self.video.packets,
            dropped_packets=self.video.dropped + self.audio.dropped,
            retransmitted_packets=self.video.retransmitted + self.audio.retransmitted,
            audio_packets=self.audio.packets,
        )


class ViewerTable(dict[str, Viewer]):
    """The viewers connected now, by id, and the totals that outlive them (joins, drops, switches)."""

    def __init__(self) -> None:
        super().__init__()
        self.joined = 0
        self.dropped_by_leavers = 0
        self.switches_by_leavers = 0

    def students(self) -> list[Viewer]:
        """The viewers that are students (the panel's preview is not one)."""
        return [viewer for viewer in self.values() if not viewer.preview]

    def high_count(self) -> int:
        """How many viewers get the high layer."""
        return sum(v.layer == "high" for v in self.values())

    def left(self, viewer: Viewer) -> None:
        """Keep what a viewer that left added to the totals."""
        self.dropped_by_leavers += viewer.video.dropped + viewer.audio.dropped
        self.switches_by_leavers += viewer.switches_total

    def metrics(self) -> dict[str, Any]:
        """The viewers' figures in the stream component's health."""
        layers, viewers = [v.layer for v in self.students()], self.values()
        return {
            "viewers": len(layers),
            "viewers_high": layers.count("high"),
            "viewers_low": layers.count("low"),
            "viewers_lowest": layers.count("lowest"),
            "viewers_audio_only": layers.count("none"),
            "viewers_hands_raised": sum(v.hand_raised for v in viewers),
            "viewers_kbps": round(sum(v.kbps for v in viewers), 1),
            "viewers_dropped_packets": self.dropped_by_leavers
            + sum(v.video.dropped + v.audio.dropped for v in viewers),
            "viewers_joined_total": self.joined,
            "viewers_layer_switches_per_min_max": max((v.switches_per_minute() for v in viewers), default=0),
            "viewers_layer_switches_total": self.switches_by_leavers + sum(v.switches_total for v in viewers),
            "viewers_probes_total": sum(v.estimator.probes for v in viewers),
        }
