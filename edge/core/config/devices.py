"""The classroom's devices: the cameras and microphones lessons capture, the PTZ camera, the display, the board."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from drivers.camera import parse_video_device
from drivers.display import check_spec as check_display_spec
from drivers.ptz import open_camera as check_ptz_spec
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


class PtzPreset(Section):
    """A camera position the teacher recalls with one button."""

    name: str = Field(
        min_length=1, max_length=40, title=N_("Button"), description=N_("The button's words on the panel, e.g. Board.")
    )
    number: int = Field(
        ge=0, le=127, title=N_("Preset number"), description=N_("The camera's preset memory (0 to 127).")
    )


def _default_presets() -> list[PtzPreset]:
    return [PtzPreset(name=n, number=i) for i, n in enumerate(("Board", "Teacher", "Class"), start=1)]


class PtzSection(Section):
    """The lesson camera's pan, tilt and zoom (VISCA) and its named presets."""

    control: str = Field(
        default="",
        title=N_("PTZ control"),
        description=N_(
            "serial:/dev/ttyUSB0[@9600] (RS-232/RS-485), visca-ip:HOST[:PORT] (UDP 52381), synthetic; empty: none."
        ),
    )
    address: int = Field(
        default=1,
        ge=1,
        le=7,
        title=N_("VISCA address"),
        description=N_("The camera's address on its VISCA line (1 to 7)."),
    )
    presets: list[PtzPreset] = Field(
        default_factory=_default_presets,
        title=N_("Presets"),
        description=N_("The panel's camera buttons and the preset each one recalls."),
    )
    timeout_s: float = Field(
        default=10.0,
        ge=0.5,
        le=60.0,
        title=N_("Move time-out (s)"),
        description=N_("How long a preset move may take before the panel says the camera did not answer."),
    )

    @field_validator("control")
    @classmethod
    def _control_form(cls, value: str) -> str:
        if value:
            check_ptz_spec(value)  # its DeviceSpecError is a ValueError: reported under this key
        return value

    @field_validator("presets")
    @classmethod
    def _unique_buttons(cls, value: list[PtzPreset]) -> list[PtzPreset]:
        names = [p.name for p in value]
        if len(set(names)) != len(names):
            raise ValueError("each preset button needs its own name")
        return value


class DisplayInput(Section):
    """One input of the room display."""

    name: str = Field(min_length=1, max_length=40, title=N_("Input"), description=N_("Its name, e.g. HDMI 1."))
    code: str = Field(
        max_length=200,
        title=N_("Code"),
        description=N_(
            "PJLink: the input code (e.g. 31); serial: the command's bytes (text with escapes, or hex:AA 11)."
        ),
    )


class DisplaySection(Section):
    """The room's display or projector, switched from the panel (PJLink or an RS-232 command map)."""

    control: str = Field(
        default="",
        title=N_("Display control"),
        description=N_("pjlink:HOST[:PORT] (TCP 4352), serial:/dev/ttyUSB1[@9600], synthetic; empty: none."),
    )
    password: str = Field(
        default="", repr=False, title=N_("PJLink password"), description=N_("Empty when the display asks for none.")
    )
    inputs: list[DisplayInput] = Field(
        default_factory=list, title=N_("Inputs"), description=N_("The display's inputs the box may select.")
    )
    board_input: str = Field(
        default="",
        max_length=40,
        title=N_("The board's input"),
        description=N_("The input selected when the teacher switches the board on; empty: leave it."),
    )
    power_on: str = Field(
        default="", max_length=200, title=N_("Serial: power on"), description=N_("The bytes that switch it on.")
    )
    power_off: str = Field(
        default="", max_length=200, title=N_("Serial: power off"), description=N_("The bytes that switch it off.")
    )
    status: str = Field(
        default="",
        max_length=200,
        title=N_("Serial: status query"),
        description=N_("The bytes that ask whether it is on."),
    )
    status_on: str = Field(
        default="",
        max_length=200,
        title=N_("Serial: reply when on"),
        description=N_("What its status reply holds when on."),
    )
    status_off: str = Field(
        default="",
        max_length=200,
        title=N_("Serial: reply when off"),
        description=N_("What its status reply holds when off."),
    )
    reply_end: str = Field(
        default="\\r",
        max_length=20,
        title=N_("Serial: end of a reply"),
        description=N_("What ends each reply; empty: the display does not answer."),
    )
    ok: str = Field(
        default="",
        max_length=200,
        title=N_("Serial: accepted"),
        description=N_("What a reply holds when the display accepted a command; empty: any reply."),
    )
    timeout_s: float = Field(
        default=3.0,
        ge=0.2,
        le=30.0,
        title=N_("Time-out (s)"),
        description=N_("How long the display may take to answer."),
    )

    @field_validator("control")
    @classmethod
    def _control_form(cls, value: str) -> str:
        if value:
            check_display_spec(value)
        return value

    @model_validator(mode="after")
    def _serial_needs_its_map(self) -> DisplaySection:
        if self.control.startswith("serial:") and not (self.power_on and self.power_off):
            raise ValueError("a serial display needs its power on and power off bytes")
        names = [i.name for i in self.inputs]
        if self.board_input and self.board_input not in names:
            raise ValueError(f"board_input {self.board_input!r} is not one of the inputs")
        return self


class BoardSection(Section):
    """The interactive board's pen and touch input (Linux evdev) and its ink."""

    source: Literal["none", "evdev", "replay", "synthetic"] = Field(
        default="none",
        title=N_("Pen and touch input"),
        description=N_(
            "none: only the board page's own touch; evdev: a pen or touch device; replay: a recorded event file;"
            " synthetic: built-in writing (demo)."
        ),
    )
    device: str = Field(
        default="",
        max_length=256,
        title=N_("Device"),
        description=N_("evdev: part of the device's name (or a /dev/input path); replay: the recorded file."),
    )
    rotation: Literal[0, 90, 180, 270] = Field(
        default=0,
        title=N_("Rotation"),
        description=N_("How far the input is turned from the display, in degrees clockwise."),
    )
    area_left: float = Field(
        default=0.0,
        ge=0.0,
        le=1.0,
        title=N_("Display area: left"),
        description=N_("Where the display's left edge is within the input's range (0..1; calibration)."),
    )
    area_top: float = Field(
        default=0.0,
        ge=0.0,
        le=1.0,
        title=N_("Display area: top"),
        description=N_("Where the display's top edge is within the input's range (0..1; calibration)."),
    )
    area_right: float = Field(
        default=1.0,
        ge=0.0,
        le=1.0,
        title=N_("Display area: right"),
        description=N_("Where the display's right edge is within the input's range (0..1; calibration)."),
    )
    area_bottom: float = Field(
        default=1.0,
        ge=0.0,
        le=1.0,
        title=N_("Display area: bottom"),
        description=N_("Where the display's bottom edge is within the input's range (0..1; calibration)."),
    )
    simplify: float = Field(
        default=0.0015,
        ge=0.0,
        le=0.02,
        title=N_("Ink simplification"),
        description=N_("How far a simplified stroke may stray from what was drawn, as a fraction of the board."),
    )

    @model_validator(mode="after")
    def _area(self) -> BoardSection:
        if not (self.area_left < self.area_right and self.area_top < self.area_bottom):
            raise ValueError("the display area's left must be less than its right, and its top less than its bottom")
        return self
