"""The `media` component: runs the shared encoders while a lesson is live and owns the packet fan-out.

Viewers (edge/stream) and the recorder subscribe to `media.fanout`; keyframe requests from any
of them reach the encoder of that layer, rate-limited there.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from edge.core.component import Component
from edge.core.config import BoxConfig, VideoLayerConfig
from edge.core.ports import ConfigSource, LessonHooks, LessonView, LiveLesson, MuteState
from edge.media.devices import CameraPort, MicrophonePort
from edge.media.encoders import AudioEncoder, AudioFeed, VideoFeed, VideoLayer, VideoLayerEncoder
from edge.media.packets import PacketFanout

log = logging.getLogger(__name__)


def video_layers(config: BoxConfig) -> list[VideoLayer]:
    """The configured layers, best first."""
    stream = config.stream
    lowest = [_layer("lowest", stream.lowest)] if stream.lowest.enabled else []
    return [_layer("high", stream.high), _layer("low", stream.low), *lowest]


def _layer(name: str, cfg: VideoLayerConfig) -> VideoLayer:
    return VideoLayer(name, cfg.width, cfg.height, cfg.fps, cfg.kbps)


class LessonMedia(Component):
    """One encoder per layer plus Opus, shared by every viewer and the recorder, live only during a lesson."""

    name = "media"

    def __init__(
        self,
        config: ConfigSource,
        lessons: LessonHooks,
        live: LiveLesson,
        mute: MuteState,
        camera: CameraPort | None,
        microphone: MicrophonePort | None,
        keyframe_min_gap_s: float = 0.3,
    ) -> None:
        """`camera`, `microphone`: the lesson's picture and sound (None: a slate, silence)."""
        super().__init__()
        self._config = config
        self._live = live
        self._mute = mute
        self._camera_part = camera
        self._microphone_part = microphone
        self.fanout = PacketFanout()
        self._keyframe_min_gap_s = keyframe_min_gap_s
        self._video: dict[str, VideoLayerEncoder] = {}
        self._audio: AudioEncoder | None = None
        self._lock = asyncio.Lock()
        lessons.on_start(self._lesson_started)
        lessons.on_stop(self._lesson_stopped)

    async def start(self) -> None:
        self.fanout.bind(asyncio.get_running_loop(), self.request_keyframe)
        current = self._live.current()
        if current is not None:  # restarted by the supervisor in the middle of a lesson
            await self._start_encoders(current)
        self._report()

    async def run(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            self._report()

    async def stop(self) -> None:
        await self._stop_encoders()
        self.fanout.close()

    @property
    def live(self) -> bool:
        """True while the encoders run."""
        return bool(self._video)

    def request_keyframe(self, layer: str) -> None:
        """Ask the shared encoder of `layer` for a keyframe (rate-limited by the encoder)."""
        encoder = self._video.get(layer)
        if encoder is not None:
            encoder.request_keyframe()

    def encoder(self, layer: str) -> VideoLayerEncoder | None:
        """The running encoder of a video layer."""
        return self._video.get(layer)

    def _camera(self) -> VideoFeed | None:
        camera = self._camera_part
        return camera.source if camera is not None else None

    def _microphone(self) -> AudioFeed | None:
        microphone = self._microphone_part
        return microphone.source if microphone is not None else None

    async def _lesson_started(self, lesson: LessonView) -> None:
        await self._start_encoders(lesson)

    async def _lesson_stopped(self, lesson: LessonView) -> None:
        await self._stop_encoders()
        self.fanout.close()

    async def _start_encoders(self, lesson: LessonView) -> None:
        async with self._lock:
            if self._video:
                return
            config = self._config()
            stream = config.stream
            publish = self.fanout.publish_threadsafe
            origin = self._live.origin(lesson)  # the monotonic clock, as the capture stamps
            for layer in video_layers(config):
                self._video[layer.name] = VideoLayerEncoder(
                    layer, self._camera, publish, origin, stream.keyframe_interval_s, self._keyframe_min_gap_s
                )
            self._audio = AudioEncoder(
                self._microphone, publish, origin, stream.audio_kbps, muted=lambda: self._mute.muted
            )
            for encoder in [*self._video.values(), self._audio]:
                # Off the loop: Thread.start waits for the new thread to run, which takes a while on a busy box.
                await asyncio.to_thread(encoder.start)
            log.info("encoders started for lesson %s", lesson.id)
        self._report()

    async def _stop_encoders(self) -> None:
        async with self._lock:
            encoders = [*self._video.values(), *([self._audio] if self._audio else [])]
            self._video, self._audio = {}, None
            for encoder in encoders:
                await asyncio.to_thread(encoder.stop)
        self._report()

    def stats(self) -> dict[str, Any]:
        """Per-layer encoder figures for health, the panel and benchmarks."""
        out: dict[str, Any] = {"subscribers": self.fanout.subscribers}
        for name, encoder in self._video.items():
            out[f"{name}_frames"] = encoder.frames
            out[f"{name}_keyframes"] = encoder.keyframes_sent
            out[f"{name}_forced_keyframes"] = encoder.forced_keyframes
        if self._audio is not None:
            out["audio_packets"] = self._audio.packets
            out["audio_dropped_frames"] = self._audio.dropped_frames
        return out

    def _report(self) -> None:
        failed = [e.thread_name + ": " + e.error for e in self._video.values() if e.error]
        if self._audio is not None and self._audio.error:
            failed.append("audio: " + self._audio.error)
        if failed:
            self.set_health("degraded", "; ".join(failed), **self.stats())
        elif self._video and self._camera() is None:
            self.set_health("degraded", "no camera to encode", **self.stats())
        else:
            detail = "encoding" if self._video else "idle (no live lesson)"
            self.set_health("ok", detail, live=int(bool(self._video)), **self.stats())
