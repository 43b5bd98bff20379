"""Reading a timetable from iCalendar (RFC 5545) text: lessons in the school's time zone, with limits.

A timetable comes from outside (a feed, a file of the courseware repository): it is checked whole
before it replaces the one the box follows. Refused with a clear `TimetableRefused`: text larger
than the limit, anything the iCalendar library cannot read, a lesson with a bad or missing date, an
end before its start, a lesson longer than a school day, a rule that repeats more often than daily
(an hourly or "every minute" rule that never ends), and more lessons in view than the limit.
Times with a TZID keep their zone (daylight saving follows it); floating times are the school's.
All-day entries (holidays, notes) are not lessons and are left out.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import icalendar
import recurring_ical_events  # type: ignore[import-untyped]

from edge.core.answer import Answer
from edge.core.errors import TimetableRefused
from sync.chunks import COURSE_RE

MODES = ("both", "stream", "record")
MAX_EVENTS = 2000
MAX_LESSON_S = 12 * 3600
MIN_LESSON_S = 60
ALLOWED_FREQ = {"DAILY", "WEEKLY", "MONTHLY", "YEARLY"}
COURSE_PROP = "X-CLASSBOX-COURSE"
MODE_PROP = "X-CLASSBOX-MODE"
TEACHER_PROP = "X-CLASSBOX-TEACHER"


class Slot(Answer):
    """One scheduled lesson: what, for which course, taught by whom, when (epoch seconds), stream/record."""

    key: str
    title: str
    course: str
    teacher: str
    start: float
    end: float
    mode: str
    source: str


def _get(component: icalendar.cal.Component, name: str) -> Any:
    """A property as the library gives it (its types vary by property)."""
    return component.get(name)


def _text(component: icalendar.cal.Component, name: str, limit: int = 120) -> str:
    value = _get(component, name)
    if isinstance(value, list):
        value = value[0] if value else ""
    if name == "CATEGORIES" and value is not None and hasattr(value, "cats"):
        value = value.cats[0] if value.cats else ""
    return str(value or "").strip()[:limit]


def _teacher(event: icalendar.cal.Component) -> str:
    named = _text(event, TEACHER_PROP)
    if named:
        return named
    organizer = _get(event, "ORGANIZER")
    if organizer is None:
        return ""
    return str(organizer.params.get("CN", "")).strip()[:120]


def _aware(moment: dt.datetime, zone: dt.tzinfo) -> dt.datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=zone)


def _name(event: icalendar.cal.Component) -> str:
    return _text(event, "SUMMARY") or _text(event, "UID") or "(untitled)"


def parse(raw: bytes, max_bytes: int) -> icalendar.Calendar:
    """The calendar in `raw`, checked event by event; raise TimetableRefused with the first problem."""
    if len(raw) > max_bytes:
        raise TimetableRefused(f"the timetable is {len(raw) // 1024} KB, more than the {max_bytes // 1024} KB allowed")
    try:
        calendar = icalendar.Calendar.from_ical(raw.decode("utf-8"))
    except UnicodeDecodeError as err:
        raise TimetableRefused("the timetable is not UTF-8 text") from err
    except (ValueError, KeyError, IndexError, TypeError) as err:
        raise TimetableRefused(f"the timetable is not iCalendar: {err}") from err
    if not isinstance(calendar, icalendar.Calendar):
        raise TimetableRefused("the timetable is not a single VCALENDAR")
    events = calendar.walk("VEVENT")
    if len(events) > MAX_EVENTS:
        raise TimetableRefused(f"the timetable has {len(events)} entries, more than the {MAX_EVENTS} allowed")
    for event in events:
        _check_event(event)
    return calendar


def _check_event(event: icalendar.cal.Component) -> None:
    for prop, problem in event.errors:
        raise TimetableRefused(f"lesson {_name(event)!r}: {prop} is not valid: {problem}")
    start = _get(event, "DTSTART")
    if start is None:
        raise TimetableRefused(f"lesson {_name(event)!r} has no start (DTSTART)")
    end = _get(event, "DTEND")
    if end is not None and _comparable(start.dt, end.dt) and end.dt <= start.dt:
        raise TimetableRefused(f"lesson {_name(event)!r} ends before it starts")
    rules = _get(event, "RRULE")
    for rule in rules if isinstance(rules, list) else [rules]:
        if rule is None:
            continue
        freq = [str(f).upper() for f in rule.get("FREQ", [])]
        if not freq or freq[0] not in ALLOWED_FREQ:
            raise TimetableRefused(
                f"lesson {_name(event)!r} repeats {(freq or ['without a frequency'])[0].lower()}: "
                "a lesson repeats at most daily"
            )
    mode = _text(event, MODE_PROP).lower()
    if mode and mode not in MODES:
        raise TimetableRefused(f"lesson {_name(event)!r}: {MODE_PROP} must be one of {', '.join(MODES)}")
    course = _text(event, COURSE_PROP, 64)
    if course and not COURSE_RE.match(course):
        raise TimetableRefused(f"lesson {_name(event)!r}: {course!r} is not a course id")


def _comparable(a: object, b: object) -> bool:
    if not (isinstance(a, dt.datetime) and isinstance(b, dt.datetime)):
        return False
    return (a.tzinfo is None) == (b.tzinfo is None)


def expand(
    calendar: icalendar.Calendar, zone: dt.tzinfo, lo: float, hi: float, source: str, max_lessons: int
) -> list[Slot]:
    """The calendar's timed lessons that overlap [lo, hi), sorted by start; TimetableRefused past `max_lessons`."""
    begin = dt.datetime.fromtimestamp(lo, zone)
    finish = dt.datetime.fromtimestamp(hi, zone)
    try:
        occurrences = recurring_ical_events.of(calendar).between(begin, finish)
    except (ValueError, TypeError, OverflowError, recurring_ical_events.InvalidCalendar) as err:
        raise TimetableRefused(f"the timetable's repeating lessons cannot be worked out: {err}") from err
    slots = []
    for event in occurrences:
        slot = _slot(event, zone, source)
        if slot is not None:
            slots.append(slot)
        if len(slots) > max_lessons:
            raise TimetableRefused(f"the timetable has more than {max_lessons} lessons in the coming weeks")
    return sorted(slots, key=lambda s: (s.start, s.key))


def _slot(event: icalendar.cal.Component, zone: dt.tzinfo, source: str) -> Slot | None:
    start = _get(event, "DTSTART").dt
    if not isinstance(start, dt.datetime):
        return None  # an all-day entry: a holiday or a note, not a lesson
    end_prop = _get(event, "DTEND")
    end = end_prop.dt if end_prop is not None else None
    if end is None:
        duration = _get(event, "DURATION")
        end = start + (duration.dt if duration is not None else dt.timedelta(minutes=45))
    if not isinstance(end, dt.datetime):
        raise TimetableRefused(f"lesson {_name(event)!r} starts at a time but ends on a date")
    start_at, end_at = _aware(start, zone).timestamp(), _aware(end, zone).timestamp()
    length = end_at - start_at
    if length < MIN_LESSON_S:
        raise TimetableRefused(f"lesson {_name(event)!r} ends before it starts or lasts less than a minute")
    if length > MAX_LESSON_S:
        raise TimetableRefused(f"lesson {_name(event)!r} lasts more than 12 hours")
    uid = _text(event, "UID", 200) or _name(event)
    return Slot(
        key=f"{source}:{uid}:{int(start_at)}",
        title=_name(event),
        course=_text(event, COURSE_PROP, 64) or _category(event),
        teacher=_teacher(event),
        start=start_at,
        end=end_at,
        mode=_text(event, MODE_PROP).lower() or "both",
        source=source,
    )


def _category(event: icalendar.cal.Component) -> str:
    course = _text(event, "CATEGORIES", 64)
    return course if COURSE_RE.match(course or "-") else ""


def lessons_of(slots: list[Slot], lo: float, hi: float) -> Iterator[Slot]:
    """The slots that overlap [lo, hi)."""
    return (slot for slot in slots if slot.end > lo and slot.start < hi)
