"""What crosses the internet link besides live lessons: uploads, courseware, the bandwidth budget."""

from __future__ import annotations

import re

from pydantic import Field, field_validator

from edge.core.config.base import Section
from edge.core.texts import N_


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
