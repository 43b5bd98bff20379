"""Lessons: the state machine (idle -> live -> idle), join codes, start/stop hooks, and their storage.

Lessons are persisted in SQLite under the state directory; the live lesson is kept in memory, so a
disk too full for SQLite to commit never blocks a stop or a start (the state is written as soon as
the disk has room again).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import sqlite3
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import sqlite_utils

from edge.core.config import LessonSection
from edge.core.db import Headroom, table
from edge.core.errors import LessonAlreadyLive, NoLiveLesson
from edge.core.events import EventBus
from edge.core.ports import AlarmBoard, LessonView
from edge.core.texts import N_
from sync.clock import Clock, wall

log = logging.getLogger(__name__)

JOIN_CODE_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
UNSAVED_ALARM = "lesson-state"


@dataclass(frozen=True)
class Lesson:
    """A lesson as the doors see it."""

    id: str
    title: str
    join_code: str
    state: str  # live | ended | interrupted
    started_at: float
    ended_at: float | None = None
    started_by: str = ""
    alarms: tuple[str, ...] = ()  # what the panel must say about the live lesson, in plain words (not stored)
    duration_s: float | None = field(default=None, compare=False)  # on the monotonic clock; wall times are labels

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Lesson:
        """Build from a `lessons` table row."""
        return cls(**{key: row[key] for key in cls.__dataclass_fields__ if key != "alarms"})

    def to_row(self) -> dict[str, Any]:
        """The `lessons` table row."""
        data = asdict(self)
        del data["alarms"]
        return data

    def to_json(self) -> dict[str, Any]:
        """The JSON form the API answers with."""
        data = asdict(self)
        data["alarms"] = list(self.alarms)
        if self.duration_s is None:  # a lesson from before durations were measured
            data["duration_s"] = round((self.ended_at or wall()) - self.started_at, 3)
        return data

    def public_json(self) -> dict[str, Any]:
        """What anyone may read about the lesson: its state and title (never its join code)."""
        return {"state": self.state, "title": self.title}


LessonHook = Callable[[Lesson], Awaitable[None]]


class Lessons:
    """The live lesson, the lessons before it, and the hooks that run as one starts and stops."""

    def __init__(
        self,
        db: Callable[[], sqlite_utils.Database],
        settings: Callable[[], LessonSection],
        bus: EventBus,
        clock: Callable[[], Clock],
        alarms: AlarmBoard,
        headroom: Headroom,
    ) -> None:
        # Read per use: the box's clock and config may be replaced while it runs (tests step the clock).
        self._db, self._settings, self._bus, self._clock = db, settings, bus, clock
        self._alarms, self._headroom = alarms, headroom
        self._lock = asyncio.Lock()
        self._on_start: list[LessonHook] = []
        self._on_stop: list[LessonHook] = []
        self._live: Lesson | None = None
        self._live_since = 0.0  # the monotonic time the live lesson started
        self._unsaved: dict[str, Lesson] = {}  # lesson states the database could not take yet (disk full)

    @property
    def _table(self) -> sqlite_utils.db.Table:
        return table(self._db(), "lessons")

    def close_out_interrupted(self) -> None:
        """Mark lessons a crash or power cut left live as interrupted."""
        for row in self._table.rows_where("state = ?", ["live"]):
            lesson = Lesson.from_row(row)
            self._save(replace(lesson, state="interrupted"))
            log.warning("lesson %s (%s) was interrupted by a restart", lesson.id, lesson.title)
            self._bus.publish("lesson.interrupted", lesson=lesson.to_json())

    def on_start(self, hook: LessonHook) -> None:
        """Run `hook` (awaited, in registration order) when a lesson starts."""
        self._on_start.append(hook)

    def on_stop(self, hook: LessonHook) -> None:
        """Run `hook` (awaited, in reverse registration order) when a lesson stops."""
        self._on_stop.insert(0, hook)

    # -- a full disk ----------------------------------------------------------------------------

    def _save(self, lesson: Lesson) -> None:
        """Persist a lesson's state, or keep it in memory until the database can take it."""
        self._unsaved[lesson.id] = lesson
        self.flush()

    def flush(self) -> bool:
        """Write the lesson states the database has not taken yet; True when none is left."""
        for lesson in list(self._unsaved.values()):
            if not self._write(lesson):
                self._alarms.raise_alarm(
                    UNSAVED_ALARM, N_("Disk full: lesson changes are kept in memory until there is room")
                )
                return False
            del self._unsaved[lesson.id]
        self._alarms.clear_alarm(UNSAVED_ALARM)
        return True

    def _write(self, lesson: Lesson) -> bool:
        try:
            self._table.insert(lesson.to_row(), replace=True)
        except sqlite3.OperationalError as err:  # SQLITE_FULL, SQLITE_IOERR, SQLITE_BUSY: try again later
            if self._headroom.release():
                return self._write(lesson)
            log.warning("lesson %s: the database cannot take its state now (%s); kept until it can", lesson.id, err)
            return False
        return True

    async def tend_disk(self) -> bool:
        """Write what a full disk held back and make the database reserve again once there is room; True when held."""
        self.flush()
        return await asyncio.to_thread(self._headroom.restore)

    # -- reading --------------------------------------------------------------------------------

    def current(self) -> Lesson | None:
        """The live lesson, if any, with the alarms the panel must show."""
        if self._live is None:
            return None
        live = self._measured(self._live)
        alarms = tuple(self._alarms.now().values())
        return replace(live, alarms=alarms) if alarms else live

    def by_code(self, join_code: str) -> Lesson | None:
        """The lesson a join code belongs to (any state)."""
        code = join_code.lower()
        unsaved = next((lesson for lesson in self._unsaved.values() if lesson.join_code == code), None)
        if unsaved is not None:
            return self._measured(unsaved)
        rows = list(self._table.rows_where("join_code = ?", [code], limit=1))
        return self._measured(Lesson.from_row(rows[0])) if rows else None

    def get(self, lesson_id: str) -> Lesson | None:
        """A lesson by id."""
        if lesson_id in self._unsaved:
            return self._measured(self._unsaved[lesson_id])
        rows = list(self._table.rows_where("id = ?", [lesson_id], limit=1))
        return self._measured(Lesson.from_row(rows[0])) if rows else None

    def recent(self, limit: int = 50) -> list[Lesson]:
        """The most recent lessons, newest first."""
        rows = self._table.rows_where(order_by="started_at desc", limit=limit)
        lessons = {row["id"]: Lesson.from_row(row) for row in rows} | self._unsaved
        newest = sorted(lessons.values(), key=lambda lesson: lesson.started_at, reverse=True)[:limit]
        return [self._measured(lesson) for lesson in newest]

    def _measured(self, lesson: Lesson) -> Lesson:
        """The live lesson with how long it has been live (monotonic); any other lesson as it is."""
        if lesson.state != "live" or self._live is None or lesson.id != self._live.id:
            return lesson
        return replace(lesson, duration_s=round(self._clock().monotonic() - self._live_since, 3))

    def origin(self, lesson: LessonView) -> float:
        """The monotonic time the live `lesson` started: time zero of its media clock."""
        live = self._live is not None and lesson.id == self._live.id
        return self._live_since if live else self._clock().monotonic()

    def _new_join_code(self) -> str:
        length = self._settings().join_code_length
        while True:
            code = "".join(secrets.choice(JOIN_CODE_ALPHABET) for _ in range(length))
            if self.by_code(code) is None:
                return code

    # -- the state machine ----------------------------------------------------------------------

    async def start(self, title: str | None, by: str, join_code: str | None = None) -> Lesson:
        """Go live (with `join_code` if still free: one shared ahead); raise LessonAlreadyLive if one is live."""
        async with self._lock:
            if self._live is not None:
                raise LessonAlreadyLive("a lesson is already live; stop it first")
            await self.tend_disk()
            lesson = Lesson(
                id=uuid.uuid4().hex,
                title=(title or "").strip()[:120] or self._settings().default_title,
                join_code=join_code if join_code and self.by_code(join_code) is None else self._new_join_code(),
                state="live",
                started_at=self._clock().wall(),
                started_by=by,
            )
            self._live, self._live_since = lesson, self._clock().monotonic()
            self._save(lesson)
            log.info("lesson %s started by %s: %s", lesson.id, by, lesson.title)
            await self._run_hooks(self._on_start, lesson)
            self._bus.publish("lesson.started", lesson=lesson.to_json())
            return lesson

    async def stop(self, by: str) -> Lesson:
        """End the live lesson; raise NoLiveLesson if there is none."""
        async with self._lock:
            current = self._live
            if current is None:
                raise NoLiveLesson("no lesson is live")
            ended = replace(self._measured(current), state="ended", ended_at=self._clock().wall())
            self._live = None
            self._save(ended)
            log.info("lesson %s stopped by %s", ended.id, by)
            await self._run_hooks(self._on_stop, ended)
            self._bus.publish("lesson.ended", lesson=ended.to_json())
            return ended

    async def _run_hooks(self, hooks: list[LessonHook], lesson: Lesson) -> None:
        for hook in hooks:
            try:
                await hook(lesson)
            except Exception:
                # A failing part (recorder, stream) degrades the lesson; it never blocks it.
                log.exception("lesson hook %s failed", getattr(hook, "__qualname__", hook))
