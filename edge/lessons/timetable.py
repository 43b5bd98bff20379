"""The timetable: scheduled lessons, the last good timetable in SQLite, and what the schedule asks for now.

Sources: the iCalendar feed (`feed`), a file of the signed courseware repository (`repo`), and lessons
added on the admin page (`manual`). A source's text replaces the stored one only once it is read
whole (`accept`); a refused one leaves the box on the last good timetable, with the reason in the
status. The box follows what is stored, network or not.

Each scheduled lesson (a `Slot`) has a run row: its join code (reserved ahead, so the link can be
shared before the lesson), the lesson id it went live as, minutes added, and whether it is over.
`tick()` makes the live lesson follow the schedule: a lesson starts at its start (or at once when
the box boots inside it), ends at its end (plus what the teacher added), and a lesson still live when
the next one is due ends before the next starts. A teacher's stop (or the panel's) ends the slot.
Time is the box's clock (`Box.clock`), injected in tests; wall time here, since schedules are wall times.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Protocol

import icalendar
import sqlite_utils

from edge.core.config import BoxConfig
from edge.core.db import table
from edge.core.errors import LessonAlreadyLive, NoLiveLesson, NoScheduledLesson, TimetableRefused
from edge.core.events import EventBus
from edge.core.ports import LessonView
from edge.lessons import calendar
from edge.lessons.agenda import DayLesson, Extension, SourceStatus
from edge.lessons.calendar import MODES, Slot
from edge.lessons.lessons import JOIN_CODE_ALPHABET, Lesson, Lessons
from sync.chunks import COURSE_RE
from sync.clock import Clock

log = logging.getLogger(__name__)

DAY = 86_400.0
SOURCES = ("feed", "repo")
CHECK_HORIZON_DAYS = 35  # a source is checked over this many days before it is accepted
EXTENSIONS = (5, 10)
BY = "timetable"


class TimetableFeedPort(Protocol):
    """What the service layer asks of the timetable component (edge.lessons.timetable_feed.TimetableComponent)."""

    def refresh_now(self) -> None: ...


@dataclass
class Run:
    """What happened to one slot: its join code, the lesson it went live as, minutes added, over or not."""

    key: str
    join_code: str
    lesson_id: str = ""
    extend_s: float = 0.0
    started_early: int = 0
    done: int = 0


def _tables(db: sqlite_utils.Database) -> None:
    table(db, "timetable_sources").create(
        {
            "name": str,
            "text": str,
            "etag": str,
            "last_modified": str,
            "accepted_at": float,
            "checked_at": float,
            "error": str,
            "lessons": int,
        },
        pk="name",
        if_not_exists=True,
    )
    table(db, "timetable_manual").create(
        {"id": str, "title": str, "course": str, "teacher": str, "start": float, "end": float, "mode": str},
        pk="id",
        if_not_exists=True,
    )
    table(db, "timetable_runs").create(
        {"key": str, "join_code": str, "lesson_id": str, "extend_s": float, "started_early": int, "done": int},
        pk="key",
        if_not_exists=True,
    )


class Timetable:
    """The box's timetable and the schedule's hold on the live lesson."""

    def __init__(
        self,
        db: Callable[[], sqlite_utils.Database],
        config: Callable[[], BoxConfig],
        clock: Callable[[], Clock],
        lessons: Lessons,
        bus: EventBus,
    ) -> None:
        self._db, self._config, self._clock, self._lessons, self._bus = db, config, clock, lessons, bus
        self._calendars: dict[str, icalendar.Calendar] = {}
        self._cache: tuple[tuple[float, float, int], list[Slot]] | None = None
        self._version = 0
        self._lock = asyncio.Lock()
        self._announced: set[str] = set()
        lessons.on_stop(self._lesson_stopped)

    def open(self) -> None:
        """Make the tables and read the stored sources back (what the box follows offline)."""
        _tables(self._db())
        for row in table(self._db(), "timetable_sources").rows:
            if not row["text"]:
                continue
            try:
                self._calendars[row["name"]] = calendar.parse(row["text"].encode(), len(row["text"].encode()))
            except TimetableRefused as err:  # stored by an older version with other rules
                log.error("timetable: the stored %s timetable cannot be read again: %s", row["name"], err)  # noqa: TRY400
        self._changed()

    # -- sources --------------------------------------------------------------------------------

    @property
    def zone(self) -> dt.tzinfo:
        """The school's time zone."""
        return self._config().box.zone()

    def check(self, source: str, raw: bytes) -> tuple[icalendar.Calendar, int]:
        """Read and check a source's text whole (blocking: run in a thread); TimetableRefused with the reason."""
        limits = self._config().timetable
        parsed = calendar.parse(raw, limits.max_feed_kb * 1024)
        now = self._clock().wall()
        horizon = now + CHECK_HORIZON_DAYS * DAY
        slots = calendar.expand(parsed, self.zone, now - DAY, horizon, source, limits.max_lessons)
        return parsed, len(slots)

    def accept(self, source: str, raw: bytes, parsed: icalendar.Calendar, count: int, **validators: str) -> None:
        """Store a checked source's text as the last good timetable of `source` (etag, last_modified kept)."""
        now = self._clock().wall()
        row: dict[str, Any] = {"name": source, "text": raw.decode("utf-8"), "accepted_at": now, "checked_at": now}
        row |= {"error": "", "lessons": count, "etag": validators.get("etag", "")}
        row["last_modified"] = validators.get("last_modified", "")
        table(self._db(), "timetable_sources").upsert(row, pk="name")
        self._calendars[source] = parsed
        log.info("timetable: %s accepted, %d lessons in the coming weeks", source, count)
        self._changed()

    def note(self, source: str, error: str = "") -> None:
        """A source was asked: unchanged (no error) or refused/unreachable (`error`); the stored timetable stays."""
        row = {"name": source, "checked_at": self._clock().wall(), "error": error}
        table(self._db(), "timetable_sources").upsert(row, pk="name")
        if error:
            log.error("timetable: %s not updated: %s (the last good timetable is kept)", source, error)
        self._bus.publish("timetable.status", source=source, error=error)

    def forget(self, source: str) -> None:
        """The source is no longer configured: its lessons go."""
        if source in self._calendars or self._source_row(source):
            table(self._db(), "timetable_sources").delete_where("name = ?", [source])
            self._calendars.pop(source, None)
            self._changed()

    def validators(self, source: str) -> tuple[str, str]:
        """(ETag, Last-Modified) of the stored text of `source`, for a conditional request."""
        row = self._source_row(source)
        return (row.get("etag") or "", row.get("last_modified") or "") if row and row.get("text") else ("", "")

    def stored_text(self, source: str) -> str:
        """The last good text of `source` ("" when none)."""
        return str(self._source_row(source).get("text") or "")

    def _source_row(self, source: str) -> dict[str, Any]:
        rows = list(table(self._db(), "timetable_sources").rows_where("name = ?", [source]))
        return rows[0] if rows else {}

    def status(self) -> dict[str, SourceStatus]:
        """Each source's state: when it was last accepted and asked, its lessons, the last error."""
        out: dict[str, SourceStatus] = {}
        for row in table(self._db(), "timetable_sources").rows:
            fields = ("accepted_at", "checked_at", "error", "lessons")
            out[row["name"]] = SourceStatus(**{key: row[key] for key in fields}, stored=bool(row["text"]))
        return out

    def settings_changed(self) -> None:
        """The time zone or the limits changed: work the lessons out again."""
        self._changed()

    def _changed(self) -> None:
        self._version += 1
        self._cache = None
        self._bus.publish("timetable.changed")

    # -- manual lessons -------------------------------------------------------------------------

    def add_manual(self, title: str, start: dt.datetime, minutes: int, course: str = "", **extra: str) -> Slot:
        """Add a lesson on the admin page (`start` in the school's time zone when naive); TimetableRefused."""
        mode, teacher = extra.get("mode", "both"), extra.get("teacher", "").strip()[:120]
        title = title.strip()[:120]
        if not title:
            raise TimetableRefused("a lesson needs a title")
        if course and not COURSE_RE.match(course):
            raise TimetableRefused(f"{course!r} is not a course id")
        if mode not in MODES:
            raise TimetableRefused(f"the mode must be one of {', '.join(MODES)}")
        if not 1 <= minutes <= calendar.MAX_LESSON_S // 60:
            raise TimetableRefused("a lesson lasts from 1 minute to 12 hours")
        begin = (start if start.tzinfo else start.replace(tzinfo=self.zone)).timestamp()
        row: dict[str, Any] = {"id": uuid.uuid4().hex[:12], "title": title, "course": course, "teacher": teacher}
        row |= {"start": begin, "end": begin + minutes * 60.0, "mode": mode}
        table(self._db(), "timetable_manual").insert(row)
        self._changed()
        return self._manual_slot(row)

    def remove_manual(self, lesson_id: str) -> bool:
        """Remove a lesson added on the admin page; False when there is none with that id."""
        manual = table(self._db(), "timetable_manual")
        if not list(manual.rows_where("id = ?", [lesson_id])):
            return False
        manual.delete(lesson_id)
        self._changed()
        return True

    @staticmethod
    def _manual_slot(row: dict[str, Any]) -> Slot:
        fields = ("title", "course", "teacher", "start", "end", "mode")
        return Slot(key=f"manual:{row['id']}:{int(row['start'])}", source="manual", **{k: row[k] for k in fields})

    # -- reading --------------------------------------------------------------------------------

    def window(self) -> tuple[float, float]:
        """The span the box keeps expanded: yesterday to the end of the prefetch days (at least a week)."""
        today = self.day_start(self._clock().wall())
        ahead = max(self._config().timetable.prefetch_days, 7) + 1
        return today - DAY, today + ahead * DAY

    def day_start(self, moment: float) -> float:
        """Epoch seconds of the school's midnight that begins the day of `moment`."""
        local = dt.datetime.fromtimestamp(moment, self.zone)
        return local.replace(hour=0, minute=0, second=0, microsecond=0).timestamp()

    def slots(self) -> list[Slot]:
        """Every scheduled lesson in the window, sorted by start (every source together)."""
        lo, hi = self.window()
        key = (lo, hi, self._version)
        if self._cache is None or self._cache[0] != key:
            self._cache = key, self._expand(lo, hi)
        return self._cache[1]

    def _expand(self, lo: float, hi: float) -> list[Slot]:
        limit = self._config().timetable.max_lessons
        out: list[Slot] = []
        for source, parsed in self._calendars.items():
            try:
                out += calendar.expand(parsed, self.zone, lo, hi, source, limit)
            except TimetableRefused as err:
                log.error("timetable: %s cannot be expanded now: %s", source, err)  # noqa: TRY400
        manual = table(self._db(), "timetable_manual").rows_where("end > ? AND start < ?", [lo, hi])
        out += [self._manual_slot(row) for row in manual]
        return sorted(out, key=lambda s: (s.start, s.key))

    def between(self, lo: float, hi: float) -> list[Slot]:
        """The scheduled lessons that overlap [lo, hi)."""
        return list(calendar.lessons_of(self.slots(), lo, hi))

    def day(self, offset_days: int = 0) -> list[DayLesson]:
        """The lessons of today (+ `offset_days`) in the school's time zone, each with its state and join code."""
        now = self._clock().wall()
        start = self.day_start(now)
        lo = self.day_start(start + offset_days * DAY + 3600)  # + 1 h: a DST day is 23 or 25 hours long
        hi = self.day_start(lo + DAY + 3600)
        return [self._describe(slot, now) for slot in self.between(lo, hi)]

    def next_slot(self) -> Slot | None:
        """The next lesson that has not started yet (none live now)."""
        now = self._clock().wall()
        return next((s for s in self.slots() if s.start > now and not self._run(s.key).done), None)

    def _describe(self, slot: Slot, now: float) -> DayLesson:
        run = self._run(slot.key)
        data = slot.to_json() | {"state": self._state(slot, run, now), "end": slot.end + run.extend_s}
        data |= {"join_code": self.join_code(slot) if data["state"] in ("soon", "planned", "live") else ""}
        data |= {"extended_min": round(run.extend_s / 60), "starts_in_s": round(slot.start - now)}
        return DayLesson(**data)

    def _state(self, slot: Slot, run: Run, now: float) -> str:
        live = self._lessons.current()
        if live is not None and run.lesson_id == live.id:
            return "live"
        if run.done:
            return "ended"
        if now >= slot.end + run.extend_s:
            return "missed" if not run.lesson_id else "ended"
        if now >= slot.start:
            return "due"
        soon = self._config().timetable.announce_minutes * 60
        return "soon" if slot.start - now <= soon else "planned"

    # -- runs and join codes --------------------------------------------------------------------

    def _run(self, key: str) -> Run:
        rows = list(table(self._db(), "timetable_runs").rows_where("key = ?", [key], limit=1))
        return Run(**rows[0]) if rows else Run(key, "")

    def _save_run(self, run: Run) -> None:
        table(self._db(), "timetable_runs").upsert(run.__dict__, pk="key")

    def join_code(self, slot: Slot) -> str:
        """The join code the slot's lesson will have (reserved now, so the link can be shared ahead)."""
        run = self._run(slot.key)
        if not run.join_code:
            run.join_code = self._free_code()
            self._save_run(run)
        return run.join_code

    def _free_code(self) -> str:
        length = self._config().lesson.join_code_length
        runs = table(self._db(), "timetable_runs")
        while True:
            code = "".join(secrets.choice(JOIN_CODE_ALPHABET) for _ in range(length))
            if self._lessons.by_code(code) is None and not list(runs.rows_where("join_code = ?", [code])):
                return code

    def slot_of(self, lesson: LessonView | None) -> Slot | None:
        """The scheduled lesson `lesson` went live for, or None."""
        if lesson is None:
            return None
        rows = list(table(self._db(), "timetable_runs").rows_where("lesson_id = ?", [lesson.id], limit=1))
        key = rows[0]["key"] if rows else ""
        return next((s for s in self.slots() if s.key == key), None)

    def records(self, lesson: LessonView) -> bool:
        """False for a scheduled lesson that is streamed only."""
        slot = self.slot_of(lesson)
        return slot is None or slot.mode != "stream"

    def streams(self, lesson: LessonView) -> bool:
        """False for a scheduled lesson that is recorded only (students cannot join it live)."""
        slot = self.slot_of(lesson)
        return slot is None or slot.mode != "record"

    async def _lesson_stopped(self, lesson: Lesson) -> None:
        """Any stop of a scheduled lesson (at its end, early, from any door) ends its slot; a crash does not."""
        rows = table(self._db(), "timetable_runs").rows_where("lesson_id = ?", [lesson.id], limit=1)
        for row in rows:
            self._save_run(replace(Run(**row), done=1))
            self._bus.publish("timetable.changed")

    # -- following the schedule -----------------------------------------------------------------

    def due(self, now: float) -> Slot | None:
        """The slot that should be live now: begun (or started early), not over, not ended; the latest wins."""
        due = None
        for slot in self.between(now - DAY, now + DAY):
            run = self._run(slot.key)
            begun = slot.start <= now or (run.started_early and slot.start - now < DAY)
            if begun and not run.done and now < slot.end + run.extend_s:
                due = slot  # sorted by start: a later one that is due wins over an earlier one still going
        return due

    async def tick(self) -> str:
        """Make the live lesson follow the schedule once; what was done ("started <key>", "stopped <key>", "")."""
        async with self._lock:
            now = self._clock().wall()
            due, live = self.due(now), self._lessons.current()
            live_slot = self.slot_of(live)
            if live is not None and (due is None or live_slot is None or due.key != live_slot.key):
                return await self._stop_for(live, live_slot, due)
            if live is None and due is not None:
                return await self._start(due, early=False)
            self._announce(now)
            return ""

    async def _stop_for(self, live: Lesson, live_slot: Slot | None, due: Slot | None) -> str:
        if live_slot is None:  # a lesson started by hand: only the start of a scheduled one ends it
            if due is None or self._run(due.key).lesson_id:
                return ""
            log.info("timetable: %s is due; the lesson started by hand (%s) ends first", due.title, live.title)
        else:
            log.info("timetable: %s ends (%s)", live_slot.title, "next lesson due" if due else "its end")
        try:
            await self._lessons.stop(BY)
        except NoLiveLesson:  # stopped meanwhile by a door
            return ""
        return f"stopped {live_slot.key if live_slot else live.id}"

    async def _start(self, slot: Slot, early: bool) -> str:
        run = self._run(slot.key)
        if run.lesson_id:
            log.warning("timetable: %s was cut by a restart; it goes on now", slot.title)
        code = self.join_code(slot)
        if run.lesson_id or self._lessons.by_code(code) is not None:
            code = self._free_code()  # a join code is used by one lesson only (the interrupted one has it)
        lesson = await self._lessons.start(slot.title, BY, join_code=code)
        run = replace(self._run(slot.key), join_code=code, lesson_id=lesson.id, started_early=int(early))
        self._save_run(run)
        self._bus.publish("timetable.changed")
        return f"started {slot.key}"

    def _announce(self, now: float) -> None:
        upcoming = self.next_slot()
        soon = self._config().timetable.announce_minutes * 60
        if upcoming is not None and upcoming.start - now <= soon and upcoming.key not in self._announced:
            self._announced.add(upcoming.key)
            code = self.join_code(upcoming)
            self._bus.publish("timetable.soon", lesson=upcoming.to_json(), join_code=code, starts_at=upcoming.start)

    # -- the teacher's hand on the schedule -----------------------------------------------------

    async def start_early(self, key: str | None = None) -> Lesson:
        """Start the next scheduled lesson now (or the one named by `key`); LessonAlreadyLive, NoScheduledLesson."""
        async with self._lock:
            if self._lessons.current() is not None:
                raise LessonAlreadyLive("a lesson is already live; stop it first")
            slot = self.next_slot() if key is None else next((s for s in self.slots() if s.key == key), None)
            now = self._clock().wall()
            if slot is None or self._run(slot.key).done or slot.end <= now:
                raise NoScheduledLesson("there is no scheduled lesson to start")
            await self._start(slot, early=slot.start > now)
            current = self._lessons.current()
            assert current is not None  # started under our lock
            return current

    async def extend(self, minutes: int) -> Extension:
        """Add 5 or 10 minutes to the live scheduled lesson (never past the next one's start); NoScheduledLesson."""
        if minutes not in EXTENSIONS:
            raise TimetableRefused("a lesson is extended by 5 or 10 minutes")
        async with self._lock:
            slot = self.slot_of(self._lessons.current())
            if slot is None:
                raise NoScheduledLesson("no scheduled lesson is live")
            run = self._run(slot.key)
            end = slot.end + run.extend_s + minutes * 60
            later = [s.start for s in self.slots() if s.start >= slot.end and s.key != slot.key]
            if later and end > later[0]:
                end = later[0]  # the next lesson begins on time; this one ends just before
            run.extend_s = max(run.extend_s, end - slot.end)
            self._save_run(run)
            self._bus.publish("timetable.changed")
            return Extension(key=slot.key, end=slot.end + run.extend_s, extended_min=round(run.extend_s / 60))

    async def stop_early(self) -> Lesson:
        """End the live scheduled lesson now (its slot is over: it does not start again); NoScheduledLesson."""
        async with self._lock:
            if self.slot_of(self._lessons.current()) is None:
                raise NoScheduledLesson("no scheduled lesson is live")
            return await self._lessons.stop("teacher (early)")

    # -- courseware ahead of lessons ------------------------------------------------------------

    def courses_ahead(self) -> dict[str, float]:
        """Each course of a lesson from now to the end of the prefetch days, with the end of its last lesson."""
        now = self._clock().wall()
        days = self._config().timetable.prefetch_days
        hi = self.day_start(now) + (days + 1) * DAY
        ahead: dict[str, float] = {}
        for slot in self.between(now, hi):
            if slot.course:
                ahead[slot.course] = max(ahead.get(slot.course, 0.0), slot.end)
        return ahead

    def first_lesson_of(self, course: str) -> float | None:
        """When the next lesson of `course` starts (None if none is coming in the window)."""
        now = self._clock().wall()
        return next((s.start for s in self.slots() if s.course == course and s.end > now), None)


def missing_for(lessons: list[dict[str, Any]], courses: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """For lessons with a course: what of it is not on the box yet (unknown course, items missing or pulling)."""
    by_id = {course["id"]: course for course in courses}
    out = []
    for lesson in lessons:
        course = lesson.get("course")
        if not course:
            continue
        known = by_id.get(course)
        items = [] if known is None else [i["path"] for i in known["items"] if i["state"] != "cached"]
        if known is None or items:
            entry = {"lesson": lesson["title"], "start": lesson["start"], "course": course, "unknown": known is None}
            out.append(entry | {"items": items})
    return out
