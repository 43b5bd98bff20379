"""Live viewers: what the doors ask of the viewer hub (the `stream` component) while a lesson is live."""

from __future__ import annotations

from typing import Protocol

from edge.core.answer import Answer
from edge.core.errors import NoLiveLesson, StreamUnavailable

NOT_STREAMING = "live streaming is not running on this box"


class WatchingStudent(Answer):
    """One student watching the live lesson, as the panel and the API see them."""

    id: str
    name: str
    layer: str
    data_saver: bool
    hand_raised: bool
    state: str  # the peer connection's state
    joined_at: float
    kbps: float
    loss: float
    rtt_ms: float | None
    bandwidth_kbps: float | None  # the viewer's latest REMB estimate
    estimate_kbps: float | None  # the box's own estimate, once transport feedback arrives
    layer_switches_per_min: int
    probes: int
    padding_packets: int
    keyframe_requests: int
    video_packets: int
    dropped_packets: int
    retransmitted_packets: int
    audio_packets: int


class ViewerSession(Protocol):
    """One student's viewing session (or the panel's preview) as the doors name it."""

    @property
    def id(self) -> str: ...
    @property
    def preview(self) -> bool: ...


class ViewerHubPort(Protocol):
    """What the service layer asks of the viewer hub (edge.stream.viewers.ViewerHub)."""

    def viewers(self) -> list[WatchingStudent]: ...
    def acknowledge_hand(self, viewer_id: str) -> None: ...
    def dismiss_hand(self, viewer_id: str) -> None: ...
    def viewer(self, viewer_id: str) -> ViewerSession | None: ...
    async def open_viewer(
        self, join_code: str, offer_sdp: str, name: str = "", data_saver: bool = False, preview: bool = False
    ) -> tuple[ViewerSession, str]: ...
    async def close_viewer(self, viewer_id: str, reason: str = "left") -> bool: ...


def viewers(hub: ViewerHubPort | None) -> list[WatchingStudent]:
    """Every student watching: name, layer, bitrate, loss, RTT, raised hand (none without a hub)."""
    return hub.viewers() if hub is not None else []


def acknowledge_hand(hub: ViewerHubPort | None, viewer_id: str) -> None:
    """The teacher answered a raised hand; NoLiveLesson without a hub, ViewerError if that student left."""
    if hub is None:
        raise NoLiveLesson("live streaming is not running")
    hub.acknowledge_hand(viewer_id)


def dismiss_hand(hub: ViewerHubPort | None, viewer_id: str) -> None:
    """The teacher lowers a raised hand without letting the student speak; ViewerError if that student left."""
    if hub is None:
        raise NoLiveLesson("live streaming is not running")
    hub.dismiss_hand(viewer_id)


async def open_preview(hub: ViewerHubPort | None, join_code: str, offer: str) -> tuple[str, str]:
    """(id, answer) of the panel's preview of the live lesson: the low layer, never counted as a student."""
    viewer, answer = await running(hub).open_viewer(join_code, offer, preview=True)
    return viewer.id, answer


async def close_preview(hub: ViewerHubPort | None, preview_id: str) -> bool:
    """End a panel preview; False when there is no such preview (a student's session is not one)."""
    viewer = running(hub).viewer(preview_id)
    return viewer is not None and viewer.preview and await running(hub).close_viewer(preview_id, "preview closed")


def running(hub: ViewerHubPort | None) -> ViewerHubPort:
    """The hub; StreamUnavailable when streaming is not running."""
    if hub is None:
        raise StreamUnavailable(NOT_STREAMING)
    return hub
