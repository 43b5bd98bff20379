"""The `stream` component: every student watching the live lesson, one peer connection each.

Each viewer gets the shared packets of one video layer plus audio (passthrough senders), a data
channel for lesson events, and a layer that follows its receiver reports. Stopping the lesson
tells every viewer and closes them all. The hub composes its parts over one table of viewers:
`Admission` lets them in, `DataChannels` talks to them, `Adaptation` moves them between layers
(through `LayerSwitch`), and the hub itself closes them and reports.
"""

from __future__ import annotations

import asyncio
import logging

from edge.core.component import Component
from edge.core.events import EventBus
from edge.core.ports import BoardMessages, ConfigSource, LessonHooks, LessonLookup, LessonView, LiveLesson
from edge.media.packets import PacketSource
from edge.stream.adaptation import Adaptation
from edge.stream.admission import Admission
from edge.stream.channel import DataChannels
from edge.stream.feeds import SharedPacketizer
from edge.stream.ice_restart import close_peer
from edge.stream.layer_switch import LayerSwitch
from edge.stream.layers import SendCapacity
from edge.stream.viewer import Viewer, ViewerTable
from edge.stream.viewers_service import WatchingStudent

__all__ = ["Viewer", "ViewerHub"]

log = logging.getLogger(__name__)


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
        self._bus, self._packets = bus, packets
        self.monitor_interval_s = monitor_interval_s
        self._viewers = ViewerTable()
        self.ended_grace_s = 0.3
        self.capacity = SendCapacity()
        self.loop_lag_s = 0.0
        self.packetizer = SharedPacketizer()  # shared with the uplink: each packet is split once
        self._layers = LayerSwitch(config, packets, self._viewers, self.capacity)
        self._channels = DataChannels(bus, live, board, self._viewers, self._layers)
        self._adaptation = Adaptation(
            config,
            self._viewers,
            self._layers,
            self.capacity,
            close=self.close_viewer,
            grace_s=lambda: self.ended_grace_s,
            loop_lag_s=lambda: self.loop_lag_s,
        )
        self._admission = Admission(
            config=config,
            live=live,
            lookup=lookup,
            viewers=self._viewers,
            layers=self._layers,
            packetizer=self.packetizer,
            congested=self._adaptation.congested,
            attach_channel=self._channels.attach,
            close=self.close_viewer,
        )
        lessons.on_stop(self._lesson_stopped)

    # -- component ------------------------------------------------------------------------------

    async def start(self) -> None:
        self._report()

    async def run(self) -> None:
        forwarding = asyncio.create_task(self._channels.forward_lesson_events(), name="stream:lesson-events")
        pacing = asyncio.create_task(self._adaptation.pace_probes(), name="stream:probe-pacer")
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

    async def stop(self) -> None:
        await self.close_all("the box is shutting down")

    # -- joining and leaving --------------------------------------------------------------------

    async def open_viewer(
        self, join_code: str, offer_sdp: str, name: str = "", data_saver: bool = False, preview: bool = False
    ) -> tuple[Viewer, str]:
        """Answer a student's offer (or the panel's `preview`: the low layer, not counted as a student).

        Raise LessonNotFound, LessonFull, StreamUnavailable or BadOffer.
        """
        viewer, answer = await self._admission.admit(join_code, offer_sdp, name, data_saver, preview)
        if preview:
            log.info("panel preview %s of lesson %s", viewer.id, viewer.lesson_id)
            return viewer, answer
        self._viewers.joined += 1
        log.info("viewer %s joined lesson %s (%d watching)", viewer.id, viewer.lesson_id, self.count)
        self._bus.publish("viewer.joined", viewer=viewer.report().to_json(), watching=self.count)
        self._report()
        return viewer, answer

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
        self._viewers.left(viewer)
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

    # -- layers and hands -----------------------------------------------------------------------

    def set_layer(self, viewer: Viewer, layer: str, why: str = "") -> None:
        """Give the viewer another layer ("high", "low", "lowest" or "none"); video resumes at a keyframe."""
        self._layers.set_layer(viewer, layer, why)

    def acknowledge_hand(self, viewer_id: str) -> None:
        """The teacher answered a raised hand; raise ViewerError if the viewer is gone."""
        self._channels.acknowledge_hand(viewer_id)

    def dismiss_hand(self, viewer_id: str) -> None:
        """The teacher lowered a raised hand without letting the student speak; raise ViewerError if they left."""
        self._channels.dismiss_hand(viewer_id)

    async def check_viewers(self) -> None:
        """Drop dead connections, read receiver reports, adjust layers (the run loop calls this)."""
        await self._adaptation.check()
        self._report()

    # -- reporting ------------------------------------------------------------------------------

    def viewers(self) -> list[WatchingStudent]:
        """Every connected student with their stats (the panel's preview is not one)."""
        return [viewer.report() for viewer in self._viewers.students()]

    @property
    def count(self) -> int:
        """How many students are connected."""
        return len(self._viewers.students())

    def _report(self) -> None:
        metrics = self._viewers.metrics()
        self.set_health(
            "ok",
            f"{metrics['viewers']} watching",
            **metrics,
            stream_loop_lag_ms=round(self.loop_lag_s * 1000, 1),
            stream_high_cap=-1 if self.capacity.cap is None else self.capacity.cap,
        )
