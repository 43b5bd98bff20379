"""The `stream` component: every student watching the live lesson, one peer connection each.

Each viewer gets the shared packets of one video layer plus audio (passthrough senders), a data
channel for lesson events, and a layer that follows its receiver reports. Stopping the lesson
tells every viewer and closes them all.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from aiortc import (
    RTCConfiguration,
    RTCIceTransportPolicy,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.exceptions import InvalidAccessError, InvalidStateError, OperationError
from aiortc.rtcdatachannel import RTCDataChannel
from aiortc.rtcrtpsender import RTCRtpSender

from edge.core.component import Component
from edge.core.errors import BadOffer, LessonFull, LessonNotFound, StreamUnavailable, ViewerError
from edge.core.events import EventBus
from edge.core.ports import BoardMessages, ConfigSource, LessonHooks, LessonLookup, LessonView, LiveLesson
from edge.media.live import video_layers
from edge.media.packets import AUDIO_LAYER, PacketFanout, PacketSource
from edge.stream.bwe import (
    PROBE_OUTCOMES,
    PROBE_PACE_S,
    START_BPS,
    START_PROBED_BPS,
    TRANSPORT_CC_URI,
    BandwidthEstimator,
    SendHistory,
)
from edge.stream.feeds import (
    SharedPacketizer,
    ViewerFeed,
    accept_transport_cc,
    prefer_codecs,
    route_bitrate_estimates,
    route_keyframe_requests,
)
from edge.stream.ice import rtc_ice_servers
from edge.stream.ice_restart import close_peer
from edge.stream.layers import LayerPolicy, LinkReport, SendCapacity
from edge.stream.offers import check_offer
from edge.stream.viewers_service import WatchingStudent

log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 2048
FEEDBACK_WAIT_S = 3.0  # a viewer that offered transport feedback sends its first within this of its first media
FALLBACKS_PER_CHECK = 5  # viewers without feedback moved up per check: sixty at once would all want a keyframe burst
MAX_RTT_S = 10.0  # beyond this (or below 0) an RTT is a wall-clock step, not the link
FORWARDED_TOPICS = "board."  # bus topics every viewer receives (the board's ink, page changes)
NAME_RE = re.compile(r"^[\w .,'()-]{1,40}$", re.UNICODE)
SWITCH_WINDOW_S = 60.0
URGENT_QUEUE_MS = 150.0  # an overuse with this much queued steps a far-short viewer down between checks
URGENT_STEP_GAP_S = 1.0  # ...at most one such step a second (the next waits for the checks' reports)


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


def _unavailable(err: BaseException) -> StreamUnavailable:
    """The box ran out of something (descriptors, ports, memory) while taking a viewer."""
    reason = err.strerror if isinstance(err, OSError) and err.strerror else type(err).__name__
    return StreamUnavailable(f"the box cannot take a viewer now: {reason}")


def parse_message(message: str | bytes) -> dict[str, Any]:
    """A viewer's data-channel message as a JSON object; raise ValueError/TypeError otherwise."""
    if len(message) > MAX_MESSAGE_BYTES:
        raise ValueError("message too long")
    data = json.loads(message)
    if not isinstance(data, dict):
        raise TypeError("a message is a JSON object")
    return data


class ViewerHub(Component):
    """Joins, serves and drops the students watching the live lesson."""

    name = "stream"

    def __init__(
        self,
        *,
        config: ConfigSource,
        bus: EventBus,
        lessons: LessonHooks,
        live: LiveLesson,
        lookup: LessonLookup,
        packets: PacketSource,
        board: BoardMessages,
        monitor_interval_s: float = 1.0,
    ) -> None:
        """`board`: what a late joiner is sent of the board; `packets`: the media's shared packets."""
        super().__init__()
        self._config, self._bus, self._live, self._lookup = config, bus, live, lookup
        self._packets, self._board = packets, board
        self.monitor_interval_s = monitor_interval_s
        self._viewers: dict[str, Viewer] = {}
        self.ended_grace_s = 0.3
        self.capacity = SendCapacity()
        self.loop_lag_s = 0.0
        self._fallbacks_left = FALLBACKS_PER_CHECK
        self._dropped_by_leavers = 0
        self._switches_by_leavers = 0
        self.packetizer = SharedPacketizer()  # shared with the uplink: each packet is split once
        self._probing = asyncio.Event()  # some viewer probes: the pacer runs
        self.joined = 0
        lessons.on_stop(self._lesson_stopped)

    # -- component ------------------------------------------------------------------------------

    async def start(self) -> None:
        self._report()

    async def run(self) -> None:
        forwarding = asyncio.create_task(self._forward_lesson_events(), name="stream:lesson-events")
        pacing = asyncio.create_task(self._pace_probes(), name="stream:probe-pacer")
        try:
            await self._monitor()
        finally:
            forwarding.cancel()
            pacing.cancel()
            await asyncio.gather(forwarding, pacing, return_exceptions=True)

    async def _monitor(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            began = loop.time()
            await asyncio.sleep(self.monitor_interval_s)
            self.loop_lag_s = max(0.0, loop.time() - began - self.monitor_interval_s)
            await self.check_viewers()

    async def _pace_probes(self) -> None:
        """Probe padding goes out every 5 ms while a viewer probes (after frames alone it would go in bursts)."""
        while True:
            await self._probing.wait()
            probing = [v.estimator for v in self._viewers.values() if v.estimator.probe is not None]
            if not probing:
                self._probing.clear()
                continue
            for estimator in probing:
                estimator.after_media(0)
            await asyncio.sleep(PROBE_PACE_S)

    async def _forward_lesson_events(self) -> None:
        """Board ink and other lesson events on the bus go to every viewer's data channel."""
        with self._bus.subscribe(FORWARDED_TOPICS) as events:
            async for event in events:
                try:
                    text = json.dumps({**event.data, "type": event.topic, "at": event.at})
                except (TypeError, ValueError):
                    log.warning("lesson event %s is not JSON; not sent to viewers", event.topic)
                    continue
                for viewer in list(self._viewers.values()):
                    viewer.send_text(text)

    async def stop(self) -> None:
        await self.close_all("the box is shutting down")

    # -- joining and leaving --------------------------------------------------------------------

    def fanout(self) -> PacketFanout:
        """The shared packets (the media component's fan-out)."""
        fanout = self._packets()
        if fanout is None:
            raise StreamUnavailable("the live stream is not running on this box right now")
        return fanout

    def live_lesson(self, join_code: str) -> LessonView:
        """The live lesson with this code; raise LessonNotFound otherwise."""
        lesson = self._live.current()
        if lesson is None or lesson.join_code != join_code.lower():
            known = self._lookup.by_code(join_code)
            if known is not None and known.state != "live":
                raise LessonNotFound("this lesson has ended")
            raise LessonNotFound("no live lesson has this code (it may not have started yet)")
        return lesson

    async def open_viewer(
        self, join_code: str, offer_sdp: str, name: str = "", data_saver: bool = False, preview: bool = False
    ) -> tuple[Viewer, str]:
        """Answer a student's offer (or the panel's `preview`: the low layer, not counted as a student).

        Raise LessonNotFound, LessonFull, StreamUnavailable or BadOffer.
        """
        lesson = self.live_lesson(join_code)
        uplink = self._config().uplink
        if not preview and uplink.mode == "cloud" and uplink.publishes():
            raise StreamUnavailable("this lesson is watched through the cloud server: open the join link again")
        if not preview and self.count >= self._config().lesson.max_viewers:
            raise LessonFull(f"this lesson already has {self.count} viewers, the most this box serves")
        check_offer(offer_sdp)
        try:
            probes_up = not preview and self._probes_up(offer_sdp)  # the panel's preview is local: low at once
            shown_as = name or ("panel preview" if preview else "")
            viewer = self._new_viewer(lesson, shown_as, data_saver or preview, probes_up=probes_up)
        except (OSError, MemoryError) as err:
            raise _unavailable(err) from err
        viewer.preview = preview
        self._viewers[viewer.id] = viewer
        try:
            answer = await self._negotiate(viewer, offer_sdp)
        except Exception as err:
            ended = viewer.id not in self._viewers  # the lesson stopped while we were answering
            await self.close_viewer(viewer.id, "refused" if isinstance(err, ViewerError) else "failed")
            if ended:
                raise LessonNotFound("this lesson has ended") from err
            raise
        except BaseException:
            await self.close_viewer(viewer.id, "cancelled")
            raise
        if preview:
            log.info("panel preview %s of lesson %s", viewer.id, lesson.id)
            return viewer, answer
        self.joined += 1
        log.info("viewer %s joined lesson %s (%d watching)", viewer.id, lesson.id, self.count)
        self._bus.publish("viewer.joined", viewer=viewer.report().to_json(), watching=self.count)
        self._report()
        return viewer, answer

    def _start_layer(self, data_saver: bool) -> str:
        """Where a viewer that cannot probe starts: the high layer, unless data saver or the box is at capacity."""
        return "low" if data_saver or not self.capacity.allows_high(self._high_count()) else "high"

    def _probes_up(self, offer_sdp: str) -> bool:
        """True when the box can find this viewer's layer itself: transport feedback and RTX (for probes) offered."""
        offer = offer_sdp.lower()
        return self._config().stream.adaptive_layers and TRANSPORT_CC_URI in offer_sdp and "rtx/90000" in offer

    def _new_viewer(self, lesson: LessonView, name: str, data_saver: bool, probes_up: bool = False) -> Viewer:
        """A viewer on the high layer, or on the lowest one when it can probe its way up (a weak link never floods)."""
        fanout = self.fanout()
        policy = self._policy()
        layer = policy.ladder[1] if probes_up else self._start_layer(data_saver)
        stream = self._config().stream
        relay = RTCIceTransportPolicy.RELAY if stream.relay_only else RTCIceTransportPolicy.ALL
        viewer_id = uuid.uuid4().hex[:16]
        servers = rtc_ice_servers(stream.ice_servers, viewer_id)  # the viewer's own minted TURN credentials
        pc = RTCPeerConnection(RTCConfiguration(iceServers=servers, iceTransportPolicy=relay))
        clean = name.strip() if NAME_RE.match(name.strip() or "-") else ""
        estimator = BandwidthEstimator(SendHistory(), START_PROBED_BPS if probes_up else START_BPS)
        viewer = Viewer(
            id=viewer_id,
            lesson_id=lesson.id,
            name=clean or f"Student {self.joined + 1}",
            pc=pc,
            video=fanout.add(ViewerFeed("video", [layer], self.packetizer, self._feed_ready, estimator)),
            audio=fanout.add(ViewerFeed("audio", [AUDIO_LAYER], self.packetizer, estimator=estimator)),
            layer=layer,
            data_saver=data_saver,
            estimator=estimator,
            policy=policy,
            feedback_due_at=time.monotonic() + FEEDBACK_WAIT_S if probes_up else None,
        )
        video = pc.addTransceiver(viewer.video.track(), direction="sendonly")
        prefer_codecs(video, "video/H264")
        audio = pc.addTransceiver(viewer.audio.track(), direction="sendonly")
        prefer_codecs(audio, "audio/opus")
        viewer.video_sender, viewer.audio_sender = video.sender, audio.sender
        viewer.video.attach(video.sender)
        viewer.audio.attach(audio.sender)
        route_keyframe_requests(video.sender, lambda: self._keyframe_wanted(viewer))
        route_bitrate_estimates(video.sender, lambda bps: self._bandwidth_estimated(viewer, bps))
        estimator.on_congestion = lambda: self._congested(viewer)
        pc.on("datachannel", lambda channel: self._attach_channel(viewer, channel))
        return viewer

    def _policy(self) -> LayerPolicy:
        """A viewer's layer policy over the configured layers, ordered by bitrate."""
        layers = sorted(video_layers(self._config()), key=lambda layer: layer.kbps)
        return LayerPolicy(
            ladder=("none", *(layer.name for layer in layers)),
            layer_kbps={layer.name: float(layer.kbps) for layer in layers},
            audio_kbps=float(self._config().stream.audio_kbps),
        )

    async def _negotiate(self, viewer: Viewer, offer_sdp: str) -> str:
        """The answer to `offer_sdp`; raise BadOffer for what is wrong with it, StreamUnavailable for the box."""
        try:
            await viewer.pc.setRemoteDescription(RTCSessionDescription(offer_sdp, "offer"))
            accept_transport_cc(viewer.pc, offer_sdp)
            answer = await viewer.pc.createAnswer()
            await viewer.pc.setLocalDescription(answer)
        except OperationError as err:
            raise BadOffer(f"the offer has no codec in common with this box (H.264 and Opus): {err}") from err
        except (OSError, MemoryError) as err:  # no UDP port or memory left: the box's trouble, not the offer's
            raise _unavailable(err) from err
        except (ValueError, InvalidAccessError, InvalidStateError) as err:
            raise BadOffer(f"the offer was refused: {err}") from err
        except Exception as err:  # whatever else aiortc raises while answering comes from what the offer says
            raise BadOffer(f"the offer could not be answered: {type(err).__name__}: {err}") from err
        sdp: str = viewer.pc.localDescription.sdp
        if "\na=candidate:" not in sdp:  # aioice skips an address it cannot bind: no candidate, no connection
            raise StreamUnavailable(
                "the box has no network port for this viewer now (no UDP port free, or TURN unreachable)"
            )
        return sdp

    def viewer(self, viewer_id: str) -> Viewer | None:
        """A connected viewer by id."""
        return self._viewers.get(viewer_id)

    async def close_viewer(self, viewer_id: str, reason: str = "left") -> bool:
        """End one viewer's session and free everything it held; False if it was not there."""
        viewer = self._viewers.pop(viewer_id, None)
        if viewer is None:
            return False
        fanout = self._packets()
        for feed in (viewer.video, viewer.audio):
            if fanout is not None:
                fanout.unsubscribe(feed)
            feed.close()
        self._dropped_by_leavers += viewer.video.dropped + viewer.audio.dropped
        self._switches_by_leavers += viewer.switches_total
        try:  # a viewer whose link (or the box's own cable) is gone must not hold the lesson's end
            await close_peer(viewer.pc)
        except Exception:  # a connection half set up by a bad offer: what it held is released regardless
            log.warning("viewer %s: closing its connection failed", viewer.id, exc_info=True)
        log.info("viewer %s %s (%d watching)", viewer.id, reason, self.count)
        if not viewer.preview:
            self._bus.publish("viewer.left", viewer=viewer.id, reason=reason, watching=self.count)
        self._report()
        return True

    async def close_all(self, reason: str) -> None:
        """End every viewer's session."""
        await asyncio.gather(*(self.close_viewer(v, reason) for v in list(self._viewers)))

    async def _lesson_stopped(self, lesson: LessonView) -> None:
        viewers = list(self._viewers.values())
        for viewer in viewers:
            viewer.send("lesson.ended", title=lesson.title)
        if viewers:
            await asyncio.sleep(self.ended_grace_s)  # let the data channels carry the news
        await self.close_all("lesson ended")

    # -- per viewer: keyframes, layers, data channel -------------------------------------------

    def _feed_ready(self, feed: ViewerFeed) -> None:
        """A viewer's video is connected: its first picture needs a keyframe."""
        for layer in feed.layers:
            self.fanout().request_keyframe(layer)

    def _bandwidth_estimated(self, viewer: Viewer, bits_per_second: int) -> None:
        viewer.bandwidth_kbps, viewer._bandwidth_fresh = bits_per_second / 1000, True
        viewer.estimator.on_remb(bits_per_second)

    def _congested(self, viewer: Viewer) -> None:
        """The viewer's link queues or loses packets: if the estimate is far short of its layer, step down now.

        Waiting for the next check would keep the old layer pouring into the queue for up to a second.
        The estimator says so on every feedback message while it lasts: the estimate goes on falling
        after the onset, and the message where it falls far short is the one to act on.
        """
        if viewer.id not in self._viewers or not (self._config().stream.adaptive_layers or viewer.data_saver):
            return
        own, estimator = viewer.estimate_kbps(), viewer.estimator
        if own is None or own >= viewer.policy.far_short_share * viewer.policy.need_kbps(viewer.layer):
            return
        if viewer.switches and time.monotonic() - viewer.switches[-1] < URGENT_STEP_GAP_S:
            return  # one step at a time: the estimate under a draining queue is no measure of the layer below
        if estimator.queue_delay_ms() > URGENT_QUEUE_MS or estimator.loss >= viewer.policy.down_loss:
            self._adapt(viewer, LinkReport(viewer.loss, viewer.rtt_s, None, viewer.kbps, own, congested=True))

    def _keyframe_wanted(self, viewer: Viewer) -> None:
        viewer.keyframe_requests += 1
        if viewer.layer != "none":
            self.fanout().request_keyframe(viewer.layer)

    def set_layer(self, viewer: Viewer, layer: str, why: str = "") -> None:
        """Give the viewer another layer ("high", "low", "lowest" or "none"); video resumes at a keyframe."""
        if layer == viewer.layer:
            return
        viewer.layer = layer
        viewer.switches.append(time.monotonic())
        viewer.switches_total += 1
        viewer.video.switch([] if layer == "none" else [layer])
        if layer != "none":
            self.fanout().request_keyframe(layer)
        viewer.send("layer", layer=layer)
        log.info("viewer %s now gets layer %s%s", viewer.id, layer, f" ({why})" if why else "")

    def set_data_saver(self, viewer: Viewer, on: bool) -> None:
        """Turn data saver on (caps the viewer at the low layer) or off."""
        viewer.data_saver = on
        if on and viewer.layer == "high":
            self.set_layer(viewer, "low", "data saver")
        elif not on and viewer.layer == "low" and not self._config().stream.adaptive_layers:
            self.set_layer(viewer, "high")

    def _attach_channel(self, viewer: Viewer, channel: RTCDataChannel) -> None:
        viewer.channel = channel
        channel.on("message", lambda message: self._on_message(viewer, message))
        channel.on("open", lambda: self._welcome(viewer))
        if channel.readyState == "open":
            self._welcome(viewer)

    def _welcome(self, viewer: Viewer) -> None:
        lesson = self._live.current()
        viewer.send(
            "welcome", viewer=viewer.id, name=viewer.name, title=lesson.title if lesson else "", layer=viewer.layer
        )
        for message in self._board.state_messages():  # a late joiner sees the board as it is
            viewer.send_text(message)

    def _on_message(self, viewer: Viewer, message: str | bytes) -> None:
        try:
            self._handle(viewer, parse_message(message))
        except (ValueError, TypeError) as err:
            viewer.send("error", message=f"message refused: {err}")

    def _handle(self, viewer: Viewer, data: dict[str, Any]) -> None:
        kind = data.get("type")
        if kind == "hand":
            self.set_hand(viewer, bool(data.get("raised")))
        elif kind == "data_saver":
            self.set_data_saver(viewer, bool(data.get("on")))
        elif kind == "ping":
            viewer.send("pong", t=data.get("t"))
        else:
            raise ValueError(f"unknown message type {kind!r}")

    def set_hand(self, viewer: Viewer, raised: bool) -> None:
        """A student raised or lowered their hand."""
        if viewer.hand_raised == raised:
            return
        viewer.hand_raised = raised
        topic = "hand.raised" if raised else "hand.lowered"
        self._bus.publish(topic, viewer=viewer.id, name=viewer.name)
        viewer.send("hand", raised=raised)

    def acknowledge_hand(self, viewer_id: str) -> None:
        """The teacher answered a raised hand; raise ViewerError if the viewer is gone."""
        viewer = self._viewers.get(viewer_id)
        if viewer is None:
            raise ViewerError("this student is no longer watching")
        viewer.hand_raised = False
        viewer.send("hand", raised=False, acknowledged=True)
        self._bus.publish("hand.acknowledged", viewer=viewer.id, name=viewer.name)

    def dismiss_hand(self, viewer_id: str) -> None:
        """The teacher lowered a raised hand without letting the student speak; raise ViewerError if they left."""
        viewer = self._viewers.get(viewer_id)
        if viewer is None:
            raise ViewerError("this student is no longer watching")
        viewer.hand_raised = False
        viewer.send("hand", raised=False, dismissed=True)
        self._bus.publish("hand.dismissed", viewer=viewer.id, name=viewer.name)

    # -- monitoring -----------------------------------------------------------------------------

    async def check_viewers(self) -> None:
        """Drop dead connections, read receiver reports, adjust layers (the run loop calls this)."""
        await self._rejoin_stale_viewers()
        self._fallbacks_left = FALLBACKS_PER_CHECK
        for viewer in list(self._viewers.values()):
            if viewer.pc.connectionState in ("failed", "closed"):
                await self.close_viewer(viewer.id, f"connection {viewer.pc.connectionState}")
                continue
            report = await self._read_stats(viewer)
            if self._config().stream.adaptive_layers or viewer.data_saver:
                self._adapt(viewer, report)
        self._shed_load()
        self._report()

    def _adapt(self, viewer: Viewer, report: LinkReport | None) -> None:
        """Move the viewer to the layer its link carries; probe for the next one when the policy asks."""
        now = time.monotonic()
        if self._no_feedback(viewer, now):
            return
        layer = viewer.policy.next_layer(viewer.layer, report, viewer.data_saver, now)
        at_capacity = not self.capacity.allows_high(self._high_count())
        if layer == "high" and viewer.layer != "high" and at_capacity:
            layer = viewer.layer  # the box is at capacity: the link could take more, the box cannot
        self.set_layer(viewer, layer, viewer.policy.describe(report))
        if report is None or report.estimate_kbps is None or not viewer.estimator.can_probe:
            return
        if viewer.layer == viewer.policy.ladder[-2] and at_capacity:
            return  # no probe for a layer the box would not give
        target = viewer.policy.probe_kbps(viewer.layer, viewer.data_saver, now, report.estimate_kbps)
        if target is not None and viewer.estimator.start_probe(int(target * 1000)):
            self._probing.set()
            log.debug("viewer %s: probing at %.0f kbps", viewer.id, target)

    def _no_feedback(self, viewer: Viewer, now: float) -> bool:
        """A viewer that offered transport feedback but sends none cannot probe up: it gets the usual start layer.

        Its layer then follows its receiver reports, as for any player without transport feedback.
        """
        due = viewer.feedback_due_at
        if due is None:
            return False
        if viewer.estimator.feedback_packets:
            viewer.feedback_due_at = None
            return False
        if not viewer.estimator.history.next_sequence:
            viewer.feedback_due_at = now + FEEDBACK_WAIT_S  # no media sent yet (ICE and DTLS still going): none due
            return False
        if now < due or self._fallbacks_left <= 0:
            return False
        self._fallbacks_left -= 1
        viewer.feedback_due_at = None
        self.set_layer(viewer, self._start_layer(viewer.data_saver), "no transport feedback came")
        return True

    async def _rejoin_stale_viewers(self) -> None:
        """Viewers whose shared packets stopped mid-lesson (the media component restarted) join again."""
        stale = [v for v in self._viewers.values() if v.video.closed or v.audio.closed]
        if not stale:
            return
        for viewer in stale:
            viewer.send("reconnect")
        await asyncio.sleep(self.ended_grace_s)  # let the data channels carry the request
        await asyncio.gather(*(self.close_viewer(v.id, "media restarted") for v in stale))

    def _high_count(self) -> int:
        return sum(v.layer == "high" for v in self._viewers.values())

    def _shed_load(self) -> None:
        """Move the latest high-layer viewers to the low layer while the box's loop lags."""
        self.capacity.note_lag(self.loop_lag_s, self._high_count(), len(self._viewers))
        cap = self.capacity.cap
        high = [v for v in self._viewers.values() if v.layer == "high"]
        if cap is None or len(high) <= cap:
            return
        log.warning(
            "the box is behind (loop lag %.0f ms): %d viewers to the low layer", self.loop_lag_s * 1000, len(high) - cap
        )
        for viewer in sorted(high, key=lambda v: v.joined_at)[cap:]:
            self.set_layer(viewer, "low")

    async def _read_stats(self, viewer: Viewer) -> LinkReport | None:
        sent, lost, received, rtts = 0, 0, 0, []
        for sender in (viewer.video_sender, viewer.audio_sender):
            if sender is None:
                continue
            for stat in (await sender.getStats()).values():
                if stat.type == "outbound-rtp":
                    sent += stat.bytesSent
                elif stat.type == "remote-inbound-rtp":
                    lost += stat.packetsLost
                    received += stat.packetsReceived
                    if _plausible_rtt(sender, stat.roundTripTime):
                        rtts.append(stat.roundTripTime)
        now = time.monotonic()
        elapsed = max(now - viewer._stats_at, 1e-3)
        viewer.kbps = (sent - viewer._bytes_sent) * 8 / 1000 / elapsed
        viewer._bytes_sent, viewer._stats_at = sent, now
        d_lost, d_recv = lost - viewer._lost_seen[0], received - viewer._lost_seen[1]
        own = viewer.estimate_kbps()
        if d_lost == 0 and d_recv == 0 and own is None:
            return None  # no receiver report since the last look (a REMB waits for the next one)
        estimate = viewer.bandwidth_kbps if viewer._bandwidth_fresh else None
        viewer._bandwidth_fresh = False
        if d_lost or d_recv:
            viewer._lost_seen = (lost, received)
            viewer.loss = min(1.0, max(d_lost, 0) / max(d_lost + d_recv, 1))
            viewer.rtt_s = max(rtts) if rtts else None
            if viewer.rtt_s is not None:
                viewer.estimator.on_rtt(viewer.rtt_s)
        probes = viewer.estimator.take_probe_results()
        if probes:
            log.debug("viewer %s: probes %s", viewer.id, ", ".join(PROBE_OUTCOMES[ok] for ok in probes))
        congested = viewer.estimator.congested
        return LinkReport(viewer.loss, viewer.rtt_s, estimate, viewer.kbps, own, congested, probes)

    # -- reporting ------------------------------------------------------------------------------

    def viewers(self) -> list[WatchingStudent]:
        """Every connected student with their stats (the panel's preview is not one)."""
        return [viewer.report() for viewer in self._students()]

    def _students(self) -> list[Viewer]:
        return [viewer for viewer in self._viewers.values() if not viewer.preview]

    @property
    def count(self) -> int:
        """How many students are connected."""
        return len(self._students())

    def _report(self) -> None:
        layers = [v.layer for v in self._students()]
        self.set_health(
            "ok",
            f"{len(layers)} watching",
            viewers=len(layers),
            viewers_high=layers.count("high"),
            viewers_low=layers.count("low"),
            viewers_lowest=layers.count("lowest"),
            viewers_audio_only=layers.count("none"),
            viewers_hands_raised=sum(v.hand_raised for v in self._viewers.values()),
            viewers_kbps=round(sum(v.kbps for v in self._viewers.values()), 1),
            viewers_dropped_packets=self._dropped_by_leavers
            + sum(v.video.dropped + v.audio.dropped for v in self._viewers.values()),
            viewers_joined_total=self.joined,
            viewers_layer_switches_per_min_max=max(
                (v.switches_per_minute() for v in self._viewers.values()), default=0
            ),
            viewers_layer_switches_total=self._switches_by_leavers
            + sum(v.switches_total for v in self._viewers.values()),
            viewers_probes_total=sum(v.estimator.probes for v in self._viewers.values()),
            stream_loop_lag_ms=round(self.loop_lag_s * 1000, 1),
            stream_high_cap=-1 if self.capacity.cap is None else self.capacity.cap,
        )


def _plausible_rtt(sender: RTCRtpSender, rtt: float | None) -> bool:
    """True for an RTT worth acting on; a step-made one also restarts aiortc's average."""
    if rtt is None:
        return False
    if 0 <= rtt <= MAX_RTT_S:
        return True
    # aiortc times its sender reports on the wall clock: an RR across a step gives days (or less than 0).
    sender._RTCRtpSender__rtt = None  # type: ignore[attr-defined]
    return False
