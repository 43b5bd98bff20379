"""Courseware: what the doors (and the uploads) ask of the courseware component and its cache."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, Protocol

from sync.budget import Budget
from sync.errors import StoreClosed
from sync.pull import PullReport
from sync.store import Hold, Store

NOT_RUNNING = "the courseware cache is not running (starting or restarting)"
LAST_PULL_KEY = "last_pull_ok_at"  # the courseware store's meta key for the last pull that succeeded


class CoursewarePort(Protocol):
    """What the service layer asks of the courseware component (edge.courseware.cache.CoursewareComponent)."""

    @property
    def store(self) -> Store | None: ...
    @property
    def budget(self) -> Budget | None: ...
    async def listing(self) -> dict[str, Any]: ...
    def pull_now(self) -> None: ...
    async def open(self, course: str, path: str) -> Hold: ...
    def read(self, hold: Hold, start: int, end: int) -> AsyncIterator[bytes]: ...
    async def release(self, hold: Hold) -> None: ...
    async def chunk(self, digest: str) -> bytes | None: ...
    async def pin(self, course: str, seconds: float, reason: str = "") -> None: ...
    def apply_settings(self) -> None: ...

    paused: bool  # the console's `sync pause`: no scheduled pulls until resumed (a pull asked for still runs)

    @property
    def last_report(self) -> PullReport | None: ...
    @property
    def last_error(self) -> str: ...
    @property
    def last_attempt_at(self) -> float | None: ...


def running(courseware: CoursewarePort | None) -> CoursewarePort:
    """The courseware component while its store is open; StoreClosed (the doors' 503) otherwise."""
    if courseware is None or courseware.store is None:
        raise StoreClosed(NOT_RUNNING)
    return courseware


def budget(courseware: CoursewarePort | None) -> Budget | None:
    """The WAN budget the courseware component owns now (None while it is not running: no limit)."""
    return courseware.budget if courseware is not None else None


async def release(courseware: CoursewarePort | None, hold: Hold) -> None:
    """Let go of a hold (idempotent), whether or not the component that gave it still runs."""
    if courseware is not None:
        await courseware.release(hold)
    elif not hold.released:
        await asyncio.to_thread(hold.release)
