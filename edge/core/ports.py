"""The narrow interfaces components are given: each names only what a component may ask of the box's kernel.

The composition root (edge/daemon.py, through edge/wiring.py) hands every component the ports it uses,
made from the kernel (edge/services.py); no component sees the box, the doors or a port it does not use.
Ports whose values are a concern's own type live beside that concern (the packet source: edge/media/packets.py).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import sqlite_utils

from edge.core.config import BoxConfig
from sync.budget import Budget
from sync.clock import Clock

ConfigSource = Callable[[], BoxConfig]  # the config now: saving settings replaces it, so read it per use
ClockSource = Callable[[], Clock]  # the box's clock now (tests step it while the box runs)
DatabaseSource = Callable[[], sqlite_utils.Database]  # the state database (open while the daemon runs)
BudgetSource = Callable[[], Budget | None]  # the WAN budget now (None while courseware is not running: no limit)
HttpsFingerprint = Callable[[], str | None]  # the HTTPS certificate's fingerprint (None while HTTPS is off)


class LessonView(Protocol):
    """What components read of a lesson (edge.lessons.lessons.Lesson)."""

    @property
    def id(self) -> str: ...
    @property
    def title(self) -> str: ...
    @property
    def join_code(self) -> str: ...
    @property
    def state(self) -> str: ...  # live | ended | interrupted
    @property
    def started_at(self) -> float: ...
    @property
    def ended_at(self) -> float | None: ...
    def to_json(self) -> dict[str, Any]: ...


LessonHook = Callable[[LessonView], Awaitable[None]]


class LessonHooks(Protocol):
    """Run code as a lesson starts (in registration order) and stops (in reverse) (edge.lessons.lessons.Lessons)."""

    def on_start(self, hook: LessonHook) -> None: ...
    def on_stop(self, hook: LessonHook) -> None: ...


class LiveLesson(Protocol):
    """The live lesson and time zero of its media clock (edge.lessons.lessons.Lessons)."""

    def current(self) -> LessonView | None: ...
    def origin(self, lesson: LessonView) -> float: ...


class LessonLookup(Protocol):
    """Lessons of any state, by id or join code (edge.lessons.lessons.Lessons)."""

    def get(self, lesson_id: str) -> LessonView | None: ...
    def by_code(self, join_code: str) -> LessonView | None: ...


class RecordsPolicy(Protocol):
    """Whether a lesson is recorded: a scheduled one may be streamed only (edge.lessons.timetable.Timetable)."""

    def records(self, lesson: LessonView) -> bool: ...


class AlarmBoard(Protocol):
    """Say what the teacher and the technician must know until it is cleared (edge.health.health.Alarms)."""

    def raise_alarm(self, name: str, message: str, **params: object) -> None: ...
    def clear_alarm(self, name: str) -> None: ...
    def now(self) -> dict[str, str]: ...


class DiskRoom(Protocol):
    """A full disk: give the database its reserve, and tend it back once there is room (edge.services.Disk)."""

    async def tend(self) -> bool: ...
    def full(self) -> None: ...


class MuteState(Protocol):
    """Whether the teacher muted the lesson's microphone (edge.media.devices.MicrophoneMute)."""

    @property
    def muted(self) -> bool: ...


class ClockVerdict(Protocol):
    """The last look at whether the clock is synchronised; None before the first (edge.services.ClockTrust)."""

    synchronised: bool | None


class BoardMessages(Protocol):
    """The board as it is now, as data-channel messages for a late joiner (edge.board.state.Board)."""

    def state_messages(self) -> list[str]: ...
