"""The viewers' data channels: the welcome, their messages (hands, data saver, ping), the lesson's events to them."""

from __future__ import annotations

import json
import logging
from typing import Any

from aiortc.rtcdatachannel import RTCDataChannel

from edge.core.errors import ViewerError
from edge.core.events import EventBus
from edge.core.ports import BoardMessages, LiveLesson
from edge.stream.layer_switch import LayerSwitch
from edge.stream.viewer import HUB_LOG, Viewer, ViewerTable

log = logging.getLogger(HUB_LOG)

MAX_MESSAGE_BYTES = 2048
FORWARDED_TOPICS = "board."  # bus topics every viewer receives (the board's ink, page changes)


def parse_message(message: str | bytes) -> dict[str, Any]:
    """A viewer's data-channel message as a JSON object; raise ValueError/TypeError otherwise."""
    if len(message) > MAX_MESSAGE_BYTES:
        raise ValueError("message too long")
    data = json.loads(message)
    if not isinstance(data, dict):
        raise TypeError("a message is a JSON object")
    return data


class DataChannels:
    """What goes over the viewers' data channels, both ways."""

    def __init__(
        self, bus: EventBus, live: LiveLesson, board: BoardMessages, viewers: ViewerTable, layers: LayerSwitch
    ) -> None:
        """`board`: what a late joiner is sent of the board; `layers`: data saver's switches."""
        self._bus, self._live, self._board, self._viewers, self._layers = bus, live, board, viewers, layers

    def attach(self, viewer: Viewer, channel: RTCDataChannel) -> None:
        """The viewer opened its data channel: welcome it once open, and hear it."""
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
            self._layers.set_data_saver(viewer, bool(data.get("on")))
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
        self._lower_hand(viewer_id, "acknowledged")

    def dismiss_hand(self, viewer_id: str) -> None:
        """The teacher lowered a raised hand without letting the student speak; raise ViewerError if they left."""
        self._lower_hand(viewer_id, "dismissed")

    def _lower_hand(self, viewer_id: str, how: str) -> None:
        """The teacher lowered a hand (`how`: acknowledged or dismissed): the student is told, then the bus."""
        viewer = self._viewers.get(viewer_id)
        if viewer is None:
            raise ViewerError("this student is no longer watching")
        viewer.hand_raised = False
        viewer.send("hand", raised=False, **{how: True})
        self._bus.publish(f"hand.{how}", viewer=viewer.id, name=viewer.name)

    async def forward_lesson_events(self) -> None:
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
