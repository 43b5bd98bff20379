"""Devices: the cameras and microphones this machine has, the configured ones, and their sources for the media."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Protocol

from drivers.audio import list_microphones, probe_audio_device
from drivers.camera import VideoSource, frame_jpeg, list_cameras, parse_video_device, probe_video_device
from drivers.errors import DriverError
from edge.core.component import Components
from edge.core.config import BoxConfig
from edge.core.errors import DeviceNotFound
from edge.core.events import EventBus
from edge.core.logs import redact
from edge.media.encoders import AudioFeed, VideoFeed

log = logging.getLogger(__name__)


class CameraPort(Protocol):
    """What the media asks of the lesson's camera (edge.media.capture.CameraComponent)."""

    @property
    def source(self) -> VideoFeed: ...


class MicrophonePort(Protocol):
    """What the media and the panel ask of the lesson's microphone (edge.media.capture.MicrophoneComponent)."""

    @property
    def source(self) -> AudioFeed: ...

    def level_dbfs(self) -> float:
        """The RMS level of the last 100 ms, in dBFS."""
        ...


class MicrophoneMute:
    """Whether the teacher muted the lesson's microphone; `microphone.muted` goes on the bus when it changes."""

    def __init__(self, bus: EventBus) -> None:
        self._bus = bus
        self.muted = False

    def set(self, muted: bool) -> None:
        """Mute or unmute (the audio goes on, as silence, while muted)."""
        if muted != self.muted:
            self.muted = muted
            log.info("microphone %s", "muted" if muted else "unmuted")
            self._bus.publish("microphone.muted", muted=muted)

    def state(self, microphone: MicrophonePort | None) -> dict[str, Any]:
        """Muted or not, and the level now (RMS dBFS; None without a microphone)."""
        level = round(microphone.level_dbfs(), 2) if microphone is not None else None
        return {"muted": self.muted, "level_db": level}


class NamedCamera(Protocol):
    """A configured camera as the admin page's device test sees it (edge.media.capture.CameraComponent)."""

    @property
    def name(self) -> str: ...  # `camera:<configured name>`
    @property
    def source(self) -> VideoSource: ...


def find_camera(cameras: list[NamedCamera], name: str) -> NamedCamera:
    """The configured camera `name` (raise DeviceNotFound)."""
    found = next((camera for camera in cameras if camera.name == f"camera:{name}"), None)
    if found is None:
        raise DeviceNotFound(f"no camera named {name!r}")
    return found


async def snapshot(cameras: list[NamedCamera], name: str) -> bytes:
    """The newest picture of the configured camera `name`, as JPEG (raise DeviceNotFound)."""
    frame = find_camera(cameras, name).source.latest()
    if frame is None:
        raise DeviceNotFound(f"no picture from the camera named {name!r} yet")
    return await asyncio.to_thread(frame_jpeg, frame)


def microphone_level(components: Components, name: str) -> dict[str, Any]:
    """The configured microphone `name`'s level now (dBFS) and status, from its health report (raise DeviceNotFound)."""
    report = components.microphone(name)
    if report is None:
        raise DeviceNotFound(f"no microphone named {name!r}")
    figures = {key: report.metric(key) for key in ("rms_dbfs", "peak_dbfs")}
    return {"name": name, "status": report.status, "detail": report.detail, **figures}


def list_devices() -> dict[str, list[dict[str, Any]]]:
    """The cameras and microphones this machine has (blocking: PortAudio init; call from a thread)."""
    try:
        microphones = list_microphones()
    except (OSError, DriverError) as err:
        log.warning("cannot list microphones: %s", err)
        microphones = []
    return {"cameras": list_cameras(), "microphones": microphones}


async def devices(config: BoxConfig) -> dict[str, Any]:
    """The cameras and microphones this machine has (names, modes, channels) and which ones are configured."""
    found = await asyncio.to_thread(list_devices)
    configured = {
        "cameras": [{**c.model_dump(), "device": redact(c.device)} for c in config.cameras],
        "microphones": [m.model_dump() for m in config.microphones],
    }
    return {**found, "configured": configured}


def device_problems(config: BoxConfig) -> list[str]:
    """One line per configured device that does not exist here (blocking; for `classbox config check`)."""
    problems = []
    for index, camera in enumerate(config.cameras):
        if camera.source == "opencv":
            problem = probe_video_device(parse_video_device(camera.device))
            if problem:
                problems.append(f"cameras.{index}.device ({camera.name}): {problem}")
    for index, mic in enumerate(config.microphones):
        if mic.source == "pyaudio":
            problem = probe_audio_device(mic.device, mic.channels)
            if problem:
                problems.append(f"microphones.{index}.device ({mic.name}): {problem}")
    return problems
