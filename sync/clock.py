"""The box's one clock: the monotonic clock measures, the wall clock only labels.

Durations, pacing, time-outs and the media clock use `monotonic()`; nothing is ever computed
from a difference of wall times. `wall()` and `now()` give the date and time a person reads
(and the budget's windows and months, which follow the clock when NTP corrects it); whether
that label can be trusted is `synchronised()`. A box without a battery clock boots with a
wrong time and steps when NTP answers: a `StepDetector` notices when wall and monotonic deltas
disagree. `sync/` and `edge/` import this module; `drivers/` import nothing of ours and stamp
their frames with `time.monotonic()` directly, which is the same clock.
"""

from __future__ import annotations

import ctypes
import functools
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

STEP_TOLERANCE_S = 1.0
TIMESYNC_FLAG = Path("/run/systemd/timesync/synchronized")
TIME_ERROR = 5  # adjtimex(2): the kernel clock is not synchronised
_TIMEX_BYTES = 256  # larger than struct timex on every Linux ABI; zeroed `modes` = read only


def monotonic() -> float:
    """Seconds on the monotonic clock (never steps): the only clock to measure with."""
    return time.monotonic()


def wall() -> float:
    """Seconds since the epoch on the wall clock: a label, it may step."""
    return time.time()


_STEADY_ANCHOR = time.time() - time.monotonic()  # the wall clock as it read when the box started


def steady_wall() -> float:
    """Epoch seconds that advance with the monotonic clock and never step (protocol timestamps, e.g. RTCP)."""
    return _STEADY_ANCHOR + monotonic()


def now() -> datetime:
    """The wall clock as a local naive datetime (daily windows, month keys)."""
    return datetime.fromtimestamp(wall())


def utcnow() -> datetime:
    """The wall clock as an aware UTC datetime."""
    return datetime.fromtimestamp(wall(), UTC)


@functools.cache
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def kernel_synchronised() -> bool | None:
    """The kernel's own view (adjtimex), or None where it cannot be asked."""
    try:
        state = int(_libc().adjtimex(ctypes.create_string_buffer(_TIMEX_BYTES)))
    except (OSError, AttributeError):
        return None
    return None if state < 0 else state != TIME_ERROR


def system_synchronised(flag: Path = TIMESYNC_FLAG) -> bool:
    """True when systemd-timesyncd says so or the kernel says its clock is synchronised."""
    return flag.exists() or bool(kernel_synchronised())


@dataclass(frozen=True)
class Step:
    """A jump of the wall clock: how far (positive = forward) and the wall time just after it."""

    offset_s: float
    at: float

    def describe(self) -> str:
        """The offset in words a technician reads, e.g. "+3 d 0 h 0 min" or "-1 h 0 min 5 s"."""
        sign = "+" if self.offset_s >= 0 else "-"
        seconds = round(abs(self.offset_s))
        days, rest = divmod(seconds, 86_400)
        hours, rest = divmod(rest, 3600)
        minutes, secs = divmod(rest, 60)
        if days:
            return f"{sign}{days} d {hours} h {minutes} min"
        return f"{sign}{hours} h {minutes} min {secs} s" if hours else f"{sign}{minutes} min {secs} s"


class StepDetector:
    """Notices wall-clock steps by comparing wall and monotonic deltas between two checks."""

    def __init__(
        self,
        tolerance_s: float = STEP_TOLERANCE_S,
        wall_clock: Callable[[], float] = wall,
        monotonic_clock: Callable[[], float] = monotonic,
    ) -> None:
        self.tolerance_s = tolerance_s
        self._wall, self._monotonic = wall_clock, monotonic_clock
        self._base = self._offset()
        self.last: Step | None = None
        self.steps = 0

    def _offset(self) -> float:
        return self._wall() - self._monotonic()

    def check(self) -> Step | None:
        """The step since the previous check (the offset moved by more than the tolerance), else None."""
        offset = self._offset()
        moved, self._base = offset - self._base, offset
        if abs(moved) <= self.tolerance_s:
            return None
        self.last = Step(round(moved, 3), self._wall())
        self.steps += 1
        return self.last


class Clock:
    """The box's clock as its parts share it: measure on `monotonic`, label with `wall`, ask `synchronised`."""

    def __init__(
        self,
        wall_clock: Callable[[], float] = wall,
        monotonic_clock: Callable[[], float] = monotonic,
        synchronised: Callable[[], bool] = system_synchronised,
    ) -> None:
        self.wall = wall_clock
        self.monotonic = monotonic_clock
        self.synchronised = synchronised
        self.steps = StepDetector(wall_clock=wall_clock, monotonic_clock=monotonic_clock)

    def now(self) -> datetime:
        """The wall clock as a local naive datetime."""
        return datetime.fromtimestamp(self.wall())

    def utcnow(self) -> datetime:
        """The wall clock as an aware UTC datetime."""
        return datetime.fromtimestamp(self.wall(), UTC)
