"""The box itself: who it is, where it keeps its state, its log and its dashboard history."""

from __future__ import annotations

import datetime as dt
import os
import re
import zoneinfo
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from edge.core.config.base import Language, Section
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
