"""Live media: what the viewers and the recorder ask of the media component (the shared packets)."""

from __future__ import annotations

from typing import Protocol

from edge.media.packets import PacketFanout


class MediaPort(Protocol):
    """What the service layer hands on of the media component (edge.media.live.LessonMedia)."""

    @property
    def fanout(self) -> PacketFanout: ...


def fanout(media: MediaPort | None) -> PacketFanout | None:
    """The shared packet fan-out, while the media component is wired in."""
    return media.fanout if media is not None else None
