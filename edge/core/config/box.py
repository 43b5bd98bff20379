"""The box, its doors and its link.

Who it is, its state, log and dashboard history; web pages, the console, LAN discovery, admin sign-in;
uploads, courseware and the bandwidth budget.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import re
import zoneinfo
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationInfo, field_validator

from edge.core.config.base import Language, Port, Section
from edge.core.texts import N_


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


class AdminSection(Section):
    """The IT staff's admin page: how long a signed-in session may sit unused."""

    idle_minutes: int = Field(
        default=30,
        ge=1,
        le=720,
        title=N_("Sign-out after idle minutes"),
        description=N_("An admin session unused this long ends (it ends 12 hours after sign-in in any case)."),
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
