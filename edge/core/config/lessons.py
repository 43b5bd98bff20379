"""Lessons and how they reach students.

Who may join, their recording, the timetable; ICE servers, the encoded layers, publishing to a cloud server.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from edge.core.config.base import Section
from edge.core.texts import N_


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
