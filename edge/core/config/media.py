"""What lessons capture: the cameras and the microphones."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, ValidationInfo, field_validator

from drivers.camera import parse_video_device
from edge.core.config.base import Name, Section
from edge.core.texts import N_


class CameraConfig(Section):
    """One video source, named for what it films (teacher, board, document)."""

    name: Name = Field(
        default="teacher",
        title=N_("Name"),
        description=N_("What this camera films (teacher, board, document): lowercase letters, digits, - and _."),
    )
    source: Literal["synthetic", "opencv"] = Field(
        default="synthetic",
        title=N_("Kind"),
        description=N_("synthetic: a test pattern; opencv: a USB or HDMI capture device, an IP camera or a file."),
    )
    device: str = Field(
        default="",
        validate_default=True,
        title=N_("Device"),
        description=N_("An index, a /dev/video path, an rtsp:// or http:// URL, or a file."),
    )
    width: int = Field(
        default=1280, ge=160, le=3840, multiple_of=2, title=N_("Width"), description=N_("Picture width in pixels.")
    )
    height: int = Field(
        default=720, ge=120, le=2160, multiple_of=2, title=N_("Height"), description=N_("Picture height in pixels.")
    )
    fps: int = Field(
        default=30,
        ge=1,
        le=60,
        title=N_("Frames per second"),
        description=N_("How many pictures a second the camera delivers."),
    )
    fourcc: str = Field(
        default="",
        pattern=r"^([A-Z0-9 ]{4})?$",
        title=N_("Pixel format"),
        description=N_("A four-letter code such as MJPG; empty: the camera's default."),
    )
    loop: bool = Field(default=True, title=N_("Loop a file"), description=N_("Start a file source again when it ends."))

    @field_validator("device")
    @classmethod
    def _device_form(cls, value: str, info: ValidationInfo) -> str:
        if info.data.get("source") == "opencv":
            parse_video_device(value)  # its DeviceSpecError is a ValueError: reported under this key
        return value


class MicrophoneConfig(Section):
    """One audio source; `device` picks a PortAudio input by a substring of its name."""

    name: Name = Field(
        default="room",
        title=N_("Name"),
        description=N_("What this microphone hears (room, teacher): lowercase letters, digits, - and _."),
    )
    source: Literal["synthetic", "pyaudio"] = Field(
        default="synthetic", title=N_("Kind"), description=N_("synthetic: a test tone; pyaudio: a sound card input.")
    )
    device: str = Field(
        default="", title=N_("Device"), description=N_("A part of the input's name as the box lists it.")
    )
    channels: int = Field(default=1, ge=1, le=2, title=N_("Channels"), description=N_("1 for mono, 2 for stereo."))
    tone_hz: float = Field(
        default=440.0,
        gt=0,
        le=20000,
        title=N_("Test tone (Hz)"),
        description=N_("The pitch of the synthetic microphone's tone."),
    )
