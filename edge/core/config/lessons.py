"""Lessons: who may join them, their recording, the timetable they follow."""

from __future__ import annotations

import re

from pydantic import Field, field_validator

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
