"""Capture components: each configured camera and microphone as a supervised part of the daemon.

`camera:<name>` and `mic:<name>` own their driver source (started with the daemon, stopped with
it) and mirror its health into /healthz; microphones publish `audio.level` (RMS and peak dBFS, and
whether the teacher muted it) on the bus at 10 Hz.
The media pipeline reads frames from the lesson camera's and microphone's `source`: the daemon
hands it the first configured camera as the lesson's picture, the first microphone as its sound.
A missing device never stops the daemon: its component reports "down" while the driver sends a
slate (or silence) and retries.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from drivers.audio import CapturingAudioSource, open_audio_source
from drivers.camera import (
    CapturingVideoSource,
    open_video_source,
)
from drivers.capture import CaptureStats
from edge.core.component import Component
from edge.core.config import BoxConfig, CameraConfig, MicrophoneConfig
from edge.core.events import EventBus
from edge.core.logs import redact
from edge.core.ports import MuteState

log = logging.getLogger(__name__)

HEALTH_PERIOD_S = 0.5
LEVEL_PERIOD_S = 0.1  # audio.level at 10 Hz


def _metrics(stats: CaptureStats) -> dict[str, Any]:
    age = None if stats.last_frame_age_s is None else round(stats.last_frame_age_s, 3)
    return {
        "fps": stats.fps,
        "dropped": stats.dropped,
        "last_frame_age_s": age,
        "delivered": stats.delivered,
        "reconnects": stats.reconnects,
    }


class _CaptureComponent(Component):
    """Starts/stops a driver source and keeps the component's health in step with the source's stats."""

    def __init__(self, bus: EventBus, kind: str) -> None:
        super().__init__()
        self._bus = bus
        self._kind = kind
        self._last_status = ""

    def _source_stats(self) -> CaptureStats:
        raise NotImplementedError

    def _extra_metrics(self) -> dict[str, Any]:
        return {}

    async def run(self) -> None:
        """Refresh health twice a second until cancelled."""
        while True:
            self.refresh()
            await asyncio.sleep(HEALTH_PERIOD_S)

    def refresh(self) -> None:
        """Copy the source's stats into this component's health; announce status changes on the bus."""
        stats = self._source_stats()
        detail = redact(stats.detail)  # a device's own words may name its URL, credentials included
        self.set_health(stats.status, detail, **_metrics(stats), **self._extra_metrics())
        if stats.status != self._last_status:
            if stats.status == "down" or self._last_status == "down":
                log.warning("%s is %s%s", self.name, stats.status, f": {detail}" if detail else "")
            self._bus.publish("device.status", device=self.name, kind=self._kind, status=stats.status, detail=detail)
            self._last_status = stats.status


class CameraComponent(_CaptureComponent):
    """One configured camera (`camera:<name>`); `source` is the VideoSource consumers read from."""

    def __init__(self, bus: EventBus, config: CameraConfig, **timing: Any) -> None:
        super().__init__(bus, "camera")
        self.name = f"camera:{config.name}"
        self.config = config
        self.source: CapturingVideoSource = open_video_source(
            config.name, config.source, config.device, config.width, config.height, config.fps, config.fourcc,
            config.loop, **timing,
        )  # fmt: skip

    async def start(self) -> None:
        """Start the driver's threads (a missing device is reported, never raised)."""
        self.source.start()
        self.refresh()

    async def stop(self) -> None:
        """Stop and join the driver's threads (idempotent)."""
        await asyncio.to_thread(self.source.stop)

    def _source_stats(self) -> CaptureStats:
        return self.source.stats()


class MicrophoneComponent(_CaptureComponent):
    """One configured microphone (`mic:<name>`); `source` is the AudioSource consumers read from."""

    def __init__(
        self,
        bus: EventBus,
        mute: MuteState,
        config: MicrophoneConfig,
        level_period_s: float = LEVEL_PERIOD_S,
        **timing: Any,
    ) -> None:
        super().__init__(bus, "microphone")
        self._mute = mute
        self.name = f"mic:{config.name}"
        self.config = config
        self.source: CapturingAudioSource = open_audio_source(
            config.name, config.source, config.device, config.channels, config.tone_hz, **timing
        )
        self._level_period_s = level_period_s
        self._level_task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start the driver's threads and the level meter task."""
        self.source.start()
        self.refresh()
        self._level_task = asyncio.create_task(self._meter(), name=f"{self.name}:level")

    async def stop(self) -> None:
        """Cancel the level meter, stop and join the driver's threads (idempotent)."""
        task, self._level_task = self._level_task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        await asyncio.to_thread(self.source.stop)

    async def _meter(self) -> None:
        """Publish the level on a steady 10 Hz grid (the time publishing takes never slows the rate)."""
        loop = asyncio.get_running_loop()
        due = loop.time()
        while True:
            rms, peak = self.source.level()
            self._bus.publish(
                "audio.level",
                mic=self.config.name,
                rms_dbfs=round(rms, 2),
                peak_dbfs=round(peak, 2),
                muted=self._mute.muted,
            )
            due = max(due + self._level_period_s, loop.time())  # after a stall, carry on from now
            await asyncio.sleep(due - loop.time())

    def level_dbfs(self) -> float:
        """The RMS level of the last 100 ms, in dBFS (-100 for silence)."""
        return self.source.level()[0]

    def _source_stats(self) -> CaptureStats:
        return self.source.stats()

    def _extra_metrics(self) -> dict[str, Any]:
        rms, peak = self.source.level()
        return {"rms_dbfs": round(rms, 2), "peak_dbfs": round(peak, 2)}


def camera_components(config: BoxConfig, bus: EventBus) -> list[CameraComponent]:
    """A component per configured camera, in config order."""
    return [CameraComponent(bus, cfg) for cfg in config.cameras]


def microphone_components(config: BoxConfig, bus: EventBus, mute: MuteState) -> list[MicrophoneComponent]:
    """A component per configured microphone, in config order."""
    return [MicrophoneComponent(bus, mute, cfg) for cfg in config.microphones]


def capture_components(config: BoxConfig, bus: EventBus, mute: MuteState) -> list[Component]:
    """A component per configured camera, then per microphone, in config order."""
    return [*camera_components(config, bus), *microphone_components(config, bus, mute)]
