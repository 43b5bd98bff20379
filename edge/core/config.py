"""One typed, validated schema for every setting of the box; TOML on disk, atomic saves.

The defaults run with no hardware (synthetic camera, microphone and board, local courseware), so
`classbox demo` and a box with an empty config file both start. Every door reads and writes
settings through `BoxConfig`; nothing keeps its own copy.
"""

from __future__ import annotations

import datetime as dt
import functools
import ipaddress
import os
import re
import tomllib
import zoneinfo
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Literal

import tomli_w
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_core import ErrorDetails

from drivers.camera import parse_video_device
from drivers.display import check_spec as check_display_spec
from drivers.ptz import open_camera as check_ptz_spec
from edge.core.errors import ConfigError
from edge.core.logs import redact
from edge.core.texts import N_
from sync.atomic import exchange_atomic, previous_path, write_atomic

DEFAULT_CONFIG_PATH = Path("/etc/classbox/classbox.toml")
CONFIG_ENV = "CLASSBOX_CONFIG"

Name = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$")]
# The languages the pages are translated into (BCP 47; edge/doors/web/locales/ holds their catalogs).
Language = Literal["en", "fr", "ar", "ur", "km", "uz-Latn", "ru"]
Port = Annotated[int, Field(ge=1, le=65535)]


class Section(BaseModel):
    """Base of every section: unknown keys are errors, values are checked on assignment too."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)


class BoxSection(Section):
    """Who this box is and where it keeps its state."""

    id: str = Field(
        default="",
        pattern=r"^[A-Za-z0-9_-]{0,64}$",
        title=N_("Box id"),
        description=N_("A stable name for this box in the cloud and on the LAN; empty: derived from the machine id."),
    )
    name: str = Field(
        default="Classroom",
        min_length=1,
        max_length=80,
        title=N_("Box name"),
        description=N_("What the home page, the panel and the students see, e.g. the school and classroom."),
    )
    room: str = Field(
        default="",
        max_length=80,
        title=N_("Room"),
        description=N_("The classroom this box is in, shown beside the box name."),
    )
    state_dir: Path = Field(
        default=Path("/var/lib/classbox"),
        title=N_("State folder"),
        description=N_("Where the box keeps its databases, recordings and courseware cache."),
    )
    language: Language = Field(
        default="en",
        title=N_("Language"),
        description=N_("The language of the box's pages and messages."),
    )
    # Kept free for the box's databases: released when the disk fills so lessons can still stop and start.
    reserve_mb: int = Field(
        default=16,
        ge=0,
        le=4096,
        title=N_("Database reserve (MB)"),
        description=N_("Disk space kept free for the box's databases, released when the disk fills."),
    )
    time_zone: str = Field(
        default="",
        max_length=64,
        title=N_("School time zone"),
        description=N_("The time zone of the timetable, e.g. Europe/Berlin; empty: the system's own."),
    )

    @field_validator("time_zone")
    @classmethod
    def _time_zone(cls, value: str) -> str:
        if value:
            try:
                zoneinfo.ZoneInfo(value)
            except (zoneinfo.ZoneInfoNotFoundError, ValueError) as err:
                raise ValueError("must be a time zone name such as Europe/Berlin or Asia/Phnom_Penh") from err
        return value

    def zone(self) -> dt.tzinfo:
        """The school's time zone (the system's own when none is set)."""
        if self.time_zone:
            return zoneinfo.ZoneInfo(self.time_zone)
        local = dt.datetime.now().astimezone().tzinfo
        return local if local is not None else dt.UTC

    def resolved_id(self) -> str:
        """The configured id, else one derived from the machine id (stable across reboots)."""
        if self.id:
            return self.id
        for source in (Path("/etc/machine-id"), Path("/var/lib/dbus/machine-id")):
            try:
                text = source.read_text().strip()
            except OSError:
                continue
            if text:
                return "box-" + text[:12]
        return "box-" + re.sub(r"[^A-Za-z0-9_-]", "-", os.uname().nodename)[:32]


def _argon2_hash(value: str, how: str = "") -> str:
    if value and not value.startswith("$argon2"):
        raise ValueError(f"must be an argon2 hash of the PIN, never the PIN itself{how}")
    return value


class WebSection(Section):
    """The one HTTP port every web door shares (panel, watch, board, admin, API)."""

    host: str = Field(
        default="0.0.0.0",
        title=N_("Listen address"),
        description=N_("The address the web pages listen on (0.0.0.0: every network)."),
    )
    port: Port = Field(
        default=8080, title=N_("HTTP port"), description=N_("The one port of every web page and the API.")
    )
    panel_addresses: list[str] = Field(
        default_factory=lambda: ["127.0.0.1/32", "::1/128"],
        title=N_("Panel addresses"),
        description=N_("Addresses (or networks) whose requests act as the teacher without a PIN."),
    )
    teacher_pin_hash: str = Field(
        default="",
        repr=False,
        title=N_("Teacher PIN"),
        description=N_("Set on the accounts and PINs page; stored as an argon2 hash."),
    )
    public_url: str = Field(
        default="",
        title=N_("Public address"),
        description=N_(
            "The address students use to reach the box, if not the one they typed (e.g. https://box.school.example)."
        ),
    )
    https_port: int = Field(
        default=8443,
        ge=0,
        le=65535,
        title=N_("HTTPS port"),
        description=N_("The same pages over HTTPS with the box's own certificate; admins sign in only there. 0: off."),
    )

    @field_validator("panel_addresses")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for item in value:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError as err:
                raise ValueError(f"{item!r} is not an IP address or network (e.g. 10.0.0.5/32)") from err
        return value

    @field_validator("teacher_pin_hash")
    @classmethod
    def _hash(cls, value: str) -> str:
        return _argon2_hash(value, " (set it with `classbox config set-pin`)")

    @field_validator("https_port")
    @classmethod
    def _second_port(cls, value: int, info: ValidationInfo) -> int:
        if value and value == info.data.get("port"):
            raise ValueError("must differ from web.port (HTTPS is served on a second port)")
        return value


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


class LessonSection(Section):
    """Lessons and who may join them."""

    default_title: str = Field(
        default="Lesson",
        min_length=1,
        max_length=120,
        title=N_("Default lesson title"),
        description=N_("The title of a lesson started without one."),
    )
    max_viewers: int = Field(
        default=60,
        ge=1,
        le=500,
        title=N_("Maximum viewers"),
        description=N_("How many students may watch a lesson from the box at once."),
    )
    join_code_length: int = Field(
        default=6, ge=4, le=16, title=N_("Join code length"), description=N_("Letters in a lesson's join code.")
    )


class IceServer(Section):
    """A STUN or TURN server handed to viewers."""

    urls: list[str] = Field(
        min_length=1, title=N_("URLs"), description=N_("stun:, stuns:, turn: or turns: URLs of one server.")
    )
    # TURN REST API (coturn `static-auth-secret`): each viewer gets a minted credential that expires.
    auth_secret: str = Field(
        default="",
        repr=False,
        title=N_("Shared secret"),
        description=N_("The TURN server's static-auth-secret: the box then mints each viewer's credential."),
    )
    ttl_s: int = Field(
        default=14_400,
        ge=60,
        le=7 * 86_400,
        title=N_("Credential lifetime (s)"),
        description=N_("How long a minted TURN credential is valid."),
    )
    username: str = Field(
        default="", title=N_("Username"), description=N_("A fixed TURN username (leave empty with a shared secret).")
    )
    credential: str = Field(
        default="",
        repr=False,
        title=N_("Password"),
        description=N_("A fixed TURN password (leave empty with a shared secret)."),
    )

    @field_validator("urls")
    @classmethod
    def _ice_urls(cls, value: list[str]) -> list[str]:
        for url in value:
            if not re.match(r"^(stun|stuns|turn|turns):[^\s]+$", url):
                raise ValueError(f"{url!r} is not a stun:, stuns:, turn: or turns: URL")
        return value

    @field_validator("username")
    @classmethod
    def _minted_or_static(cls, value: str, info: ValidationInfo) -> str:
        if value and info.data.get("auth_secret"):
            raise ValueError("with auth_secret the box mints each viewer's username and credential: leave both empty")
        return value


class VideoLayerConfig(Section):
    """One shared H.264 encoding (a layer viewers can be given)."""

    width: int = Field(ge=160, le=3840, title=N_("Width"), description=N_("Picture width in pixels."))
    height: int = Field(ge=120, le=2160, title=N_("Height"), description=N_("Picture height in pixels."))
    fps: int = Field(ge=1, le=60, title=N_("Frames per second"), description=N_("Pictures per second of this layer."))
    kbps: int = Field(ge=50, le=20_000, title=N_("Bitrate (kbit/s)"), description=N_("The encoder's target bitrate."))


class LowestLayerConfig(VideoLayerConfig):
    """The layer for 2G/EDGE-class links, from the same capture; `enabled = false` leaves it out."""

    enabled: bool = Field(
        default=True, title=N_("Enabled"), description=N_("Offer this layer to viewers on very slow links.")
    )
    width: int = Field(default=320, ge=160, le=3840, title=N_("Width"), description=N_("Picture width in pixels."))
    height: int = Field(default=180, ge=120, le=2160, title=N_("Height"), description=N_("Picture height in pixels."))
    fps: int = Field(
        default=10, ge=1, le=60, title=N_("Frames per second"), description=N_("Pictures per second of this layer.")
    )
    kbps: int = Field(
        default=100, ge=50, le=20_000, title=N_("Bitrate (kbit/s)"), description=N_("The encoder's target bitrate.")
    )


class StreamSection(Section):
    """Live streaming to students: ICE servers and the encoded layers."""

    ice_servers: list[IceServer] = Field(
        default_factory=list, title=N_("ICE servers"), description=N_("STUN and TURN servers handed to students.")
    )
    keyframe_interval_s: float = Field(
        default=2.0,
        gt=0,
        le=10,
        title=N_("Keyframe interval (s)"),
        description=N_("Seconds between full pictures in the stream."),
    )
    high: VideoLayerConfig = Field(
        default_factory=lambda: VideoLayerConfig(width=1280, height=720, fps=30, kbps=1500),
        title=N_("High layer"),
        description=N_("The best picture, for good links."),
    )
    low: VideoLayerConfig = Field(
        default_factory=lambda: VideoLayerConfig(width=640, height=360, fps=15, kbps=350),
        title=N_("Low layer"),
        description=N_("A smaller picture for weaker links."),
    )
    # For 2G/EDGE-class links; viewers step down to it before they lose the picture.
    lowest: LowestLayerConfig = Field(
        default_factory=LowestLayerConfig,
        title=N_("Lowest layer"),
        description=N_("The smallest picture, for 2G/EDGE-class links."),
    )
    audio_kbps: int = Field(
        default=48, ge=16, le=256, title=N_("Audio bitrate (kbit/s)"), description=N_("The Opus encoder's bitrate.")
    )
    adaptive_layers: bool = Field(
        default=True,
        title=N_("Adapt to each viewer's link"),
        description=N_("Move each viewer between layers as their link allows."),
    )
    relay_only: bool = Field(
        default=False,
        title=N_("Relay only"),
        description=N_("Send viewers' media only through a TURN server (strict firewalls; hides the box's address)."),
    )

    @field_validator("relay_only")
    @classmethod
    def _relay_needs_turn(cls, value: bool, info: ValidationInfo) -> bool:
        servers: list[IceServer] = info.data.get("ice_servers", [])
        if value and not any(url.startswith(("turn:", "turns:")) for s in servers for url in s.urls):
            raise ValueError("relay_only needs a turn: or turns: server in stream.ice_servers")
        return value

    @field_validator("lowest")
    @classmethod
    def _lowest_below_low(cls, lowest: LowestLayerConfig, info: ValidationInfo) -> LowestLayerConfig:
        low: VideoLayerConfig | None = info.data.get("low")
        if (
            low
            and lowest.enabled
            and (lowest.kbps >= low.kbps or (lowest.width, lowest.height) > (low.width, low.height))
        ):
            raise ValueError(
                f"stream.lowest ({lowest.width}x{lowest.height}, {lowest.kbps} kbps) must be smaller than "
                f"stream.low ({low.width}x{low.height}, {low.kbps} kbps): fewer kbps, no larger picture"
            )
        return lowest


class RecordingSection(Section):
    """Recording of lessons to local disk."""

    enabled: bool = Field(
        default=True, title=N_("Record lessons"), description=N_("Keep a recording of every lesson on the box.")
    )
    segment_seconds: float = Field(
        default=4.0,
        ge=1,
        le=60,
        title=N_("Segment length (s)"),
        description=N_("A power cut loses at most one segment."),
    )
    quota_mb: int = Field(
        default=20_000, ge=100, title=N_("Recordings quota (MB)"), description=N_("Disk space recordings may use.")
    )
    min_free_mb: int = Field(
        default=500,
        ge=0,
        title=N_("Keep free (MB)"),
        description=N_("Recording stops while less than this is free on the disk."),
    )


class UploadSection(Section):
    """Where finished recordings go (tus resumable uploads)."""

    tus_url: str = Field(
        default="",
        title=N_("Upload server"),
        description=N_("The tus endpoint recordings are uploaded to; empty: no uploads."),
    )
    token: str = Field(
        default="", repr=False, title=N_("Upload token"), description=N_("The credential the upload server expects.")
    )
    chunk_size_kb: int = Field(
        default=1024, ge=16, le=65536, title=N_("Upload chunk (KB)"), description=N_("How much is sent per request.")
    )


class CoursewareSection(Section):
    """The courseware cache and where it syncs from."""

    repo_url: str = Field(
        default="",
        title=N_("Repository"),
        description=N_("Where courseware comes from: an http(s):// or file:// URL, or a folder (USB import)."),
    )
    quota_mb: int = Field(
        default=10_000, ge=10, title=N_("Cache quota (MB)"), description=N_("Disk space the courseware cache may use.")
    )
    # Pulls stop while the disk has less free space than this (recordings need the rest).
    min_free_mb: int = Field(
        default=1_000,
        ge=0,
        title=N_("Keep free (MB)"),
        description=N_("Pulls stop while less than this is free on the disk."),
    )
    lan_peers: bool = Field(
        default=True,
        title=N_("Ask boxes on the LAN"),
        description=N_("Fetch courseware from other boxes in the school first."),
    )
    # The repository's root metadata the box ships with ("" = <state_dir>/courseware-root.json).
    trusted_root: str = Field(
        default="",
        title=N_("Trusted root"),
        description=N_("The repository's root metadata the box trusts; empty: the one in the state folder."),
    )
    pull_interval_s: float = Field(
        default=900.0,
        ge=1.0,
        le=86_400.0,
        title=N_("Pull every (s)"),
        description=N_("How often the box looks for new courseware."),
    )
    concurrency: int = Field(
        default=4, ge=1, le=32, title=N_("Parallel downloads"), description=N_("How many chunks are fetched at once.")
    )

    @field_validator("repo_url")
    @classmethod
    def _repo_url(cls, value: str) -> str:
        if value and not re.match(r"^(https?|file)://[^\s]+$|^/[^\s]*$", value):
            raise ValueError("must be an http(s):// or file:// URL, or an absolute folder path (USB import)")
        return value


class TimetableSection(Section):
    """The lesson timetable: where it comes from, how far ahead courseware is fetched, the feed's limits."""

    feed_url: str = Field(
        default="",
        repr=False,  # a calendar's address often carries its access token
        title=N_("Timetable feed"),
        description=N_("An iCalendar (.ics) address the timetable is read from; empty: none."),
    )
    repo_item: str = Field(
        default="",
        max_length=300,
        pattern=r"^$|^[a-z0-9][a-z0-9_-]{0,63}/[^\s]+\.ics$",
        title=N_("Timetable in the courseware"),
        description=N_("A timetable file of the signed courseware repository, as course/file.ics; empty: none."),
    )
    refresh_s: float = Field(
        default=900.0,
        ge=10.0,
        le=86_400.0,
        title=N_("Read the feed every (s)"),
        description=N_("How often the box asks the feed for changes."),
    )
    announce_minutes: int = Field(
        default=5,
        ge=1,
        le=60,
        title=N_("Announce a lesson (min)"),
        description=N_("How long before a lesson the panel says it is starting."),
    )
    prefetch_days: int = Field(
        default=2,
        ge=0,
        le=14,
        title=N_("Fetch courseware ahead (days)"),
        description=N_("The courses of lessons in this many days are kept and fetched ahead of time."),
    )
    max_feed_kb: int = Field(
        default=1024,
        ge=16,
        le=16_384,
        title=N_("Largest feed (KB)"),
        description=N_("A larger timetable feed is refused and the last good timetable kept."),
    )
    max_lessons: int = Field(
        default=5000,
        ge=10,
        le=50_000,
        title=N_("Most lessons in view"),
        description=N_("A timetable with more lessons than this in the coming weeks is refused."),
    )

    @field_validator("feed_url")
    @classmethod
    def _feed_url(cls, value: str) -> str:
        if value and not re.match(r"^(https?|file)://[^\s]+$", value):
            raise ValueError("must be an http(s):// or file:// address")
        return value


class BudgetWindow(Section):
    """A daily time window with its own WAN rate (kbit/s; 0 = unlimited)."""

    start: str = Field(
        pattern=r"^([01]\d|2[0-3]):[0-5]\d$", title=N_("From"), description=N_("Start of the window, HH:MM.")
    )
    end: str = Field(
        pattern=r"^([01]\d|2[0-4]):[0-5]\d$",
        title=N_("Until"),
        description=N_("End of the window, HH:MM (24:00 for midnight)."),
    )
    kbps: int = Field(
        ge=0, title=N_("Rate (kbit/s)"), description=N_("What sync may use in this window; 0: unlimited.")
    )


class BudgetSection(Section):
    """How much of the WAN link sync may use."""

    windows: list[BudgetWindow] = Field(
        default_factory=list, title=N_("Daily windows"), description=N_("Times of day with their own rate for sync.")
    )
    monthly_cap_mb: int = Field(
        default=0,
        ge=0,
        title=N_("Monthly data cap (MB)"),
        description=N_("Sync stops for the month when it has used this much; 0: no cap."),
    )
    link_kbps: int = Field(
        default=0,
        ge=0,
        title=N_("Link rate (kbit/s)"),
        description=N_("The internet link's rate if known; 0: estimated from transfers."),
    )
    live_lesson_kbps: int = Field(
        default=1500,
        ge=0,
        title=N_("Kept for live lessons (kbit/s)"),
        description=N_("What a live lesson streams over the internet; sync gets the rest."),
    )


UplinkLayer = Literal["high", "low", "lowest"]


class UplinkSection(Section):
    """Publishing the live lesson to a cloud SFU by WHIP, for students the box's own uplink cannot serve."""

    mode: Literal["local", "cloud", "both"] = Field(
        default="local",
        title=N_("Where students watch"),
        description=N_(
            "local: from the box only; cloud: through the cloud server only; both: the LAN from the box, "
            "everyone else through the cloud server."
        ),
    )
    whip_url: str = Field(
        default="",
        title=N_("WHIP address"),
        description=N_("The cloud server's WHIP endpoint the box publishes the lesson to, https://..."),
    )
    token: str = Field(
        default="",
        repr=False,
        title=N_("Token"),
        description=N_("The bearer token the cloud server gave for this endpoint."),
    )
    layers: list[UplinkLayer] = Field(
        default_factory=lambda: list[UplinkLayer](["high"]),
        min_length=1,
        max_length=3,
        title=N_("Layers to publish"),
        description=N_("Which of the box's video layers go to the cloud server (each one is a video stream)."),
    )
    player_url: str = Field(
        default="",
        title=N_("Player address"),
        description=N_(
            "Where students watch the published lesson; the join link and QR code point there "
            "({join_code} is replaced by the lesson's code)."
        ),
    )

    @field_validator("whip_url", "player_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if value and not re.match(r"^https?://[^\s/]+(/[^\s]*)?$", value):
            raise ValueError("must be an http:// or https:// URL")
        return value

    @field_validator("layers")
    @classmethod
    def _distinct(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("name each layer once")
        return value

    @model_validator(mode="after")
    def _target_for_cloud(self) -> UplinkSection:
        if self.mode != "local" and not self.whip_url:
            raise ValueError(f"mode {self.mode!r} needs whip_url (the cloud server's WHIP endpoint)")
        return self

    def publishes(self) -> bool:
        """True when lessons go to the cloud server."""
        return self.mode != "local" and bool(self.whip_url)


class ConsoleSection(Section):
    """The technician's serial console."""

    serial_port: str = Field(
        default="",
        title=N_("Serial port"),
        description=N_("The technician's console port, e.g. /dev/ttyS0; empty: none."),
    )
    baudrate: int = Field(
        default=115200, ge=1200, le=4_000_000, title=N_("Baud rate"), description=N_("The serial port's speed.")
    )
    tech_pin_hash: str = Field(
        default="",
        repr=False,
        title=N_("Technician PIN"),
        description=N_("Set on the accounts and PINs page; stored as an argon2 hash."),
    )
    socket_path: str = Field(
        default="",
        title=N_("Console socket"),
        description=N_("Where `classbox console` reaches the running box; empty: console.sock in the state folder."),
    )
    idle_logout_s: float = Field(
        default=600.0,
        ge=10.0,
        le=86_400.0,
        title=N_("Console idle logout (s)"),
        description=N_("A technician who types nothing for this long is logged out."),
    )
    network_dir: str = Field(
        default="/etc/systemd/network",
        title=N_("Network settings folder"),
        description=N_("Where the console's `net set` writes its systemd-networkd .network file."),
    )
    net_confirm_s: float = Field(
        default=120.0,
        ge=5.0,
        le=3600.0,
        title=N_("Network change confirm time (s)"),
        description=N_("A network change not confirmed from the console within this time is undone."),
    )

    @field_validator("tech_pin_hash")
    @classmethod
    def _hash(cls, value: str) -> str:
        return _argon2_hash(value)


class DiscoverySection(Section):
    """Zeroconf advertisement of this box and browsing for peers."""

    enabled: bool = Field(
        default=True,
        title=N_("Find other boxes"),
        description=N_("Advertise this box and find others on the LAN (zeroconf)."),
    )
    interfaces: list[str] = Field(
        default_factory=list,
        title=N_("Interfaces"),
        description=N_("Addresses to advertise on and browse; empty: all."),
    )


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


class AdminSection(Section):
    """The IT staff's admin page: how long a signed-in session may sit unused."""

    idle_minutes: int = Field(
        default=30,
        ge=1,
        le=720,
        title=N_("Sign-out after idle minutes"),
        description=N_("An admin session unused this long ends (it ends 12 hours after sign-in in any case)."),
    )


class LoggingSection(Section):
    """Log verbosity."""

    level: Literal["debug", "info", "warning", "error"] = Field(
        default="info", title=N_("Log level"), description=N_("How much the box writes to its log.")
    )


class MetricsSection(Section):
    """The history behind the admin dashboard's graphs (CPU, memory, disk, link, sync, viewers)."""

    interval_s: float = Field(
        default=60.0,
        ge=1.0,
        le=3600.0,
        title=N_("Sample every (s)"),
        description=N_("How often the dashboard's graphs get a new point."),
    )
    keep_days: int = Field(
        default=7, ge=1, le=90, title=N_("Keep history (days)"), description=N_("How long the graphs' history is kept.")
    )


class BoxConfig(Section):
    """The whole configuration of a box."""

    box: BoxSection = Field(
        default_factory=BoxSection, title=N_("Box"), description=N_("Who this box is and where it keeps its state.")
    )
    web: WebSection = Field(
        default_factory=WebSection,
        title=N_("Web pages"),
        description=N_("The one port every web page and the API share."),
    )
    cameras: list[CameraConfig] = Field(
        default_factory=lambda: [CameraConfig()],
        title=N_("Cameras"),
        description=N_("The cameras lessons use; the first one is the lesson's picture."),
    )
    microphones: list[MicrophoneConfig] = Field(
        default_factory=lambda: [MicrophoneConfig()],
        title=N_("Microphones"),
        description=N_("The microphones lessons use; the first one is the lesson's sound."),
    )
    ptz: PtzSection = Field(
        default_factory=PtzSection,
        title=N_("PTZ camera"),
        description=N_("The lesson camera's presets and moves (VISCA)."),
    )
    display: DisplaySection = Field(
        default_factory=DisplaySection,
        title=N_("Room display"),
        description=N_("The display or projector the panel switches (PJLink or RS-232)."),
    )
    lesson: LessonSection = Field(
        default_factory=LessonSection, title=N_("Lessons"), description=N_("Lessons and who may join them.")
    )
    stream: StreamSection = Field(
        default_factory=StreamSection,
        title=N_("Streaming"),
        description=N_("Live streaming to students: ICE servers and the encoded layers."),
    )
    recording: RecordingSection = Field(
        default_factory=RecordingSection,
        title=N_("Recording"),
        description=N_("Recording of lessons on the box's disk."),
    )
    upload: UploadSection = Field(
        default_factory=UploadSection, title=N_("Uploads"), description=N_("Where finished recordings are uploaded to.")
    )
    courseware: CoursewareSection = Field(
        default_factory=CoursewareSection,
        title=N_("Courseware"),
        description=N_("The courseware cache and where it syncs from."),
    )
    timetable: TimetableSection = Field(
        default_factory=TimetableSection,
        title=N_("Timetable"),
        description=N_("The lesson timetable and the courseware fetched ahead for it."),
    )
    budget: BudgetSection = Field(
        default_factory=BudgetSection,
        title=N_("Bandwidth"),
        description=N_("How much of the internet link sync may use."),
    )
    uplink: UplinkSection = Field(
        default_factory=UplinkSection,
        title=N_("Live to cloud"),
        description=N_("Publishing live lessons to a cloud server (WHIP) for students beyond the box's link."),
    )
    console: ConsoleSection = Field(
        default_factory=ConsoleSection, title=N_("Serial console"), description=N_("The technician's serial console.")
    )
    discovery: DiscoverySection = Field(
        default_factory=DiscoverySection,
        title=N_("Discovery"),
        description=N_("Finding other boxes on the LAN and being found."),
    )
    board: BoardSection = Field(
        default_factory=BoardSection,
        title=N_("Interactive board"),
        description=N_("The board's pen and touch input and its ink."),
    )
    admin: AdminSection = Field(
        default_factory=AdminSection,
        title=N_("Admin sign-in"),
        description=N_("How long an admin stays signed in."),
    )
    logging: LoggingSection = Field(
        default_factory=LoggingSection, title=N_("Logging"), description=N_("How much the box writes to its log.")
    )
    metrics: MetricsSection = Field(
        default_factory=MetricsSection,
        title=N_("Dashboard history"),
        description=N_("The history behind the dashboard's graphs."),
    )

    @model_validator(mode="after")
    def _unique_device_names(self) -> BoxConfig:
        for kind, items in (("cameras", self.cameras), ("microphones", self.microphones)):
            names = [item.name for item in items]
            duplicates = sorted({n for n in names if names.count(n) > 1})
            if duplicates:
                raise ValueError(f"{kind}: names must be unique, repeated: {', '.join(duplicates)}")
        return self


SECRET_NAME = re.compile(r"(token|credential|secret|password|passwd|_hash)$", re.IGNORECASE)
SHOWN_CHARS = 80
SHAPES = {
    "model_type": "must be a table ([section] or {key = value})",
    "list_type": "must be an array ([...] or [[section]])",
}


def _sections(base: type[Section] = Section) -> Iterator[type[Section]]:
    for sub in base.__subclasses__():
        yield sub
        yield from _sections(sub)


@functools.cache
def _secret_fields() -> frozenset[str]:
    """Every field of the schema whose value is never shown (repr=False), wherever it sits."""
    return frozenset(name for cls in _sections() for name, field in cls.model_fields.items() if not field.repr)


def _is_secret(loc: tuple[int | str, ...]) -> bool:
    hidden = _secret_fields()
    return any(isinstance(part, str) and (part in hidden or SECRET_NAME.search(part)) for part in loc)


def _is_structure(value: object) -> bool:
    """A section, a mapping or a list holding them: shown by its key alone (it may hold secrets)."""
    if isinstance(value, dict):
        return True
    return isinstance(value, list | tuple) and any(isinstance(item, dict | list | tuple) for item in value)


def _shown(value: object) -> str:
    text = redact(repr(value))
    return text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 3] + "..."


def _location(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc) or "(top level)"


def _problem(item: ErrorDetails) -> str:
    """One line for one validation error: the key and what is wrong; the value only if it is safe to show."""
    where = _location(item["loc"])
    message = SHAPES.get(item["type"], item["msg"].removeprefix("Value error, "))
    if item["type"] == "extra_forbidden":
        return f"{where}: unknown setting"
    if item["type"] == "missing":
        return f"{where}: required setting is missing"
    if _is_secret(item["loc"]):
        return f"{where}: the value (a secret, not shown) is not allowed: {message}"
    if _is_structure(item["input"]):
        return f"{where}: {message}"
    return f"{where}: {_shown(item['input'])} is not allowed: {message}"


def _problems(err: ValidationError) -> list[str]:
    return [_problem(item) for item in err.errors()]


def parse_config(data: dict[str, Any], source: str = "config") -> BoxConfig:
    """Validate a mapping (as read from TOML); raise ConfigError with one line per problem."""
    try:
        return BoxConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(source, _problems(err)) from err


def load_config(path: Path) -> BoxConfig:
    """Read and validate a TOML config file."""
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise ConfigError(str(path), [f"cannot read the file: {err.strerror}"]) from err
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        raise ConfigError(str(path), [f"not valid TOML: {err}"]) from err
    return parse_config(data, str(path))


def config_path(explicit: Path | None) -> Path:
    """The file to load: --config, else $CLASSBOX_CONFIG, else /etc/classbox/classbox.toml."""
    if explicit is not None:
        return explicit
    env = os.environ.get(CONFIG_ENV)
    return Path(env) if env else DEFAULT_CONFIG_PATH


def dump_config(config: BoxConfig) -> str:
    """The config as TOML text (every setting, secrets included: the file is mode 0600)."""
    data = config.model_dump(mode="json")
    return tomli_w.dumps(data)


def save_config(config: BoxConfig, path: Path) -> None:
    """Validate and write atomically; the file replaced is kept as `<name>.prev` for rollback."""
    checked = parse_config(config.model_dump(mode="json"), str(path))
    write_atomic(path, dump_config(checked).encode(), mode=0o600, keep_previous=True)


def rollback_config(path: Path) -> BoxConfig:
    """Bring back the version saved before the last save; the current one becomes `.prev` (one atomic swap)."""
    previous = previous_path(path)
    restored = load_config(previous)
    if path.exists():
        exchange_atomic(path, previous)
    else:
        write_atomic(path, previous.read_bytes(), mode=0o600)
    return restored
