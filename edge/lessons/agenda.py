"""The timetable's answers to the doors: a day's lessons, the next one, the sources' status, what is missing."""

from __future__ import annotations

from edge.core.answer import Answer
from edge.lessons.calendar import Slot


class ScheduledLesson(Slot):
    """One scheduled lesson as the doors see it: the fields of its `Slot`."""

    @classmethod
    def of(cls, slot: Slot) -> ScheduledLesson:
        """The lesson of a slot as the doors see it."""
        return cls(**slot.to_json())


class DayLesson(ScheduledLesson):
    """A lesson of a day with its state now, its join code (while it can be joined) and the minutes added."""

    state: str  # planned | soon | due | live | ended | missed
    join_code: str  # "" once it cannot be joined any more
    extended_min: int
    starts_in_s: int


class NextLesson(ScheduledLesson):
    """The next scheduled lesson with the join link it will have (to share ahead of time)."""

    join_code: str
    join_url: str


class Extension(Answer):
    """The live scheduled lesson after the teacher added minutes: its new end and the minutes added in all."""

    key: str
    end: float
    extended_min: int


class SourceStatus(Answer):
    """One timetable source: when it was last accepted and asked, its lessons, its last error, stored or not."""

    accepted_at: float | None
    checked_at: float | None
    error: str | None
    lessons: int | None
    stored: bool


class TimetableStatus(Answer):
    """The timetable's sources, its time zone and whether the clock can be trusted."""

    sources: dict[str, SourceStatus]
    time_zone: str
    clock_synchronised: bool | None
    feed_configured: bool
    repo_item: str


class MissingCourseware(Answer):
    """What a coming lesson's course lacks on the box: the whole course (`unknown`) or these items."""

    lesson: str
    start: float
    course: str
    unknown: bool
    items: list[str]
