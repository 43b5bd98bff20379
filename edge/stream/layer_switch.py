"""Which layer each viewer gets: where it starts, its switches, and the keyframes a new picture needs."""

from __future__ import annotations

import logging
import time

from edge.core.errors import StreamUnavailable
from edge.core.ports import ConfigSource
from edge.media.live import video_layers
from edge.media.packets import PacketFanout, PacketSource
from edge.stream.feeds import ViewerFeed
from edge.stream.layers import LayerPolicy, SendCapacity
from edge.stream.viewer import HUB_LOG, Viewer, ViewerTable

log = logging.getLogger(HUB_LOG)


class LayerSwitch:
    """Gives viewers their layers over the media's shared packets, within what the box can send."""

    def __init__(
        self, config: ConfigSource, packets: PacketSource, viewers: ViewerTable, capacity: SendCapacity
    ) -> None:
        """`capacity`: how many viewers the box can feed the high layer; `viewers`: the hub's table."""
        self._config, self._packets, self._viewers, self._capacity = config, packets, viewers, capacity

    def fanout(self) -> PacketFanout:
        """The shared packets (the media component's fan-out)."""
        fanout = self._packets()
        if fanout is None:
            raise StreamUnavailable("the live stream is not running on this box right now")
        return fanout

    def policy(self) -> LayerPolicy:
        """A viewer's layer policy over the configured layers, ordered by bitrate."""
        layers = sorted(video_layers(self._config()), key=lambda layer: layer.kbps)
        return LayerPolicy(
            ladder=("none", *(layer.name for layer in layers)),
            layer_kbps={layer.name: float(layer.kbps) for layer in layers},
            audio_kbps=float(self._config().stream.audio_kbps),
        )

    def start_layer(self, data_saver: bool) -> str:
        """Where a viewer that cannot probe starts: the high layer, unless data saver or the box is at capacity."""
        return "low" if data_saver or not self._capacity.allows_high(self._viewers.high_count()) else "high"

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

    def feed_ready(self, feed: ViewerFeed) -> None:
        """A viewer's video is connected: its first picture needs a keyframe."""
        for layer in feed.layers:
            self.fanout().request_keyframe(layer)

    def keyframe_wanted(self, viewer: Viewer) -> None:
        """The viewer's player asked for a keyframe (PLI or FIR): its layer's encoder makes one."""
        viewer.keyframe_requests += 1
        if viewer.layer != "none":
            self.fanout().request_keyframe(viewer.layer)
