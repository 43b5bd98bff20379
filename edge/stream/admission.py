"""Who may watch and how they join: the live lesson by its code, the viewer limit, the offer checked and answered."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Awaitable, Callable

from aiortc import RTCConfiguration, RTCIceTransportPolicy, RTCPeerConnection, RTCSessionDescription
from aiortc.exceptions import InvalidAccessError, InvalidStateError, OperationError
from aiortc.rtcdatachannel import RTCDataChannel

from edge.core.errors import BadOffer, LessonFull, LessonNotFound, StreamUnavailable, ViewerError
from edge.core.ports import ConfigSource, LessonLookup, LessonView, LiveLesson
from edge.media.packets import AUDIO_LAYER
from edge.stream.bwe import START_BPS, START_PROBED_BPS, TRANSPORT_CC_URI, BandwidthEstimator, SendHistory
from edge.stream.feeds import (
    SharedPacketizer,
    ViewerFeed,
    accept_transport_cc,
    prefer_codecs,
    route_bitrate_estimates,
    route_keyframe_requests,
)
from edge.stream.ice import rtc_ice_servers
from edge.stream.layer_switch import LayerSwitch
from edge.stream.offers import check_offer
from edge.stream.viewer import FEEDBACK_WAIT_S, Viewer, ViewerTable

NAME_RE = re.compile(r"^[\w .,'()-]{1,40}$", re.UNICODE)


def _unavailable(err: BaseException) -> StreamUnavailable:
    """The box ran out of something (descriptors, ports, memory) while taking a viewer."""
    reason = err.strerror if isinstance(err, OSError) and err.strerror else type(err).__name__
    return StreamUnavailable(f"the box cannot take a viewer now: {reason}")


class Admission:
    """Lets students (and the panel's preview) into the live lesson: one answered peer connection each."""

    def __init__(
        self,
        *,
        config: ConfigSource,
        live: LiveLesson,
        lookup: LessonLookup,
        viewers: ViewerTable,
        layers: LayerSwitch,
        packetizer: SharedPacketizer,
        congested: Callable[[Viewer], None],
        attach_channel: Callable[[Viewer, RTCDataChannel], None],
        close: Callable[[str, str], Awaitable[bool]],
    ) -> None:
        """`congested`, `attach_channel`: a new viewer's estimator and data channel; `close` ends a session."""
        self._config, self._live, self._lookup, self._viewers = config, live, lookup, viewers
        self._layers, self._packetizer = layers, packetizer
        self._congested, self._attach_channel, self._close = congested, attach_channel, close

    def live_lesson(self, join_code: str) -> LessonView:
        """The live lesson with this code; raise LessonNotFound otherwise."""
        lesson = self._live.current()
        if lesson is None or lesson.join_code != join_code.lower():
            known = self._lookup.by_code(join_code)
            if known is not None and known.state != "live":
                raise LessonNotFound("this lesson has ended")
            raise LessonNotFound("no live lesson has this code (it may not have started yet)")
        return lesson

    async def admit(
        self, join_code: str, offer_sdp: str, name: str, data_saver: bool, preview: bool
    ) -> tuple[Viewer, str]:
        """The viewer, in the table, and its answer; raise LessonNotFound, LessonFull, StreamUnavailable or BadOffer."""
        lesson = self.live_lesson(join_code)
        uplink = self._config().uplink
        if not preview and uplink.mode == "cloud" and uplink.publishes():
            raise StreamUnavailable("this lesson is watched through the cloud server: open the join link again")
        count = len(self._viewers.students())
        if not preview and count >= self._config().lesson.max_viewers:
            raise LessonFull(f"this lesson already has {count} viewers, the most this box serves")
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
            await self._close(viewer.id, "refused" if isinstance(err, ViewerError) else "failed")
            if ended:
                raise LessonNotFound("this lesson has ended") from err
            raise
        except BaseException:
            await self._close(viewer.id, "cancelled")
            raise
        return viewer, answer

    def _probes_up(self, offer_sdp: str) -> bool:
        """True when the box can find this viewer's layer itself: transport feedback and RTX (for probes) offered."""
        offer = offer_sdp.lower()
        return self._config().stream.adaptive_layers and TRANSPORT_CC_URI in offer_sdp and "rtx/90000" in offer

    def _new_viewer(self, lesson: LessonView, name: str, data_saver: bool, probes_up: bool = False) -> Viewer:
        """A viewer on the high layer, or on the lowest one when it can probe its way up (a weak link never floods)."""
        fanout = self._layers.fanout()
        policy = self._layers.policy()
        layer = policy.ladder[1] if probes_up else self._layers.start_layer(data_saver)
        stream = self._config().stream
        relay = RTCIceTransportPolicy.RELAY if stream.relay_only else RTCIceTransportPolicy.ALL
        viewer_id = uuid.uuid4().hex[:16]
        servers = rtc_ice_servers(stream.ice_servers, viewer_id)  # the viewer's own minted TURN credentials
        pc = RTCPeerConnection(RTCConfiguration(iceServers=servers, iceTransportPolicy=relay))
        clean = name.strip() if NAME_RE.match(name.strip() or "-") else ""
        estimator = BandwidthEstimator(SendHistory(), START_PROBED_BPS if probes_up else START_BPS)
        ready = self._layers.feed_ready
        viewer = Viewer(
            id=viewer_id,
            lesson_id=lesson.id,
            name=clean or f"Student {self._viewers.joined + 1}",
            pc=pc,
            video=fanout.add(ViewerFeed("video", [layer], self._packetizer, ready, estimator)),
            audio=fanout.add(ViewerFeed("audio", [AUDIO_LAYER], self._packetizer, estimator=estimator)),
            layer=layer,
            data_saver=data_saver,
            estimator=estimator,
            policy=policy,
            feedback_due_at=time.monotonic() + FEEDBACK_WAIT_S if probes_up else None,
        )
        self._connect(viewer)
        return viewer

    def _connect(self, viewer: Viewer) -> None:
        """The viewer's senders (H.264 and Opus preferred), and its feedback and data channel routed to the hub."""
        pc = viewer.pc
        video = pc.addTransceiver(viewer.video.track(), direction="sendonly")
        prefer_codecs(video, "video/H264")
        audio = pc.addTransceiver(viewer.audio.track(), direction="sendonly")
        prefer_codecs(audio, "audio/opus")
        viewer.video_sender, viewer.audio_sender = video.sender, audio.sender
        viewer.video.attach(video.sender)
        viewer.audio.attach(audio.sender)
        route_keyframe_requests(video.sender, lambda: self._layers.keyframe_wanted(viewer))
        route_bitrate_estimates(video.sender, viewer.bandwidth_estimated)
        viewer.estimator.on_congestion = lambda: self._congested(viewer)
        pc.on("datachannel", lambda channel: self._attach_channel(viewer, channel))

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
